"""The held-out set of synthetic dancers the benchmarks score the whole system on.

Kept apart from the test fixtures (issue 7): every case has its own seed in
:data:`SEED_BASE` ``+ n`` (7101 ...), a range no test uses, and no test
imports this module to tune against it (``tests/benchmarks/test_heldout_set.py``
checks both). Do not tune the tracker on these cases' numbers alone; add a
test fixture of your own instead.

Each :class:`HeldOutCase` is a :class:`d2m.dancer.SyntheticDancer` plus a
duration, a frame-drop rate and the times of sudden tempo changes (where
re-lock is measured). ``stop_at_s`` makes the dancer stand still from then
on (the music must keep going).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.skeleton import Layout, SkeletonFrame

#: First seed of the held-out set; case ``n`` (0-based, in :data:`CASES` order) uses ``SEED_BASE + n``.
SEED_BASE = 7101
#: Length of a constant-tempo case (s).
CONSTANT_S = 30.0
#: Length of a case with a ramp or a sudden change (s).
CHANGE_CASE_S = 34.0
#: Time of the sudden tempo change in the change cases (s).
CHANGE_AT_S = 16.0
#: Motion frame rate the dancers are sampled at (Hz).
FPS = 60.0
#: Cases run by ``--quick`` (a cross-section: slow, middle, fast, a ramp, a jump, a still dancer).
QUICK = ("const_070", "const_128", "const_180", "ramp_090_120", "jump_100_140", "still")


@dataclass(frozen=True)
class HeldOutCase:
    """One held-out dancer.

    ``kind`` is ``constant``, ``ramp``, ``sudden`` or ``still``; ``changes_s``
    are the times of sudden tempo changes; ``dancer`` holds the keyword
    arguments of :class:`SyntheticDancer` (``tempo`` a :class:`TempoCurve`).
    """

    name: str
    kind: str
    curve: TempoCurve
    duration_s: float
    seed: int
    dancer: dict = field(default_factory=dict)
    drop: float = 0.0                      #: probability a frame is lost
    changes_s: tuple[float, ...] = ()      #: sudden tempo changes (s)
    stop_at_s: float | None = None         #: the dancer stands still from here on (s)
    note: str = ""

    def make_dancer(self, **override) -> SyntheticDancer:
        kw = {"tempo": self.curve, "seed": self.seed, **self.dancer, **override}
        return SyntheticDancer(**kw)

    def frames(self, duration_s: float | None = None) -> list[SkeletonFrame]:
        """The case's frames (deterministic), 60 Hz from t = 0."""
        dur = self.duration_s if duration_s is None else duration_s
        dancer = self.make_dancer()
        frames = dancer.frames(dur, FPS, drop=self.drop)
        if self.stop_at_s is not None and self.stop_at_s < dur:
            still = self.make_dancer(amplitude=0.0, seed=self.seed + 100_000)
            frames = [f for f in frames if f.t < self.stop_at_s]
            n0 = int(np.ceil(self.stop_at_s * FPS))
            frames += [still.frame(i / FPS) for i in range(n0, int(round(dur * FPS)))]
        return frames

    def dance_beats(self, duration_s: float | None = None) -> np.ndarray:
        """Exact times of the dancer's beats (none for a still dancer; none after ``stop_at_s``)."""
        dur = self.duration_s if duration_s is None else duration_s
        if self.dancer.get("amplitude", 1.0) == 0.0:
            return np.zeros(0)
        end = dur if self.stop_at_s is None else min(dur, self.stop_at_s)
        return self.make_dancer().beat_times(0.0, end)

    def bpm_at(self, t: float) -> float:
        return float(self.curve.bpm(t))

    def describe(self) -> dict:
        d = {k: v for k, v in self.dancer.items() if k != "layout"}
        if "layout" in self.dancer:
            d["layout"] = self.dancer["layout"].value
        return {"name": self.name, "kind": self.kind, "tempo_points": self.curve.points,
                "ramp": self.curve.ramp, "duration_s": self.duration_s, "seed": self.seed,
                "drop": self.drop, "changes_s": list(self.changes_s), "stop_at_s": self.stop_at_s,
                "dancer": d, "note": self.note}


def _jump(bpm0: float, bpm1: float, at: float) -> TempoCurve:
    return TempoCurve([(0.0, bpm0), (at, bpm1)], ramp=False)


def _ramp(bpm0: float, bpm1: float) -> TempoCurve:
    return TempoCurve([(0.0, bpm0), (6.0, bpm0), (24.0, bpm1)], ramp=True)


