"""Offline rendering: the live loop's core, driven by a recording instead of the clock.

:func:`render_motion` feeds frames and controls to a :class:`Conductor` in
order, exactly as the live server does when it stamps them, renders every
planned segment with the same generator, and returns the music. For a
recording made by ``d2m serve --record-motion`` this is the music the live
run played (see ``docs/architecture.md`` for the one exception: volume
changes land within an audio block of where they landed live).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from .conductor import Conductor, ConductorConfig
from .control import Control
from .events import SegmentPlanned
from .generator import CHANNELS, Generator, SegmentStream
from .hits import AccentTrack, HitDetected
from .plan import SegmentPlan
from .skeleton import SkeletonFrame
from .synth.accents import AccentBank

#: Music rendered past the last frame or control (s), so the end rings out.
DEFAULT_TAIL_S = 2.0
#: Volume changes ramp over this long (s), as live.
VOLUME_RAMP_S = 0.02


@dataclass
class RenderResult:
    audio: np.ndarray                       #: (n, 2) float32
    sample_rate: int
    plans: list[SegmentPlan] = field(default_factory=list)
    conductor: Conductor | None = None
    scores: list = field(default_factory=list)   #: per plan, the generator's score (None where it has none)
    hits: list = field(default_factory=list)     #: the dancer's hits (d2m.hits.Hit), accents mixed in


def render_motion(items: Iterable[SkeletonFrame | tuple[float, Control]], generator: Generator,
                  config: ConductorConfig = ConductorConfig(), *, duration: float | None = None,
                  tail_s: float = DEFAULT_TAIL_S,
                  progress: Callable[[float], None] | None = None) -> RenderResult:
    """Render music for frames and ``(t, Control)`` pairs in time order.

    ``duration``: length of the output in seconds (default: last item + ``tail_s``).
    ``progress(t)`` is called with the session time reached, for progress bars.
    """
    conductor = Conductor(config)
    stream = SegmentStream(generator)
    sr = config.sample_rate
    chunks: list[np.ndarray] = []
    plans: list[SegmentPlan] = []
    scores: list = []
    hits: list = []
    volumes: list[tuple[float, float]] = []
    last_t = 0.0

    def take(events):
        for ev in events:
            if isinstance(ev, SegmentPlanned):
                plans.append(ev.plan)
                chunks.append(stream.render(ev.plan))
                scores.append(stream.last_score)
            elif isinstance(ev, HitDetected):
                hits.append(ev.hit)

    take(conductor.advance(0.0))
    for item in items:
        if isinstance(item, SkeletonFrame):
            last_t = max(last_t, item.t)
            take(conductor.push_frame(item))
        else:
            t, control = item
            last_t = max(last_t, t)
            take(conductor.control(t, control))
            if control.volume is not None:
                volumes.append((t, control.volume))
        if progress is not None:
            progress(last_t)
    end_t = duration if duration is not None else last_t + tail_s
    n_total = int(round(end_t * sr))
    take(conductor.advance(end_t))
    audio = np.concatenate(chunks) if chunks else np.zeros((0, CHANNELS), np.float32)
    if len(audio) < n_total:
        audio = np.concatenate([audio, np.zeros((n_total - len(audio), CHANNELS), np.float32)])
    audio = audio[:n_total]
    if hits:
        # the accents' own path, as live at the output block (d2m.hits.AccentTrack)
        track = AccentTrack(AccentBank(sr, config.seed))
        for hit in hits:
            track.add(hit)
        audio = np.ascontiguousarray(audio)
        track.mix(audio, 0)
    if volumes:
        audio = audio * volume_curve(volumes, n_total, sr)[:, None]
    return RenderResult(audio.astype(np.float32), sr, plans, conductor, scores, hits)


def volume_curve(changes: list[tuple[float, float]], n: int, sample_rate: int,
                 ramp_s: float = VOLUME_RAMP_S) -> np.ndarray:
    """Gain per sample for volume changes ``(t, volume)``, each ramping linearly."""
    gain = np.ones(n, dtype=np.float32)
    level = 1.0
    ramp = max(1, int(round(ramp_s * sample_rate)))
    for t, vol in changes:
        s = int(round(t * sample_rate))
        if s >= n:
            break
        e = min(n, s + ramp)
        gain[s:e] = np.linspace(level, vol, ramp, endpoint=False, dtype=np.float32)[: e - s]
        gain[e:] = vol
        level = vol
    return gain
