"""Song form, variation and a genre that holds (issue 11): prints JSON.

Three parts:

* ``steady``: five minutes of a steady synthetic dancer (120 BPM, ``--genre``)
  rendered through the conductor and the synth as ``d2m render`` does. Distinct
  bars (bars whose log-mel spectrograms correlate < 0.95 with the first bar of
  every other kind: greedy clustering in bar order), identical consecutive
  8-bar phrases (every bar the same kind as the bar a phrase earlier), the EBU
  R128 loudness range (LRA, pyloudnorm) and the integrated loudness of the
  peak against the breakdown bars. ``--plot`` draws loudness over time with
  the sections.
* ``rise_fall``: a dancer whose energy rises and falls (and who stops at the
  end); for every change, how many bars until the section answers it (a rise
  by a build or peak, a fall by a breakdown, the stop by an outro).
* ``genre_auto``: ``--genre auto`` on the real AIST++ motion in
  ``../shared/realdance`` (looped on its 16-beat grid; skipped when absent):
  changes of the played genre per minute, and whether any landed mid-phrase;
  against the raw estimate's changes per bar (what played before the hold).

    python benchmarks/song_form.py [--minutes 5] [--genre house] [--plot song_form.png]
                                   [--wav steady.wav] [--parts steady,rise_fall,genre_auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from d2m import form as F  # noqa: E402
from d2m.conductor import Conductor, ConductorConfig  # noqa: E402
from d2m.dancer import SyntheticDancer  # noqa: E402
from d2m.events import GenreChanged, SegmentPlanned  # noqa: E402
from d2m.plan import MUSIC  # noqa: E402
from d2m.render import render_motion  # noqa: E402
from d2m.synth import SynthGenerator  # noqa: E402

SAMPLE_RATE = 48000
#: Two bars are the same kind when their log-mel spectrograms correlate at least this much.
SAME_BAR_CORRELATION = 0.95
#: Mel bands and time frames each bar's spectrogram is resampled to.
N_MELS = 64
BAR_FRAMES = 64
#: Real motion: the 12 s break sequence is exactly 16 beats (80 BPM) and loops on its grid.
REALDANCE = ROOT.parent / "shared" / "realdance"
LOOP_FILE = "gBR_sBM_cAll_d04_mBR0_ch03.jsonl"
LOOP_BEATS = 16
LOOP_BPM = 80.0
#: The rise-and-fall dancer: (time s, amplitude factor); amplitude 1 reads as energy ~0.1, 3 as ~0.3.
RISE_FALL_POINTS = [(0, 1.0), (50, 1.0), (52, 3.0), (110, 3.0), (112, 1.0), (170, 1.0), (172, 3.0),
                    (230, 3.0), (232, 1.0), (270, 1.0), (271, 0.0), (330, 0.0)]
#: A section answers a change within this many bars to count as "within a phrase".
ANSWER_BARS = F.PHRASE_BARS


# -- steady dancing ----------------------------------------------------------------------------
def bar_features(audio: np.ndarray, plans) -> list[np.ndarray]:
    import librosa
    mono = audio.mean(axis=1)
    feats = []
    for p in plans:
        x = mono[p.start_sample:p.end_sample]
        mel = librosa.feature.melspectrogram(y=x, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=N_MELS)
        logmel = librosa.power_to_db(mel + 1e-10, ref=1.0, top_db=80.0)
        idx = np.linspace(0, logmel.shape[1] - 1, BAR_FRAMES)
        res = np.array([np.interp(idx, np.arange(logmel.shape[1]), row) for row in logmel])
        v = res.ravel() - res.mean()
        feats.append(v / (np.linalg.norm(v) + 1e-12))
    return feats


def bar_kinds(feats: list[np.ndarray]) -> list[int]:
    """Greedy: a bar joins the first kind whose first bar it correlates with >= 0.95, else starts one."""
    reps: list[np.ndarray] = []
    kinds = []
    for f in feats:
        for k, r in enumerate(reps):
            if float(f @ r) >= SAME_BAR_CORRELATION:
                kinds.append(k)
                break
        else:
            reps.append(f)
            kinds.append(len(reps) - 1)
    return kinds


def identical_phrases(feats: list[np.ndarray]) -> tuple[list[int], int]:
    """Consecutive 8-bar phrases whose bars all correlate >= 0.95 with the bar a phrase earlier
    (the first music bar of each such later phrase, counted from the first music bar)."""
    n = len(feats) // F.PHRASE_BARS
    same = []
    for p in range(1, n):
        a, b = (p - 1) * F.PHRASE_BARS, p * F.PHRASE_BARS
        if all(float(feats[a + i] @ feats[b + i]) >= SAME_BAR_CORRELATION for i in range(F.PHRASE_BARS)):
            same.append(b)
    return same, max(0, n - 1)


def steady(args) -> dict:
    try:
        import pyloudnorm
    except ImportError:
        raise SystemExit("song_form.py measures loudness with pyloudnorm: pip install -e '.[test]' "
                         "(or pip install pyloudnorm)") from None
    seconds = args.minutes * 60.0
    frames = SyntheticDancer(tempo=120.0, seed=11).frames(seconds)
    res = render_motion(frames, SynthGenerator(SAMPLE_RATE), ConductorConfig(genre=args.genre), tail_s=0.0)
    bars = [p for p in res.plans if p.kind == MUSIC and p.end_sample <= len(res.audio)]
    feats = bar_features(res.audio, bars)
    kinds = bar_kinds(feats)
    same, pairs = identical_phrases(feats)
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    audio = res.audio.astype(np.float64)
    music = audio[bars[0].start_sample:bars[-1].end_sample]
    lra = meter.loudness_range(music)

    def level(section):
        parts = [audio[p.start_sample:p.end_sample] for p in bars if p.section == section]
        return meter.integrated_loudness(np.concatenate(parts)) if parts else None

    levels = {s: level(s) for s in F.SECTIONS}
    sections = []
    for p in bars:
        if p.section_bar == 0:
            sections.append({"bar": p.bar, "section": p.section, "bars": p.section_bars})
    out = {
        "seconds": seconds, "genre": args.genre, "bars": len(bars),
        "distinct_bars": len(set(kinds)), "distinct_bars_target": 40,
        "identical_consecutive_phrases": len(same), "identical_phrases_at_bar": same, "phrase_pairs": pairs,
        "median_bar_correlation_with_phrase_before": round(float(np.median(
            [feats[i] @ feats[i - F.PHRASE_BARS] for i in range(F.PHRASE_BARS, len(feats))])), 3),
        "loudness_range_lu": round(float(lra), 2),
        "integrated_lufs": round(float(meter.integrated_loudness(music)), 2),
        "section_lufs": {s: round(v, 2) for s, v in levels.items() if v is not None},
        "breakdown_below_peak_db": (round(levels["peak"] - levels["breakdown"], 2)
                                    if levels.get("peak") is not None and levels.get("breakdown") is not None
                                    else None),
        "sections": sections,
    }
    if args.plot:
        _plot(args.plot, res.audio, bars, meter)
        out["plot"] = args.plot
    if args.wav:
        import soundfile
        soundfile.write(args.wav, res.audio, SAMPLE_RATE)
        out["wav"] = args.wav
    return out


def _plot(path: str, audio: np.ndarray, bars, meter) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colours = {"intro": "#9ecae1", "groove": "#c7e9c0", "build": "#fdd0a2", "peak": "#fc9272",
               "breakdown": "#dadaeb", "outro": "#bdbdbd", "end": "#f0f0f0"}
    sr = SAMPLE_RATE
    win, hop = 3 * sr, sr              # short-term loudness: 3 s windows (EBU R128), every second
    t, lufs = [], []
    for s in range(0, len(audio) - win, hop):
        t.append((s + win) / sr)
        lufs.append(max(-60.0, meter.integrated_loudness(audio[s:s + win].astype(np.float64))))
    fig, ax = plt.subplots(figsize=(12, 3.5))
    for p in bars:
        ax.axvspan(p.start_time, p.start_time + p.duration, color=colours.get(p.section, "white"), lw=0)
    seen = set()
    for p in bars:
        if p.section_bar == 0 and p.section not in seen:
            seen.add(p.section)
            ax.axvspan(0, 0, color=colours[p.section], label=p.section)
    ax.plot(t, lufs, color="black", lw=1.2, label="short-term loudness (3 s)")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("LUFS (approx.)")
    ax.set_ylim(max(-45, min(lufs) - 3), max(lufs) + 3)
    ax.legend(loc="lower right", ncol=4, fontsize=8)
    ax.set_title("song form: loudness over five minutes of steady dancing")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# -- rise and fall -----------------------------------------------------------------------------
def _conduct(frames, config: ConductorConfig):
    c = Conductor(config)
    plans, genre_events = [], []
    for ev in [e for f in frames for e in c.push_frame(f)]:
        if isinstance(ev, SegmentPlanned):
            plans.append(ev.plan)
        elif isinstance(ev, GenreChanged):
            genre_events.append(ev)
    return plans, genre_events


def rise_fall(args) -> dict:
    end = RISE_FALL_POINTS[-1][0]
    dancer = SyntheticDancer(tempo=120.0, seed=12, amplitude_points=RISE_FALL_POINTS)
    plans, _ = _conduct(dancer.frames(end), ConductorConfig(genre=args.genre))
    bars = [p for p in plans if p.kind == MUSIC]
    changes = []
    pts = RISE_FALL_POINTS
    for (t0, a0), (t1, a1) in zip(pts, pts[1:]):
        if a1 != a0:
            kind = "stop" if a1 == 0 else ("rise" if a1 > a0 else "fall")
            changes.append((t1, kind))
    answers = {"rise": (F.BUILD, F.PEAK), "fall": (F.BREAKDOWN,), "stop": (F.OUTRO, F.END)}
    rows = []
    for t, kind in changes:
        after = [p for p in bars if p.start_time + p.duration > t]
        if not after:
            continue
        first = after[0]
        hit = next((p for p in after if p.section in answers[kind]), None)
        lag = None if hit is None else hit.bar - first.bar
        rows.append({"t": t, "change": kind, "answered_by": hit.section if hit else None,
                     "lag_bars": lag, "lag_s": None if hit is None else round(hit.start_time - t, 2)})
    lags = [r["lag_bars"] for r in rows if r["lag_bars"] is not None]
    timeline = [{"bar": p.bar, "t": round(p.start_time, 1), "section": p.section, "bars": p.section_bars,
                 "energy": round(p.energy, 3)} for p in bars if p.section_bar == 0]
    return {"changes": rows, "answered": len(lags), "of": len(rows),
            "median_lag_bars": statistics.median(lags) if lags else None, "max_lag_bars": max(lags) if lags else None,
            "within_a_phrase": sum(lag <= ANSWER_BARS for lag in lags), "sections": timeline}


# -- genre auto on real motion -------------------------------------------------------------------
def _looped_real(minutes: float):
    from d2m.recording import parse_recording
    rec = parse_recording((REALDANCE / LOOP_FILE).read_text().splitlines())
    frames = rec.frames
    t0 = frames[0].t
    period = LOOP_BEATS * 60.0 / LOOP_BPM
    out = []
    k = 0
    while k * period < minutes * 60.0:
        for f in frames:
            t = f.t - t0 + k * period
            if f.t - t0 < period:
                out.append(dataclasses.replace(f, t=t))
        k += 1
    return out


def genre_per_clip() -> dict:
    """The motion estimate's genre for each real clip (looped three times), against the dancer's genre."""
    from d2m.genres import parse_genre
    from d2m.recording import parse_recording
    out = {}
    for path in sorted(REALDANCE.glob("*.jsonl")):
        frames = parse_recording(path.read_text().splitlines()).frames
        t0, dur = frames[0].t, frames[-1].t - frames[0].t + 1.0 / 60.0
        c = Conductor(ConductorConfig(genre=None))
        for k in range(3):
            for f in frames:
                c.push_frame(dataclasses.replace(f, t=f.t - t0 + k * dur))
        st = c.style.state()
        out[path.name] = {"dancer": parse_genre(path.name[:3]), "estimate": st.genre,
                          "confidence": round(st.genre_confidence, 3)}
    return out


def genre_auto(args) -> dict:
    if not (REALDANCE / LOOP_FILE).exists():
        return {"skipped": f"{REALDANCE / LOOP_FILE} not found (real AIST++ motion is for development only)"}
    frames = _looped_real(args.real_minutes)
    plans, events = _conduct(frames, ConductorConfig(genre=None))
    bars = [p for p in plans if p.kind == MUSIC]
    minutes = (bars[-1].end_sample - bars[0].start_sample) / SAMPLE_RATE / 60.0 if bars else 0.0
    played = [(p.bar, p.genre, p.section_bar) for p in bars]
    changes = [(b, g, sb) for (b, g, sb), (_, g0, _) in zip(played[1:], played) if g != g0]
    mid_phrase = [c for c in changes if c[2] % F.PHRASE_BARS != 0]
    raw = [max(range(len(p.genre_probs)), key=p.genre_probs.__getitem__) for p in bars]
    raw_changes = sum(a != b for a, b in zip(raw, raw[1:]))
    genres_played = sorted({g for _, g, _ in played})
    return {"source": LOOP_FILE + f" looped to {args.real_minutes:g} min (a break dancer, 80 BPM)",
            "music_minutes": round(minutes, 2), "changes": len(changes),
            "changes_per_minute": round(len(changes) / minutes, 2) if minutes else None,
            "changes_mid_phrase": len(mid_phrase), "target_per_minute": 1.0,
            "genres_played": genres_played, "first_genre": played[0][1] if played else None,
            "raw_estimate_changes_per_minute": round(raw_changes / minutes, 2) if minutes else None,
            "change_bars": [{"bar": b, "genre": g} for b, g, _ in changes],
            "estimate_per_clip": genre_per_clip()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the steady dance")
    parser.add_argument("--real-minutes", type=float, default=3.0, help="length of the looped real motion")
    parser.add_argument("--genre", default="house", help="genre of the synthetic dancers' music")
    parser.add_argument("--plot", default="", help="PNG: loudness over time with the sections")
    parser.add_argument("--wav", default="", help="write the steady render here")
    parser.add_argument("--parts", default="steady,rise_fall,genre_auto")
    args = parser.parse_args()
    out = {"benchmark": "song_form"}
    parts = args.parts.split(",")
    if "steady" in parts:
        out["steady"] = steady(args)
    if "rise_fall" in parts:
        out["rise_fall"] = rise_fall(args)
    if "genre_auto" in parts:
        out["genre_auto"] = genre_auto(args)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
