"""Render speed of the built-in ``synth`` generator on one core.

Renders ``--bars`` bars per genre at ``--bpm`` (48 kHz stereo) and prints JSON:
median x-real-time per genre and overall, and milliseconds per bar. Threads
are limited to one before numpy is imported, so the figure is per core.

    python benchmarks/synth_speed.py [--bars 32] [--bpm 120] [--energy 0.6] [--repeats 3] [--form]

CPU time per bar (``cpu_x_realtime``) is reported next to wall-clock time: on a shared
machine the wall clock also counts other processes.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from d2m.form import SongForm  # noqa: E402
from d2m.genres import GENRES  # noqa: E402
from d2m.plan import MUSIC, SegmentPlan  # noqa: E402
from d2m.synth import SynthGenerator  # noqa: E402

SAMPLE_RATE = 48000


def bar_plans(genre: str, bpm: float, bars: int, energy: float, sharpness: float,
              form: bool = False) -> list[SegmentPlan]:
    """Contiguous 4/4 bars at a constant tempo (``form``: with the song form's sections, as the conductor
    plans them for steady dancing: intro, groove, build, peak, breakdown, ...)."""
    beat = 60.0 / bpm * SAMPLE_RATE
    n = int(round(4 * beat))
    offsets = tuple(int(round(i * beat)) for i in range(4))
    song = SongForm() if form else None
    plans = []
    for b in range(bars):
        extra = {}
        if song is not None:
            info = song.bar(energy)
            extra = dict(section=info.section, section_bar=info.section_bar, section_bars=info.section_bars,
                         bars_to_next_section=info.bars_to_next_section, next_section=info.next_section,
                         section_index=info.section_index)
        plans.append(SegmentPlan(index=b, kind=MUSIC, start_sample=b * n, n_samples=n, sample_rate=SAMPLE_RATE,
                                 bar=b, beat_offsets=offsets, bpm=bpm, genre=genre, energy=energy,
                                 sharpness=sharpness, seed=1, **extra))
    return plans


def time_genre(genre: str, args) -> dict:
    plans = bar_plans(genre, args.bpm, args.bars, args.energy, args.sharpness, form=args.form)
    per_bar_ms = []
    cpu_ms = []
    for _ in range(args.repeats):
        gen = SynthGenerator(SAMPLE_RATE)  # fresh generator: includes the cost of filling its tone cache
        state = gen.initial_state()
        for plan in plans:
            t0, c0 = time.perf_counter(), time.process_time()
            _, state = gen.render(plan, state)
            per_bar_ms.append((time.perf_counter() - t0) * 1000.0)
            cpu_ms.append((time.process_time() - c0) * 1000.0)
    bar_s = plans[0].n_samples / SAMPLE_RATE
    med = statistics.median(per_bar_ms)
    return {
        "median_cpu_ms_per_bar": round(statistics.median(cpu_ms), 3),
        "cpu_x_realtime": round(bar_s * 1000.0 * len(cpu_ms) / max(1e-9, sum(cpu_ms)), 1),
        "median_ms_per_bar": round(med, 3),
        "p95_ms_per_bar": round(float(np.percentile(per_bar_ms, 95)), 3),
        "max_ms_per_bar": round(max(per_bar_ms), 3),
        "median_x_realtime": round(bar_s * 1000.0 / med, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=32, help="bars rendered per genre and repeat")
    parser.add_argument("--bpm", type=float, default=120.0, help="tempo (120 BPM: a bar lasts 2 s)")
    parser.add_argument("--energy", type=float, default=0.6, help="plan energy 0..1 (higher: denser)")
    parser.add_argument("--sharpness", type=float, default=0.5, help="plan sharpness 0..1")
    parser.add_argument("--repeats", type=int, default=3, help="fresh generators per genre")
    parser.add_argument("--genres", default=",".join(GENRES), help="comma-separated genre keys")
    parser.add_argument("--form", action="store_true",
                        help="bars carry the song form (intro, groove, build with riser, peak, breakdown, ...)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    SynthGenerator(SAMPLE_RATE)
    build_ms = (time.perf_counter() - t0) * 1000.0
    results = {g: time_genre(g, args) for g in args.genres.split(",")}
    meds = [r["median_ms_per_bar"] for r in results.values()]
    bar_s = 4 * 60.0 / args.bpm
    print(json.dumps({
        "benchmark": "synth_speed",
        "sample_rate": SAMPLE_RATE, "channels": 2, "threads": 1,
        "bpm": args.bpm, "bar_seconds": bar_s, "bars": args.bars, "repeats": args.repeats,
        "energy": args.energy, "sharpness": args.sharpness, "form": args.form,
        "first_build_ms": round(build_ms, 1),
        "genres": results,
        "overall": {
            "median_ms_per_bar": round(statistics.median(meds), 3),
            "worst_genre_ms_per_bar": round(max(meds), 3),
            "median_x_realtime": round(bar_s * 1000.0 / statistics.median(meds), 1),
            "worst_genre_x_realtime": round(bar_s * 1000.0 / max(meds), 1),
            "cpu_x_realtime": round(statistics.median(r["cpu_x_realtime"] for r in results.values()), 1),
            "worst_genre_cpu_x_realtime": min(r["cpu_x_realtime"] for r in results.values()),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
