"""Metrics on hand-built beat and onset lists, against hand-computed values."""

import math

import numpy as np
import pytest

from d2m.evaluation.metrics import (BAS_SIGMA_S, beat_alignment_score, beat_coverage_hit,
                                    beat_coverage_hit_tolerance, lock_in, match_events,
                                    nearest_offsets, offset_stats, onset_bins, tempo_agreement)
from d2m.evaluation.report import score

BEATS_120 = np.arange(0.0, 10.0, 0.5)   # 20 beats at 120 BPM


# -- BCS / BHS (LORIS) -----------------------------------------------------------

def test_onset_bins_quantise_by_floor():
    occ = onset_bins([0.1, 0.99, 1.0, 3.5], bin_s=1.0)
    assert occ.tolist() == [True, True, False, True]
    assert onset_bins([0.1, 4.2], duration_s=3.0).tolist() == [True, False, False]
    assert onset_bins([0.05, 0.45], bin_s=0.2).tolist() == [True, False, True]


def test_bcs_bhs_hand_built():
    gen = [0.1, 0.5, 1.2, 3.7]            # bins {0, 1, 3}
    ref = [0.9, 2.1, 3.0, 3.99, 4.5]      # bins {0, 2, 3, 4}
    s = beat_coverage_hit(gen, ref)
    assert (s.hits, s.generated, s.reference) == (2, 3, 4)
    assert s.bcs == pytest.approx(2 / 3)
    assert s.bhs == pytest.approx(0.5)
    assert s.f1 == pytest.approx(4 / 7)
    # the reference is cut to the generated length, as LORIS does
    s = beat_coverage_hit(gen, ref, duration_s=4.0)
    assert (s.hits, s.generated, s.reference) == (2, 3, 3)
    assert s.f1 == pytest.approx(2 / 3)


def test_bcs_bhs_identical_and_disjoint():
    assert beat_coverage_hit(BEATS_120, BEATS_120).f1 == 1.0
    s = beat_coverage_hit([0.5, 2.5], [1.5, 3.5])
    assert (s.bcs, s.bhs, s.f1) == (0.0, 0.0, 0.0)


def test_bcs_bhs_empty_generated():
    s = beat_coverage_hit([], [0.5, 1.5])
    assert math.isnan(s.bcs) and s.bhs == 0.0 and s.f1 == 0.0


def test_bin_scores_are_blind_to_small_shifts_tolerance_variant_is_not():
    late = BEATS_120 + 0.1                # same 1 s bins except at edges
    assert beat_coverage_hit(late, BEATS_120, duration_s=10.0).f1 > 0.9
    assert beat_coverage_hit_tolerance(late, BEATS_120, tol_s=0.07).f1 == 0.0
    assert beat_coverage_hit_tolerance(late, BEATS_120, tol_s=0.12).f1 == 1.0


def test_tolerance_variant_hand_built():
    gen = [1.00, 2.05, 3.20]
    ref = [1.03, 2.00, 2.10, 3.00]
    s = beat_coverage_hit_tolerance(gen, ref, tol_s=0.07)
    assert (s.hits, s.generated, s.reference) == (2, 3, 4)
    assert s.bcs == pytest.approx(2 / 3) and s.bhs == pytest.approx(0.5)


def test_tolerance_matching_is_one_to_one_and_maximal():
    assert match_events([1.0, 1.01], [1.0], tol_s=0.05) == [(0, 0)]
    s = beat_coverage_hit_tolerance([1.0, 1.01], [1.0], tol_s=0.05)
    assert (s.bcs, s.bhs) == (0.5, 1.0)
    # a greedy "nearest first" would pair 1.06 with 1.05 and leave two unmatched
    assert len(match_events([1.0, 1.06], [1.05, 1.12], tol_s=0.07)) == 2


# -- Beat Alignment Score and offsets ---------------------------------------------

def test_bas_perfectly_aligned_is_one():
    assert beat_alignment_score(BEATS_120, BEATS_120) == pytest.approx(1.0)


@pytest.mark.parametrize("shift", [0.02, 0.05, -0.1])
def test_bas_shifted_by_known_offset(shift):
    expect = math.exp(-shift ** 2 / (2 * BAS_SIGMA_S ** 2))
    assert beat_alignment_score(BEATS_120, BEATS_120 + shift) == pytest.approx(expect)
    assert beat_alignment_score(BEATS_120, BEATS_120 + shift, sigma_s=0.1) == pytest.approx(
        math.exp(-shift ** 2 / (2 * 0.1 ** 2)))


def test_bas_wrong_tempo_is_low_and_edges():
    music_90 = np.arange(0.0, 10.0, 60 / 90)
    assert beat_alignment_score(BEATS_120, music_90) < 0.4
    assert math.isnan(beat_alignment_score([], BEATS_120))
    assert beat_alignment_score(BEATS_120, []) == 0.0


def test_nearest_offsets_sign_and_ties():
    o = nearest_offsets([1.0, 2.0, 3.0], [1.02, 1.98, 3.05])
    assert o == pytest.approx([0.02, -0.02, 0.05])
    assert nearest_offsets([1.5], [1.0, 2.0]) == pytest.approx([-0.5])   # tie -> earlier beat
    assert np.isnan(nearest_offsets([1.0], [])).all()


