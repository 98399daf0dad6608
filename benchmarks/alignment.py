"""How well the whole system follows the held-out dancers; prints JSON.

Each case of :mod:`heldout` is rendered offline with the real core, exactly
as the live loop would play it: :func:`d2m.render.render_motion` (the
:class:`~d2m.conductor.Conductor` with its default configuration, the motion
trackers, the built-in :class:`~d2m.synth.SynthGenerator`). The music's beats
are known exactly from the plans (:func:`d2m.events.beats_of`); the dancer's
beats are known exactly from its tempo curve. The rendered audio is also
beat-tracked with :mod:`d2m.evaluation.audio` (what a listener/``d2m eval``
would find), and ``d2m eval``'s own view (motion beats detected from the
frames against audio beats) is reported too.

Per case (times in s, offsets ``music - dance`` in ms, beats are dance beats):

* ``bas_music_side`` / ``bas_dance_side``: Beat Alignment Score (sigma 50 ms)
  of each planned music beat against the nearest dance beat, and of each dance
  beat after the music started against the nearest music beat (this one drops
  when the music plays at half or double tempo);
* ``offsets_all`` / ``offsets_locked``: |offset| median and p90 over every
  music beat in the dance, and over those after lock-in;
  ``within_tolerance_share``: share of music beats within 50 ms of a dance beat;
* ``lock_in``: the first music beat from which every later music beat is
  within 50 ms of a dance beat *and* every later dance beat within 50 ms of a
  music beat (both ways, so octave errors never count as locked), per steady
  segment, with at least ``MIN_LOCKED_BEATS`` music beats from there on;
  ``beats_from_dance_start`` counts the dance beats before it,
  ``beats_from_music_start`` those after the first music beat;
* ``relock`` (sudden changes): the same lock measured from the change;
  ``beats`` = dance beats from the change to re-lock;
* ``tempo_final``: music vs dance tempo over the last ``FINAL_WINDOW_S`` of the
  dance (:func:`d2m.evaluation.tempo_agreement`: match within 4 %, octave
  errors named apart); ``tempo_share``: share of music beat intervals within
  4 % of the dance's local tempo (and at an octave of it);
* ``audio``: beats tracked in the rendered audio vs the plans and vs the dance;
* ``eval``: ``d2m eval``'s numbers (detected motion beats vs audio beats);
* still dancers: whether the music keeps playing (no crash, segment kinds,
  loudness in the last seconds, held tempo).

``summary`` gives percentiles across cases. Usage::

    python benchmarks/alignment.py [--quick] [--cases a,b] [--duration S] [--no-audio]
                                   [--save-dir DIR] [--out FILE]

``--save-dir`` writes each case's WAV, motion JSONL and planned beats, for
``d2m eval DIR/CASE.wav --motion DIR/CASE.jsonl --plot DIR/CASE.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout  # noqa: E402

from d2m.conductor import ConductorConfig  # noqa: E402
from d2m.evaluation import LOCK_TOLERANCE_S, BAS_SIGMA_S, offset_stats, tempo_agreement  # noqa: E402
from d2m.evaluation.report import align, score  # noqa: E402
from d2m.events import beats_of  # noqa: E402
from d2m.render import render_motion  # noqa: E402
from d2m.synth import SynthGenerator  # noqa: E402

#: Sample rate of the rendered music (the project's default).
SAMPLE_RATE = 48000
#: Window at the end of the dance over which the final tempo is compared (s).
FINAL_WINDOW_S = 8.0
#: The still-dancer checks look at the last this many seconds (s).
STILL_CHECK_S = 5.0
#: RMS below which audio counts as silent.
SILENT_RMS = 1e-4
#: A tracked audio beat matches a planned one within this (s).
AUDIO_MATCH_S = 0.070
#: Lock-in needs at least this many music beats on the dance from the lock on (else it
#: is a lucky last beat, not a lock).
MIN_LOCKED_BEATS = 4
#: Percentiles reported across cases.
PERCENTILES = (10, 50, 90)


def _r(x, nd: int = 3):
    """Round for JSON; NaN/inf become None."""
    if x is None:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    return round(x, nd) if math.isfinite(x) else None


def count_before(beats: np.ndarray, t: float) -> int:
    """Dance beats strictly before ``t`` (less the lock tolerance, so the beat at ``t`` is not counted)."""
    return int(np.count_nonzero(beats < t - LOCK_TOLERANCE_S))


def lock_both_ways(music: np.ndarray, dance: np.ndarray, start: float, end: float) -> dict:
    """Lock-in inside ``[start, end)``: music beats vs dance beats and dance beats vs music beats.

    Returns the later of the two lock times (``None`` if either never locks).
    """
    mb = music[(music >= start) & (music < end)]
    if mb.size == 0:
        return {"locked": False, "time_s": None, "reason": "no music beats"}
    db = dance[(dance >= max(start, mb[0] - LOCK_TOLERANCE_S)) & (dance < end)]
    kw = dict(sigma_s=BAS_SIGMA_S, lock_tol_s=LOCK_TOLERANCE_S)
    m_side = align(mb, dance, sign=-1.0, **kw)
    d_side = align(db, music, sign=1.0, **kw) if db.size else None
    if not m_side.lock.locked or d_side is None or not d_side.lock.locked:
        return {"locked": False, "time_s": None,
                "reason": "music beats off the dance" if not m_side.lock.locked else "dance beats without music"}
    t_lock = max(m_side.lock.time_s, d_side.lock.time_s)
    after_mask = m_side.beats >= t_lock - LOCK_TOLERANCE_S
    t_lock = float(m_side.beats[after_mask][0]) if after_mask.any() else t_lock
    after = m_side.offsets_s[after_mask]
    if after.size < MIN_LOCKED_BEATS:
        return {"locked": False, "time_s": None,
                "reason": f"on the dance only for the last {after.size} music beats"}
    return {"locked": True, "time_s": float(t_lock), "music_beats_after": int(after.size),
            "offsets_after": offset_stats(after)}


def tempo_windows(music: np.ndarray, case: heldout.HeldOutCase, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """Music tempo of each beat interval in ``[t0, t1]`` and the dance's tempo at its middle."""
    mb = music[(music >= t0) & (music <= t1)]
    if mb.size < 2:
        return np.zeros(0), np.zeros(0)
    ibi = np.diff(mb)
    mid = mb[:-1] + ibi / 2
    keep = np.ones(ibi.size, dtype=bool)
    for c in case.changes_s:                      # an interval across a sudden change has no one tempo
        keep &= ~((mb[:-1] < c) & (mb[1:] > c))
    return 60.0 / ibi[keep], np.array([case.bpm_at(t) for t in mid[keep]])


