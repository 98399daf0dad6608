"""An exact bar/beat clock: rational arithmetic, so a two-hour show never drifts.

Beat ``n`` of a free-running clock lies at ``origin + n * 60 * rate / bpm``
samples, computed as a :class:`fractions.Fraction` and rounded once, so the
error never accumulates however long the clock runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

#: Tempi are held to this many steps per BPM (1/1000 BPM), exactly.
BPM_RESOLUTION = 1000


@dataclass(frozen=True)
class BarClock:
    """Beats at a constant tempo from an origin sample."""

    origin: Fraction          #: sample position of beat 0
    bpm: Fraction             #: tempo, exact
    sample_rate: int
    beats_per_bar: int = 4

    @classmethod
    def start(cls, origin_sample: int | Fraction, bpm: float, sample_rate: int,
              beats_per_bar: int = 4) -> "BarClock":
        exact = Fraction(round(bpm * BPM_RESOLUTION), BPM_RESOLUTION)
        return cls(Fraction(origin_sample), exact, sample_rate, beats_per_bar)

    @property
    def samples_per_beat(self) -> Fraction:
        return Fraction(60 * self.sample_rate) / self.bpm

    def beat_position(self, n: int) -> Fraction:
        """Exact sample position of beat ``n``."""
        return self.origin + n * self.samples_per_beat

    def beat_sample(self, n: int) -> int:
        """Sample index of beat ``n`` (rounded half up, once)."""
        pos = self.beat_position(n)
        return int((pos + Fraction(1, 2)) // 1)

    def beat_at_or_after(self, sample: int) -> int:
        """Index of the first beat whose sample is >= ``sample``."""
        n = int((Fraction(sample) - self.origin) // self.samples_per_beat)
        while self.beat_sample(n) < sample:
            n += 1
        while n > 0 and self.beat_sample(n - 1) >= sample:
            n -= 1
        return n

    def bar_beats(self, first_beat: int, beats: int | None = None) -> list[int]:
        """Sample indices of ``beats`` consecutive beats from ``first_beat`` (plus the next one, the bar's end)."""
        beats = self.beats_per_bar if beats is None else beats
        return [self.beat_sample(first_beat + i) for i in range(beats + 1)]
