"""benchmarks/song_form.py: its measures count what they say, and its real-motion part skips cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import song_form  # noqa: E402


def _unit(v):
    v = np.asarray(v, dtype=np.float64) - np.mean(v)
    return v / np.linalg.norm(v)


def test_bar_kinds_group_bars_that_correlate_and_count_new_ones():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(200), rng.standard_normal(200)
    feats = [_unit(a), _unit(a + 0.01 * rng.standard_normal(200)), _unit(b), _unit(a), _unit(-a)]
    assert song_form.bar_kinds(feats) == [0, 0, 1, 0, 2]


def test_identical_phrases_are_phrases_whose_every_bar_repeats():
    rng = np.random.default_rng(4)
    bars = [_unit(rng.standard_normal(100)) for _ in range(8)]
    other = [_unit(rng.standard_normal(100)) for _ in range(8)]
    same, pairs = song_form.identical_phrases(bars + bars + other)
    assert (same, pairs) == ([8], 2)
    one_bar_changed = bars[:7] + [other[0]]
    assert song_form.identical_phrases(bars + one_bar_changed) == ([], 1)


def test_real_motion_part_skips_with_a_message_when_the_data_is_absent(monkeypatch, tmp_path):
    monkeypatch.setattr(song_form, "REALDANCE", tmp_path / "missing")

    class Args:
        real_minutes = 1.0
    out = song_form.genre_auto(Args())
    assert "skipped" in out and "not found" in out["skipped"]