def tempo_report(music: np.ndarray, case: heldout.HeldOutCase, dance_end: float, music_start: float) -> dict:
    t0 = max(music_start, dance_end - FINAL_WINDOW_S)
    mbpm, dbpm = tempo_windows(music, case, t0, dance_end)
    out: dict = {}
    if mbpm.size:
        ta = tempo_agreement(float(np.median(mbpm)), float(np.mean(dbpm)))
        out["final"] = {"music_bpm": _r(ta.music_bpm, 2), "dance_bpm": _r(ta.dance_bpm, 2),
                        "rel_error": _r(ta.rel_error, 4), "match": ta.match, "octave": ta.octave}
    else:
        out["final"] = None
    mbpm, dbpm = tempo_windows(music, case, music_start, dance_end)
    if mbpm.size:
        verdicts = [tempo_agreement(m, d) for m, d in zip(mbpm, dbpm)]
        out["share_match"] = _r(np.mean([v.match for v in verdicts]), 3)
        out["share_octave"] = _r(np.mean([v.octave is not None for v in verdicts]), 3)
    else:
        out["share_match"] = out["share_octave"] = None
    return out


def _stats(o) -> dict:
    s = o if not isinstance(o, np.ndarray) else offset_stats(o)
    return {"n": s.n, "median_abs_ms": _r(s.median_abs_ms, 1), "p90_abs_ms": _r(s.p90_abs_ms, 1),
            "median_ms": _r(s.median_ms, 1)}


