"""A synthetic dancer: skeleton frames that move on a known beat grid.

Used by ``d2m demo`` (so a newcomer hears the product with no rig), by the
tests and by the benchmarks. The dancer bounces (body down on every beat,
with an abrupt turn back up) and swings its arms in triangle waves that
reverse on every beat, which is how a dancer "hits" a beat. Its beat times
are exact and known, so what the tracker and the music do can be scored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .skeleton import MEDIAPIPE33_TO_COCO17, Layout, SkeletonFrame

#: A standing COCO-17 pose in normalised image coordinates (x right, y down).
STANDING_COCO17 = np.array([
    [0.50, 0.20],                 # nose
    [0.49, 0.19], [0.51, 0.19],   # eyes
    [0.48, 0.20], [0.52, 0.20],   # ears
    [0.44, 0.28], [0.56, 0.28],   # shoulders
    [0.41, 0.38], [0.59, 0.38],   # elbows
    [0.40, 0.47], [0.60, 0.47],   # wrists
    [0.46, 0.50], [0.54, 0.50],   # hips
    [0.46, 0.64], [0.54, 0.64],   # knees
    [0.46, 0.78], [0.54, 0.78],   # ankles
])

_ARMS = [7, 8, 9, 10]
_KNEES = [13, 14]
_UPPER = list(range(0, 13))


@dataclass
class TempoCurve:
    """Beat phase as a function of time: constant, ramps and sudden changes.

    ``points`` are ``(time_s, bpm)``; between points the tempo ramps linearly
    when ``ramp`` is True, else it holds and jumps at each point.
    """

    points: list[tuple[float, float]]
    ramp: bool = True

    @classmethod
    def constant(cls, bpm: float) -> "TempoCurve":
        return cls([(0.0, bpm)])

    @classmethod
    def linear(cls, bpm0: float, bpm1: float, t0: float, t1: float) -> "TempoCurve":
        return cls([(0.0, bpm0), (t0, bpm0), (t1, bpm1)], ramp=True)

    def bpm(self, t: float) -> float:
        pts = self.points
        if t <= pts[0][0]:
            return pts[0][1]
        for (ta, ba), (tb, bb) in zip(pts, pts[1:]):
            if ta <= t < tb:
                return ba + (bb - ba) * (t - ta) / (tb - ta) if self.ramp else ba
        return pts[-1][1]

    def phase(self, t: float) -> float:
        """Beats elapsed since time 0 (the integral of bpm/60)."""
        if t <= 0:
            return t * self.bpm(0.0) / 60.0
        knots = sorted({0.0, t, *(p for p, _ in self.points if 0.0 < p < t)})
        total = 0.0
        for a, b in zip(knots, knots[1:]):
            if self.ramp:
                total += (b - a) * (self.bpm(a) + self._bpm_left(b)) / 2.0
            else:
                total += (b - a) * self.bpm(a)
        return total / 60.0

    def _bpm_left(self, t: float) -> float:
        """Tempo just before ``t`` (equal to bpm(t) for continuous ramps)."""
        return self.bpm(t - 1e-9)

    def beat_times(self, t_start: float, t_end: float) -> np.ndarray:
        """Exact times of every beat (integer phase) in ``[t_start, t_end)``."""
        out = []
        k = math.ceil(self.phase(t_start) - 1e-12)
        while True:
            lo, hi = t_start, t_end + 60.0 / 40
            if self.phase(hi) < k:
                break
            for _ in range(60):                      # bisection: phase is increasing
                mid = (lo + hi) / 2
                if self.phase(mid) < k:
                    lo = mid
                else:
                    hi = mid
            if hi >= t_end:
                break
            out.append(hi)
            t_start = hi
            k += 1
        return np.array(out)


@dataclass
class SyntheticDancer:
    """A dancer following ``tempo`` (a :class:`TempoCurve` or a constant BPM).

    ``amplitude`` scales the movement (0 = standing still); ``sharpness`` 0..1
    blends smooth (sine) into hard (triangle/bounce) moves; ``jitter_s`` adds
    timing noise to the frame timestamps; ``noise`` adds positional noise;
    ``missing`` is the probability that a joint is missing in a frame;
    ``swing`` delays off-beat arm reversals (0..0.3 of a beat).
    """

    tempo: TempoCurve | float = 120.0
    amplitude: float = 1.0
    sharpness: float = 1.0
    swing: float = 0.0
    noise: float = 0.002
    jitter_s: float = 0.0
    missing: float = 0.0
    person: int = 0
    layout: Layout = Layout.COCO17
    seed: int = 0
    phase_offset: float = 0.0      #: beats added to the phase (so beat 0 need not be at t=0)
    #: energy profile: ``(time_s, factor)`` points, linear in between, that scale ``amplitude``
    #: over time (a dancer whose energy rises and falls); None = constant
    amplitude_points: list[tuple[float, float]] | None = None
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tempo, TempoCurve):
            self.tempo = TempoCurve.constant(float(self.tempo))
        self._rng = np.random.default_rng(self.seed)

    def beat_times(self, t_start: float, t_end: float) -> np.ndarray:
        """Times of the dancer's beats in ``[t_start, t_end)`` (where the hits land)."""
        if self.phase_offset == 0:
            return self.tempo.beat_times(t_start, t_end)
        shifted = _ShiftedCurve(self.tempo, self.phase_offset)
        return shifted.beat_times(t_start, t_end)

    def amplitude_factor(self, t: float) -> float:
        """The energy profile's factor on ``amplitude`` at time ``t`` (1 without a profile)."""
        if not self.amplitude_points:
            return 1.0
        ts, fs = zip(*self.amplitude_points)
        return float(np.interp(t, ts, fs))

    def pose(self, t: float) -> np.ndarray:
        """Noise-free COCO-17 ``(17, 2)`` pose at time ``t``."""
        ph = self.tempo.phase(t) + self.phase_offset
        a = self.amplitude * self.amplitude_factor(t)
        s = float(np.clip(self.sharpness, 0, 1))
        frac = ph % 1.0
        # Bounce: lowest on every beat, abrupt turn back up (|sin|), blended with a smooth cosine.
        bounce_hard = math.sin(math.pi * frac)            # 0 at the beat, 1 mid-beat
        bounce_soft = 0.5 - 0.5 * math.cos(2 * math.pi * frac)
        up = s * bounce_hard + (1 - s) * bounce_soft
        dy = a * 0.03 * (1.0 - up)                         # down (y grows) at the beat
        # Arms: triangle wave over two beats, reversing on every beat (swing delays the return).
        two = ph % 2.0
        knee = 1.0 + self.swing
        tri_hard = two / knee if two < knee else 1.0 - (two - knee) / (2.0 - knee)
        tri_soft = 0.5 - 0.5 * math.cos(math.pi * two)
        arm = s * tri_hard + (1 - s) * tri_soft           # 0..1
        p = STANDING_COCO17.copy()
        p[:, 1] += dy
        p[_UPPER, 1] += dy * 0.3
        swing_x = a * 0.08 * (arm - 0.5)
        p[[7, 9], 0] -= swing_x * np.array([0.6, 1.0])
        p[[8, 10], 0] += swing_x * np.array([0.6, 1.0])
        p[[9, 10], 1] -= a * 0.06 * arm
        p[_KNEES, 0] += np.array([-1, 1]) * a * 0.015 * (1.0 - up)
        return p

    def frame(self, t: float) -> SkeletonFrame:
        """One frame at time ``t`` with noise, missing joints and the chosen layout."""
        p = self.pose(t) + self._rng.normal(0.0, self.noise, size=(17, 2))
        conf = np.full(17, 0.95)
        if self.missing > 0:
            gone = self._rng.random(17) < self.missing
            p[gone] = np.nan
            conf[gone] = 0.0
        joints17 = np.column_stack([p, np.zeros(17), conf])
        if self.layout is Layout.COCO17:
            joints = joints17
        else:
            joints = np.zeros((33, 4))
            joints[:, 3] = 0.0
            joints[:, 0:2] = np.nan
            joints[list(MEDIAPIPE33_TO_COCO17)] = joints17
            # Fill the extra MediaPipe points near their neighbours so the frame looks complete.
            joints[np.isnan(joints[:, 0]), 0:2] = p[0]
            joints[:, 3] = np.where(joints[:, 3] > 0, joints[:, 3], 0.9)
        return SkeletonFrame.from_values(t, self.person, self.layout, joints.reshape(-1), dims=4)

    def frames(self, duration: float, fps: float = 60.0, t0: float = 0.0,
               drop: float = 0.0) -> list[SkeletonFrame]:
        """Frames every ``1/fps`` s from ``t0`` for ``duration`` s (``drop`` = probability a frame is lost)."""
        out = []
        n = int(round(duration * fps))
        for i in range(n):
            t = t0 + i / fps
            if self.jitter_s:
                t += float(self._rng.normal(0.0, self.jitter_s))
            if drop and self._rng.random() < drop:
                continue
            out.append(self.frame(t))
        out.sort(key=lambda f: f.t)
        return out


