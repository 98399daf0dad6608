// d2m live page: plays the server's music stream and shows what the server hears and plans.
//
// Served by d2m itself (http://127.0.0.1:8765/ by default) and connects back to the same
// address over WebSocket. No build step, nothing loaded from other sites.
// Query parameters: ?ws=ws://host:port/ (another server), ?buffer=120 (jitter buffer, ms),
// ?token=... (for a server started with a token; otherwise the page asks for it once and
// keeps it for this browser tab).
// For tests and debugging, everything the page knows is on `window.d2m`.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));

  /** Jitter buffer: playback starts with this much audio queued (ms). */
  const BUFFER_MS = clamp(Number(params.get("buffer")) || 120, 20, 2000);
  /** More than this queued (ms) and the oldest audio is dropped down to BUFFER_MS. */
  const MAX_BUFFER_MS = Math.max(4 * BUFFER_MS, 400);
  /** Reconnect delays (ms): doubled after each failed attempt up to the maximum. */
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 5000;
  /** Camera frames: rate, width sent (height keeps the aspect), JPEG quality, header size. */
  const CAMERA_FPS = 15;
  const CAMERA_WIDTH = 320;
  const CAMERA_QUALITY = 0.7;
  const VIDEO_HEADER_BYTES = 24;
  /** Stop sending camera frames while this much is waiting in the socket (bytes). */
  const CAMERA_MAX_BACKLOG = 256 * 1024;
  /** Volume slider: send at most one control per this many ms while dragging. */
  const VOLUME_THROTTLE_MS = 100;
  const AUDIO_HEADER_BYTES = 32;
  const GENRES_FALLBACK = ["break", "pop", "lock", "middle_hiphop", "la_hiphop", "house",
    "waack", "krump", "street_jazz", "ballet_jazz"];

  const $ = (id) => document.getElementById(id);
  const fmt = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(Number(x)))
    ? "–" : Number(x).toFixed(digits);

  // Everything the page knows, for tests and the browser console.
  const d2m = window.d2m = {
    url: null,
    connected: false,
    connects: 0,
    hello: null,
    events: {},
    beats: 0,
    lastError: null,
    audio: {
      state: "off", contextRate: null, sourceRate: null, samplesReceived: 0, samplesPlayed: 0,
      underruns: 0, underrunFrames: 0, bufferedMs: 0, overflowFrames: 0, gapFrames: 0,
      badFrames: 0, peak: 0, playing: false,
    },
    music: {
      bpm: null, bar: null, beat: null, danceBpm: null, confidence: null, locked: null,
      genre: null, genreSource: null, energy: null, sharpness: null, next: null,
      lookaheadS: null, serverUnderruns: null,
    },
    camera: { on: false, sent: 0, skipped: 0, tooLarge: 0, server: null },
  };

  let ws = null;
  let reconnectDelay = RECONNECT_MIN_MS;
  let ctx = null;
  let node = null;
  let gain = null;
  let expectedIndex = null;
  let genresFilled = false;

  // ------------------------------------------------------------------ messages
  function say(text, isError = false) {
    const el = $("message");
    el.textContent = text;
    el.className = isError ? "error" : "";
    if (isError) d2m.lastError = text;
  }

  function send(obj) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify(obj));
      return true;
    }
    say("not connected to the server", true);
    return false;
  }

  function control(fields) {
    return send({ type: "control", ...fields });
  }

  // ---------------------------------------------------------------- connection
  function wsURL() {
    const explicit = params.get("ws");
    if (explicit) return explicit;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const host = location.host || "127.0.0.1:8765";
    return `${proto}//${host}/`;
  }

  /** The server's token: ?token=, else remembered for this tab, else asked for. */
  function token() {
    const TOKEN_KEY = "d2m-token";
    let value = params.get("token") || sessionStorage.getItem(TOKEN_KEY) || "";
    if (!value) value = window.prompt("This d2m server needs its token:") || "";
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    return value;
  }

  function connect() {
    d2m.url = wsURL();
    try {
      ws = new WebSocket(d2m.url);
    } catch (err) {
      say(`cannot open ${d2m.url}: ${err.message}`, true);
      return;
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      d2m.connected = true;
      d2m.connects += 1;
      reconnectDelay = RECONNECT_MIN_MS;
      setPill("conn", "connected", "on");
      say(`connected to ${d2m.url}`);
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") onJSON(e.data);
      else onAudio(e.data);
    };
    ws.onclose = (e) => {
      const was = d2m.connected;
      d2m.connected = false;
      expectedIndex = null;
      if (node) node.port.postMessage({ type: "reset" });
      setPill("conn", `disconnected${e.code ? " (" + e.code + ")" : ""}; retrying`, "bad");
      if (was) say(`connection closed${e.reason ? ": " + e.reason : ""}`, true);
      stopCamera();
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(RECONNECT_MAX_MS, reconnectDelay * 2);
    };
  }

  function setPill(id, text, cls) {
    const el = $(id);
    el.textContent = text;
    el.className = `pill ${cls}`;
  }

  // ---------------------------------------------------------------------- audio
  async function startAudio(fromClick) {
    try {
      if (!ctx) {
        try {
          ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
        } catch (err) {
          ctx = new AudioContext({ latencyHint: "interactive" });   // resampled in the worklet
        }
        d2m.audio.contextRate = ctx.sampleRate;
        await ctx.audioWorklet.addModule("worklet.js");
        node = new AudioWorkletNode(ctx, "d2m-player", {
          numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2],
          processorOptions: { bufferMs: BUFFER_MS, maxBufferMs: MAX_BUFFER_MS, sourceRate: 48000 },
        });
        node.port.onmessage = (e) => onWorkletStats(e.data);
        gain = ctx.createGain();
        gain.gain.value = Number($("page-volume").value);
        node.connect(gain).connect(ctx.destination);
        ctx.onstatechange = audioStateChanged;
      }
      if (ctx.state !== "running") await ctx.resume();
    } catch (err) {
      say(`sound cannot start: ${err.message}`, true);
    }
    audioStateChanged();
    if (fromClick && ctx && ctx.state !== "running") say("the browser kept sound off", true);
  }

  function audioStateChanged() {
    const running = !!ctx && ctx.state === "running";
    d2m.audio.state = ctx ? ctx.state : "off";
    $("start").hidden = running;
    setPill("audio-state", running ? `sound on (${ctx.sampleRate} Hz)` : "sound off", running ? "on" : "off");
    if (running) subscribe();
  }

  function subscribe() {
    if (ws && ws.readyState === WebSocket.OPEN && ctx && ctx.state === "running") {
      ws.send(JSON.stringify({ type: "subscribe", audio: true }));
    }
  }

  function onAudio(buf) {
    if (buf.byteLength < AUDIO_HEADER_BYTES) { d2m.audio.badFrames += 1; return; }
    const v = new DataView(buf);
    const magic = String.fromCharCode(v.getUint8(0), v.getUint8(1), v.getUint8(2), v.getUint8(3));
    const channels = v.getUint8(5);
    const headerBytes = v.getUint16(6, true);
    const rate = v.getUint32(8, true);
    const frames = v.getUint32(12, true);
    const index = Number(v.getBigUint64(16, true));
    if (magic !== "D2MA" || channels === 0 || headerBytes < AUDIO_HEADER_BYTES
        || buf.byteLength !== headerBytes + frames * channels * 2 || headerBytes % 2) {
      d2m.audio.badFrames += 1;
      return;
    }
    if (expectedIndex !== null && index > expectedIndex) d2m.audio.gapFrames += index - expectedIndex;
    expectedIndex = index + frames;
    d2m.audio.samplesReceived += frames;
    d2m.audio.sourceRate = rate;
    if (!node) return;
    const pcm = new Int16Array(buf, headerBytes, frames * channels);
    const out = new Float32Array(frames * 2);
    for (let i = 0; i < frames; i++) {
      const l = pcm[i * channels] / 32767;
      out[2 * i] = l;
      out[2 * i + 1] = channels > 1 ? pcm[i * channels + 1] / 32767 : l;
    }
    node.port.postMessage({ type: "pcm", samples: out, rate }, [out.buffer]);
  }

  function onWorkletStats(s) {
    if (!s || s.type !== "stats") return;
    const a = d2m.audio;
    a.samplesPlayed = s.played;
    a.underruns = s.underruns;
    a.underrunFrames = s.underrunFrames;
    a.bufferedMs = s.bufferedMs;
    a.overflowFrames = s.overflowFrames;
    a.peak = s.peak;
    a.playing = s.playing;
    $("buffer").textContent = `${fmt(s.bufferedMs, 0)} ms`;
    $("page-underruns").textContent = String(s.underruns);
    $("played").textContent = `${fmt(s.played / (ctx ? ctx.sampleRate : 48000), 1)} s`;
    $("gaps").textContent = `${fmt((a.gapFrames + a.overflowFrames) / ((a.sourceRate || 48000) / 1000), 0)} ms`;
  }

  /** Delay (ms) from the server playing a sample to this page playing it. */
  function playbackDelayMs() {
    if (!ctx || ctx.state !== "running" || !d2m.audio.playing) return 0;
    const out = (ctx.outputLatency || 0) + (ctx.baseLatency || 0);
    return d2m.audio.bufferedMs + out * 1000;
  }

  // --------------------------------------------------------------------- events
  function onJSON(text) {
    let m;
    try { m = JSON.parse(text); } catch (err) { return; }
    if (!m || typeof m.type !== "string") return;
    d2m.events[m.type] = (d2m.events[m.type] || 0) + 1;
    switch (m.type) {
      case "hello":
        d2m.hello = m;
        if (m.auth_required) send({ type: "auth", token: token() });   // must come first
        send({ type: "status", id: "page" });
        subscribe();
        break;
      case "status":
      case "state":
        applyStatus(m);
        break;
      case "beat": onBeat(m); break;
      case "tempo":
        d2m.music.danceBpm = m.bpm;
        d2m.music.confidence = m.confidence;
        d2m.music.locked = m.locked;
        if (d2m.music.bpm === null) showBpm(m.bpm);
        renderTempo();
        break;
      case "genre":
        d2m.music.genre = m.genre;
        d2m.music.genreSource = m.source;
        renderGenre();
        break;
      case "style":
        d2m.music.energy = m.energy;
        d2m.music.sharpness = m.sharpness;
        renderStyle();
        break;
      case "segment":
        d2m.music.next = m;
        renderNext();
        break;
      case "control_applied":
        say(`applied on the next bar: ${describe(m)}`);
        break;
      case "ack":
        if (m.request === "control") say(`sent: ${describe(m.changes || {})}`);
        break;
      case "error":
        say(`server: ${m.message}`, true);
        if (m.request === "auth") sessionStorage.removeItem("d2m-token");
        if (m.request === "video_frame") stopCamera();
        break;
      default:
        break;
    }
  }

  function describe(obj) {
    return Object.entries(obj).filter(([k]) => k !== "type" && k !== "t" && k !== "id")
      .map(([k, v]) => `${k} ${JSON.stringify(v)}`).join(", ");
  }

  function showBpm(bpm) {
    d2m.music.bpm = bpm;
    $("bpm").textContent = fmt(bpm, 1);
  }

  function onBeat(m) {
    d2m.beats += 1;
    showBpm(m.bpm);
    const delay = playbackDelayMs();
    setTimeout(() => {
      d2m.music.bar = m.bar;
      d2m.music.beat = m.beat;
      $("bar").textContent = String(m.bar);
      const lights = $("beats").children;
      for (let i = 0; i < lights.length; i++) {
        lights[i].classList.toggle("down", i === 0);
        lights[i].classList.remove("on");
      }
      const light = lights[(m.beat - 1) % lights.length];
      if (light) {
        void light.offsetWidth;              // restart the fade
        light.classList.add("on");
        setTimeout(() => light.classList.remove("on"), 90);
      }
    }, delay);
  }

  function applyStatus(s) {
    const mu = d2m.music;
    if (s.tempo) {
      mu.danceBpm = s.tempo.dance_bpm;
      mu.confidence = s.tempo.confidence;
      mu.locked = s.tempo.locked;
      if (!d2m.beats) showBpm(s.tempo.bpm);
      syncControl("tempo-lock", (el) => { el.checked = !!s.tempo.tempo_lock; });
    }
    if (typeof s.genre === "string") { mu.genre = s.genre; mu.genreSource = s.genre_source; }
    if (typeof s.energy === "number") mu.energy = s.energy;
    if (typeof s.sharpness === "number") mu.sharpness = s.sharpness;
    if (s.next) mu.next = s.next;
    if (typeof s.bar === "number" && mu.bar === null) $("bar").textContent = String(s.bar);
    if (s.telemetry) {
      mu.lookaheadS = s.telemetry.lookahead_s;
      mu.serverUnderruns = s.telemetry.underruns;
      $("lookahead").textContent = `${fmt(s.telemetry.lookahead_s * 1000, 0)} ms`;
      $("server-underruns").textContent = fmt(s.telemetry.underruns, 0);
    }
    if (s.genre_probs && !genresFilled) fillGenres(Object.keys(s.genre_probs));
    syncControl("genre-select", (el) => {
      el.value = s.genre_source === "operator" && s.genre ? s.genre : "auto";
    });
    if (typeof s.volume === "number") syncControl("volume", (el) => { el.value = String(s.volume); });
    if (typeof s.playing === "boolean") syncControl("playing", (el) => { el.checked = s.playing; });
    if (typeof s.prompt === "string") syncControl("prompt", (el) => { el.value = s.prompt; });
    if (Array.isArray(s.sources)) {
      const cam = s.sources.find((x) => x && x.kind === "web-camera");
      d2m.camera.server = cam || null;
      if (cam) {
        $("camera-status").textContent = `${cam.message}: ${cam.poses} poses from ${cam.frames_received} frames`
          + (cam.pose_ms !== null ? `, pose ${fmt(cam.pose_ms, 0)} ms` : "");
      }
    }
    renderTempo();
    renderGenre();
    renderStyle();
    renderNext();
  }

  /** Update a control from the server's state unless the user is using it. */
  function syncControl(id, apply) {
    const el = $(id);
    if (el && document.activeElement !== el) apply(el);
  }

  function fillGenres(genres) {
    const sel = $("genre-select");
    for (const g of genres) {
      if ([...sel.options].some((o) => o.value === g)) continue;
      const opt = document.createElement("option");
      opt.value = g;
      opt.textContent = g.replace(/_/g, " ");
      sel.appendChild(opt);
    }
    genresFilled = true;
  }

  function renderTempo() {
    const mu = d2m.music;
    $("dance-bpm").textContent = mu.danceBpm === null ? "–" : `${fmt(mu.danceBpm, 1)} BPM`;
    $("confidence").textContent = fmt(mu.confidence, 2);
    $("locked").textContent = mu.locked === null ? "–" : (mu.locked ? "following the dancer" : "searching");
  }

  function renderGenre() {
    const mu = d2m.music;
    $("genre").textContent = mu.genre ? mu.genre.replace(/_/g, " ") : "–";
    $("genre-source").textContent = mu.genreSource ? `(${mu.genreSource})` : "";
  }

  function renderStyle() {
    const mu = d2m.music;
    $("energy").textContent = fmt(mu.energy, 2);
    $("sharpness").textContent = fmt(mu.sharpness, 2);
    $("energy-bar").style.width = `${clamp((mu.energy || 0) * 100, 0, 100)}%`;
    $("sharpness-bar").style.width = `${clamp((mu.sharpness || 0) * 100, 0, 100)}%`;
  }

  function renderNext() {
    const n = d2m.music.next;
    if (!n) return;
    $("next-bar").textContent = String(n.bar);
    $("next-kind").textContent = n.kind;
    $("next-genre").textContent = (n.genre || "").replace(/_/g, " ");
    $("next-bpm").textContent = `${fmt(n.bpm, 1)} BPM`;
    $("next-energy").textContent = fmt(n.energy, 2);
    $("next-time").textContent = `${fmt(n.start_time, 2)} s`;
  }

  // ------------------------------------------------------------------- controls
  function wireControls() {
    $("start").addEventListener("click", () => startAudio(true));
    $("genre-select").addEventListener("change", (e) => control({ genre: e.target.value }));
    $("prompt-form").addEventListener("submit", (e) => {
      e.preventDefault();
      control({ prompt: $("prompt").value });
    });
    const sendLock = () => {
      const locked = $("tempo-lock").checked;
      const bpm = Number($("lock-bpm").value);
      const fields = { tempo_lock: locked };
      if (locked && $("lock-bpm").value !== "" && Number.isFinite(bpm)) fields.bpm = bpm;
      control(fields);
    };
    $("tempo-lock").addEventListener("change", sendLock);
    $("lock-bpm").addEventListener("change", () => { if ($("tempo-lock").checked) sendLock(); });
    let volumeTimer = null;
    const sendVolume = () => { volumeTimer = null; control({ volume: Number($("volume").value) }); };
    $("volume").addEventListener("input", () => {
      if (volumeTimer === null) volumeTimer = setTimeout(sendVolume, VOLUME_THROTTLE_MS);
    });
    $("volume").addEventListener("change", () => {
      if (volumeTimer !== null) clearTimeout(volumeTimer);
      sendVolume();
    });
    $("page-volume").addEventListener("input", (e) => {
      if (gain) gain.gain.value = Number(e.target.value);
    });
    $("playing").addEventListener("change", (e) => control({ playing: e.target.checked }));
    $("camera").addEventListener("click", toggleCamera);
  }

  // --------------------------------------------------------------------- camera
  const cam = { stream: null, timer: null, canvas: null, busy: false, frame: 0, quality: CAMERA_QUALITY };

  async function toggleCamera() {
    if (cam.stream) { stopCamera(); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("the camera needs a secure page: open it as http://localhost:PORT on this machine, "
        + "or serve it over https", true);
      return;
    }
    try {
      cam.stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false,
      });
    } catch (err) {
      say(`camera: ${err.message}`, true);
      return;
    }
    const video = $("preview");
    video.srcObject = cam.stream;
    video.classList.add("on");
    try { await video.play(); } catch (err) { /* muted inline video plays without a gesture */ }
    cam.canvas = document.createElement("canvas");
    cam.timer = setInterval(sendCameraFrame, 1000 / CAMERA_FPS);
    d2m.camera.on = true;
    $("camera").textContent = "Stop camera";
  }

  function stopCamera() {
    if (cam.timer) clearInterval(cam.timer);
    cam.timer = null;
    if (cam.stream) cam.stream.getTracks().forEach((t) => t.stop());
    cam.stream = null;
    const video = $("preview");
    video.srcObject = null;
    video.classList.remove("on");
    d2m.camera.on = false;
    $("camera").textContent = "Use my camera";
  }

  function sendCameraFrame() {
    const video = $("preview");
    if (!ws || ws.readyState !== WebSocket.OPEN || cam.busy || ws.bufferedAmount > CAMERA_MAX_BACKLOG
        || !video.videoWidth) {
      d2m.camera.skipped += 1;
      return;
    }
    const w = CAMERA_WIDTH;
    const h = Math.max(1, Math.round(video.videoHeight * w / video.videoWidth));
    cam.canvas.width = w;
    cam.canvas.height = h;
    cam.canvas.getContext("2d").drawImage(video, 0, 0, w, h);
    const captureMs = performance.now();
    cam.busy = true;
    cam.canvas.toBlob(async (blob) => {
      try {
        if (!blob || !ws || ws.readyState !== WebSocket.OPEN) return;
        const jpeg = new Uint8Array(await blob.arrayBuffer());
        const limit = (d2m.hello && d2m.hello.limits && d2m.hello.limits.max_message_bytes) || 65536;
        if (jpeg.length + VIDEO_HEADER_BYTES > limit) {
          d2m.camera.tooLarge += 1;
          cam.quality = Math.max(0.3, cam.quality - 0.1);
          return;
        }
        const buf = new ArrayBuffer(VIDEO_HEADER_BYTES + jpeg.length);
        const v = new DataView(buf);
        [68, 50, 77, 86].forEach((c, i) => v.setUint8(i, c));      // "D2MV"
        v.setUint8(4, 1);                                           // version
        v.setUint8(5, 1);                                           // format: JPEG
        v.setUint16(6, VIDEO_HEADER_BYTES, true);
        v.setUint16(8, w, true);
        v.setUint16(10, h, true);
        v.setUint32(12, cam.frame >>> 0, true);
        v.setFloat64(16, captureMs, true);
        new Uint8Array(buf, VIDEO_HEADER_BYTES).set(jpeg);
        ws.send(buf);
        cam.frame += 1;
        d2m.camera.sent += 1;
      } finally {
        cam.busy = false;
      }
    }, "image/jpeg", cam.quality);
  }

  // ----------------------------------------------------------------------- start
  fillGenres(GENRES_FALLBACK);
  genresFilled = false;        // the server's list replaces the built-in one's order if it differs
  wireControls();
  connect();
  startAudio(false);
})();