#: Definitions before seeds are assigned: (name, kind, curve, duration, dancer kwargs, extra).
_DEFS: list[tuple] = [
    *[(f"const_{b:03d}", "constant", TempoCurve.constant(b), CONSTANT_S, {}, {})
      for b in (70, 84, 96, 110, 128, 140, 160, 180)],
    ("ramp_090_120", "ramp", _ramp(90, 120), CHANGE_CASE_S, {}, {"note": "ramp 6-24 s"}),
    ("ramp_130_100", "ramp", _ramp(130, 100), CHANGE_CASE_S, {}, {"note": "ramp 6-24 s"}),
    ("jump_100_140", "sudden", _jump(100, 140, CHANGE_AT_S), CHANGE_CASE_S, {},
     {"changes_s": (CHANGE_AT_S,)}),
    ("jump_140_110", "sudden", _jump(140, 110, CHANGE_AT_S), CHANGE_CASE_S, {},
     {"changes_s": (CHANGE_AT_S,)}),
    ("swing_100", "constant", TempoCurve.constant(100), CONSTANT_S, {"swing": 0.2}, {}),
    ("jitter8ms_118", "constant", TempoCurve.constant(118), CONSTANT_S, {"jitter_s": 0.008}, {}),
    ("missing20_124", "constant", TempoCurve.constant(124), CONSTANT_S, {"missing": 0.2}, {}),
    ("dropped10_104", "constant", TempoCurve.constant(104), CONSTANT_S, {}, {"drop": 0.1}),
    ("mediapipe33_116", "constant", TempoCurve.constant(116), CONSTANT_S,
     {"layout": Layout.MEDIAPIPE33}, {}),
    ("low_amp_122", "constant", TempoCurve.constant(122), CONSTANT_S, {"amplitude": 0.35}, {}),
    ("smooth_108", "constant", TempoCurve.constant(108), CONSTANT_S, {"sharpness": 0.3},
     {"note": "smooth (sine) moves, sharpness 0.3"}),
    ("still", "still", TempoCurve.constant(120), 20.0, {"amplitude": 0.0}, {}),
    ("stops_112", "constant", TempoCurve.constant(112), CONSTANT_S, {},
     {"stop_at_s": 18.0, "note": "dances 18 s, then stands still"}),
]

#: Phase offsets (beats) per case, so beat 0 is not at t = 0; a fixed spread, not tuned.
_PHASES = np.round(np.linspace(0.13, 0.87, len(_DEFS)), 3)


def _build() -> tuple[HeldOutCase, ...]:
    out = []
    for n, (name, kind, curve, dur, dancer, extra) in enumerate(_DEFS):
        kw = {"noise": 0.003, "sharpness": 0.9, "phase_offset": float(_PHASES[(n * 7) % len(_DEFS)]),
              **dancer}
        out.append(HeldOutCase(name=name, kind=kind, curve=curve, duration_s=dur, seed=SEED_BASE + n,
                               dancer=kw, **extra))
    return tuple(out)


#: The held-out set.
CASES: tuple[HeldOutCase, ...] = _build()
BY_NAME: dict[str, HeldOutCase] = {c.name: c for c in CASES}


#: The dancer streamed to the live server (live_loop.py, genre_reaction.py --live); not in CASES.
LIVE = HeldOutCase(name="live_124", kind="constant", curve=TempoCurve.constant(124.0), duration_s=30.0,
                   seed=SEED_BASE + 60, dancer={"noise": 0.003, "sharpness": 0.9, "phase_offset": 0.41})
#: The dancer of the genre-reaction benchmark (operator genre changes over a locked dance); not in CASES.
GENRE = HeldOutCase(name="genre_116", kind="constant", curve=TempoCurve.constant(116.0), duration_s=40.0,
                    seed=SEED_BASE + 61, dancer={"noise": 0.003, "sharpness": 0.9, "phase_offset": 0.57})

#: Every seed the held-out set uses (a still dancer after ``stop_at_s`` uses ``seed + 100000``).
SEEDS: frozenset[int] = frozenset({c.seed for c in CASES} | {c.seed + 100_000 for c in CASES}
                                  | {LIVE.seed, GENRE.seed})


def select(names: str | None = None, *, quick: bool = False) -> list[HeldOutCase]:
    """Cases by comma-separated ``names`` (all, or :data:`QUICK` with ``quick``)."""
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in BY_NAME]
        if unknown:
            raise SystemExit(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
        return [BY_NAME[n] for n in wanted]
    if quick:
        return [BY_NAME[n] for n in QUICK]
    return list(CASES)


def with_duration(case: HeldOutCase, duration_s: float | None) -> HeldOutCase:
    """The case cut to ``duration_s`` (for smoke runs); change times past the end are dropped."""
    if duration_s is None:
        return case
    return replace(case, duration_s=duration_s,
                   changes_s=tuple(t for t in case.changes_s if t < duration_s))


if __name__ == "__main__":
    import json
    print(json.dumps([c.describe() for c in CASES], indent=1))
