// d2m live page: the AudioWorklet that plays the server's PCM stream.
//
// The page posts {type: "pcm", samples: Float32Array (interleaved stereo), rate}
// messages; they go into a ring buffer (the jitter buffer). Playback starts once
// `bufferMs` of audio is queued and stops (counting one underrun) when the ring runs
// dry, then waits for `bufferMs` again. When more than `maxBufferMs` is queued (the
// page fell behind, e.g. a background tab), the oldest audio is dropped down to
// `bufferMs`. If the server's rate differs from the AudioContext's, samples are
// linearly interpolated. Every ~100 ms the worklet posts its counters back:
// {type: "stats", played, underruns, underrunFrames, bufferedFrames, bufferedMs,
//  overflowFrames, peak, playing}; `peak` is the largest |sample| played so far.

class D2mPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.bufferMs = o.bufferMs || 120;
    this.maxBufferMs = Math.max(o.maxBufferMs || 480, this.bufferMs * 2);
    this.srcRate = o.sourceRate || sampleRate;
    // capacity: the largest buffer allowed plus one second of headroom, at up to 192 kHz
    this.cap = Math.ceil((this.maxBufferMs / 1000 + 1) * Math.max(this.srcRate, sampleRate, 48000));
    this.ring = new Float32Array(this.cap * 2);
    this.read = 0;        // absolute source-frame counters (never wrap in practice)
    this.write = 0;
    this.frac = 0;        // fractional read position when resampling
    this.playing = false;
    this.played = 0;
    this.underruns = 0;
    this.underrunFrames = 0;
    this.overflowFrames = 0;
    this.peak = 0;
    this.lastReport = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  framesFor(ms) {
    return Math.round(ms / 1000 * this.srcRate);
  }

  onMessage(m) {
    if (!m) return;
    if (m.type === "pcm") {
      if (m.rate && m.rate !== this.srcRate) this.srcRate = m.rate;
      this.push(m.samples);
    } else if (m.type === "reset") {
      this.read = this.write;
      this.playing = false;
    }
  }

  push(samples) {
    const n = samples.length >> 1;
    const cap = this.cap;
    if (n >= cap) return;
    // never overwrite unread audio: make room first (counted as overflow)
    const room = cap - (this.write - this.read);
    if (n > room) {
      this.overflowFrames += n - room;
      this.read += n - room;
    }
    let w = this.write % cap;
    for (let i = 0; i < n; i++) {
      this.ring[2 * w] = samples[2 * i];
      this.ring[2 * w + 1] = samples[2 * i + 1];
      w = w + 1 === cap ? 0 : w + 1;
    }
    this.write += n;
    const buffered = this.write - this.read;
    if (buffered > this.framesFor(this.maxBufferMs)) {
      const drop = buffered - this.framesFor(this.bufferMs);
      this.read += drop;
      this.overflowFrames += drop;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0];
    const L = out[0];
    const R = out.length > 1 ? out[1] : null;
    const n = L.length;
    const cap = this.cap;
    const ring = this.ring;
    const step = this.srcRate / sampleRate;
    if (!this.playing) {
      if (this.write - this.read >= this.framesFor(this.bufferMs)) {
        this.playing = true;
        this.frac = 0;
      } else {
        L.fill(0);
        if (R) R.fill(0);
        this.report();
        return true;
      }
    }
    const need = step === 1 ? 1 : 2;
    for (let i = 0; i < n; i++) {
      if (this.write - this.read < need) {
        L.fill(0, i);
        if (R) R.fill(0, i);
        this.underruns += 1;
        this.underrunFrames += n - i;
        this.playing = false;
        break;
      }
      const j = (this.read % cap) * 2;
      if (step === 1) {
        L[i] = ring[j];
        if (R) R[i] = ring[j + 1];
        this.read += 1;
      } else {
        const k = ((this.read + 1) % cap) * 2;
        const a = this.frac;
        L[i] = ring[j] + (ring[k] - ring[j]) * a;
        if (R) R[i] = ring[j + 1] + (ring[k + 1] - ring[j + 1]) * a;
        this.frac += step;
        const whole = Math.floor(this.frac);
        this.frac -= whole;
        this.read += whole;
      }
      this.played += 1;
      const level = Math.abs(L[i]);
      if (level > this.peak) this.peak = level;
    }
    this.report();
    return true;
  }

  report() {
    if (currentFrame - this.lastReport < sampleRate / 10) return;
    this.lastReport = currentFrame;
    const buffered = this.write - this.read;
    this.port.postMessage({
      type: "stats",
      played: this.played,
      underruns: this.underruns,
      underrunFrames: this.underrunFrames,
      bufferedFrames: buffered,
      bufferedMs: buffered / this.srcRate * 1000,
      overflowFrames: this.overflowFrames,
      peak: this.peak,
      playing: this.playing,
    });
  }
}

registerProcessor("d2m-player", D2mPlayer);
