"""Beat/onset detection from synthetic audio and motion beats from a synthetic skeleton."""

import numpy as np
import pytest

from d2m.evaluation.audio import (beat_coverage_hit_audio, detect_beats, detect_onsets, grid_bpm,
                                  to_analysis)
from d2m.evaluation.metrics import nearest_offsets
from d2m.evaluation.motion_input import (analyse_motion, dance_tempo_curve, parse_motion_lines,
                                         select_person)

SR = 48000
BEATS = np.arange(0.5, 9.6, 0.5)         # 120 BPM, clear of the file's edges


@pytest.fixture(scope="module")
def clicks_120(synth):
    return synth.click_audio(BEATS, 10.0, SR)


def test_to_analysis_mixes_and_resamples(clicks_120):
    x = to_analysis(clicks_120, SR)
    assert x.ndim == 1 and x.size == pytest.approx(10.0 * 22050, abs=2)


def test_music_beats_of_a_click_track(clicks_120):
    bpm, beats = detect_beats(clicks_120, SR)
    assert bpm == pytest.approx(120.0, rel=0.005)      # librosa alone says 117.5 (lag quantised)
    off = nearest_offsets(beats, BEATS)
    assert beats.size >= BEATS.size - 1
    assert np.max(np.abs(off)) < 0.010                  # refined beats within 10 ms of the clicks


def test_music_beats_of_silence():
    bpm, beats = detect_beats(np.zeros(SR * 2, dtype=np.float32), SR)
    assert np.isnan(bpm) and beats.size == 0


def test_grid_bpm_skips_a_missed_beat():
    beats = np.delete(np.arange(20) * 0.5, 7)
    assert grid_bpm(beats, 117.5) == pytest.approx(120.0)


def test_onsets_and_bcs_bhs_on_audio(synth, clicks_120):
    on = detect_onsets(clicks_120, SR)
    assert np.max(np.abs(nearest_offsets(on, BEATS))) < 0.03
    same, same_tol = beat_coverage_hit_audio(clicks_120, SR, clicks_120, SR)
    assert same.f1 == 1.0 and same_tol.f1 == 1.0
    sparse = synth.click_audio(BEATS[::4] + 0.25, 10.0, SR)   # 0.75, 2.75, ...: never within 70 ms
    loris, tol = beat_coverage_hit_audio(sparse, SR, clicks_120, SR)
    assert tol.hits == 0 and tol.f1 == 0.0 and tol.generated == 5
    assert (loris.hits, loris.generated, loris.reference) == (5, 5, 10)     # bins 0,2,..,8 of 0..9
    assert loris.bcs == 1.0 and loris.bhs == 0.5


# -- motion ----------------------------------------------------------------------

def test_parse_motion_lines_counts_what_it_skips(synth):
    frames = synth.bounce_frames(120, 2.0)
    rec = parse_motion_lines(synth.motion_lines(frames))
    assert len(rec.frames) == len(frames)
    assert rec.controls == 1 and rec.blank == 1 and rec.n_bad == 2
    assert rec.header == {"d2m_motion": 1, "source": "test"}
    assert rec.bad["not JSON"] == 1


def test_select_person_picks_the_busiest(synth):
    frames = synth.bounce_frames(120, 2.0, person=3) + synth.bounce_frames(120, 1.0, person=1)
    assert {f.person for f in select_person(frames)} == {3}
    one = select_person(frames, 1)
    assert {f.person for f in one} == {1} and all(a.t < b.t for a, b in zip(one, one[1:]))


@pytest.mark.parametrize("bpm,phase", [(120.0, 0.0), (96.0, 0.2)])
def test_motion_beats_of_a_bouncing_skeleton(synth, bpm, phase):
    frames = synth.bounce_frames(bpm, 12.0, phase_s=phase)
    ma = analyse_motion(frames)
    period = 60.0 / bpm
    truth = phase + period * np.arange(1, int(11.5 / period))
    truth = truth[truth < 11.5]
    off = nearest_offsets(truth, ma.beat_times)
    assert np.median(np.abs(off)) < 0.02 and np.max(np.abs(off)) < 0.04
    assert ma.bpm == pytest.approx(bpm, rel=0.02)
    t, local = dance_tempo_curve(ma)
    assert t.size > 0 and np.nanmedian(local) == pytest.approx(bpm, rel=0.03)


def test_motion_beats_match_the_live_module(synth):
    import d2m.motion as motion
    if not hasattr(motion, "motion_beat_times"):
        pytest.skip("d2m.motion has no motion_beat_times")
    frames = synth.bounce_frames(120, 6.0)
    np.testing.assert_allclose(analyse_motion(frames).beat_times, motion.motion_beat_times(frames))


def test_analyse_motion_needs_frames(synth):
    with pytest.raises(ValueError, match="at least 2"):
        analyse_motion(synth.bounce_frames(120, 0.02))