def evaluate_case(case: heldout.HeldOutCase, *, audio: bool = True, save_dir: Path | None = None) -> dict:
    """Render one case and score it (see the module docstring)."""
    t_start = time.perf_counter()
    frames = case.frames()
    t_frames = time.perf_counter()
    gen = SynthGenerator(sample_rate=SAMPLE_RATE, seed=case.seed)
    cfg = ConductorConfig(sample_rate=SAMPLE_RATE, seed=case.seed)
    result = render_motion(frames, gen, cfg, duration=case.duration_s + 1.0)
    t_render = time.perf_counter()
    plans = result.plans
    music_all = np.array([b.time for p in plans for b in beats_of(p)], dtype=np.float64)
    dance = case.dance_beats()
    dance_end = case.duration_s if case.stop_at_s is None else case.stop_at_s
    kinds: dict[str, int] = {}
    for p in plans:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    contiguous = all(a.end_sample == b.start_sample for a, b in zip(plans, plans[1:]))
    out: dict = {"kind": case.kind, "duration_s": case.duration_s, "seed": case.seed,
                 "segments": kinds, "contiguous": contiguous,
                 "render_s": _r(t_render - t_frames, 2), "frames": len(frames)}
    # music beats are scored while there are dance beats to meet (up to the last one)
    last = dance[-1] if dance.size else dance_end
    music = music_all[music_all <= last + LOCK_TOLERANCE_S]
    out["music_start_s"] = _r(music[0], 3) if music.size else None

    if dance.size:
        out.update(_dance_metrics(case, music, dance, dance_end))
    out.update(_still_metrics(case, result, music_all, dance_end))
    if audio:
        t_a = time.perf_counter()
        out["audio"], out["eval"] = _audio_metrics(case, result, frames, music, dance, dance_end,
                                                   out.get("lock_in", {}).get("time_s"))
        out["audio_s"] = _r(time.perf_counter() - t_a, 2)
    if save_dir is not None:
        _save(case, result, frames, music_all, save_dir)
    out["wall_s"] = _r(time.perf_counter() - t_start, 2)
    return out


