"""Render speed and level of the SoundFont voices (``--voices soundfont``) on one core; prints JSON.

For every genre, ``--bars`` bars at ``--bpm`` are rendered by a fresh
:class:`d2m.synth.soundfont.SoundFontGenerator` (so the figure includes
sampling every note into its cache the first time, the cost a show pays at
its start) and by the numpy band on the same plans. Reported per genre:
× real time from the rendering thread's CPU time (``time.thread_time``; one
BLAS thread) over all bars, over the second half (cache warm), and the
RMS level against the numpy band's (dB). Target (issue 11): >= 100× real
time on one core. Needs the ``soundfont`` extra and a GM SoundFont
(``apt-get install fluid-soundfont-gm``); without them it prints one line
saying what to install and exits 2.

    python benchmarks/soundfont_speed.py [--bars 32] [--bpm 120] [--genres house,ballet_jazz]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from d2m.genres import GENRES  # noqa: E402
from d2m.synth import SynthGenerator  # noqa: E402
from synth_speed import SAMPLE_RATE, bar_plans  # noqa: E402

TARGET_X = 100.0


def render(gen, plans) -> tuple[np.ndarray, list[float]]:
    state = gen.initial_state()
    cpu, out = [], []
    for plan in plans:
        t0 = time.thread_time()
        rendered, state = gen.render(plan, state)
        cpu.append(time.thread_time() - t0)
        out.append(rendered.audio)
    return np.concatenate(out), cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=32)
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--energy", type=float, default=0.6)
    ap.add_argument("--genres", default=",".join(GENRES))
    ap.add_argument("--soundfont", default=None)
    a = ap.parse_args(argv)
    from d2m.synth.soundfont import SoundFontGenerator, SoundFontUnavailable

    try:
        t0 = time.perf_counter()
        SoundFontGenerator(SAMPLE_RATE, soundfont=a.soundfont)
        load_s = time.perf_counter() - t0
    except SoundFontUnavailable as exc:
        print(f"soundfont_speed: {exc}", file=sys.stderr)
        return 2
    bar_s = 4 * 60.0 / a.bpm
    res = {}
    for genre in a.genres.split(","):
        plans = bar_plans(genre, a.bpm, a.bars, a.energy, 0.5)
        gen = SoundFontGenerator(SAMPLE_RATE, soundfont=a.soundfont)
        sf_audio, cpu = render(gen, plans)
        np_audio, np_cpu = render(SynthGenerator(SAMPLE_RATE), plans)
        again, _ = render(SoundFontGenerator(SAMPLE_RATE, soundfont=a.soundfont), plans)
        half = len(cpu) // 2
        rms = lambda x: float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))  # noqa: E731
        res[genre] = {
            "x_realtime_all_bars": round(len(cpu) * bar_s / sum(cpu), 1),
            "x_realtime_warm": round((len(cpu) - half) * bar_s / sum(cpu[half:]), 1),
            "numpy_band_x_realtime": round(len(np_cpu) * bar_s / sum(np_cpu), 1),
            "notes_sampled": gen.notes.rendered, "cache_mb": round(gen.notes.samples * 4 / 1e6, 1),
            "level_vs_numpy_db": round(20 * np.log10(rms(sf_audio) / rms(np_audio)), 1),
            "peak": round(float(np.abs(sf_audio).max()), 3),
            "deterministic": bool(np.array_equal(sf_audio, again)),
        }
    worst = min(r["x_realtime_all_bars"] for r in res.values())
    print(json.dumps({
        "benchmark": "soundfont_speed", "soundfont": str(gen.notes.path), "load_s": round(load_s, 2),
        "bpm": a.bpm, "bars": a.bars, "threads": 1, "clock": "thread CPU time",
        "genres": res,
        "overall": {"median_x_realtime": round(float(np.median([r["x_realtime_all_bars"] for r in res.values()])), 1),
                    "worst_genre_x_realtime": worst, "target_x": TARGET_X, "meets_target": worst >= TARGET_X},
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
