"""A dancer who hears the music and entrains to it, over several seeds; prints JSON.

The closed loop of a real room: the music follows the dancer while the
dancer follows the music. The dancer is :class:`d2m.dancer.EntrainingTempo`
(linear phase and period correction, 150 ms reaction, 12 ms timing noise)
driving a :class:`~d2m.dancer.SyntheticDancer`; the music is the real
:class:`~d2m.conductor.Conductor` (tracker, beat keeper, bar plans), and the
dancer hears each music bar's beats as it is planned.

Per seed, after the first minute (the loop has settled by then):

* ``max_drift``: the largest relative distance of a bar's tempo from the
  dancer's starting tempo (nothing anchors the shared tempo: the two can
  random-walk together; ``tests/d2m/test_follow.py`` asserts < 5 % for two
  seeds);
* ``bar_tempo_spread``: the bar tempo's standard deviation over its mean
  (oscillation; the test asserts < 1 %);
* ``asynchrony_median_ms``: the median |dancer beat - nearest music beat|
  over the last 60 of the dancer's beats (the test asserts < 40 ms);
* ``end_bpm``: the last bar's tempo.

Usage: python benchmarks/closed_loop.py [--quick] [--seeds 1,2,...] [--seconds S] [--bpm B] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from d2m.conductor import Conductor  # noqa: E402
from d2m.dancer import EntrainingTempo, SyntheticDancer  # noqa: E402
from d2m.events import SegmentPlanned, beats_of  # noqa: E402
from d2m.motion import MOTION_RATE  # noqa: E402
from d2m.plan import MUSIC  # noqa: E402

#: Seeds run by default, and with --quick.
SEEDS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
QUICK_SEEDS = (2, 9)
#: The dancer's starting tempo (BPM), timing noise (s) and the run's length (s).
START_BPM = 104.0
NOISE_S = 0.012
SECONDS = 180.0
#: Bars that start before this (s; a third of a shorter run) are the loop settling and not judged.
SETTLE_S = 60.0


def run_seed(seed: int, seconds: float = SECONDS, bpm: float = START_BPM) -> dict:
    tempo = EntrainingTempo(bpm, seed=seed, noise_s=NOISE_S)
    dancer = SyntheticDancer(tempo=tempo, seed=seed, noise=0.003)
    conductor = Conductor()
    music = []
    t, dt = 0.0, 1.0 / MOTION_RATE
    while t < seconds:
        for e in conductor.push_frame(dancer.frame(t)):
            if isinstance(e, SegmentPlanned) and e.plan.kind == MUSIC:
                music.append(e.plan)
                tempo.hear(b.time for b in beats_of(e.plan))
        t += dt
    late = np.array([p.bpm for p in music if p.start_time > min(SETTLE_S, seconds / 3)])
    asyn = np.abs(np.array(tempo.asynchronies[-60:])) if tempo.asynchronies else np.zeros(0)
    return {
        "seed": seed,
        "music_starts_s": round(music[0].start_time, 2) if music else None,
        "bars_judged": int(late.size),
        "max_drift": round(float(np.max(np.abs(late / bpm - 1.0))), 4) if late.size else None,
        "bar_tempo_spread": round(float(np.std(late) / np.mean(late)), 4) if late.size else None,
        "asynchrony_median_ms": round(float(np.median(asyn)) * 1000, 1) if asyn.size else None,
        "end_bpm": round(float(late[-1]), 2) if late.size else None,
    }


def _stats(values) -> dict | None:
    v = np.array([x for x in values if x is not None], dtype=float)
    if not v.size:
        return None
    return {"n": int(v.size), "median": round(float(np.median(v)), 4), "max": round(float(v.max()), 4)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"only seeds {', '.join(map(str, QUICK_SEEDS))}")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds")
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--bpm", type=float, default=START_BPM)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(QUICK_SEEDS if args.quick else SEEDS)
    started = time.perf_counter()
    rows = []
    for i, seed in enumerate(seeds):
        rows.append(run_seed(seed, args.seconds, args.bpm))
        print(f"closed_loop: seed {seed} ({i + 1}/{len(seeds)}): max drift {rows[-1]['max_drift']}, "
              f"spread {rows[-1]['bar_tempo_spread']}", file=sys.stderr, flush=True)
    out = {
        "benchmark": "closed_loop",
        "settings": {"start_bpm": args.bpm, "seconds": args.seconds, "settle_s": min(SETTLE_S, args.seconds / 3), "noise_s": NOISE_S,
                     "seeds": seeds},
        "seeds": rows,
        "summary": {"max_drift": _stats(r["max_drift"] for r in rows),
                    "bar_tempo_spread": _stats(r["bar_tempo_spread"] for r in rows),
                    "asynchrony_median_ms": _stats(r["asynchrony_median_ms"] for r in rows)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