@dataclass
class _ShiftedCurve:
    curve: TempoCurve
    offset: float

    def phase(self, t: float) -> float:
        return self.curve.phase(t) + self.offset

    beat_times = TempoCurve.beat_times


def dancer_for_demo(seed: int = 0) -> Callable[[float], SkeletonFrame]:
    """The demo's dancer: 118 BPM, then a ramp to 128 BPM, a sudden change to 100 BPM and back.

    Returns ``frame_at(t)`` for live use.
    """
    curve = TempoCurve([(0.0, 118.0), (30.0, 118.0), (45.0, 128.0), (70.0, 128.0),
                        (70.01, 100.0), (100.0, 100.0), (100.01, 118.0)], ramp=True)
    dancer = SyntheticDancer(tempo=curve, seed=seed, sharpness=0.9)
    return dancer.frame


class EntrainingTempo(TempoCurve):
    """A dancer's beat clock that listens to the music and entrains to it, as a person does.

    The standard model of sensorimotor synchronisation (linear phase and period correction,
    Repp 2005): after each of the dancer's beats ``d`` the asynchrony ``a = d - m`` to the
    nearest music beat ``m`` heard so far is measured, with a reaction delay; the next beat
    comes ``period - alpha * a`` later (plus timing noise), and the period moves by
    ``beta`` of its difference to the music's last beat interval. Music beats are fed with
    :meth:`hear` as the music plays them. Before any music is heard, the dancer keeps the
    starting tempo.
    """

    def __init__(self, bpm: float, *, alpha: float = 0.4, beta: float = 0.1, noise_s: float = 0.01,
                 reaction_s: float = 0.15, seed: int = 0):
        super().__init__([(0.0, float(bpm))], ramp=False)
        self.alpha, self.beta, self.noise_s, self.reaction_s = alpha, beta, noise_s, reaction_s
        self.period = 60.0 / float(bpm)
        self.beats: list[float] = [0.0]
        self.asynchronies: list[float] = []
        self._music: list[float] = []
        self._rng = np.random.default_rng(seed)

    def hear(self, times) -> None:
        """Music beats (session times at which they sound)."""
        self._music.extend(float(t) for t in times)
        self._music.sort()

    def _decide(self, now: float) -> None:
        """Schedule the dancer's next beats whose decision time has come by ``now``."""
        while True:
            d = self.beats[-1]
            m = self._nearest_music(d)
            decide_at = d if m is None else max(d, m) + self.reaction_s
            if decide_at > now and d + self.period > now:
                return
            a = 0.0 if m is None else d - m
            if m is not None:
                self.asynchronies.append(a)
            nxt = d + self.period - self.alpha * a + float(self._rng.normal(0.0, self.noise_s))
            ioi = self._music_interval(m)
            if ioi is not None:
                self.period = float(np.clip(self.period + self.beta * (ioi - self.period), 60.0 / 200, 60.0 / 60))
            self.beats.append(max(nxt, d + 0.2))

    def _music_interval(self, m: float | None) -> float | None:
        if m is None:
            return None
        i = self._music.index(m)
        return self._music[i] - self._music[i - 1] if i > 0 else None

    def _nearest_music(self, d: float) -> float | None:
        if not self._music:
            return None
        i = int(np.searchsorted(self._music, d))
        near = [self._music[j] for j in (i - 1, i) if 0 <= j < len(self._music)]
        m = min(near, key=lambda x: abs(x - d))
        return m if abs(m - d) <= self.period / 2 else None

    def phase(self, t: float) -> float:
        self._decide(t)
        b = self.beats
        if t >= b[-1]:
            return len(b) - 1 + (t - b[-1]) / self.period
        i = int(np.searchsorted(b, t, side="right")) - 1
        if i < 0:
            return (t - b[0]) / self.period
        return i + (t - b[i]) / (b[i + 1] - b[i])

    def bpm(self, t: float) -> float:
        return 60.0 / self.period
