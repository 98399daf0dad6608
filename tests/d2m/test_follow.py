"""How the music follows a dancer: movement, the band's bounded beat keeper, entrainment."""

import numpy as np
import pytest

from d2m.conductor import FOLLOWING, HOLDING, IDLE_MODE, Conductor
from d2m.dancer import STANDING_COCO17, EntrainingTempo, SyntheticDancer
from d2m.events import SegmentPlanned, beats_of
from d2m import follow
from d2m.follow import (ACQUIRE_BARS, CLEAR_COHERENCE, JUMP_AFTER_BEATS, MAX_CATCH_UP, MAX_NUDGE, MAX_TEMPO_STEP, RAMP_STEP,
                        STILL_ENDS_MUSIC_S, BeatKeeper, MovementMeter, Observation)
from d2m.plan import IDLE, MUSIC
from d2m.skeleton import SkeletonFrame

RATE = 60.0


def _meter_over(poses) -> MovementMeter:
    m = MovementMeter(RATE)
    for i, p in enumerate(poses):
        m.push(i / RATE, p / 0.22)
    return m


def test_sensor_jitter_of_a_still_dancer_is_not_movement():
    rng = np.random.default_rng(0)
    m = _meter_over(STANDING_COCO17 + rng.normal(0, 0.003, (180, 17, 2)))
    assert not m.sustained() and not m.active(3.0)


def test_a_hand_dance_with_the_body_still_is_movement():
    rng = np.random.default_rng(1)
    poses = np.repeat(STANDING_COCO17[None], 180, axis=0) + rng.normal(0, 0.002, (180, 17, 2))
    t = np.arange(180) / RATE
    poses[:, [7, 8, 9, 10], 1] += 0.03 * np.sin(2 * np.pi * 1.0 * t)[:, None]   # only the arms move
    m = _meter_over(poses)
    assert m.sustained() and m.active(3.0)


def _bar_tempi(beats):
    return np.diff(beats) if len(beats) > 1 else np.zeros(0)


def test_phase_errors_are_nudged_out_by_a_bounded_step_per_beat():
    keeper = BeatKeeper(0.5)
    dance = Observation(period=0.5, anchor=0.07, confidence=1.0)   # the dancer is 70 ms later
    heard, errors = 0.0, []
    for _ in range(12):
        beats = keeper.bar(heard, dance)
        steps = np.abs(np.diff(beats) - keeper.period)
        departed = abs(keeper.last_error) > 0.12 * 0.5
        assert np.all(steps <= (MAX_CATCH_UP if departed else MAX_NUDGE) * 0.5 + 1e-9)
        errors.append(abs(keeper.last_error))
        heard = beats[-1]
    assert errors[0] == pytest.approx(0.07, abs=1e-6)
    assert max(errors[3:]) < 0.02, "the error is worked off within a few bars"
    assert errors[-1] < 0.01, "and settles (a small overshoot of the tempo term is worked off too)"


def test_one_stray_tempo_estimate_moves_the_band_by_at_most_one_step():
    keeper = BeatKeeper(0.5)
    heard = keeper.bar(0.0, Observation(0.5, 0.0, 1.0))[-1]
    before = keeper.period
    heard = keeper.bar(heard, Observation(0.5 / 1.05, heard, 1.0))[-1]   # 5 % faster, once
    assert abs(keeper.period / before - 1.0) <= MAX_TEMPO_STEP + 1e-9
    keeper.bar(heard, Observation(0.5, heard, 1.0))
    assert keeper.period == pytest.approx(0.5, rel=0.015)


def test_a_new_tempo_is_adopted_only_after_it_persists():
    keeper = BeatKeeper(0.6)                     # 100 BPM
    new = 60.0 / 140.0
    heard, bars = 0.0, 0
    while keeper.period == 0.6 and bars < 10:
        heard = keeper.bar(heard, Observation(new, heard, 0.9))[-1]
        bars += 1
    assert keeper.period == pytest.approx(new)
    assert bars * 4 >= JUMP_AFTER_BEATS and bars * 4 <= JUMP_AFTER_BEATS + 4, "within about 8 beats"


def test_a_start_a_little_off_the_dancers_tempo_is_pulled_in_by_the_motion_beats():
    # the music started 1.5 % slow, and the tracker's estimate is just as far off; the dancer's
    # motion beats (every 0.5 s, 10 ms of jitter) give the period away within a few bars
    rng = np.random.default_rng(5)
    true = 0.5
    peaks = np.arange(-4.0, 40.0, true) + rng.normal(0, 0.01, 88)
    heights = np.ones_like(peaks)
    keeper = BeatKeeper(true * 1.015)
    heard, errors = 0.0, []
    for bar in range(ACQUIRE_BARS + 4):
        seen = peaks < heard
        keeper.bar(heard, Observation(true * 1.015, heard, 0.9), peaks[seen], heights[seen])
        heard = keeper._beats[-1] + keeper.period
        errors.append(abs(keeper.period / true - 1.0))
    assert errors[ACQUIRE_BARS - 1] < 0.006, "the period is pulled in while the band acquires"
    assert errors[-1] < 0.006, "and it stays there"


