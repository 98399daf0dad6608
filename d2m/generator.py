"""The generator interface: ``plan + state in -> audio + state out``.

Every backend (the built-in ``synth``, ``musicgen``) implements
:class:`Generator`. :class:`SegmentStream` drives one generator segment by
segment and joins segments with equal-power crossfades.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .plan import SegmentPlan

#: Output channels of every generator (stereo).
CHANNELS = 2
#: Default crossfade between segments that do not continue each other, in seconds.
CROSSFADE_S = 0.02


@dataclass
class Rendered:
    """One rendered segment.

    ``audio`` is exactly ``plan.n_samples`` frames of float32 stereo in -1..1.
    ``tail`` is optional audio that continues past the segment's end; the next
    segment is crossfaded with it unless that next segment ``continues`` this
    one (the generator carried its ringing notes over itself).
    """

    audio: np.ndarray               # (n_samples, CHANNELS) float32
    tail: np.ndarray | None = None  # (m, CHANNELS) float32, m small (a crossfade)
    continues: bool = False         # True: audio already continues the previous segment seamlessly
    score: Any = None               # the notes played, where the backend has them (synth: a Score; MIDI out)


@runtime_checkable
class Generator(Protocol):
    """A music generator behind the common interface.

    Implementations must be deterministic: the same plans in the same order
    from the same initial state give the same audio (live and offline runs
    depend on it). They must not read clocks or do I/O in ``render``.
    """

    name: str
    sample_rate: int

    def initial_state(self) -> Any:
        """State before the first segment."""

    def render(self, plan: SegmentPlan, state: Any) -> tuple[Rendered, Any]:
        """Render one segment; return the audio and the new state."""


def equal_power_crossfade(outgoing: np.ndarray, incoming: np.ndarray) -> np.ndarray:
    """Join two equally long blocks: ``out * cos + in * sin`` over a quarter period.

    Equal power keeps the loudness constant for uncorrelated signals.
    """
    if outgoing.shape != incoming.shape:
        raise ValueError(f"crossfade blocks differ in shape: {outgoing.shape} vs {incoming.shape}")
    n = outgoing.shape[0]
    if n == 0:
        return incoming.copy()
    phase = (np.arange(n, dtype=np.float64) + 0.5) / n * (np.pi / 2)
    fade_out = np.cos(phase)[:, None]
    fade_in = np.sin(phase)[:, None]
    return (outgoing * fade_out + incoming * fade_in).astype(np.float32)


class SegmentStream:
    """Renders plans in order with one generator, joining segments seamlessly.

    Holds the generator's state and the previous segment's tail. Not thread
    safe: one worker drives it.
    """

    def __init__(self, generator: Generator):
        self.generator = generator
        self.state = generator.initial_state()
        self._tail: np.ndarray | None = None
        self._next_sample: int | None = None
        self.last_score: Any = None  #: ``Rendered.score`` of the last segment rendered (None: none)

    def render(self, plan: SegmentPlan) -> np.ndarray:
        """Return the segment's final audio, ``(plan.n_samples, CHANNELS)`` float32."""
        if plan.sample_rate != self.generator.sample_rate:
            raise ValueError(
                f"plan is at {plan.sample_rate} Hz but generator {self.generator.name!r} "
                f"renders at {self.generator.sample_rate} Hz"
            )
        if self._next_sample is not None and plan.start_sample != self._next_sample:
            raise ValueError(
                f"segment {plan.index} starts at sample {plan.start_sample}, "
                f"expected {self._next_sample} (segments must be contiguous)"
            )
        rendered, self.state = self.generator.render(plan, self.state)
        self.last_score = getattr(rendered, "score", None)
        audio = np.asarray(rendered.audio, dtype=np.float32)
        if audio.shape != (plan.n_samples, CHANNELS):
            raise ValueError(
                f"generator {self.generator.name!r} returned {audio.shape}, "
                f"expected {(plan.n_samples, CHANNELS)}"
            )
        if self._tail is not None and not rendered.continues:
            audio = join_with_tail(self._tail, audio)
        self._tail = None if rendered.tail is None else np.asarray(rendered.tail, dtype=np.float32)
        self._next_sample = plan.end_sample
        return audio


def join_with_tail(tail: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Crossfade the head of ``audio`` with the previous segment's ``tail``."""
    m = min(len(tail), len(audio))
    if m == 0:
        return audio
    out = audio.copy()
    out[:m] = equal_power_crossfade(tail[:m], audio[:m])
    return out
