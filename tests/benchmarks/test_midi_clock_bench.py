"""benchmarks/midi_clock.py's analysis: received pulses matched to the audio's beats."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import midi_clock  # noqa: E402


def test_analyse_finds_offset_and_jitter_and_survives_a_missing_pulse():
    beats = 100.0 + np.cumsum(np.r_[0.0, np.full(8, 0.5), np.full(8, 0.48)])     # a tempo change
    planned = np.concatenate([beats[k] + (beats[k + 1] - beats[k]) * np.arange(24) / 24
                              for k in range(len(beats) - 1)])
    rng = np.random.default_rng(3)
    jitter = rng.uniform(-0.0005, 0.0005, len(planned))
    arrivals = planned + 0.002 + jitter                    # 2 ms late, +-0.5 ms jitter
    arrivals = np.delete(arrivals, 30)                     # one pulse lost
    msgs = [(99.0, (0xFA,))] + [(t, (0xF8,)) for t in arrivals] + [(beats[-1] + 0.1, (0xFC,))]
    res = midi_clock.analyse(msgs, beats)
    assert res["pulses"] == len(planned) - 1 and res["pulses_expected"] == len(planned)
    assert abs(res["offset_ms_signed_median"] - 2.0) < 0.5
    assert res["jitter_abs_ms"]["p99"] <= 1.0
    assert res["beats"] == len(beats) - 1


def test_analyse_says_when_the_music_never_started():
    assert "error" in midi_clock.analyse([(1.0, (0xF8,))], np.arange(10.0))
