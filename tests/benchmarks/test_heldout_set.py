"""The benchmarks' held-out set stays apart from the tests, and the benchmark scripts keep working.

The scripts run for real on tiny inputs (one short case, a few seconds of live
streaming): what is checked is that they run and print the documented JSON
keys, not their figures (those belong in benchmarks/results.json).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import heldout  # noqa: E402
import run_all  # noqa: E402

#: Seed literals in test code: seed=N, seed: N, manual_seed(N), default_rng(N), SEED = N.
SEED_PATTERNS = [re.compile(p) for p in (r"seed\s*[=:]\s*(\d+)", r"manual_seed\(\s*(\d+)",
                                         r"default_rng\(\s*(\d+)", r"SEED\w*\s*=\s*(\d+)")]


def _other_test_files():
    own = Path(__file__).resolve().parent
    return [p for p in (ROOT / "tests").rglob("*.py") if own not in p.resolve().parents]


def test_no_test_fixture_uses_a_held_out_seed():
    used = {}
    for path in _other_test_files():
        text = path.read_text(errors="replace")
        for pat in SEED_PATTERNS:
            for m in pat.finditer(text):
                used.setdefault(int(m.group(1)), []).append(str(path.relative_to(ROOT)))
    clash = {s: used[s] for s in heldout.SEEDS if s in used}
    assert not clash, f"test fixtures use held-out seeds (pick others): {clash}"
    assert used, "the seed scan found no seeds at all: the patterns are broken"


def test_no_test_imports_or_names_the_held_out_set():
    names = [c.name for c in heldout.CASES] + [heldout.LIVE.name, heldout.GENRE.name]
    names = [n for n in names if re.search(r"\d", n)]          # "still" is a plain word
    assert len(names) > 10
    for path in _other_test_files():
        text = path.read_text(errors="replace")
        assert "heldout" not in text, f"{path} uses the held-out set; make a fixture of its own"
        hits = [n for n in names if re.search(rf"\b{re.escape(n)}\b", text)]
        assert not hits, f"{path} names held-out cases {hits}"


def test_held_out_set_covers_what_issue_7_asks_for():
    cases = heldout.CASES
    assert len({c.name for c in cases}) == len(cases)
    assert len({c.seed for c in cases}) == len(cases)
    consts = [c.curve.points[0][1] for c in cases if c.kind == "constant" and len(c.curve.points) == 1]
    assert min(consts) == 70 and max(consts) == 180
    kinds = {c.kind for c in cases}
    assert {"constant", "ramp", "sudden", "still"} <= kinds
    assert all(c.changes_s for c in cases if c.kind == "sudden")
    feats = {k for c in cases for k, v in c.dancer.items() if v} | {"drop" for c in cases if c.drop}
    assert {"swing", "jitter_s", "missing", "drop", "layout"} <= feats
    assert any(c.dancer.get("amplitude", 1.0) == 0.0 for c in cases)
    assert any(0.0 < c.dancer.get("amplitude", 1.0) < 1.0 for c in cases)
    assert set(heldout.QUICK) <= set(heldout.BY_NAME)


def test_held_out_frames_are_deterministic_and_beats_match_the_curve():
    case = heldout.BY_NAME["jump_100_140"]
    a, b = case.frames(4.0), case.frames(4.0)
    assert [f.t for f in a] == [f.t for f in b]
    assert all((fa.joints == fb.joints).all() or fa.t != fb.t for fa, fb in zip(a, b))
    beats = case.dance_beats()
    ibi = dict(before=beats[1:5] - beats[:4], after=beats[-5:] - beats[-6:-1])
    assert abs(60 / ibi["before"].mean() - 100) < 0.5 and abs(60 / ibi["after"].mean() - 140) < 0.5
    assert heldout.BY_NAME["still"].dance_beats().size == 0


def _run(args, tmp_path, name):
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, *args, "--out", str(out)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    data = json.loads(out.read_text())
    assert json.loads(proc.stdout) == data, "stdout and --out hold the same JSON"
    return data


@pytest.mark.slow
def test_scripts_print_the_documented_json(tmp_path):
    al = _run([str(BENCH / "alignment.py"), "--cases", "const_128,still", "--duration", "12"], tmp_path, "al")
    assert al["benchmark"] == "alignment" and not al["errors"]
    c = al["cases"]["const_128"]
    for key in ("bas_music_side", "bas_dance_side", "offsets_all", "offsets_locked", "lock_in", "tempo",
                "audio", "eval", "music_start_s", "segments"):
        assert key in c, key
    assert 0.0 <= c["bas_music_side"] <= 1.0
    assert c["tempo"]["final"]["dance_bpm"] == pytest.approx(128.0)
    assert al["cases"]["still"]["still"]["keeps_playing"] in (True, False)
    for key in ("bas_music_side", "lock_in_beats_from_dance_start", "relock_beats", "octave_errors",
                "never_locked", "still_keeps_playing"):
        assert key in al["summary"], key

    gr = _run([str(BENCH / "genre_reaction.py"), "--quick"], tmp_path, "gr")
    for lead in ("synth_lead_0.5s", "musicgen_lead_2.5s"):
        o = gr["offline"][lead]
        assert o["reaction_s"]["n"] == len(o["controls"]) > 0
        # a change lands within one bar plus the plan lead
        bar_s = 4 * 60.0 / o["dance_bpm"]
        assert 0 < o["reaction_s"]["max"] <= bar_s + o["plan_lead_s"] + 0.05

    ll = _run([str(BENCH / "live_loop.py"), "--quick", "--seconds", "5"], tmp_path, "ll")
    assert not ll["errors"], ll["errors"]
    live = ll["live"]
    for key in ("cpu_pct_one_core", "cpu_pct_idle", "lock_in", "telemetry", "stream"):
        assert key in live, key
    assert live["stream"]["frames_accepted"] == live["stream"]["frames_sent"] > 0
    assert live["cpu_pct_one_core"] > 0
    for key in ("x_realtime", "per_genre", "meets_target"):
        assert key in ll["synth"], key

    res = {"quick": True, "machine": {"cpus": 2}, "runs": {}, "alignment": al, "genre_reaction": gr,
           "live_loop": ll}
    table = run_all.markdown(res)
    for label in ("Beat alignment score", "Lock-in", "Re-lock", "Genre change", "Synth render speed",
                  "MusicGen generation speed | not measured", "Live loop CPU share", "| const_128 |"):
        assert label in table, label


def test_readme_block_is_replaced_between_the_markers_only(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# d2m\n\nintro\n\n{run_all.START_MARK}\nold table\n{run_all.END_MARK}\n\nafter\n")
    assert run_all.update_readme(readme, "| new | table |\n")
    text = readme.read_text()
    assert "old table" not in text and "| new | table |" in text
    assert text.startswith("# d2m\n\nintro\n\n") and text.endswith(f"{run_all.END_MARK}\n\nafter\n")
    assert run_all.update_readme(readme, "| newer |")          # idempotent: markers survive
    assert readme.read_text().count(run_all.START_MARK) == 1 and "| new | table |" not in readme.read_text()
    bare = tmp_path / "NOMARK.md"
    bare.write_text("# no markers\n")
    assert not run_all.update_readme(bare, "| t |") and bare.read_text() == "# no markers\n"
