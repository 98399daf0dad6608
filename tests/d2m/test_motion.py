import numpy as np
import pytest

from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.motion import (ONSET_LAG_S, MotionResampler, TempoTracker, coarse_tempo, fit_beat_grid,
                        motion_beat_times, onset_envelope)


def test_resampler_puts_irregular_frames_on_the_60hz_grid():
    rs = MotionResampler()
    out = []
    for t, x in [(0.001, 0.0), (0.02, 1.0), (0.05, 2.0), (0.051, 2.0)]:
        out += rs.push(t, np.full((17, 2), x))
    ks = [k for k, _, _ in out]
    assert ks == [1, 2, 3]
    # grid point 1/60 s lies between 0.001 (x=0) and 0.02 (x=1)
    assert out[0][1][0, 0] == pytest.approx((1 / 60 - 0.001) / 0.019)


def test_a_long_gap_is_not_bridged_by_interpolation():
    rs = MotionResampler(max_gap_s=0.5)
    rs.push(0.0, np.zeros((17, 2)))
    rs.push(0.1, np.zeros((17, 2)))
    out = rs.push(2.0, np.ones((17, 2)))
    assert len(out) <= 1 and rs.gaps == 1


@pytest.mark.parametrize("bpm", [84.0, 120.0, 150.0])
def test_motion_beats_fall_on_the_dancers_hits(bpm):
    dancer = SyntheticDancer(tempo=bpm, seed=11, noise=0.003, phase_offset=0.2)
    beats = motion_beat_times(dancer.frames(12.0))
    truth = dancer.beat_times(0.5, 12.0)
    nearest = np.array([np.min(np.abs(beats - b)) for b in truth])
    assert np.mean(nearest < 0.02) > 0.9, "almost every hit is found within 20 ms"


@pytest.mark.parametrize("noise", [0.001, 0.003])
def test_sensor_jitter_of_a_still_dancer_has_no_rhythm(noise):
    from d2m.motion import MIN_RHYTHM_STRENGTH, rhythm_estimate
    still = SyntheticDancer(tempo=120, amplitude=0.0, seed=1, noise=noise)
    gentle = SyntheticDancer(tempo=120, amplitude=0.3, seed=1, noise=noise)
    _, env_still = onset_envelope(still.frames(6))
    _, env_gentle = onset_envelope(gentle.frames(6))
    assert rhythm_estimate(env_still)[1] < MIN_RHYTHM_STRENGTH
    assert rhythm_estimate(env_gentle)[1] > MIN_RHYTHM_STRENGTH


@pytest.mark.parametrize("bpm", [75.0, 96.0, 128.0, 160.0])
def test_coarse_tempo_finds_the_beat_not_its_half_or_double(bpm):
    dancer = SyntheticDancer(tempo=bpm, seed=5, noise=0.003)
    _, env = onset_envelope(dancer.frames(8.0))
    assert coarse_tempo(env) == pytest.approx(bpm, rel=0.03)


def test_beat_grid_fit_ignores_off_beat_bumps_and_refines_period():
    rng = np.random.default_rng(0)
    beats = np.arange(12) * 0.5 + 0.13 + rng.normal(0, 0.004, 12)
    offbeats = beats[:-1] + 0.25
    times = np.sort(np.concatenate([beats, offbeats]))
    heights = np.where(np.isin(times, beats), 5.0, 2.5)
    fit = fit_beat_grid(times, 0.52, heights=heights)
    assert fit.period == pytest.approx(0.5, abs=0.003)
    assert abs((fit.anchor - 0.13) / 0.5 - round((fit.anchor - 0.13) / 0.5)) < 0.03


def _track(dancer, seconds):
    tracker = TempoTracker()
    from d2m.motion import RhythmFrontEnd
    fe = RhythmFrontEnd()
    history = []
    for f in dancer.frames(seconds):
        for k, v in fe.push(f):
            if tracker.push(k, v):
                history.append(tracker.estimate)
    return tracker, history


def test_tracker_locks_within_a_few_seconds_and_predicts_beats():
    dancer = SyntheticDancer(tempo=110.0, seed=21, noise=0.003, phase_offset=0.4)
    tracker, history = _track(dancer, 12.0)
    first_lock = next(e.t for e in history if e.locked)
    assert first_lock < 4.0
    est = tracker.estimate
    assert est.bpm == pytest.approx(110.0, rel=0.02)
    truth = dancer.beat_times(12.0, 16.0)
    predicted = np.array([est.next_beat(b - 0.1) for b in truth])
    assert np.max(np.abs(predicted - truth)) < 0.03


