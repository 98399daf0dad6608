import math

import numpy as np
import pytest

from d2m.conductor import Conductor, ConductorConfig
from d2m.control import Control
from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.events import GenreChanged, SegmentPlanned, TempoChanged, beats_of
from d2m.plan import IDLE, MUSIC, SILENCE
from d2m.skeleton import Layout, SkeletonFrame


def drive(conductor, frames, controls=()):
    """Push frames and (t, Control) in time order; return every event."""
    items = sorted([(f.t, 0, f) for f in frames] + [(t, 1, c) for t, c in controls], key=lambda x: x[:2])
    events = []
    for t, kind, item in items:
        events += conductor.push_frame(item) if kind == 0 else conductor.control(t, item)
    return events


def plans(events):
    return [e.plan for e in events if isinstance(e, SegmentPlanned)]


def test_before_a_dancer_appears_the_music_waits_in_idle_beats():
    c = Conductor()
    events = c.advance(5.0)
    ps = plans(events)
    assert ps and all(p.kind == IDLE for p in ps)
    # contiguous, and decided a fixed lead before they start
    for a, b in zip(ps, ps[1:]):
        assert b.start_sample == a.end_sample
    assert all(p.decided_at == pytest.approx(p.start_time - c.config.plan_lead_s) for p in ps)


@pytest.mark.parametrize("curve", [TempoCurve.constant(96.0), TempoCurve.constant(120.0),
                                   TempoCurve.constant(140.0)], ids=["96", "120", "140"])
def test_planned_beats_land_on_the_dance_grid_after_eight_beats(curve):
    dancer = SyntheticDancer(tempo=curve, seed=31, noise=0.003, phase_offset=0.3)
    c = Conductor()
    ps = plans(drive(c, dancer.frames(24.0)))
    beats = np.array([b.time for p in ps for b in beats_of(p)])
    truth = dancer.beat_times(0.0, 26.0)
    assert beats[0] < 6.0, "music starts within 6 s"
    judged = beats[(beats >= truth[np.searchsorted(truth, beats[0]) + 8]) & (beats < 23.5)]
    off = np.array([np.min(np.abs(truth - b)) for b in judged])
    assert len(judged) > 20
    assert np.max(off) < 0.05, np.round(off * 1000)


@pytest.mark.parametrize("bpm0,bpm1", [(100, 130), (130, 100)])
def test_a_tempo_ramp_is_followed_without_stopping(bpm0, bpm1):
    curve = TempoCurve.linear(bpm0, bpm1, 4, 24)
    dancer = SyntheticDancer(tempo=curve, seed=31, noise=0.003, phase_offset=0.3)
    ps = [p for p in plans(drive(Conductor(), dancer.frames(30.0))) if p.start_time > 4.0]
    assert all(p.kind == MUSIC for p in ps), "the music plays through the ramp"
    end = ps[-1]
    assert end.bpm == pytest.approx(bpm1, rel=0.04), "the band's tempo has followed the ramp"


def test_bars_are_contiguous_and_full_bars_have_four_beats():
    dancer = SyntheticDancer(tempo=110.0, seed=32, noise=0.003)
    ps = plans(drive(Conductor(), dancer.frames(15.0)))
    for a, b in zip(ps, ps[1:]):
        assert b.start_sample == a.end_sample
    music = [p for p in ps if p.kind == MUSIC]
    assert music and all(p.beats == 4 and p.beat_offsets[0] == 0 for p in music)
    assert [p.bar for p in music] == list(range(len(music)))


def test_genre_and_prompt_changes_take_effect_on_the_next_bar():
    dancer = SyntheticDancer(tempo=120.0, seed=33, noise=0.003)
    c = Conductor(ConductorConfig(genre="house"))
    events = drive(c, dancer.frames(14.0), controls=[(10.0, Control(genre="krump", prompt="heavy drums"))])
    ps = plans(events)
    after = [p for p in ps if p.decided_at >= 10.0]
    before = [p for p in ps if p.decided_at < 10.0]
    assert all(p.genre == "house" for p in before)
    assert after and all(p.genre == "krump" and p.prompt == "heavy drums" for p in after)
    # the first krump segment starts within one bar (+ the lead) of the control
    assert after[0].start_time - 10.0 <= 60 / 120 * 4 + c.config.plan_lead_s + 1e-9
    assert any(isinstance(e, GenreChanged) and e.genre == "krump" for e in events)