def test_offset_stats_hand_computed():
    st = offset_stats([0.02, -0.02, 0.05])
    assert st.n == 3
    assert st.median_abs_ms == pytest.approx(20.0)
    assert st.p90_abs_ms == pytest.approx(44.0)        # 20 + 0.8 * (50 - 20)
    assert st.median_ms == pytest.approx(20.0)
    assert st.mean_ms == pytest.approx(50.0 / 3)
    assert math.isnan(offset_stats([]).median_abs_ms)


def test_shifted_music_offsets_are_the_shift():
    st = offset_stats(nearest_offsets(BEATS_120, BEATS_120 + 0.12))
    assert st.median_ms == pytest.approx(120.0) and st.p90_abs_ms == pytest.approx(120.0)


# -- tempo ---------------------------------------------------------------------

def test_tempo_match():
    t = tempo_agreement(121.0, 120.0)
    assert t.match and not t.octave_error
    assert t.rel_error == pytest.approx(1 / 120)


def test_tempo_wrong_is_not_an_octave_error():
    t = tempo_agreement(90.0, 120.0)
    assert not t.match and t.octave is None
    assert t.rel_error == pytest.approx(0.25)
    assert math.isnan(t.octave_rel_error)


@pytest.mark.parametrize("music,label", [(60.0, "1/2"), (240.0, "2"), (180.0, "3/2"), (80.0, "2/3")])
def test_tempo_octave_errors_flagged_apart(music, label):
    t = tempo_agreement(music, 120.0)
    assert not t.match
    assert t.octave == label and t.octave_error
    assert t.octave_rel_error == pytest.approx(0.0, abs=1e-12)
    assert t.rel_error == pytest.approx(abs(music - 120.0) / 120.0)   # the plain error is kept


def test_tempo_near_half_keeps_residual():
    t = tempo_agreement(61.0, 120.0)
    assert t.octave == "1/2"
    assert t.octave_rel_error == pytest.approx(61.0 / 60.0 - 1.0)
    assert tempo_agreement(float("nan"), 120.0).match is False


# -- lock-in --------------------------------------------------------------------

def test_lock_in_after_settling():
    times = np.arange(10) * 0.5 + 2.0
    offs = [0.2, 0.1, -0.08, 0.03, 0.01, -0.02, 0.0, 0.04, 0.01, 0.0]
    lk = lock_in(times, offs, tol_s=0.05)
    assert lk.locked and lk.beat == 3
    assert lk.time_s == pytest.approx(3.5) and lk.after_first_beat_s == pytest.approx(1.5)


def test_lock_in_from_start_never_and_nan():
    times = np.arange(5.0)
    assert lock_in(times, np.zeros(5)).beat == 0
    never = lock_in(times, [0, 0, 0, 0, 0.06])
    assert not never.locked and never.beat is None
    assert lock_in(times, [0, float("nan"), 0, 0, 0]).beat == 2
    assert not lock_in([], []).locked
    with pytest.raises(ValueError):
        lock_in([1.0, 2.0], [0.0])


# -- report ---------------------------------------------------------------------

def test_score_places_music_on_the_session_timeline():
    music = np.arange(0.0, 8.0, 0.5)                    # from the music's first sample
    motion = np.concatenate([[5.0], 10.0 + music + 0.02])   # one beat before the music starts
    rep = score(music, 120.0, motion, 120.0, music_start_s=10.0, music_duration_s=8.0)
    ms = rep.motion_side
    assert ms.beats.size == music.size
    assert ms.stats.median_ms == pytest.approx(-20.0)
    assert ms.bas == pytest.approx(math.exp(-0.02 ** 2 / (2 * BAS_SIGMA_S ** 2)))
    assert ms.lock.beat == 0 and rep.tempo.match
    d = rep.to_dict()
    assert d["n_motion_beats"] == 17 and d["n_scored_motion_beats"] == 16
    assert d["offsets"]["median_ms"] == pytest.approx(-20.0)
    assert "beat alignment score" in rep.table()


def test_music_side_ignores_off_beat_movement():
    """Extra motion peaks between the beats hurt the per-motion-beat view, not the per-music-beat one."""
    beats = np.arange(0.0, 10.0, 0.5)
    motion = np.sort(np.concatenate([beats, beats[:-1] + 0.25]))   # a hit on every beat and off-beat
    music = np.where(np.arange(beats.size) < 4, beats + 0.1, beats)  # late for 4 beats, then locked
    rep = score(music, 120.0, motion, 120.0)
    assert rep.motion_side.lock.beat == motion.size - 1      # only the very last beat is "locked"
    assert rep.motion_side.stats.p90_abs_ms > 200
    us = rep.music_side
    assert us.beats.size == beats.size
    assert us.lock.locked and us.lock.beat == 4
    assert us.lock.time_s == pytest.approx(2.0) and us.lock.after_first_beat_s == pytest.approx(1.9)
    assert us.stats.median_abs_ms == pytest.approx(0.0, abs=1e-9)
    assert us.offsets_s[:4] == pytest.approx([0.1] * 4)          # signed music - motion: late
    assert rep.to_dict()["music_side"]["lock_in"]["beat"] == 4


def test_report_json_has_no_nan():
    import json
    rep = score([], float("nan"), [1.0, 2.0], 60.0)
    text = json.dumps(rep.to_dict(), allow_nan=False)
    assert '"music_bpm": null' in text