def test_a_wandering_tempo_estimate_is_not_taken_for_a_ramp():
    # the tracker's estimate creeps up by 1 % a bar for three bars (3 % in all): noise, not a ramp
    keeper = BeatKeeper(0.5)
    heard = 0.0
    for k in range(4):
        heard = keeper.bar(heard, Observation(0.5 / (1.0 + 0.01 * k), heard, 0.9))[-1]
    assert abs(keeper.period / 0.5 - 1.0) <= 2 * MAX_TEMPO_STEP + 1e-9


def test_a_wandering_estimate_is_not_taken_for_a_ramp_while_the_dancers_beats_sit_on_the_bands():
    # the tracker's estimate creeps up by 2 % a bar (6 % over three bars: a ramp by its numbers),
    # but the dancer's motion beats stay exactly on the band's 100 BPM beats (a dancer who entrains)
    keeper = BeatKeeper(0.6)
    heard, steps = 0.0, []
    for k in range(5):
        peaks = np.arange(heard - 12 * 0.6, heard - 0.01, 0.6)
        before = keeper.period
        keeper.bar(heard, Observation(0.6 / (1.0 + 0.02 * k), heard, 0.9), peaks, np.ones_like(peaks))
        steps.append(abs(keeper.period / before - 1.0))
        heard = keeper._beats[-1] + keeper.period
    assert keeper.coherence > 0.9
    assert max(steps) <= 2 * MAX_TEMPO_STEP + 1e-9, "eased in by bounded steps, not played as a ramp"
    assert keeper.period / 0.6 - 1.0 > -0.025, "(a ramp would take the tracker's 108 BPM grid)"


def _late_band_over_scattered_hits(bars: int = 8) -> tuple[list[float], list[float]]:
    """A soft dancer at 122 BPM: a third of the motion beats on the beat, the rest spread over it.
    The band started 1.2 % slow and 40 ms late, and the tracker's estimate is as slow. Returns the
    band's mean error against the dancer's beats and the phase measure's coherence, per bar."""
    rng = np.random.default_rng(3)
    P = 60.0 / 122.0
    slow = P * 1.012
    on_beat = np.arange(-16, 122) * P - 0.04
    peaks = np.sort(np.concatenate([on_beat, rng.uniform(-8.0, 60.0, 2 * on_beat.size)]))
    keeper = BeatKeeper(slow)
    heard, errors, coherence = 0.0, [], []
    for _ in range(bars):
        seen = peaks < heard
        beats = np.array(keeper.bar(heard, Observation(slow, heard - 0.04, 0.9), peaks[seen],
                                    np.ones(int(seen.sum())))[:-1])
        nearest = on_beat[np.argmin(np.abs(on_beat[:, None] - beats[None]), axis=0)]
        errors.append(float(np.mean(beats - nearest)))
        coherence.append(keeper.coherence)
        heard = keeper._beats[-1] + keeper.period
    return errors, coherence


def test_a_band_late_bar_after_bar_catches_up_even_when_the_dancers_hits_scatter(monkeypatch):
    # no single bar's phase measure is clear, but bar after bar it says "late": that is evidence
    errors, coherence = _late_band_over_scattered_hits()
    assert max(coherence[:5]) < CLEAR_COHERENCE and errors[0] > 0.035
    assert abs(errors[6]) < 0.015, "on the dancer's beat within seven bars"
    monkeypatch.setattr(follow, "PERSIST_BARS", 10_000)      # each bar judged alone
    alone, _ = _late_band_over_scattered_hits()
    assert alone[6] > 0.025, "judging each bar alone, the band is still late"


def test_a_ramp_is_played_on_the_trackers_grid_with_its_trend():
    # the dance speeds up by 3 % a bar; once seen three bars running the band takes the
    # tracker's tempo and plays its grid, the trend included (at most RAMP_STEP a bar)
    keeper = BeatKeeper(0.6)
    period, heard, lag, steps = 0.6, 0.0, [], []
    for bar in range(10):
        drift = -period * 0.03 / 4            # the period shrinks 3 % a bar
        obs = Observation(period, heard, 0.95, drift)
        before = keeper.period
        beats = keeper.bar(heard, obs)
        steps.append(abs(keeper.period / before - 1.0))
        dance = obs.beats_after(heard, 4)
        lag.append(abs(beats[-1] - dance[-1]) / period)
        heard, period = beats[-1], period * 0.97
    taken = next(i for i, s in enumerate(steps) if s > MAX_TEMPO_STEP + 1e-9)
    assert taken <= 3, "the ramp is seen after three bars of it"
    assert max(steps[taken + 1:]) <= RAMP_STEP + 1e-9, "then followed by bounded steps"
    assert max(lag[taken:]) < 0.05, "on the ramp's beats (within 5 % of a beat)"