def test_tempo_lock_holds_an_exact_tempo_while_the_dancer_changes():
    dancer = SyntheticDancer(tempo=TempoCurve([(0, 100), (8, 100), (8.01, 140)], ramp=False), seed=34)
    c = Conductor()
    ps = plans(drive(c, dancer.frames(20.0), controls=[(6.0, Control(tempo_lock=True, bpm=128.0))]))
    locked = [p for p in ps if p.decided_at > 6.0 and p.kind == MUSIC]
    assert len(locked) > 5
    assert all(p.bpm == pytest.approx(128.0, abs=1e-9) for p in locked[1:])
    lengths = {p.n_samples for p in locked[1:]}
    assert max(lengths) - min(lengths) <= 1          # exact clock, rounded once per beat


def test_stop_plays_silence_and_start_resumes_on_the_dance_grid():
    dancer = SyntheticDancer(tempo=120.0, seed=35, noise=0.003)
    c = Conductor()
    ps = plans(drive(c, dancer.frames(20.0), controls=[(8.0, Control(playing=False)),
                                                      (12.0, Control(playing=True))]))
    mid = [p for p in ps if 8.0 <= p.decided_at < 12.0]
    assert mid and all(p.kind == SILENCE for p in mid)
    late = [p for p in ps if p.decided_at >= 14.0]
    assert late and all(p.kind == MUSIC for p in late)


def test_frames_of_a_second_person_are_ignored_until_the_first_leaves():
    lead = SyntheticDancer(tempo=120.0, seed=36, person=1)
    other = SyntheticDancer(tempo=90.0, seed=37, person=2)
    c = Conductor()
    drive(c, lead.frames(6.0) + other.frames(6.0))
    assert c.person == 1 and c.frames_ignored > 300
    drive(c, other.frames(3.0, t0=6.0))
    assert c.person == 2


def test_nan_joints_and_bad_timestamps_never_stop_the_music():
    c = Conductor()
    joints = np.full((17, 4), math.nan)
    c.push_frame(SkeletonFrame(0.5, 0, Layout.COCO17, joints))
    c.push_frame(SkeletonFrame(math.nan, 0, Layout.COCO17, joints))
    dancer = SyntheticDancer(tempo=120.0, seed=38, missing=0.2, noise=0.003)
    ps = plans(drive(c, dancer.frames(12.0, t0=1.0)))
    assert c.frames_rejected == 1
    assert any(p.kind == MUSIC for p in ps)


def test_the_same_input_gives_the_same_plans():
    dancer = SyntheticDancer(tempo=115.0, seed=39, noise=0.003, jitter_s=0.004)
    frames = dancer.frames(10.0)
    a = [(p.start_sample, p.n_samples, p.beat_offsets, p.kind, p.genre) for p in plans(drive(Conductor(), frames))]
    b = [(p.start_sample, p.n_samples, p.beat_offsets, p.kind, p.genre) for p in plans(drive(Conductor(), frames))]
    assert a == b


def test_tempo_is_announced_when_it_locks():
    dancer = SyntheticDancer(tempo=100.0, seed=40, noise=0.003)
    events = drive(Conductor(), dancer.frames(10.0))
    locks = [e for e in events if isinstance(e, TempoChanged) and e.locked]
    assert locks and locks[-1].bpm == pytest.approx(100, rel=0.02)


def test_operator_taking_over_the_same_genre_is_announced():
    c = Conductor()
    events = c.advance(1.0)
    motion_genre = next(e for e in events if isinstance(e, GenreChanged))
    assert motion_genre.source == "motion"
    events = c.control(1.5, Control(genre=motion_genre.genre)) + c.advance(4.0)
    taken = [e for e in events if isinstance(e, GenreChanged)]
    assert taken and taken[0].genre == motion_genre.genre and taken[0].source == "operator"