def _dance_metrics(case, music: np.ndarray, dance: np.ndarray, dance_end: float) -> dict:
    out: dict = {}
    kw = dict(sigma_s=BAS_SIGMA_S, lock_tol_s=LOCK_TOLERANCE_S)
    span = (dance[0] - LOCK_TOLERANCE_S, dance[-1] + LOCK_TOLERANCE_S)
    if music.size == 0:
        out.update({"bas_music_side": None, "bas_dance_side": 0.0, "lock_in": {"locked": False},
                    "offsets_all": None, "offsets_locked": None, "tempo": None})
        return out
    rep = score(music, math.nan, dance, math.nan, motion_span=span, **kw)
    out["bas_music_side"] = _r(rep.music_side.bas)
    db_after = dance[dance >= music[0] - LOCK_TOLERANCE_S]
    out["bas_dance_side"] = _r(align(db_after, music, sign=1.0, **kw).bas) if db_after.size else None
    out["offsets_all"] = _stats(rep.music_side.stats)
    offs = np.asarray(rep.music_side.offsets_s)
    out["within_tolerance_share"] = _r(np.mean(np.abs(offs) <= LOCK_TOLERANCE_S)) if offs.size else None
    bounds = [0.0, *case.changes_s, dance_end + LOCK_TOLERANCE_S]
    segs = [lock_both_ways(music, dance, a, b) for a, b in zip(bounds, bounds[1:])]
    first = segs[0]
    lock = {"locked": first["locked"]}
    if first["locked"]:
        t = first["time_s"]
        lock.update({"time_s": _r(t, 3),
                     "beats_from_dance_start": count_before(dance, t),
                     "beats_from_music_start": count_before(dance, t) - count_before(dance, music[0]),
                     "music_start_beats": count_before(dance, music[0])})
    else:
        lock["reason"] = first.get("reason")
    out["lock_in"] = lock
    locked_offs = [s["offsets_after"] for s in segs if s["locked"]]
    if locked_offs:
        allo = np.concatenate([
            np.asarray(align(music[(music >= s["time_s"] - 1e-9) & (music < b)], dance, sign=-1.0, **kw).offsets_s)
            for s, b in zip(segs, bounds[1:]) if s["locked"]])
        out["offsets_locked"] = _stats(allo)
    else:
        out["offsets_locked"] = None
    if case.changes_s:
        rel = []
        for c, s in zip(case.changes_s, segs[1:]):
            if s["locked"]:
                rel.append({"change_s": c, "locked": True, "s": _r(s["time_s"] - c, 3),
                            "beats": count_before(dance, s["time_s"]) - count_before(dance, c + LOCK_TOLERANCE_S)})
            else:
                rel.append({"change_s": c, "locked": False, "reason": s.get("reason")})
        out["relock"] = rel
    if case.kind == "ramp":
        ramp_t = [p[0] for p in case.curve.points]
        during = music[(music >= ramp_t[1]) & (music <= ramp_t[-1])]
        if during.size:
            o = align(during, dance, sign=-1.0, **kw).offsets_s
            out["offsets_during_ramp"] = _stats(o)
    out["tempo"] = tempo_report(music, case, dance_end, float(music[0]))
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _still_metrics(case, result, music_all: np.ndarray, dance_end: float) -> dict:
    """Does the music keep playing when nobody dances (at all, or any more)?"""
    if case.kind != "still" and case.stop_at_s is None:
        return {}
    sr = result.sample_rate
    end = case.duration_s
    tail = result.audio[int((end - STILL_CHECK_S) * sr):int(end * sr)]
    per_s = [_rms(result.audio[int(i * sr):int((i + 1) * sr)]) for i in range(int(end))]
    out = {"still": {"keeps_playing": bool(_rms(tail) > SILENT_RMS and min(per_s[1:] or [0]) > SILENT_RMS),
                     "rms_last_s": _r(_rms(tail), 5), "min_rms_per_second": _r(min(per_s[1:] or [0]), 5),
                     "music_beats": int(music_all.size)}}
    if case.stop_at_s is not None:
        after = music_all[(music_all >= case.stop_at_s + 1.0) & (music_all <= end)]
        out["still"]["music_beats_after_stop"] = int(after.size)
        if after.size >= 2:
            bpm = 60.0 / float(np.median(np.diff(after)))
            out["still"]["held_bpm"] = _r(bpm, 2)
            out["still"]["held_rel_error"] = _r(abs(bpm / case.bpm_at(case.stop_at_s) - 1.0), 4)
    return out