def test_an_unsure_observation_leaves_the_grid_alone():
    keeper = BeatKeeper(0.5)
    beats = keeper.bar(1.0, Observation(0.45, 1.2, confidence=0.1))
    assert np.allclose(np.diff(beats), 0.5) and not keeper.following


def _frames_of(dancer, seconds):
    return dancer.frames(seconds)


def test_music_starts_for_a_dancer_whose_beat_is_unclear():
    # moves a lot, but with no steady beat: a random walk of the arms
    rng = np.random.default_rng(4)
    frames, pose = [], STANDING_COCO17.copy()
    for i in range(int(12 * RATE)):
        pose = pose + np.where(np.arange(17)[:, None] >= 5, rng.normal(0, 0.004, (17, 2)), 0.0)
        pose = STANDING_COCO17 + 0.97 * (pose - STANDING_COCO17)
        j = np.column_stack([pose, np.zeros(17), np.full(17, 0.9)])
        frames.append(SkeletonFrame.from_values(i / RATE, 0, "coco17", j.reshape(-1)))
    c = Conductor()
    events = []
    for f in frames:
        events += c.push_frame(f)
    music = [e.plan for e in events if isinstance(e, SegmentPlanned) and e.plan.kind == MUSIC]
    assert music and music[0].start_time < 4.0, "music within 4 s of the first movement"
    assert c.status()["tempo"]["mode"] in (HOLDING, FOLLOWING)


def test_a_still_dancer_gets_the_idle_pad_and_a_dancer_who_stops_gets_it_back():
    still = SyntheticDancer(tempo=120, amplitude=0.0, seed=2, noise=0.003)
    c = Conductor()
    events = []
    for f in still.frames(10.0):
        events += c.push_frame(f)
    assert all(e.plan.kind == IDLE for e in events if isinstance(e, SegmentPlanned))
    assert c.status()["tempo"]["mode"] == IDLE_MODE

    dancer = SyntheticDancer(tempo=110, seed=3, amplitude_points=[(0, 1.0), (15, 1.0), (15.05, 0.0)])
    c = Conductor()
    kinds = []
    for f in dancer.frames(15 + STILL_ENDS_MUSIC_S + 4):
        kinds += [(e.plan.start_time, e.plan.kind) for e in c.push_frame(f) if isinstance(e, SegmentPlanned)]
    during = [k for t, k in kinds if 5 < t < 15 + STILL_ENDS_MUSIC_S - 1]
    after = [k for t, k in kinds if t > 15 + STILL_ENDS_MUSIC_S + 2.5]
    assert during and all(k == MUSIC for k in during), "a pause keeps the music going for a while"
    assert after and all(k == IDLE for k in after), "then the idle pad comes back"


@pytest.mark.parametrize("seed", [9, 2])
def test_a_dancer_who_entrains_to_the_music_and_the_music_settle_together(seed):
    """Closed loop: the dancer hears the music (human reaction delay, timing noise) and entrains
    to it while the music follows the dancer. Over three minutes neither runs away nor swings.
    (Seed 2 once ran away: the tracker's estimate crept up 5 % over three bars while the dancer's
    beats sat on the band's, and the band took it for a ramp.)"""
    tempo = EntrainingTempo(104.0, seed=seed, noise_s=0.012)
    dancer = SyntheticDancer(tempo=tempo, seed=seed, noise=0.003)
    c = Conductor()
    plans = []
    t, dt = 0.0, 1 / RATE
    while t < 180.0:
        for e in c.push_frame(dancer.frame(t)):
            if isinstance(e, SegmentPlanned):
                plans.append(e.plan)
                if e.plan.kind == MUSIC:
                    tempo.hear(b.time for b in beats_of(e.plan))
        t += dt
    music = [p for p in plans if p.kind == MUSIC]
    late = [p for p in music if p.start_time > 60.0]
    bpms = np.array([p.bpm for p in late])
    assert music[0].start_time < 4.0
    assert np.all(np.abs(bpms / 104.0 - 1.0) < 0.05), "no runaway drift"
    assert np.std(bpms) / np.mean(bpms) < 0.01, "no oscillation: the bar tempo is steady"
    asyn = np.abs(np.array(tempo.asynchronies[-60:]))
    assert np.median(asyn) < 0.04, "the dancer's beats and the music's coincide"
