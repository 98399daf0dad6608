"""Faults at the session level: the music never stops.

* a generator that fails and hangs on purpose inside a running LiveSession:
  every failed or hung segment is covered by the synth, the worker is
  restarted, and the recording has no silent gap;
* the sound device is lost mid-show (a stand-in PortAudio stream that stops):
  the session says so and keeps serving audio to WebSocket clients on time;
* the camera is unplugged (the motion stops for seconds): the conductor holds
  the tempo and keeps the music going, and follows again when motion returns.

Broker outages are tested with the MQTT bridge (tests/hardening/test_mqtt_outage.py).
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import soundfile as sf

from d2m.conductor import Conductor, ConductorConfig
from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.plan import MUSIC
from d2m_server import app as app_module
from d2m_server.audio import SoundDeviceOutput
from d2m_server.ws import decode_audio_frame

from .support import live_session, recv_reply, shared_synth, ws_client, ws_url

SR = 48000


class Flaky:
    """The real synth, failing on purpose: raises on segments 2 and 3, hangs on segment 5."""

    name = "flaky-synth"
    sample_rate = SR

    def __init__(self):
        self.inner = shared_synth()
        self.release = threading.Event()
        self.failed: list[int] = []

    def initial_state(self):
        return self.inner.initial_state()

    def render(self, plan, state):
        if plan.index in (2, 3):
            self.failed.append(plan.index)
            raise RuntimeError(f"failing on purpose at segment {plan.index}")
        if plan.index == 5:
            self.failed.append(plan.index)
            self.release.wait(20)
        return self.inner.render(plan, state)


def silent_gaps(audio: np.ndarray, window: int) -> list[float]:
    """Start times (s) of windows that are entirely zero."""
    n = len(audio) // window
    blocks = np.abs(audio[:n * window]).reshape(n, window, -1).max(axis=(1, 2))
    return [round(k * window / SR, 3) for k in np.flatnonzero(blocks == 0.0)]


def test_failing_and_hanging_generator_never_stops_the_music(run, tmp_path):
    wav = tmp_path / "live.wav"
    gen = Flaky()

    async def main():
        async with live_session(gen, record=str(wav)) as session:
            session.worker.hang_timeout_s = 0.5
            loop = asyncio.get_running_loop()
            end = loop.time() + 6.0
            while loop.time() < end and session.worker.restarts == 0:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.5)              # a few segments after the restart
            return session.status()

    try:
        st = run(main())
    finally:
        gen.release.set()
    g = st["generator"]
    assert g["errors"] >= 1 and g["restarts"] >= 1, g
    assert g["fallback_segments"] >= 2 and g["cover"] == "synth"
    assert g["fallback_active"] is False, "the primary is back after the restart"
    assert g["silent_segments"] == 0
    assert st["telemetry"]["generator_errors"] >= 1 and st["telemetry"]["generator_restarts"] >= 1
    audio, sr = sf.read(str(wav), dtype="float32")
    assert sr == SR and len(audio) > 2 * SR
    # the idle pad plays throughout: no 50 ms of digital silence anywhere after the first block
    assert silent_gaps(audio[480:], SR // 20) == []


class LosingStream:
    """Stands in for ``sounddevice.OutputStream``: plays in real time, then the device goes away."""

    play_s = 1.0

    def __init__(self, *, samplerate, blocksize, channels, dtype, latency, device, callback,
                 finished_callback):
        self.blocksize, self.channels = blocksize, channels
        self.callback, self.finished = callback, finished_callback
        self.latency = 0.01
        self.active = False
        self._stop = threading.Event()

    def start(self):
        self.active = True
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set() and time.monotonic() - t0 < self.play_s:
            buf = np.empty((self.blocksize, self.channels), np.float32)
            self.callback(buf, self.blocksize, None, None)
            k += 1
            time.sleep(max(0.0, t0 + k * self.blocksize / SR - time.monotonic()))
        if not self._stop.is_set():
            self.active = False
            self.finished()                        # unplugged

    def stop(self):
        self._stop.set()

    abort = stop

    def close(self):
        self._stop.set()


def test_losing_the_sound_device_keeps_the_streams_going(run, monkeypatch):
    def open_output(spec, ring, clock, *, sample_rate, blocksize=480, latency="low", gain=None,
                    on_block=None, mixer=None):
        return SoundDeviceOutput(ring, clock, "stand-in", sample_rate, blocksize, gain=gain,
                                 on_block=on_block, mixer=mixer, _stream_factory=LosingStream,
                                 watchdog_interval_s=0.05, stall_timeout_s=0.3)

    monkeypatch.setattr(app_module, "open_output", open_output)

    async def main():
        async with live_session() as session:
            async with ws_client(ws_url(session)) as ws:
                await ws.send('{"type": "subscribe", "audio": true}')
                assert (await recv_reply(ws))["type"] == "ack"
                frames = []
                t0 = time.monotonic()
                while time.monotonic() - t0 < 2.5:
                    msg = await asyncio.wait_for(ws.recv(), 5)
                    if isinstance(msg, bytes):
                        frames.append(decode_audio_frame(msg))
                st = session.status()
                return frames, st, time.monotonic() - t0

    frames, st, elapsed = run(main())
    assert st["audio"]["output"] == "sounddevice" and st["audio"]["lost"] is True
    assert st["telemetry"]["audio_device_lost"] == 1.0
    # the audio stream to clients is contiguous across the loss and keeps real time
    idx = [f.sample_index for f in frames]
    assert all(b == a + f.frames for a, b, f in zip(idx, idx[1:], frames)), "gap or overlap"
    streamed_s = (idx[-1] + frames[-1].frames - idx[0]) / SR
    assert streamed_s > 0.6 * elapsed, (streamed_s, elapsed)
    assert streamed_s < elapsed + 0.5


def test_motion_stopping_holds_the_tempo_and_the_music_goes_on():
    """The camera is unplugged for 6 s mid-dance, then plugged back in (sans-I/O conductor)."""
    bpm = 120.0
    dancer = SyntheticDancer(tempo=TempoCurve.constant(bpm), seed=5, noise=0.003)
    conductor = Conductor(ConductorConfig(genre="house"))
    plans = []

    def feed(t0: float, t1: float, frames: bool) -> None:
        t = t0
        while t < t1:
            events = conductor.push_frame(dancer.frame(t)) if frames else conductor.advance(t)
            plans.extend(e.plan for e in events if hasattr(e, "plan"))
            t = round(t + 1 / 60, 6)

    feed(0.0, 14.0, True)
    before = conductor.status()["tempo"]
    assert before["locked"] and abs(before["bpm"] - bpm) < 2.0, before
    n_before = len(plans)
    feed(14.0, 20.0, False)                            # unplugged
    during = conductor.status()["tempo"]
    gap_plans = plans[n_before:]
    assert abs(during["bpm"] - bpm) < 2.0, during      # tempo held
    assert gap_plans and all(p.kind == MUSIC for p in gap_plans), [p.kind for p in gap_plans]
    assert all(abs(p.bpm - bpm) < 2.0 for p in gap_plans)
    covered = (gap_plans[-1].end_sample - gap_plans[0].start_sample) / SR
    assert covered > 5.0, "bars kept coming through the gap"
    feed(20.0, 30.0, True)                             # plugged back in
    after = conductor.status()["tempo"]
    assert after["locked"] and abs(after["bpm"] - bpm) < 2.0, after
    assert all(p.kind == MUSIC for p in plans[-4:])