def _audio_metrics(case, result, frames, music: np.ndarray, dance: np.ndarray, dance_end: float,
                   lock_t: float | None) -> tuple[dict | None, dict | None]:
    from d2m.evaluation.audio import detect_beats

    if music.size == 0 or dance.size == 0:
        return None, None
    bpm, beats = detect_beats(result.audio, result.sample_rate)
    beats = beats[(beats >= music[0] - 0.1) & (beats <= dance_end + LOCK_TOLERANCE_S)]
    kw = dict(sigma_s=BAS_SIGMA_S, lock_tol_s=LOCK_TOLERANCE_S)
    if beats.size == 0:
        return {"beats": 0}, None
    vs_plan = align(beats, music, sign=1.0, **kw).offsets_s      # audio - planned
    planned_found = np.abs(align(music, beats, sign=1.0, **kw).offsets_s) <= AUDIO_MATCH_S
    audio = {"beats": int(beats.size), "planned_beats": int(music.size),
             "vs_plan": _stats(vs_plan), "planned_found_share": _r(np.mean(planned_found), 3)}
    span = (dance[0] - LOCK_TOLERANCE_S, dance[-1] + LOCK_TOLERANCE_S)
    rep = score(beats, bpm, dance, math.nan, motion_span=span, **kw)
    audio["bas_music_side"] = _r(rep.music_side.bas)
    if lock_t is not None:
        audio["offsets_locked"] = _stats(np.asarray(align(beats[beats >= lock_t], dance, sign=-1.0, **kw).offsets_s))
    mb, db = tempo_windows(beats, case, max(beats[0], dance_end - FINAL_WINDOW_S), dance_end)
    if mb.size:
        ta = tempo_agreement(float(np.median(mb)), float(np.mean(db)))
        audio["tempo_final"] = {"music_bpm": _r(ta.music_bpm, 2), "match": ta.match, "octave": ta.octave}
    # d2m eval's own view: motion beats detected from the frames, audio beats
    from d2m.evaluation.motion_input import analyse_motion
    moving = [f for f in frames if f.t <= dance_end]
    ana = analyse_motion(moving)
    ev = score(beats, bpm, ana.beat_times, ana.bpm, **kw)
    evd = {"bas_per_motion_beat": _r(ev.motion_side.bas), "bas_per_music_beat": _r(ev.music_side.bas),
           "music_side_offsets": _stats(ev.music_side.stats), "music_bpm": _r(bpm, 2),
           "dance_bpm_detected": _r(ana.bpm, 2), "tempo_match": ev.tempo.match, "octave": ev.tempo.octave}
    return audio, evd


def _save(case, result, frames, music_all: np.ndarray, save_dir: Path) -> None:
    import soundfile as sf
    from d2m.recording import encode_frame

    save_dir.mkdir(parents=True, exist_ok=True)
    sf.write(str(save_dir / f"{case.name}.wav"), result.audio, result.sample_rate)
    (save_dir / f"{case.name}.jsonl").write_text("".join(encode_frame(f) + "\n" for f in frames))
    (save_dir / f"{case.name}.beats.txt").write_text("".join(f"{t:.6f}\n" for t in music_all))
    (save_dir / f"{case.name}.dance_beats.txt").write_text(
        "".join(f"{t:.6f}\n" for t in case.dance_beats()))


def percentiles(values) -> dict | None:
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None
    out = {"n": int(v.size), "min": _r(v.min()), "max": _r(v.max())}
    for q in PERCENTILES:
        out[f"p{q}"] = _r(np.percentile(v, q))
    return out


def summarise(cases: dict) -> dict:
    dancing = {k: v for k, v in cases.items() if v["kind"] != "still" and "bas_music_side" in v}

    def col(f):
        out = []
        for v in dancing.values():
            try:
                out.append(f(v))
            except (KeyError, TypeError):
                out.append(None)
        return out

    relocks = [r.get("beats") for v in dancing.values() for r in v.get("relock", []) if r.get("locked")]
    summary = {
        "cases": len(cases), "dancing_cases": len(dancing),
        "bas_music_side": percentiles(col(lambda v: v["bas_music_side"])),
        "bas_dance_side": percentiles(col(lambda v: v["bas_dance_side"])),
        "offset_median_abs_ms_locked": percentiles(col(lambda v: v["offsets_locked"]["median_abs_ms"])),
        "offset_p90_abs_ms_locked": percentiles(col(lambda v: v["offsets_locked"]["p90_abs_ms"])),
        "within_tolerance_share": percentiles(col(lambda v: v["within_tolerance_share"])),
        "offset_p90_abs_ms_all": percentiles(col(lambda v: v["offsets_all"]["p90_abs_ms"])),
        "music_start_beats": percentiles(col(lambda v: v["lock_in"].get("music_start_beats"))),
        "lock_in_beats_from_dance_start": percentiles(col(lambda v: v["lock_in"].get("beats_from_dance_start"))),
        "lock_in_beats_from_music_start": percentiles(col(lambda v: v["lock_in"].get("beats_from_music_start"))),
        "relock_beats": percentiles(relocks),
        "tempo_final_rel_error": percentiles(col(lambda v: v["tempo"]["final"]["rel_error"])),
        "locked": [k for k, v in dancing.items() if v["lock_in"].get("locked")],
        "never_locked": [k for k, v in dancing.items() if not v["lock_in"].get("locked")],
        "relock_failed": [k for k, v in dancing.items()
                          if any(not r.get("locked") for r in v.get("relock", []))],
        "tempo_final_match": [k for k, v in dancing.items() if (v.get("tempo") or {}).get("final")
                              and v["tempo"]["final"]["match"]],
        "octave_errors": {k: v["tempo"]["final"]["octave"] for k, v in dancing.items()
                          if (v.get("tempo") or {}).get("final") and v["tempo"]["final"]["octave"]},
        "audio_bas_music_side": percentiles(col(lambda v: v["audio"]["bas_music_side"])),
        "audio_vs_plan_median_abs_ms": percentiles(col(lambda v: v["audio"]["vs_plan"]["median_abs_ms"])),
        "eval_bas_per_motion_beat": percentiles(col(lambda v: v["eval"]["bas_per_motion_beat"])),
        "eval_bas_per_music_beat": percentiles(col(lambda v: v["eval"]["bas_per_music_beat"])),
    }
    summary["audio_tempo_final_miss"] = {
        k: _g_audio_bpm(v) for k, v in dancing.items()
        if (v.get("audio") or {}).get("tempo_final") and not v["audio"]["tempo_final"]["match"]}
    stills = {k: v["still"] for k, v in cases.items() if "still" in v}
    summary["still_keeps_playing"] = {k: v["keeps_playing"] for k, v in stills.items()}
    return summary


