"""Synthetic inputs for the evaluation tests: click tracks and a bouncing skeleton."""

from __future__ import annotations

import json

import numpy as np
import pytest

from d2m.skeleton import Layout, SkeletonFrame

#: A standing COCO-17 pose (x right, y down, normalised image coordinates).
STANDING = np.array([
    [0.50, 0.20], [0.49, 0.19], [0.51, 0.19], [0.48, 0.20], [0.52, 0.20],
    [0.44, 0.28], [0.56, 0.28], [0.41, 0.38], [0.59, 0.38], [0.40, 0.47], [0.60, 0.47],
    [0.46, 0.50], [0.54, 0.50], [0.46, 0.64], [0.54, 0.64], [0.46, 0.78], [0.54, 0.78],
])
WRISTS, ELBOWS = [9, 10], [7, 8]


def click_audio(beats, duration_s: float, sr: int = 48000, stereo: bool = True) -> np.ndarray:
    """Short 1 kHz clicks (2 ms decay) starting exactly at ``beats`` (s)."""
    y = np.zeros(int(round(duration_s * sr)), dtype=np.float32)
    n = int(0.012 * sr)
    tt = np.arange(n) / sr
    click = (0.8 * np.sin(2 * np.pi * 1000 * tt) * np.exp(-tt / 0.002)).astype(np.float32)
    for b in beats:
        i = int(round(b * sr))
        m = min(n, y.size - i)
        if m > 0:
            y[i:i + m] += click[:m]
    return np.column_stack([y, y]) if stereo else y


def bounce_frames(bpm: float, duration_s: float, *, fps: float = 30.0, phase_s: float = 0.0,
                  person: int = 0) -> list[SkeletonFrame]:
    """A skeleton whose wrists and elbows move down and up in a triangle wave,
    reversing direction exactly at every beat ``phase_s + k * 60 / bpm``."""
    period = 60.0 / bpm
    out = []
    for i in range(int(duration_s * fps)):
        t = i / fps
        u = ((t - phase_s) / period) % 2.0
        tri = u if u < 1.0 else 2.0 - u
        xy = STANDING.copy()
        xy[WRISTS, 1] += 0.08 * tri
        xy[ELBOWS, 1] += 0.04 * tri
        joints = np.column_stack([xy, np.zeros(17), np.ones(17)])
        out.append(SkeletonFrame(t, person, Layout.COCO17, joints))
    return out


def motion_lines(frames, *, extras: bool = True) -> list[str]:
    """JSONL lines for frames; with ``extras`` a header, a control, a bad line and a blank line too."""
    lines = [f.to_json() for f in frames]
    if extras:
        lines.insert(0, json.dumps({"d2m_motion": 1, "source": "test"}))
        lines.insert(5, json.dumps({"t": 0.1, "control": {"genre": "house"}}))
        lines.insert(9, "{not json")
        lines.insert(12, json.dumps({"t": 0.3, "joints": [[0.1, 0.2]] * 5}))   # wrong joint count
        lines.insert(15, "")
    return lines


@pytest.fixture
def write_wav(tmp_path):
    import soundfile as sf

    def _write(name: str, beats, duration_s: float, sr: int = 48000) -> str:
        path = tmp_path / name
        sf.write(str(path), click_audio(beats, duration_s, sr), sr)
        return str(path)
    return _write


@pytest.fixture
def write_motion(tmp_path):
    def _write(name: str, bpm: float, duration_s: float, **kw) -> str:
        path = tmp_path / name
        path.write_text("\n".join(motion_lines(bounce_frames(bpm, duration_s, **kw))) + "\n")
        return str(path)
    return _write


@pytest.fixture(scope="session")
def synth():
    """The helpers above, for tests that build inputs in memory."""
    class Synth:
        click_audio = staticmethod(click_audio)
        bounce_frames = staticmethod(bounce_frames)
        motion_lines = staticmethod(motion_lines)
    return Synth