def test_tempo_change_is_committed_only_when_it_persists():
    curve = TempoCurve([(0.0, 100.0), (10.0, 100.0), (10.001, 130.0)], ramp=False)
    dancer = SyntheticDancer(tempo=curve, seed=22, noise=0.003)
    tracker, history = _track(dancer, 20.0)
    before = [e.bpm for e in history if e.locked and 6.0 < e.t < 10.0]
    assert before and all(abs(b - 100) < 3 for b in before)
    switched = next(e.t for e in history if e.t > 10 and abs(e.bpm - 130) < 4)
    assert 10.0 + 1.0 < switched < 10.0 + 8.0, "not instantly, but within a few seconds"
    assert tracker.estimate.bpm == pytest.approx(130, rel=0.03)


def _switch_time(before: float, after: float, at: float = 12.0) -> float | None:
    curve = TempoCurve([(0.0, before), (at, before), (at + 0.001, after)], ramp=False)
    _tracker, history = _track(SyntheticDancer(tempo=curve, seed=22, noise=0.003), at + 12.0)
    return next((e.t - at for e in history if e.t > at and e.locked and abs(e.bpm / after - 1) < 0.03), None)


@pytest.mark.parametrize("before,after", [(140.0, 110.0), (120.0, 90.0)])
def test_a_sudden_new_tempo_is_seen_in_the_last_seconds_before_it_fills_the_window(before, after, monkeypatch):
    import d2m.motion as motion
    switched = _switch_time(before, after)
    assert switched is not None and switched < 5.0, switched
    monkeypatch.setattr(motion, "SWITCH_WINDOW_S", 0.0)       # the whole 8 s window alone
    assert _switch_time(before, after) > switched + 2.0


def _track_with_outlying_fits(monkeypatch, outlying_updates, factor=1.05, seconds=20.0):
    """The tracker on a clean 104 BPM dancer, with the real grid fit's tempo scaled by ``factor``
    at the given update numbers (counted from the first fit): the outlying fits a real dancer's
    move in another rhythm gives. Returns the committed tempo after each update."""
    import dataclasses

    import d2m.motion as motion
    real_fit, calls = motion.fit_beat_grid, []

    def fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        calls.append(None)
        if result is not None and len(calls) in outlying_updates:
            result = dataclasses.replace(result, period=result.period / factor)
        return result

    monkeypatch.setattr(motion, "fit_beat_grid", fit)
    _tracker, history = _track(SyntheticDancer(tempo=104.0, seed=25, noise=0.003), seconds)
    first_lock = next(e.t for e in history if e.locked)
    return first_lock, [(e.t, e.bpm) for e in history if e.locked]


def test_a_single_outlying_fit_does_not_walk_a_settled_tempo_off(monkeypatch):
    import d2m.motion as motion
    late = range(48, 53, 2)                       # updates 48, 50, 52: about 12 s in, one at a time
    first_lock, locked = _track_with_outlying_fits(monkeypatch, late)
    assert first_lock < 6.0
    settled = [bpm for t, bpm in locked if t > first_lock + motion.STEP_AFTER_LOCK_S]
    assert max(abs(b / 104.0 - 1.0) for b in settled) < 0.03, settled
    # without the rule each of them is taken as the new tempo
    monkeypatch.setattr(motion, "STEP_AFTER_LOCK_S", float("inf"))
    _first, locked = _track_with_outlying_fits(monkeypatch, late)
    assert max(abs(b / 104.0 - 1.0) for _t, b in locked) > 0.04


def test_a_step_the_next_fit_confirms_is_followed_at_once(monkeypatch):
    # two fits running at the new tempo: a real change within the follow band, taken at the second
    _first, locked = _track_with_outlying_fits(monkeypatch, range(48, 200))
    assert locked[-1][1] == pytest.approx(104.0 * 1.05, rel=0.015)


def test_still_dancer_holds_the_last_tempo():
    curve = TempoCurve.constant(120.0)
    moving = SyntheticDancer(tempo=curve, seed=23, noise=0.003)
    still = SyntheticDancer(tempo=curve, seed=23, noise=0.003, amplitude=0.0)
    tracker = TempoTracker()
    from d2m.motion import RhythmFrontEnd
    fe = RhythmFrontEnd()
    for f in moving.frames(8.0) + still.frames(10.0, t0=8.0):
        for k, v in fe.push(f):
            tracker.push(k, v)
    assert tracker.estimate.locked and tracker.estimate.still
    assert tracker.estimate.bpm == pytest.approx(120, rel=0.02)


def test_onset_lag_constant_is_what_the_pipeline_shows():
    dancer = SyntheticDancer(tempo=100.0, seed=24, noise=0.0)
    t, env = onset_envelope(dancer.frames(10.0))
    from d2m.motion import pick_peaks
    raw = pick_peaks(env) / 60.0 + t[0]
    truth = dancer.beat_times(1.0, 10.0)
    lags = [np.min(np.abs(raw - b - ONSET_LAG_S)) for b in truth]
    assert np.median(lags) < 0.01


