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
  /** The tempo plot shows this many seconds, redrawn this often (ms). */
  const PLOT_WINDOW_S = 60;
  const PLOT_REDRAW_MS = 250;
  /** The skeleton is redrawn this often (ms); the server sends poses at most 15 a second. */
  const STAGE_REDRAW_MS = 66;
  /** A pose older than this (ms) is drawn faded: the dancer has left, or the server lost them. */
  const POSE_STALE_MS = 1500;
  /** The camera preview (/preview.jpg, `d2m serve --preview`) is fetched this often (ms), and
   *  looked for again this often (ms) while the server has none. */
  const PREVIEW_MS = 100;
  const PREVIEW_RETRY_MS = 3000;
  /** Bones of each skeleton layout (pairs of joint indices), as d2m_server.preview draws them. */
  const EDGES = {
    coco17: [[0, 1], [0, 2], [1, 3], [2, 4], [5, 6], [5, 7], [7, 9], [6, 8], [8, 10],
      [5, 11], [6, 12], [11, 12], [11, 13], [13, 15], [12, 14], [14, 16]],
    mediapipe33: [[0, 1], [1, 2], [2, 3], [3, 7], [0, 4], [4, 5], [5, 6], [6, 8], [9, 10],
      [11, 12], [11, 13], [13, 15], [15, 17], [15, 19], [15, 21], [17, 19],
      [12, 14], [14, 16], [16, 18], [16, 20], [16, 22], [18, 20],
      [11, 23], [12, 24], [23, 24], [23, 25], [24, 26], [25, 27], [26, 28],
      [27, 29], [28, 30], [29, 31], [30, 32], [27, 31], [28, 32]],
  };
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
      bpm: null, bar: null, beat: null, danceBpm: null, confidence: null, locked: null, mode: null,
      genre: null, genreSource: null, energy: null, sharpness: null, next: null,
      lookaheadS: null, serverUnderruns: null,
    },
    camera: { on: false, sent: 0, skipped: 0, tooLarge: 0, server: null },
    // the tracked skeleton (`pose` events) and the server's camera preview (/preview.jpg)
    stage: { poses: 0, last: null, preview: false, previewOffered: false, previewFrames: 0, drawn: 0 },
    // tempo plot: {t (s, page clock), dance, music, confidence}, the last PLOT_WINDOW_S
    plot: { samples: [], drawn: 0 },
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
      audioStateChanged();            // "Start sound" stays up while the browser holds sound back
      if (ctx.state !== "running") {
        // without a click, resume() waits for one (Chrome) or fails: do not wait for it here
        const resumed = ctx.resume();
        if (fromClick) await resumed; else resumed.catch(() => {});
      }
    } catch (err) {
      say(`sound cannot start: ${err.message}`, true);
    }
    audioStateChanged();
    if (fromClick && ctx && ctx.state !== "running") say("the browser kept sound off", true);
  }

  function audioStateChanged() {
    const running = !!ctx && ctx.state === "running";
    d2m.audio.state = ctx ? ctx.state : "off";
    $("sound-gate").hidden = running;
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
        if (typeof m.mode === "string") d2m.music.mode = m.mode;
        if (d2m.music.bpm === null) showBpm(m.bpm);
        plotSample({ dance: m.bpm, confidence: m.confidence });
        renderTempo();
        break;
      case "pose":
        if (Array.isArray(m.joints)) {
          d2m.stage.poses += 1;
          d2m.stage.last = { layout: m.layout, joints: m.joints, person: m.person, at: performance.now() };
        }
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
    plotSample({ music: m.bpm });
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
      if (typeof s.tempo.mode === "string") mu.mode = s.tempo.mode;
      if (!d2m.beats) showBpm(s.tempo.bpm);
      plotSample({ dance: s.tempo.dance_bpm, music: s.tempo.bpm, confidence: s.tempo.confidence });
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
      d2m.stage.previewOffered = s.sources.some((x) => x && x.preview_frames > 0);
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
    // the tracker's mode ("following" / "holding" / "idle") where the server reports one
    $("mode").textContent = mu.mode || (mu.locked === null ? "–" : (mu.locked ? "locked" : "searching"));
  }

  // ------------------------------------------------------- the tracked skeleton
  const stage = { image: null, imageAt: 0, fetching: false, nextFetch: 0 };

  function previewURL() {
    // the preview comes from the page's own server (the CSP allows nothing else)
    return `${location.protocol}//${location.host}/preview.jpg?n=${d2m.stage.previewFrames}`;
  }

  async function fetchPreview() {
    const now = performance.now();
    // only while a source says it makes previews (status `sources[].preview_frames`), so a
    // server without one is not asked (each 404 would be an error in the browser console)
    if (!d2m.stage.previewOffered) { d2m.stage.preview = false; return; }
    if (stage.fetching || now < stage.nextFetch || !location.host || location.protocol === "file:") return;
    stage.fetching = true;
    try {
      const res = await fetch(previewURL(), { cache: "no-store" });
      if (res.ok && (res.headers.get("content-type") || "").startsWith("image/")) {
        const bitmap = await createImageBitmap(await res.blob());
        if (stage.image && stage.image.close) stage.image.close();
        stage.image = bitmap;
        stage.imageAt = now;
        d2m.stage.preview = true;
        d2m.stage.previewFrames += 1;
        stage.nextFetch = now + PREVIEW_MS;
      } else {
        d2m.stage.preview = false;
        stage.nextFetch = now + PREVIEW_RETRY_MS;
      }
    } catch (err) {
      d2m.stage.preview = false;
      stage.nextFetch = now + PREVIEW_RETRY_MS;
    } finally {
      stage.fetching = false;
    }
  }

  function drawStage() {
    fetchPreview();
    const canvas = $("stage");
    const g = canvas.getContext("2d");
    const img = d2m.stage.preview ? stage.image : null;
    // the canvas takes the preview's shape, or 4:3 for the skeleton alone
    const w = canvas.clientWidth || 640;
    const h = Math.round(w * (img ? img.height / img.width : 3 / 4));
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#05070a";
    g.fillRect(0, 0, w, h);
    if (img) {
      g.drawImage(img, 0, 0, w, h);
    } else {
      g.strokeStyle = "#1c212b";               // a floor grid, so a skeleton alone has a place
      g.lineWidth = 1;
      for (let i = 1; i < 8; i++) {
        g.beginPath(); g.moveTo((i * w) / 8, 0); g.lineTo((i * w) / 8, h); g.stroke();
        g.beginPath(); g.moveTo(0, (i * h) / 8); g.lineTo(w, (i * h) / 8); g.stroke();
      }
    }
    const pose = d2m.stage.last;
    const age = pose ? performance.now() - pose.at : Infinity;
    if (pose) drawSkeleton(g, pose, w, h, age > POSE_STALE_MS ? 0.35 : 1);
    let status;
    if (!pose) status = img ? "camera preview; no dancer tracked yet" : "waiting for a dancer…";
    else if (age > POSE_STALE_MS) status = "the dancer was lost; last pose shown";
    else status = (img ? "camera preview + tracked skeleton" : "tracked skeleton (no camera preview)")
      + ` · person ${pose.person}`;
    $("stage-status").textContent = status;
    d2m.stage.drawn += 1;
  }

  function drawSkeleton(g, pose, w, h, alpha) {
    const pts = pose.joints.map((j) => (Array.isArray(j) && j.length >= 2 && Number.isFinite(j[0])
      && Number.isFinite(j[1])) ? [j[0] * w, j[1] * h] : null);
    g.save();
    g.globalAlpha = alpha;
    g.lineCap = "round";
    g.lineWidth = Math.max(3, w / 160);
    g.strokeStyle = "#4cc3ff";
    for (const [a, b] of EDGES[pose.layout] || []) {
      if (!pts[a] || !pts[b]) continue;
      g.beginPath(); g.moveTo(pts[a][0], pts[a][1]); g.lineTo(pts[b][0], pts[b][1]); g.stroke();
    }
    g.fillStyle = "#ffd23c";
    const r = Math.max(3, w / 200);
    for (const p of pts) {
      if (!p) continue;
      g.beginPath(); g.arc(p[0], p[1], r, 0, 2 * Math.PI); g.fill();
    }
    g.restore();
  }

  // ------------------------------------------------------------ the tempo plot
  function plotSample(values) {
    const t = performance.now() / 1000;
    const sample = { t, dance: null, music: null, confidence: null };
    for (const k of ["dance", "music", "confidence"]) {
      const v = values[k];
      if (v !== null && v !== undefined && Number.isFinite(Number(v)) && (k === "confidence" || v > 0)) {
        sample[k] = Number(v);
      }
    }
    const samples = d2m.plot.samples;
    samples.push(sample);
    while (samples.length && samples[0].t < t - PLOT_WINDOW_S - 1) samples.shift();
  }

  function drawPlot() {
    const canvas = $("tempo-plot");
    const g = canvas.getContext("2d");
    const w = canvas.clientWidth || 640;
    const h = Math.round(Math.min(400, Math.max(180, w * 0.62)));
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 44, right = 34, top = 10, bottom = 24;
    const pw = w - left - right, ph = h - top - bottom;
    const now = performance.now() / 1000;
    const samples = d2m.plot.samples.filter((s) => s.t >= now - PLOT_WINDOW_S);
    const bpms = samples.flatMap((s) => [s.dance, s.music]).filter((v) => v !== null);
    let lo = bpms.length ? Math.min(...bpms) : 100, hi = bpms.length ? Math.max(...bpms) : 140;
    const mid = (lo + hi) / 2;
    const span = Math.max(20, (hi - lo) * 1.2);
    lo = Math.floor((mid - span / 2) / 10) * 10;
    hi = Math.ceil((mid + span / 2) / 10) * 10;
    const x = (t) => left + pw * (1 - (now - t) / PLOT_WINDOW_S);
    const yBpm = (b) => top + ph * (1 - (b - lo) / (hi - lo));
    const yConf = (c) => top + ph * (1 - clamp(c, 0, 1));
    // grid and axes
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    g.strokeStyle = "#2a2f3a";
    g.fillStyle = "#8a91a3";
    const step = hi - lo > 60 ? 20 : 10;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let b = lo; b <= hi; b += step) {
      g.beginPath(); g.moveTo(left, yBpm(b)); g.lineTo(left + pw, yBpm(b)); g.stroke();
      g.fillText(String(b), left - 6, yBpm(b));
    }
    g.textAlign = "left";
    for (const c of [0, 0.5, 1]) g.fillText(c.toFixed(1), left + pw + 6, yConf(c));
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let s = PLOT_WINDOW_S; s >= 0; s -= 10) {
      const xs = left + pw * (1 - s / PLOT_WINDOW_S);
      g.beginPath(); g.moveTo(xs, top); g.lineTo(xs, top + ph); g.stroke();
      g.fillText(s ? `-${s} s` : "now", xs, top + ph + 6);
    }
    g.save();
    g.translate(11, top + ph / 2);
    g.rotate(-Math.PI / 2);
    g.textBaseline = "middle";
    g.fillText("BPM", 0, 0);
    g.restore();
    // the three series
    const line = (key, y, colour, width) => {
      g.strokeStyle = colour;
      g.lineWidth = width;
      g.beginPath();
      let pen = false;
      for (const s of samples) {
        if (s[key] === null) continue;
        if (pen) g.lineTo(x(s.t), y(s[key])); else g.moveTo(x(s.t), y(s[key]));
        pen = true;
      }
      if (pen) g.stroke();
    };
    g.save();
    g.beginPath();
    g.rect(left, top, pw, ph);
    g.clip();
    line("confidence", yConf, "#3ccf7a", 1.5);
    line("dance", yBpm, "#4cc3ff", 2);
    line("music", yBpm, "#ff5a36", 2.5);
    g.restore();
    if (!samples.length) {
      g.fillStyle = "#8a91a3";
      g.textAlign = "center";
      g.textBaseline = "middle";
      g.fillText("no tempo yet", left + pw / 2, top + ph / 2);
    }
    d2m.plot.drawn += 1;
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
  setInterval(drawStage, STAGE_REDRAW_MS);
  setInterval(drawPlot, PLOT_REDRAW_MS);
  drawStage();
  drawPlot();
})();
