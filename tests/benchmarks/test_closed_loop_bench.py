"""benchmarks/closed_loop.py: the entraining dancer's run is judged after it settles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import closed_loop  # noqa: E402


def test_a_short_run_judges_the_bars_after_its_first_third(capsys):
    assert closed_loop.main(["--seeds", "9", "--seconds", "36"]) == 0
    out = json.loads(capsys.readouterr().out)
    row = out["seeds"][0]
    assert out["settings"]["settle_s"] == 12.0
    assert row["music_starts_s"] < 4.0
    assert row["bars_judged"] >= 10                    # 24 s of music at about 104 BPM: ~10 bars
    assert row["max_drift"] < 0.05 and row["bar_tempo_spread"] < 0.01
    assert row["asynchrony_median_ms"] < 40.0
    assert out["summary"]["max_drift"]["n"] == 1
