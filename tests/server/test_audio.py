"""Audio output: ring buffer, session clock, volume ramp, paced and sound-device outputs."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from d2m_server import audio
from d2m_server.audio import (
    RAMP_S, AudioRing, GainRamp, PacedOutput, PlaybackClock, SoundDeviceOutput,
    open_output,
)

SR = 48000


def ramp_block(start: int, frames: int) -> np.ndarray:
    """Stereo block whose left channel counts frames (exact in float32 up to 2**24)."""
    idx = np.arange(start, start + frames, dtype=np.float32)
    return np.stack([idx, -idx], axis=1)


# -- AudioRing ----------------------------------------------------------------


def test_ring_round_trip_with_wraparound():
    ring = AudioRing(100)
    out = np.empty((30, 2), np.float32)
    pos = 0
    for _ in range(20):  # 20 x 30 frames through a 100-frame ring: wraps many times
        assert ring.write(ramp_block(pos, 30)) == 30
        assert ring.read_into(out) == 30
        np.testing.assert_array_equal(out, ramp_block(pos, 30))
        pos += 30
    assert ring.underruns == 0 and ring.available == 0 and ring.free == 100


def test_ring_write_never_blocks_and_refuses_what_does_not_fit():
    ring = AudioRing(50)
    assert ring.write(ramp_block(0, 40)) == 40
    assert ring.write(ramp_block(40, 40)) == 10
    assert ring.available == 50 and ring.free == 0 and ring.overflow_frames == 30
    out = np.empty((50, 2), np.float32)
    ring.read_into(out)
    np.testing.assert_array_equal(out, ramp_block(0, 50))


def test_ring_underrun_zero_fills_and_counts():
    ring = AudioRing(100)
    out = np.full((40, 2), 7.0, np.float32)
    assert ring.read_into(out) == 0
    assert ring.underruns == 0, "silence before the first write is not an underrun"
    assert not out.any()
    ring.write(ramp_block(1, 25))
    out[:] = 7.0
    assert ring.read_into(out) == 25
    np.testing.assert_array_equal(out[:25], ramp_block(1, 25))
    assert not out[25:].any()
    assert ring.underruns == 1 and ring.underrun_frames == 15
    ring.read_into(out)
    assert ring.underruns == 2 and ring.underrun_frames == 55


def test_ring_rejects_wrong_channel_count():
    with pytest.raises(ValueError, match="frames, 2"):
        AudioRing(10).write(np.zeros((5, 3), np.float32))


def test_ring_between_two_threads_keeps_every_frame_in_order():
    ring = AudioRing(256)
    total = 200_000
    got = []

    def writer():
        pos = 0
        while pos < total:
            n = ring.write(ramp_block(pos, min(97, total - pos)))
            pos += n
            if n == 0:
                time.sleep(0)

    def reader():
        out = np.empty((64, 2), np.float32)
        received = 0
        while received < total:
            n = ring.read_into(out)
            got.append(out[:n, 0].copy())
            received += n
            if n == 0:
                time.sleep(0)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    data = np.concatenate(got)
    np.testing.assert_array_equal(data, np.arange(total, dtype=np.float32))


# -- PlaybackClock ----------------------------------------------------------------


class FakeTime:
    """A settable monotonic clock for the sans-I/O parts."""

    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_clock_follows_position_and_extrapolates_at_most_one_block():
    now = FakeTime()
    clock = PlaybackClock(SR, clock=now)
    assert clock.now() == 0.0 and clock.position == 0
    assert clock.advance(480) == 0
    assert clock.now() == pytest.approx(0.01)
    now.t += 0.004
    assert clock.now() == pytest.approx(0.014)
    now.t += 1.0  # output stalled: the clock waits for the audio, at most one block ahead
    assert clock.now() == pytest.approx(0.02)
    assert clock.advance(480) == 480
    assert clock.position == 960
    assert clock.now() == pytest.approx(0.02)


def test_clock_never_goes_backwards_and_does_not_drift_over_hours():
    now = FakeTime()
    clock = PlaybackClock(SR, clock=now)
    last = 0.0
    blocks = 3 * 3600 * 100  # three hours of 10 ms blocks
    rng = np.random.default_rng(1)
    jitter = rng.uniform(-0.004, 0.004, size=2000)
    for i in range(2000):
        clock.advance(480 if i % 3 else 256)
        now.t += 0.01 + jitter[i]
        t = clock.now()
        assert t >= last
        last = t
    # the clock is the frame count: no accumulated error whatever the callback jitter
    clock2 = PlaybackClock(SR, clock=now)
    for _ in range(blocks // 1000):
        clock2.advance(480 * 1000)
    assert clock2.now() == blocks * 480 / SR


# -- GainRamp ------------------------------------------------------------------


def test_gain_ramp_is_linear_short_and_reaches_the_target():
    gain = GainRamp(1.0, sample_rate=SR)
    ones = np.ones((4800, 2), np.float32)
    np.testing.assert_array_equal(gain.apply(ones.copy()), ones)  # unity: untouched
    gain.set(0.0)
    out = gain.apply(ones.copy())
    n = int(RAMP_S * SR)
    assert out[n - 1, 0] == 0.0 and not out[n:].any()
    steps = np.diff(out[:n, 0])
    assert np.allclose(steps, -1.0 / n, atol=1e-6), "linear ramp"
    assert np.abs(np.diff(np.concatenate([[1.0], out[:, 0]]))).max() <= 1.0 / n + 1e-6, "no click"
    assert gain.current == 0.0


def test_gain_ramp_split_into_blocks_equals_one_block():
    a, b = GainRamp(0.2), GainRamp(0.2)
    a.set(0.9)
    b.set(0.9)
    sig = np.ones((2000, 2), np.float32)
    whole = a.apply(sig.copy())
    parts = np.concatenate([b.apply(sig[i:i + 480].copy()) for i in range(0, 2000, 480)])
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    assert whole[-1, 0] == pytest.approx(0.9)


def test_gain_change_during_a_ramp_starts_from_the_current_gain():
    gain = GainRamp(1.0)
    gain.set(0.0)
    gain.apply(np.ones((480, 2), np.float32))  # halfway
    mid = gain.current
    assert 0.4 < mid < 0.6
    gain.set(1.0)
    out = gain.apply(np.ones((480, 2), np.float32))
    assert abs(out[0, 0] - mid) < 0.01


def test_gain_rejects_out_of_range_volume():
    with pytest.raises(ValueError, match="between 0 and 1"):
        GainRamp().set(1.5)


# -- PacedOutput -----------------------------------------------------------------


def test_paced_output_plays_the_ring_in_order_and_never_runs_ahead_of_real_time():
    async def main():
        ring = AudioRing(SR)
        ring.write(ramp_block(0, SR // 2))
        clock = PlaybackClock(SR)
        played: list[tuple[int, np.ndarray]] = []
        out = PacedOutput(ring, clock, SR, 480, on_block=lambda b, s: played.append((s, b)))
        t0 = time.monotonic()
        await out.start()
        await asyncio.sleep(0.3)
        elapsed = time.monotonic() - t0
        await out.stop()
        return out, clock, played, elapsed

    out, clock, played, elapsed = asyncio.run(main())
    assert len(played) >= 2
    starts = [s for s, _ in played]
    assert starts == list(range(0, 480 * len(played), 480)), "contiguous start frames"
    audio_out = np.concatenate([b for _, b in played])
    np.testing.assert_array_equal(audio_out, ramp_block(0, len(audio_out)))
    assert clock.position == len(audio_out)
    # absolute schedule: never more than one block ahead of the wall clock
    assert clock.position <= elapsed * SR + 480
    assert out.status()["output"] == "paced" and out.status()["underruns"] == 0


# -- SoundDeviceOutput (with a stand-in PortAudio stream driven by a thread) ----------


class ThreadStream:
    """Calls the output's callback from its own thread like PortAudio, then dies.

    Stands in for ``sounddevice.OutputStream`` (the machine has no sound card).
    """

    def __init__(self, *, samplerate, blocksize, channels, dtype, latency, device, callback,
                 finished_callback):
        self.blocksize, self.channels = blocksize, channels
        self.callback, self.finished = callback, finished_callback
        self.blocks_before_death = 20
        self.hang = device == "hangs"   # stop calling back without telling anyone
        self.latency = 0.012
        self.active = False
        self._stop = threading.Event()

    def start(self):
        self.active = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        for _ in range(self.blocks_before_death):
            if self._stop.is_set():
                break
            buf = np.empty((self.blocksize, self.channels), np.float32)
            self.callback(buf, self.blocksize, None, None)
            time.sleep(self.blocksize / SR)
        if self.hang:
            return
        self.active = False
        self.finished()  # the device went away

    def stop(self):
        self._stop.set()

    abort = stop

    def close(self):
        self._stop.set()


@pytest.mark.parametrize("device", ["dies", "hangs"])
def test_sound_device_output_plays_then_survives_losing_the_device(caplog, device):
    caplog.set_level(logging.WARNING, logger="d2m.audio")

    async def main():
        ring = AudioRing(SR)
        ring.write(ramp_block(0, SR))
        clock = PlaybackClock(SR)
        played = []
        threads = set()

        def on_block(block, start):
            threads.add(threading.get_ident())
            played.append((start, block))

        out = SoundDeviceOutput(ring, clock, device, SR, 480, on_block=on_block,
                                _stream_factory=ThreadStream, watchdog_interval_s=0.05,
                                stall_timeout_s=0.3)
        await out.start()
        assert out.latency_s == pytest.approx(0.012)
        for _ in range(200):  # until the stand-in device dies and the fallback takes over
            await asyncio.sleep(0.02)
            if out.lost and len(played) > 40:
                break
        status = out.status()
        await out.stop()
        return out, clock, played, threads, status

    out, clock, played, threads, status = asyncio.run(main())
    assert out.lost and status["lost"]
    if device == "hangs":
        assert status["lost_reason"] == "no audio callback for 0.3 s"
    assert threads == {threading.main_thread().ident}, "on_block runs on the event loop"
    starts = [s for s, _ in played]
    assert starts == list(range(0, 480 * len(played), 480)), "no gap or overlap across the loss"
    audio_out = np.concatenate([b for _, b in played])
    np.testing.assert_array_equal(audio_out, ramp_block(0, len(audio_out)))
    assert len(played) > 20, "the paced fallback kept playing after the device died"
    assert clock.position >= len(audio_out)
    lost_msgs = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(lost_msgs) == 1 and "paced by the server clock" in lost_msgs[0].getMessage()


def test_sound_device_callback_applies_volume_and_zero_fills_on_underrun():
    ring = AudioRing(1000)
    clock = PlaybackClock(SR)
    out = SoundDeviceOutput(ring, clock, None, SR, 480, gain=GainRamp(0.5))
    ring.write(np.ones((300, 2), np.float32))
    buf = np.full((480, 2), 9.0, np.float32)
    out._callback(buf, 480, None, None)  # as PortAudio would, with no event loop attached
    assert np.all(buf[:300] == 0.5) and not buf[300:].any()
    assert ring.underruns == 1 and clock.position == 480


# -- open_output -------------------------------------------------------------------


def test_open_output_none_is_paced():
    out = open_output("none", AudioRing(100), PlaybackClock(SR))
    assert isinstance(out, PacedOutput)


def _has_default_output() -> bool:
    try:
        import sounddevice as sd
        sd.query_devices(kind="output")
        return True
    except Exception:
        return False


@pytest.mark.skipif(_has_default_output(), reason="this machine has a sound device")
def test_open_output_default_without_a_device_is_paced_and_says_so_once(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="d2m.audio")
    monkeypatch.setattr(audio, "_warned_no_device", False)
    for spec in (None, "default"):
        assert isinstance(open_output(spec, AudioRing(100), PlaybackClock(SR)), PacedOutput)
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1
    assert msgs[0].startswith("no sound device found") and "serving streams only" in msgs[0]


def _run_py(code: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, cwd=cwd)


ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@pytest.mark.skipif(not ALSA_CONF.exists(), reason="needs ALSA's configuration")
def test_open_output_by_name_with_a_real_portaudio_device_list(tmp_path):
    # An ALSA configuration that adds a silent "null" output, so PortAudio has a real
    # device to list and validate without a sound card.
    conf = tmp_path / "asound.conf"
    conf.write_text('pcm.d2mnull { type null hint { show on description "d2m null" } }\n')
    code = """
        from d2m_server.audio import *
        ring, clock = AudioRing(100), PlaybackClock(48000)
        print(type(open_output("d2mnull", ring, clock)).__name__)
        try:
            open_output("no-such-device", ring, clock)
        except AudioUnavailable as exc:
            print("ERROR", exc)
    """
    r = _run_py(code, {"ALSA_CONFIG_PATH": f"{ALSA_CONF}:{conf}"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "SoundDeviceOutput"
    assert lines[1].startswith("ERROR audio output device 'no-such-device' not found")
    assert "d2mnull" in lines[1] and "--audio-out none" in lines[1]


def test_missing_portaudio_is_explained(tmp_path):
    # sounddevice raises OSError at import when libportaudio is missing; reproduce that.
    (tmp_path / "sounddevice.py").write_text('raise OSError("PortAudio library not found")\n')
    code = """
        import logging
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        from d2m_server.audio import *
        ring, clock = AudioRing(100), PlaybackClock(48000)
        print(type(open_output(None, ring, clock)).__name__)
        try:
            open_output("hw:0", ring, clock)
        except AudioUnavailable as exc:
            print("ERROR", exc)
    """
    r = _run_py(code, {"PYTHONPATH": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "PacedOutput"
    assert "apt-get install libportaudio2" in lines[1] and "--audio-out none" in lines[1]
    assert "no sound device found" in r.stderr and "apt-get install libportaudio2" in r.stderr