def _polyrhythm_frames(bpm: float, seconds: float, arm_ratio: float = 1.5, seed: int = 31):
    """A dancer who bounces (torso and legs) on every beat at ``bpm`` while the arms swing,
    larger, ``arm_ratio`` times as often: a 3-against-2 that real dancers do all the time."""
    import math

    from d2m.dancer import STANDING_COCO17
    from d2m.skeleton import Layout, SkeletonFrame
    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(seconds * 60)):
        t = i / 60.0
        beat = t * bpm / 60.0
        p = STANDING_COCO17.copy()
        p[:, 1] += 0.015 * (1.0 - math.sin(math.pi * (beat % 1.0)))     # down on every beat
        arm = abs(((beat * arm_ratio) % 2.0) - 1.0)                       # triangle, arms only
        p[[7, 9], 0] -= 0.3 * (arm - 0.5) * np.array([0.6, 1.0])
        p[[8, 10], 0] += 0.3 * (arm - 0.5) * np.array([0.6, 1.0])
        p[[9, 10], 1] -= 0.18 * arm
        p += rng.normal(0.0, 0.002, size=p.shape)
        joints = np.column_stack([p, np.zeros(17), np.full(17, 0.95)])
        out.append(SkeletonFrame.from_values(t, 0, Layout.COCO17, joints.reshape(-1), dims=4))
    return out


def _coarse_tempi(frames, *, with_bounce: bool):
    from d2m.motion import RhythmFrontEnd
    fe, tracker, seen = RhythmFrontEnd(), TempoTracker(), []
    for f in frames:
        for k, v, moving, bounce in fe.push_rhythm(f):
            if tracker.push(k, v, moving, bounce if with_bounce else None) and tracker.coarse_bpm:
                seen.append(tracker.coarse_bpm)
    return np.array(seen[len(seen) // 2:])          # after the window filled


def _on_octave(bpms, bpm):
    return float(np.mean([min(abs(b / (bpm * r) - 1.0) for r in (0.5, 1.0, 2.0)) < 0.03 for b in bpms]))


def test_the_bodys_bounce_carries_the_tempo_when_the_arms_move_at_another_rate():
    frames = _polyrhythm_frames(100.0, 16.0)
    with_bounce = _coarse_tempi(frames, with_bounce=True)
    arms_only = _coarse_tempi(frames, with_bounce=False)
    assert _on_octave(with_bounce, 100.0) >= 0.9, np.round(with_bounce, 1)
    # without the bounce the larger arm swing wins: the tempo is the arms' (150 or 75)
    assert _on_octave(arms_only, 100.0) <= 0.5, np.round(arms_only, 1)


def _bouncing_with_wandering_arms(bpm: float, seconds: float, seed: int = 5):
    """A clear bounce on every beat at ``bpm`` under large arm movements with no rhythm."""
    import math

    from scipy.ndimage import gaussian_filter1d

    from d2m.dancer import STANDING_COCO17
    from d2m.skeleton import Layout, SkeletonFrame
    rng = np.random.default_rng(seed)
    n = int(seconds * 60)
    walk = gaussian_filter1d(rng.normal(0.0, 1.0, size=(n, 4, 2)), 12, axis=0)
    walk *= 0.1 / walk.std()
    out = []
    for i in range(n):
        t = i / 60.0
        p = STANDING_COCO17.copy()
        p[:, 1] += 0.01 * (1.0 - math.sin(math.pi * ((t * bpm / 60.0) % 1.0)))
        p[[7, 8, 9, 10]] += walk[i]
        p += rng.normal(0.0, 0.002, size=p.shape)
        joints = np.column_stack([p, np.zeros(17), np.full(17, 0.95)])
        out.append(SkeletonFrame.from_values(t, 0, Layout.COCO17, joints.reshape(-1), dims=4))
    return out


def test_a_clear_bounce_counts_as_rhythm_when_the_arms_wander():
    from d2m.motion import MIN_RHYTHM_STRENGTH, RhythmFrontEnd
    frames = _bouncing_with_wandering_arms(100.0, 16.0)
    share = {}
    for with_bounce in (True, False):
        fe, tracker, strengths = RhythmFrontEnd(), TempoTracker(), []
        for f in frames:
            for k, v, moving, bounce in fe.push_rhythm(f):
                if tracker.push(k, v, moving, bounce if with_bounce else None):
                    strengths.append(tracker.strength)
        later = np.array(strengths[len(strengths) // 2:])
        share[with_bounce] = float(np.mean(later >= MIN_RHYTHM_STRENGTH))
    assert share[True] >= 0.9, share
    assert share[False] <= 0.5, share       # the arms alone say "no clear rhythm"
