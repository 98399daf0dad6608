"""Motion recordings for evaluation: JSONL lines -> frames -> motion beats and dance tempo.

The JSONL motion format is one JSON object per line,
``{"t": s, "person": id, "layout": "coco17"|"mediapipe33", "joints": [[x,y,z,conf],...]}``;
lines with a ``"control"`` key are operator controls and are skipped, and so
is the optional header line ``{"d2m_motion": 1, ...}`` (see :mod:`d2m.recording`). Parsing
takes lines (not a path) so it stays free of I/O. The beat analysis is the
live system's own, from :mod:`d2m.motion`, so the evaluation scores music
against the same motion beats the tracker sees.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..skeleton import SkeletonFrame

#: Motion analysis rate (Hz): the project's motion rate.
MOTION_RATE = 60
#: Window (s) of each local dance-tempo estimate in the tempo-over-time curve
#: (the live tracker's window, d2m.motion.TEMPO_WINDOW_S).
TEMPO_WINDOW_S = 8.0
#: Step (s) between local dance-tempo estimates.
TEMPO_HOP_S = 1.0


@dataclass
class MotionRecording:
    """Frames parsed from a JSONL recording, with counts of what was skipped."""

    frames: list[SkeletonFrame] = field(default_factory=list)
    controls: int = 0                                 #: operator-control lines skipped
    header: dict = field(default_factory=dict)        #: the header line's object ({} if none)
    blank: int = 0                                    #: empty lines skipped
    bad: Counter = field(default_factory=Counter)     #: rejected lines by reason

    @property
    def n_bad(self) -> int:
        return sum(self.bad.values())

    def persons(self) -> Counter:
        """Frame count per person id."""
        return Counter(f.person for f in self.frames)


def parse_motion_lines(lines: Iterable[str]) -> MotionRecording:
    """Parse JSONL motion lines with :func:`d2m.recording.parse_recording` (the one reader of
    the format); bad lines are counted by reason, never raised."""
    from d2m.recording import parse_recording

    lines = list(lines)
    parsed = parse_recording(lines)
    rec = MotionRecording(frames=list(parsed.frames), controls=len(parsed.controls),
                          header=dict(parsed.header),
                          blank=sum(1 for line in lines if not str(line).strip()))
    for _lineno, message in parsed.errors:
        rec.bad["not JSON" if message.startswith("not valid JSON") else message.split(":")[0]] += 1
    return rec


def select_person(frames: list[SkeletonFrame], person: int | None = None) -> list[SkeletonFrame]:
    """Frames of one person in time order: ``person``, or the one with the most frames."""
    if not frames:
        return []
    if person is None:
        person = Counter(f.person for f in frames).most_common(1)[0][0]
    return sorted((f for f in frames if f.person == person), key=lambda f: f.t)


@dataclass
class MotionAnalysis:
    """Motion beats and tempo of one dancer, from :mod:`d2m.motion`."""

    t_grid: np.ndarray        #: (N,) session times of the resampled frames (s)
    envelope: np.ndarray      #: (N,) directional onset envelope
    beat_times: np.ndarray    #: motion beat times (s)
    bpm: float                #: dance tempo over the whole recording
    rate: int = MOTION_RATE
    lag_s: float = 0.0        #: delay of the envelope behind the movement (beats are corrected by it)


def _motion_module():
    try:
        from .. import motion
    except ImportError as exc:
        raise RuntimeError(
            "motion analysis needs d2m.motion (onset_envelope, pick_peaks, estimate_tempo), "
            f"which could not be imported: {exc}"
        ) from exc
    return motion


def analyse_motion(frames: list[SkeletonFrame], *, rate: int = MOTION_RATE) -> MotionAnalysis:
    """One dancer's onset envelope, motion beats and tempo, as the live tracker sees them.

    The envelope is :func:`d2m.motion.onset_envelope` (the live front end:
    pose low-pass, directional onset, smoothing) on a regular grid. Beats are
    :func:`d2m.motion.pick_peaks`' sub-frame peaks moved ``ONSET_LAG_S``
    earlier, the envelope's delay behind the movement, so they mark the
    movement itself (the same times as :func:`d2m.motion.motion_beat_times`).
    The tempo is :func:`d2m.motion.estimate_tempo` of the whole envelope.
    """
    if len(frames) < 2:
        raise ValueError(f"need at least 2 motion frames to find beats, got {len(frames)}")
    motion = _motion_module()
    if hasattr(motion, "onset_envelope"):
        t_grid, env = motion.onset_envelope(frames, rate)
        lag = float(getattr(motion, "ONSET_LAG_S", 0.0))
    else:  # older d2m.motion: the raw directional onset, which has no smoothing delay
        t_grid, poses = motion.resample_frames(frames, rate=rate)
        env = motion.directional_onset(poses, rate=rate)
        lag = 0.0
    t_grid = np.asarray(t_grid, dtype=np.float64)
    env = np.asarray(env, dtype=np.float64)
    if t_grid.size < 3:
        raise ValueError(f"the motion spans too little time ({t_grid.size} grid frames at {rate} Hz)")
    pos = np.asarray(motion.pick_peaks(env, rate), dtype=np.float64).reshape(-1)
    beats = np.interp(pos, np.arange(t_grid.size), t_grid) - lag
    bpm = float(motion.estimate_tempo(env, rate=rate))
    return MotionAnalysis(t_grid=t_grid, envelope=env, beat_times=beats,
                          bpm=bpm if math.isfinite(bpm) and bpm > 0 else math.nan, rate=rate, lag_s=lag)


def dance_tempo_curve(analysis: MotionAnalysis, *, window_s: float = TEMPO_WINDOW_S,
                      hop_s: float = TEMPO_HOP_S) -> tuple[np.ndarray, np.ndarray]:
    """Local dance tempo over time: ``estimate_tempo`` on sliding windows of the envelope.

    Returns ``(centre times, bpm)``; empty if the recording is shorter than a window.
    """
    motion = _motion_module()
    rate = analysis.rate
    n_win, n_hop = int(round(window_s * rate)), max(1, int(round(hop_s * rate)))
    env, t = analysis.envelope, analysis.t_grid
    times, bpms = [], []
    for start in range(0, env.size - n_win + 1, n_hop):
        bpm = float(motion.estimate_tempo(env[start:start + n_win], rate=rate))
        times.append(t[start + n_win // 2])
        bpms.append(bpm if math.isfinite(bpm) and bpm > 0 else math.nan)
    return np.asarray(times, dtype=np.float64), np.asarray(bpms, dtype=np.float64)
