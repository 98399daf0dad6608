"""Recorders: WAV files valid at every moment, JSONL motion recordings, disk errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from d2m.recording import ControlEntry, parse_recording
import soundfile as sf

from d2m.control import Control
from d2m.skeleton import Layout, SkeletonFrame
from d2m_server.recorder import (
    FLOAT, PCM_16, MotionRecorder, RecorderError, WavRecorder,
)

SR = 48000


class FakeTime:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def noise(frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (frames, 2)).astype(np.float32)


def run_py(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


# -- WavRecorder ------------------------------------------------------------------


# readers scale int16 by 1/32768, we write by 32767: allow that difference
@pytest.mark.parametrize("subtype, tol", [(PCM_16, 1e-4), (FLOAT, 0.0)])
def test_wav_round_trip(tmp_path, subtype, tol):
    path = tmp_path / "take.wav"
    audio = noise(SR // 2)
    with WavRecorder(path, SR, 2, subtype=subtype) as rec:
        for i in range(0, len(audio), 480):
            rec.write(audio[i:i + 480])
    data, sr = sf.read(path, dtype="float32")
    assert sr == SR and data.shape == audio.shape
    assert sf.info(path).subtype == subtype
    assert np.abs(data - audio).max() <= tol
    assert rec.frames_written == len(audio) and rec.errors == 0


def test_wav_clips_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    with WavRecorder(path, SR) as rec:
        rec.write(np.array([[2.0, -3.0]] * 10, np.float32))
    data, _ = sf.read(path, dtype="int16")
    assert (data[:, 0] == 32767).all() and (data[:, 1] == -32767).all()


def test_wav_is_readable_while_open_up_to_the_last_header_update(tmp_path):
    path = tmp_path / "live.wav"
    now = FakeTime()
    rec = WavRecorder(path, SR, flush_interval_s=1.0, clock=now)
    assert sf.info(path).frames == 0, "a valid empty WAV from the start"
    rec.write(noise(4800))
    now.t = 1.5
    rec.write(noise(4800, 1))       # interval passed: header now says 9600 frames
    now.t = 1.6
    rec.write(noise(4800, 2))       # not yet in the header
    data, sr = sf.read(path, dtype="float32")
    assert data.shape == (9600, 2)
    np.testing.assert_allclose(data[:4800], noise(4800), atol=1e-4)
    rec.close()
    assert sf.info(path).frames == 14400


def test_wav_survives_the_process_being_killed(tmp_path):
    code = """
        import os, numpy as np
        from d2m_server.recorder import WavRecorder
        t = [0.0]
        rec = WavRecorder("killed.wav", 48000, clock=lambda: t[0])
        block = np.full((480, 2), 0.25, np.float32)
        for i in range(300):            # 3 s of audio, 10 ms blocks, 10 ms apart
            t[0] += 0.01
            rec.write(block)
        os._exit(0)                     # no close(), no finaliser, no atexit
    """
    r = run_py(code, tmp_path)
    assert r.returncode == 0, r.stderr
    data, sr = sf.read(tmp_path / "killed.wav", dtype="float32")
    # header updated every second: at least the first 2 s are there, never garbage
    assert sr == SR and 2 * SR <= len(data) <= 3 * SR
    assert np.allclose(data, 0.25, atol=1e-4)


def test_wav_continues_in_a_numbered_file_at_the_size_limit(tmp_path):
    path = tmp_path / "long.wav"
    with WavRecorder(path, SR, max_data_bytes=4 * 1000) as rec:   # 1000 frames per file
        for i in range(5):
            rec.write(np.full((480, 2), i / 10, np.float32))
    assert [p.name for p in rec.paths] == ["long.wav", "long-002.wav", "long-003.wav"]
    parts = [sf.read(p, dtype="float32")[0] for p in rec.paths]
    assert [len(p) for p in parts] == [1000, 1000, 400]
    joined = np.concatenate(parts)
    np.testing.assert_allclose(joined[:, 0], np.repeat(np.arange(5) / 10, 480), atol=1e-4)


def test_wav_unwritable_path_names_the_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(RecorderError, match=f"directory {missing} does not exist"):
        WavRecorder(missing / "x.wav", SR)
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(RecorderError, match=f"directory {locked} is not writable"):
            WavRecorder(locked / "x.wav", SR)


def test_wav_disk_error_after_opening_is_counted_not_raised(tmp_path):
    # A real write error: the file-size limit (EFBIG) hits after 64 KiB.
    code = """
        import logging, resource, signal, numpy as np, soundfile as sf
        logging.basicConfig(level=logging.ERROR, format="%(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        from d2m_server.recorder import WavRecorder
        rec = WavRecorder("full.wav", 48000, flush_interval_s=0.0)
        for i in range(100):                     # 192 kB: far past the limit
            rec.write(np.full((480, 2), 0.5, np.float32))
        rec.close()
        print(rec.errors, rec.frames_written, rec.frames_dropped, sf.info("full.wav").frames)
    """
    r = run_py(code, tmp_path)
    assert r.returncode == 0, r.stderr
    errors, written, dropped, readable = map(int, r.stdout.split())
    assert errors >= 1 and dropped > 0 and written + dropped == 48000
    assert 0 < readable <= written
    assert r.stderr.count("audio recording to") == 1, "logged once"


# -- MotionRecorder -------------------------------------------------------------------


def frame(t: float) -> SkeletonFrame:
    rng = np.random.default_rng(int(t * 1000))
    values = rng.uniform(0.1, 0.9, (17, 4))
    values[3] = np.nan  # one missing joint
    return SkeletonFrame.from_values(t, 0, Layout.COCO17, values)


def test_motion_round_trip(tmp_path):
    path = tmp_path / "show.jsonl"
    with MotionRecorder(path) as rec:
        rec.write_frame(frame(0.0))
        rec.write_control(0.01, Control(genre="house", volume=0.5))
        rec.write_frame(frame(1 / 60))
    lines = path.read_text().splitlines()
    assert json.loads(lines[1]) == {"t": 0.01, "control": {"genre": "house", "volume": 0.5}}
    with open(path) as f:
        items = parse_recording(f).items          # the format's one reader (d2m.recording)
    assert isinstance(items[1], ControlEntry) and items[1].control == Control(genre="house", volume=0.5)
    for got, t in ((items[0], 0.0), (items[2], 1 / 60)):
        assert isinstance(got, SkeletonFrame) and got.t == pytest.approx(t, abs=1e-6)
        np.testing.assert_allclose(got.joints, frame(t).joints, atol=1e-6)
        assert got.joints[3, 3] == 0.0


def test_motion_is_flushed_at_the_interval(tmp_path):
    path = tmp_path / "live.jsonl"
    now = FakeTime()
    rec = MotionRecorder(path, flush_interval_s=1.0, clock=now)
    rec.write_frame(frame(0.0))
    assert path.read_text() == "", "buffered until the interval"
    now.t = 1.0
    rec.write_frame(frame(0.5))
    assert len(path.read_text().splitlines()) == 2
    rec.close()


def test_motion_reader_skips_a_truncated_last_line(tmp_path):
    path = tmp_path / "cut.jsonl"
    with MotionRecorder(path) as rec:
        rec.write_frame(frame(0.0))
    with open(path, "a") as f:
        f.write('{"t": 0.1, "person": 0, "joi')   # killed mid-line
    with open(path) as f:
        rec = parse_recording(f)
    assert len(rec.items) == 1 and len(rec.errors) == 1 and rec.errors[0][0] == 2


def test_motion_disk_error_after_opening_is_counted_and_logged_once(caplog):
    caplog.set_level(logging.ERROR, logger="d2m.recorder")
    rec = MotionRecorder("/dev/full", flush_interval_s=0.0)   # every write fails with ENOSPC
    for i in range(5):
        rec.write_frame(frame(i / 60))
    rec.write_control(0.1, Control(playing=False))
    rec.close()
    assert rec.errors == 1 and rec.dropped == 6 and rec.lines == 1
    assert len(caplog.records) == 1 and "motion recording to /dev/full stopped" in caplog.text


def test_motion_unwritable_path_names_the_directory(tmp_path):
    with pytest.raises(RecorderError, match="directory .*nowhere does not exist"):
        MotionRecorder(tmp_path / "nowhere" / "m.jsonl")
