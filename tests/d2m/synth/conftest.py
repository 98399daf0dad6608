"""Plans and helpers for the synth tests (plans are built directly, as the planner would)."""

from __future__ import annotations

import numpy as np
import pytest

from d2m.generator import SegmentStream
from d2m.plan import IDLE, MUSIC, SILENCE, SegmentPlan
from d2m.synth import SynthGenerator

SR = 48000


class PlanBuilder:
    """Appends contiguous segments (music bars, idle beats, silence) to one session timeline."""

    def __init__(self, genre: str = "house", *, energy: float = 0.6, sharpness: float = 0.5, seed: int = 7):
        self.genre, self.energy, self.sharpness, self.seed = genre, energy, sharpness, seed
        self.plans: list[SegmentPlan] = []
        self.start = 0
        self.bar = 0

    def segment(self, kind: str, n: int, offsets, bpm: float, **overrides) -> SegmentPlan:
        """Append one segment of any kind and length."""
        fields = dict(index=len(self.plans), kind=kind, start_sample=self.start, n_samples=int(n), sample_rate=SR,
                      bar=self.bar, beat_offsets=tuple(int(o) for o in offsets), bpm=float(bpm), genre=self.genre,
                      energy=self.energy, sharpness=self.sharpness, seed=self.seed)
        fields.update(overrides)
        plan = SegmentPlan(**fields)
        self.plans.append(plan)
        self.start += plan.n_samples
        return plan

    def bars(self, count: int, bpm: float, *, stretch=None, **overrides) -> "PlanBuilder":
        """``count`` 4/4 bars; ``stretch[i]`` scales bar i's length (tempo changes, phase corrections)."""
        for i in range(count):
            factor = 1.0 if stretch is None else float(stretch[i % len(stretch)])
            beat = 60.0 / bpm * SR * factor
            self.segment(MUSIC, round(4 * beat), [round(k * beat) for k in range(4)], 60.0 * SR / beat, **overrides)
            self.bar += 1
        return self

    def idle(self, count: int, bpm: float = 120.0, **overrides) -> "PlanBuilder":
        """``count`` one-beat idle segments (waiting for the dancer)."""
        beat = round(60.0 / bpm * SR)
        for _ in range(count):
            self.segment(IDLE, beat, (0,), bpm, **overrides)
        return self

    def silence(self, seconds: float, pieces: int = 1) -> "PlanBuilder":
        """``seconds`` of silence split into ``pieces`` segments."""
        total = round(seconds * SR)
        cuts = np.linspace(0, total, pieces + 1).round().astype(int)
        for a, b in zip(cuts[:-1], cuts[1:]):
            self.segment(SILENCE, b - a, (), 120.0)
        return self


def render_all(plans, generator: SynthGenerator | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render plans through a SegmentStream; returns the joined audio and the segments."""
    stream = SegmentStream(generator or SynthGenerator(SR))
    chunks = [stream.render(p) for p in plans]
    return np.concatenate(chunks), chunks


@pytest.fixture
def builder():
    return PlanBuilder


@pytest.fixture
def render():
    return render_all
