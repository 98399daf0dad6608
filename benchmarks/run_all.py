"""Run every benchmark, collect their JSON into ``benchmarks/results.json``, print a Markdown table.

Runs, each in its own process (their JSON is parsed from stdout):

* ``alignment.py`` (the held-out set; ``--quick``: its quick cases),
* ``genre_reaction.py --live``,
* ``live_loop.py`` (live CPU share, lock-in, synth speed),
* ``musicgen_speed.py`` and ``synth_speed.py`` when they exist (with
  ``--quick`` when they offer it); otherwise their rows say "not measured",
* ``song_form.py`` (song form, variation, genre hold; ``--quick``: 2 minutes).

``--update-readme README.md`` replaces the text between the
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers with the table
(nothing else in the file changes); without the markers the table is only
printed. ``--from-results FILE`` makes the table from a saved results file
without running anything.

Usage: python benchmarks/run_all.py [--quick] [--out FILE] [--update-readme README.md] [--from-results FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Default results file (full runs; a --quick run writes it only with --out).
RESULTS = HERE / "results.json"
START_MARK, END_MARK = "<!-- bench:start -->", "<!-- bench:end -->"
#: Per-script time limit (s).
SCRIPT_TIMEOUT_S = 1200
#: musicgen_speed.py arguments: the musicgen-small architecture at the script's CPU defaults
#: (1 s of audio, one run; about 8 min on this 2-core machine), and the tiny model for --quick.
MUSICGEN_ARGS = "--models small"
MUSICGEN_QUICK_ARGS = "--models tiny --runs 1"


def run_script(name: str, *args: str) -> tuple[dict | None, dict]:
    """Run ``benchmarks/NAME`` and parse its JSON; returns (result or None, run info)."""
    cmd = [sys.executable, str(HERE / name), *args]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, {"cmd": _show(cmd), "error": f"timed out after {SCRIPT_TIMEOUT_S} s"}
    info = {"cmd": _show(cmd), "rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 1)}
    out = proc.stdout.strip()
    try:
        return json.loads(out[out.index("{"):]), info
    except ValueError:
        info["error"] = "no JSON on stdout"
        info["stderr_tail"] = proc.stderr.strip().splitlines()[-10:]
        return None, info


def _show(cmd: list[str]) -> str:
    return " ".join(["python", *[os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c for c in cmd[1:]]])


def _has_option(name: str, option: str) -> bool:
    try:
        proc = subprocess.run([sys.executable, str(HERE / name), "--help"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return False
    return option in proc.stdout


def run_all(quick: bool, *, musicgen: bool = True, musicgen_from: Path | None = None) -> dict:
    q = ["--quick"] if quick else []
    res: dict = {"generated": _dt.datetime.now().isoformat(timespec="seconds"), "quick": quick,
                 "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "python": platform.python_version(), "processor": platform.processor()},
                 "runs": {}}
    plan = [("alignment", "alignment.py", q), ("genre_reaction", "genre_reaction.py", [*q, "--live"]),
            ("live_loop", "live_loop.py", q)]
    if (HERE / "synth_speed.py").exists():
        plan.append(("synth_speed", "synth_speed.py", ["--quick"] if _has_option("synth_speed.py", "--quick") else []))
    if (HERE / "song_form.py").exists():
        plan.append(("song_form", "song_form.py", ["--minutes", "2"] if quick else []))
    if (HERE / "midi_clock.py").exists():
        plan.append(("midi_clock", "midi_clock.py", q))
    if (HERE / "hits.py").exists():
        plan.append(("hits", "hits.py", q))
    if (HERE / "soundfont_speed.py").exists():      # exits 2 with one line without the extra/SoundFont
        plan.append(("soundfont_speed", "soundfont_speed.py", ["--bars", "16"] if quick else []))
    if musicgen_from is not None:
        res["musicgen_speed"] = json.loads(musicgen_from.read_text())
        res["runs"]["musicgen_speed"] = {"cmd": f"(read from {musicgen_from})", "rc": 0}
    elif musicgen and (HERE / "musicgen_speed.py").exists():
        plan.append(("musicgen_speed", "musicgen_speed.py",
                     (MUSICGEN_QUICK_ARGS if quick else MUSICGEN_ARGS).split()))
    for key, script, args in plan:
        print(f"run_all: {script} {' '.join(args)} ...", file=sys.stderr, flush=True)
        data, info = run_script(script, *args)
        res[key] = data
        res["runs"][key] = info
        print(f"run_all: {script} done in {info.get('wall_s')} s (rc {info.get('rc')})", file=sys.stderr)
    return res


# -- the table -------------------------------------------------------------------------------

def _g(d, *path, default=None):
    for p in path:
        if not isinstance(d, dict) or p not in d or d[p] is None:
            return default
        d = d[p]
    return d


def _f(v, nd=1, unit="") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)):
        return f"{v:.{nd}f}{unit}"
    return str(v)


def _pct_range(p: dict | None, nd=3, unit="") -> str:
    if not p:
        return "n/a"
    return f"{_f(p['p50'], nd, unit)} (p10 {_f(p['p10'], nd)}, p90 {_f(p['p90'], nd)})"


def _musicgen_row(mg: dict | None, info: dict | None) -> tuple[str, str]:
    if mg is None:
        if info is None:
            return "not measured", "musicgen_speed.py not run (--no-musicgen, or the script is missing)"
        return f"failed ({info.get('error', 'rc ' + str(info.get('rc')))})", ""
    parts = []
    for r in mg.get("results", []) or []:
        rtf = _g(r, "render", "realtime_factor")
        loop = _g(r, "loop", "realtime_factor")
        parts.append(f"{r.get('model')} ({r.get('decoder_params_m')} M decoder) on {r.get('device')}: "
                     f"{_f(rtf, 2)} s compute per s of audio (token loop {_f(loop, 2)})")
    if not parts:
        return "see results.json `musicgen_speed`", ""
    return "; ".join(parts), "random weights (speed does not depend on them); < 1 keeps up live"


def _find(d, key):
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = _find(v, key)
            if r is not None:
                return r
    return None


def summary_table(res: dict) -> str:
    al, gr, ll = res.get("alignment") or {}, res.get("genre_reaction") or {}, res.get("live_loop") or {}
    s = al.get("summary") or {}
    cases = al.get("cases") or {}
    dancing = s.get("dancing_cases", 0)
    rows: list[tuple[str, str, str]] = []
    rows.append(("Held-out cases (alignment.py)", f"{s.get('cases', 0)} ({dancing} dancing)",
                 "synthetic dancers, tempi 70–180, ramps, jumps, swing, jitter, missing joints, still"))
    rows.append(("Beat alignment score, music beats vs dance beats (σ 50 ms)",
                 _pct_range(s.get("bas_music_side")), "median over cases (p10, p90); 1 = every music beat on a dance beat"))
    rows.append(("Beat alignment score, dance beats vs music beats",
                 _pct_range(s.get("bas_dance_side")), "low when the music runs at another metrical level"))
    rows.append(("Music beats within 50 ms of a dance beat", _pct_range(s.get("within_tolerance_share"), 2),
                 "share per case, median over cases (p10, p90); from the first music beat"))
    rows.append(("\\|offset\\| after lock-in, median / p90 (ms)",
                 f"{_f(_g(s, 'offset_median_abs_ms_locked', 'p50'))} / {_f(_g(s, 'offset_p90_abs_ms_locked', 'p50'))}",
                 "median over locked cases; offsets = planned music beat − dance beat"))
    lk = s.get("lock_in_beats_from_dance_start")
    rows.append(("Lock-in, dance beats from dance start",
                 f"{_f(_g(lk, 'p50'), 0)} (max {_f(_g(lk, 'max'), 0)})" if lk else "n/a",
                 f"locked: {len(s.get('locked', []))} of {dancing}; never: {', '.join(s.get('never_locked', [])) or 'none'}"))
    rows.append(("Music starts after (dance beats)", _f(_g(s, "music_start_beats", "p50"), 0),
                 "idle pad until somebody dances (movement sustained 2 s); bar 1 on the dancer's next beat when the tracker has one"))
    lm = s.get("lock_in_beats_from_music_start")
    rows.append(("Lock-in, dance beats from music start",
                 f"{_f(_g(lm, 'p50'), 0)} (max {_f(_g(lm, 'max'), 0)})" if lm else "n/a", "0 = on the beat from bar 1"))
    rel = []
    for name, c in cases.items():
        for r in c.get("relock", []) or []:
            rel.append(f"{name}: {r['beats']} beats" if r.get("locked") else f"{name}: never")
    rows.append(("Re-lock after a sudden tempo change", "; ".join(rel) or "n/a", "dance beats from the change"))
    match = s.get("tempo_final_match", [])
    octs = s.get("octave_errors", {})
    other = [n for n, c in cases.items() if c.get("kind") != "still" and "tempo" in c
             and n not in match and n not in octs]
    rows.append(("Tempo agreement at the end (within 4 %)", f"{len(match)} of {dancing}",
                 ("octave errors: " + ", ".join(f"{k} ×{v}" for k, v in octs.items()) if octs else "no octave errors")
                 + ("; other misses: " + ", ".join(other) if other else "")))
    still = s.get("still_keeps_playing", {})
    held = [f"{n}: held {_g(c, 'still', 'held_bpm')} BPM" for n, c in cases.items() if _g(c, "still", "held_bpm")]
    rows.append(("Still dancer: music keeps playing",
                 ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in still.items()) or "n/a", "; ".join(held)))
    rows.append(("Audio beat-tracked vs planned beats, median \\|offset\\| (ms)",
                 _f(_g(s, "audio_vs_plan_median_abs_ms", "p50")), "d2m.evaluation.audio on the rendered synth"))
    miss = s.get("audio_tempo_final_miss") or {}
    rows.append(("Audio beat-tracked tempo at the end agrees with the dance",
                 f"{dancing - len(miss)} of {dancing}",
                 ("librosa picks another level: " + ", ".join(
                     f"{k} (audio {_f(v.get('audio_bpm'))}, planned {_f(v.get('planned_bpm'))}, dance {_f(v.get('dance_bpm'), 0)})"
                     for k, v in miss.items())) if miss else "the rendered audio's tracked tempo matches"))
    rows.append(("`d2m eval` BAS per motion beat / per music beat",
                 f"{_f(_g(s, 'eval_bas_per_motion_beat', 'p50'), 3)} / {_f(_g(s, 'eval_bas_per_music_beat', 'p50'), 3)}",
                 "detected motion beats (incl. off-beat arm reversals) vs audio beats"))
    for key, label in (("synth_lead_0.5s", "synth, lead 0.5 s"), ("musicgen_lead_2.5s", "MusicGen, lead 2.5 s")):
        o = _g(gr, "offline", key)
        if o:
            rows.append((f"Genre change → new genre plays ({label})",
                         f"{_f(_g(o, 'reaction_s', 'median'), 2)} s median (max {_f(_g(o, 'reaction_s', 'max'), 2)} s)"
                         f" = {_f(_g(o, 'reaction_beats', 'median'), 1)} beats",
                         "operator control to the first segment in the new genre (next bar + lead)"))
    lv = gr.get("live")
    if lv:
        rows.append(("Live genre change → new genre plays", f"{_f(_g(lv, 'reaction_s', 'median'), 2)} s median "
                     f"(max {_f(_g(lv, 'reaction_s', 'max'), 2)} s)", "real server, session clock"))
        rows.append(("OSC control → WebSocket event / OSC status round trip (ms)",
                     f"{_f(_g(lv, 'osc_to_control_applied_ms', 'median'), 2)} / {_f(_g(lv, 'osc_status_rtt_ms', 'median'), 2)}",
                     f"loopback; WebSocket control ack round trip {_f(_g(lv, 'ws_control_ack_rtt_ms', 'median'), 2)} ms"))
    sy = ll.get("synth")
    if sy:
        rows.append(("Synth render speed (one core, one thread)",
                     f"{_f(sy['x_realtime'], 0)}× real time (slowest genre {_f(sy['x_realtime_min_genre'], 0)}×)",
                     f"target ≥ {_f(sy['target_x'], 0)}×: {'met' if sy['meets_target'] else 'NOT met'}; "
                     f"music bars only {_f(sy.get('x_realtime_music_only'), 0)}×; CPU time "
                     f"(wall clock on the shared machine {_f(sy.get('x_realtime_wall'), 0)}×)"))
    ss = res.get("synth_speed")
    if ss is not None:
        rows.append(("Synth render speed, steady bars (synth_speed.py)",
                     f"{_f(_g(ss, 'overall', 'median_x_realtime'), 0)}× real time "
                     f"(slowest genre {_f(_g(ss, 'overall', 'worst_genre_x_realtime'), 0)}×)",
                     f"{_g(ss, 'bars')} bars per genre at {_g(ss, 'bpm')} BPM, one thread"))
    rows += _song_form_rows(res.get("song_form"))
    rows += _midi_clock_rows(res.get("midi_clock"))
    rows += _hits_rows(res.get("hits"), res.get("soundfont_speed"))
    mg_val, mg_note = _musicgen_row(res.get("musicgen_speed"), (res.get("runs") or {}).get("musicgen_speed"))
    rows.append(("MusicGen generation speed", mg_val, mg_note))
    lv = ll.get("live")
    if lv:
        rows.append(("Live loop CPU share, 60 Hz mocap over OSC (% of one core)",
                     f"{_f(lv['cpu_pct_one_core'], 1)} % (1 s windows p90 {_f(_g(lv, 'cpu_pct_windows_1s', 'p90'), 1)} %; idle {_f(lv['cpu_pct_idle'], 1)} %)",
                     f"target < {_f(lv['target_cpu_pct'], 0)} %: {'met' if lv['meets_target'] else 'NOT met'}"))
        lk = lv.get("lock_in", {})
        rows.append(("Live lock-in (dance beats from dance start / from music start)",
                     f"{_f(lk.get('beats_from_dance_start'), 0)} / {_f(lk.get('beats_from_music_start'), 0)}"
                     if lk.get("locked") else f"not locked ({lk.get('reason')})",
                     f"{_g(lv, 'stream', 'dancer')}; after lock \\|offset\\| median {_f(lk.get('offset_median_abs_ms'))} ms, "
                     f"p90 {_f(lk.get('offset_p90_abs_ms'))} ms"))
    out = ["| measure | figure | notes |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


def _midi_clock_rows(mc: dict | None) -> list[tuple[str, str, str]]:
    """Rows for benchmarks/midi_clock.py (MIDI clock vs the audio's beats, under live load)."""
    c = (mc or {}).get("clock")
    if not c or "error" in c:
        return []
    return [("MIDI clock vs the audio's beats, received through JACK: offset / jitter (ms)",
             f"{_f(_g(c, 'offset_abs_ms', 'median'), 2)} / {_f(_g(c, 'jitter_abs_ms', 'median'), 2)} median; "
             f"p99 {_f(_g(c, 'offset_abs_ms', 'p99'), 1)} / {_f(_g(c, 'jitter_abs_ms', 'p99'), 1)}",
             f"live load of live_loop.py; jackd -d dummy, {c.get('jack_period_ms')} ms periods; "
             f"sender on the audio clock: median {_f(_g(c, 'sender_on_audio_clock', 'abs_error_ms_median'), 2)}, "
             f"p99 {_f(_g(c, 'sender_on_audio_clock', 'abs_error_ms_p99'), 1)} ms")]


def _hits_rows(h: dict | None, sfs: dict | None) -> list[tuple[str, str, str]]:
    """Rows for benchmarks/hits.py (the dancer's hits, live) and soundfont_speed.py."""
    rows = []
    lv = (h or {}).get("live")
    if lv and lv.get("latency_ms"):
        rows.append(("Dancer's hits answered live (synthetic snaps/stomps over OSC)",
                     f"{lv['answered']} of {lv['marked_hits']} ({', '.join(f'{k} {v}' for k, v in lv['answered_by_kind'].items())});"
                     f" {lv['false_hits']} false",
                     f"{_f(lv['seconds'], 0)} s at {_f(lv['bpm'], 0)} BPM, --hit-sensitivity {lv['sensitivity']}; "
                     f"render == live: {'yes' if lv.get('render_equals_live') else 'NO'}"))
        rows.append(("Hit → accent's first sample, live (ms)",
                     f"{_f(lv['latency_ms']['median'], 0)} median, p90 {_f(lv['latency_ms']['p90'], 0)}",
                     f"target median ≤ {_f(lv['target_median_ms'], 0)} ms: {'met' if lv['meets_target'] else 'NOT met'}; "
                     f"detection + next 16th ({_f(lv['sixteenth_ms'], 0)} ms) + 20 ms block margin; a sound card adds its latency"))
    if sfs and sfs.get("overall"):
        o = sfs["overall"]
        rows.append(("SoundFont voices render speed (`--voices soundfont`, one core)",
                     f"{_f(o['median_x_realtime'], 0)}× real time (slowest genre {_f(o['worst_genre_x_realtime'], 0)}×)",
                     f"target ≥ {_f(o['target_x'], 0)}×: {'met' if o['meets_target'] else 'NOT met'}; thread CPU time, "
                     "fresh note cache; FluidR3_GM via TinySoundFont"))
    return rows


def _song_form_rows(sf: dict | None) -> list[tuple[str, str, str]]:
    """Rows for benchmarks/song_form.py (song form, variation, genre hold)."""
    if not sf:
        return []
    rows = []
    st = sf.get("steady")
    if st:
        rows.append((f"Song form, {_f(st['seconds'] / 60, 0)} min of steady dancing ({st['genre']})",
                     f"{st['distinct_bars']} distinct bars; {st['identical_consecutive_phrases']} of "
                     f"{st['phrase_pairs']} consecutive 8-bar phrases identical",
                     "targets ≥ 40 and 0; distinct = log-mel correlation < 0.95 with every other kind"))
        rows.append(("Loudness range (EBU R128 LRA) / breakdown below peak",
                     f"{_f(st['loudness_range_lu'], 1)} LU / {_f(st.get('breakdown_below_peak_db'), 1)} dB",
                     "pyloudnorm; real dance tracks sit around 4–12 LU; breakdown target ≥ 6 dB"))
    rf = sf.get("rise_fall")
    if rf:
        rows.append(("Section follows the dancer's energy (rise-and-fall dancer)",
                     f"{rf['answered']} of {rf['of']} changes answered; lag median {_f(rf['median_lag_bars'], 0)} "
                     f"bars (max {_f(rf['max_lag_bars'], 0)})",
                     f"{rf['within_a_phrase']} within a phrase (8 bars); rise → build/peak, fall → breakdown, "
                     "stop → outro"))
    ga = sf.get("genre_auto")
    if ga and "skipped" not in ga:
        rows.append(("Genre changes with `--genre auto`, real break dancer (AIST++)",
                     f"{_f(ga['changes_per_minute'], 2)} per minute ({ga['changes_mid_phrase']} mid-phrase)",
                     f"target ≤ 1, never mid-phrase; the raw estimate changes {_f(ga['raw_estimate_changes_per_minute'], 1)}"
                     f" times a minute; plays {', '.join(ga['genres_played'])}"))
    return rows


def case_table(res: dict) -> str:
    cases = _g(res, "alignment", "cases", default={})
    out = ["| case | BAS (music / dance side) | within 50 ms | \\|offset\\| after lock median / p90 (ms) | lock-in beats (dance / music start) | re-lock beats | tempo at end (music / dance BPM) |",
           "|---|---|---|---|---|---|---|"]
    for name, c in cases.items():
        if "error" in c:
            out.append(f"| {name} | error: {c['error']} | | | | | |")
            continue
        if c.get("kind") == "still":
            st = c.get("still", {})
            out.append(f"| {name} | no dance beats | | | | | music keeps playing: {'yes' if st.get('keeps_playing') else 'NO'} "
                       f"({_g(c, 'segments', 'idle', default=0)} idle, {_g(c, 'segments', 'music', default=0)} music segments) |")
            continue
        lk = c.get("lock_in", {})
        lock = f"{lk['beats_from_dance_start']} / {lk['beats_from_music_start']}" if lk.get("locked") else "never"
        rel = "; ".join(str(r["beats"]) if r.get("locked") else "never" for r in c.get("relock", []) or []) or "–"
        tf = _g(c, "tempo", "final")
        tempo = (f"{_f(tf['music_bpm'])} / {_f(tf['dance_bpm'])}"
                 + ("" if tf["match"] else (f" (×{tf['octave']})" if tf.get("octave") else " (miss)"))) if tf else "n/a"
        ol = c.get("offsets_locked") or {}
        out.append(f"| {name} | {_f(c.get('bas_music_side'), 3)} / {_f(c.get('bas_dance_side'), 3)} | "
                   f"{_f(c.get('within_tolerance_share'), 2)} | "
                   f"{_f(ol.get('median_abs_ms'))} / {_f(ol.get('p90_abs_ms'))} | {lock} | {rel} | {tempo} |")
    return "\n".join(out)


def markdown(res: dict) -> str:
    mode = "quick run" if res.get("quick") else "full run"
    cmds = "; ".join(f"`{i['cmd']}`" for i in (res.get("runs") or {}).values())
    m = res.get("machine", {})
    head = (f"Measured {res.get('generated', '?')} ({mode}, `python benchmarks/run_all.py"
            f"{' --quick' if res.get('quick') else ''}`) on {m.get('cpus')} CPU cores, no GPU. "
            f"Scripts: {cmds}. Raw figures: `benchmarks/results.json`.")
    return f"{head}\n\n{summary_table(res)}\n\nPer held-out case (`benchmarks/alignment.py`):\n\n{case_table(res)}\n"


def update_readme(path: Path, table: str) -> bool:
    """Replace the block between the markers; returns False when the markers are missing."""
    text = path.read_text()
    a, b = text.find(START_MARK), text.find(END_MARK)
    if a < 0 or b < 0 or b < a:
        return False
    path.write_text(text[:a + len(START_MARK)] + "\n" + table.rstrip("\n") + "\n" + text[b:])
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="quick variants (fewer cases, shorter windows)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"results file (default {os.path.relpath(RESULTS, ROOT)} for a full run, none for --quick)")
    ap.add_argument("--update-readme", type=Path, default=None, metavar="README.md",
                    help=f"replace the block between {START_MARK} and {END_MARK}")
    ap.add_argument("--from-results", type=Path, default=None, help="make the table from this results file")
    ap.add_argument("--json", action="store_true", help="print the collected JSON instead of the table")
    ap.add_argument("--no-musicgen", action="store_true", help="do not run musicgen_speed.py (minutes on CPU)")
    ap.add_argument("--musicgen-from", type=Path, default=None,
                    help="take musicgen_speed.py's JSON from this file (e.g. a GPU run) instead of running it")
    a = ap.parse_args(argv)
    if a.from_results:
        res = json.loads(a.from_results.read_text())
    else:
        res = run_all(a.quick, musicgen=not a.no_musicgen, musicgen_from=a.musicgen_from)
        out = a.out or (None if a.quick else RESULTS)
        if out is not None:
            out.write_text(json.dumps(res, indent=1) + "\n")
            print(f"run_all: wrote {out}", file=sys.stderr)
    table = markdown(res)
    print(json.dumps(res, indent=1) if a.json else table)
    if a.update_readme is not None:
        if not a.update_readme.exists():
            print(f"run_all: {a.update_readme} does not exist; table printed only", file=sys.stderr)
        elif update_readme(a.update_readme, table):
            print(f"run_all: updated the table in {a.update_readme}", file=sys.stderr)
        else:
            print(f"run_all: {a.update_readme} has no {START_MARK} ... {END_MARK} markers; "
                  "add them where the table belongs (table printed above)", file=sys.stderr)
    failed = [k for k, i in (res.get("runs") or {}).items() if i.get("error") or i.get("rc") not in (0, None)]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
