"""Events the conductor gives out. Sinks (OSC, WebSocket, MQTT) announce them."""

from __future__ import annotations

from dataclasses import dataclass

from .plan import SegmentPlan


@dataclass(frozen=True)
class SegmentPlanned:
    """A segment was decided; it must be rendered and played at ``plan.start_sample``."""
    plan: SegmentPlan


@dataclass(frozen=True)
class TempoChanged:
    """The committed dance tempo changed (or locked on for the first time)."""
    t: float
    bpm: float
    confidence: float
    locked: bool          #: True once the tracker follows a dancer
    mode: str = "idle"    #: what the music does: following / holding / locked / idle (d2m.conductor.MODES)


@dataclass(frozen=True)
class GenreChanged:
    t: float
    genre: str
    source: str           #: "operator" or "motion"


@dataclass(frozen=True)
class ControlApplied:
    t: float
    changes: dict


@dataclass(frozen=True)
class InputRejected:
    """A frame or control was rejected (bad values); counted in status."""
    t: float
    reason: str


@dataclass(frozen=True)
class Beat:
    """A music beat, derived from a plan; sinks announce it when it plays."""
    sample: int           #: absolute sample index of the beat
    time: float           #: session time of the beat (s)
    bar: int              #: bar number (0-based)
    beat: int             #: beat within the bar, 1-based (1 = downbeat)
    bpm: float


def beats_of(plan: SegmentPlan) -> list[Beat]:
    """The music beats of a planned segment (none for idle or silent segments)."""
    if plan.kind != "music":
        return []
    return [
        Beat(sample=s, time=s / plan.sample_rate, bar=plan.bar, beat=i + 1, bpm=plan.bpm)
        for i, s in enumerate(plan.beat_samples())
    ]