def _g_audio_bpm(v: dict) -> dict:
    """Audio-tracked vs planned vs dance tempo at the end of a case (for the summary)."""
    return {"audio_bpm": v["audio"]["tempo_final"]["music_bpm"],
            "planned_bpm": ((v.get("tempo") or {}).get("final") or {}).get("music_bpm"),
            "dance_bpm": ((v.get("tempo") or {}).get("final") or {}).get("dance_bpm")}


def run(names: str | None = None, *, quick: bool = False, duration: float | None = None,
        audio: bool = True, save_dir: Path | None = None) -> dict:
    t0 = time.perf_counter()
    cases = {}
    for case in heldout.select(names, quick=quick):
        case = heldout.with_duration(case, duration)
        try:
            cases[case.name] = evaluate_case(case, audio=audio, save_dir=save_dir)
        except Exception as exc:       # a crash is a result: report it, go on with the others
            cases[case.name] = {"kind": case.kind, "error": f"{type(exc).__name__}: {exc}"}
        print(f"alignment: {case.name} done ({cases[case.name].get('wall_s')} s)", file=sys.stderr)
    return {
        "benchmark": "alignment", "version": 1, "quick": quick,
        "settings": {"generator": "synth", "sample_rate": SAMPLE_RATE, "conductor": "ConductorConfig() defaults",
                     "lock_tolerance_ms": LOCK_TOLERANCE_S * 1000, "bas_sigma_ms": BAS_SIGMA_S * 1000,
                     "final_window_s": FINAL_WINDOW_S, "audio": audio,
                     "cpu_threads": os.environ.get("OMP_NUM_THREADS")},
        "cases": cases,
        "summary": summarise({k: v for k, v in cases.items() if "error" not in v}),
        "errors": {k: v["error"] for k, v in cases.items() if "error" in v},
        "seconds": _r(time.perf_counter() - t0, 1),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(heldout.QUICK)}")
    ap.add_argument("--cases", default=None, help="comma-separated case names (see heldout.py)")
    ap.add_argument("--duration", type=float, default=None, help="cut every case to this many seconds")
    ap.add_argument("--no-audio", action="store_true", help="skip beat tracking the rendered audio")
    ap.add_argument("--save-dir", type=Path, default=None, help="write WAV, motion JSONL and beats per case")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    res = run(a.cases, quick=a.quick, duration=a.duration, audio=not a.no_audio, save_dir=a.save_dir)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
