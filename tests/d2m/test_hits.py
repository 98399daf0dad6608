"""The dancer's hits: detection, quantisation to the next 16th, and the accent in the audio."""

from __future__ import annotations

import numpy as np
import pytest

from d2m.conductor import Conductor, ConductorConfig
from d2m.dancer import SyntheticDancer
from d2m.hit_dancer import HitDancer, MarkedHit
from d2m.hits import (
    ACCENT_MARGIN_S, AccentGrid, AccentTrack, Hit, HitDetected, HitDetector, check_sensitivity, sixteenths,
    threshold_scale,
)
from d2m.plan import IDLE, MUSIC, SegmentPlan
from d2m.render import render_motion
from d2m.synth.accents import AccentBank

SR = 48000
FPS = 60.0


def detect(frames, sensitivity=0.5):
    det = HitDetector(sensitivity)
    out = []
    for f in frames:
        out += det.push(f)
    return out


def hit_dancer(bpm=120.0, kinds=("snap", "stomp"), strengths=(1.0,), n=8, noise=0.002, seed=1, start=4.0,
               every=2.1):
    base = SyntheticDancer(tempo=bpm, sharpness=0.9, noise=noise, seed=seed)
    hits = [MarkedHit(start + every * i, kinds[i % len(kinds)], strengths[i % len(strengths)]) for i in range(n)]
    return HitDancer(base, hits)


@pytest.mark.parametrize("bpm", [90.0, 120.0, 140.0])
def test_hits_are_found_at_the_marked_stops(bpm):
    dancer = hit_dancer(bpm)
    found = detect(dancer.frames(22.0))
    marks = dancer.hit_times()
    matched = [min(abs(move_t - m) for m in marks) for _t, move_t, _s in found]
    assert len(found) >= 7, f"{len(found)} of {len(marks)} hits found"
    assert len(found) <= len(marks), "no hits besides the marked ones"
    assert max(matched) <= 2.5 / FPS, "each hit is placed within two frames of its stop"
    for t, move_t, strength in found:
        assert strength >= 1.0
        assert 0.0 < t - move_t <= 4 / FPS, "detected within a few frames of the stop"


@pytest.mark.parametrize("sharpness", [0.0, 1.0])
@pytest.mark.parametrize("bpm", [96.0, 128.0])
def test_no_hits_on_steady_dancing_smooth_or_sharp(sharpness, bpm):
    dancer = SyntheticDancer(tempo=bpm, sharpness=sharpness, noise=0.003, seed=2, amplitude=1.5)
    assert detect(dancer.frames(20.0)) == []


def test_no_hits_on_a_still_dancer_with_pose_jitter():
    dancer = SyntheticDancer(tempo=120.0, amplitude=0.0, noise=0.004, seed=4)
    assert detect(dancer.frames(15.0), sensitivity=0.9) == []


def test_sensitivity_zero_is_off_and_more_sensitivity_finds_more():
    dancer = hit_dancer(strengths=(0.35, 0.5, 0.7, 1.0), kinds=("snap",), n=8, every=1.9)
    frames = dancer.frames(20.0)
    counts = [len(detect(frames, s)) for s in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    assert counts[0] == 0
    assert all(a <= b for a, b in zip(counts, counts[1:])), counts
    assert counts[-1] > counts[1], counts
    assert [threshold_scale(s) for s in (0.1, 0.5, 0.9)] == sorted([threshold_scale(s) for s in (0.1, 0.5, 0.9)],
                                                                   reverse=True)


def test_sensitivity_out_of_range_is_refused_clearly():
    with pytest.raises(ValueError, match="between 0 .off. and 1"):
        check_sensitivity(1.5)
    with pytest.raises(ValueError):
        ConductorConfig(hit_sensitivity=float("nan"))


def _bar(index, start, beat_len, kind=MUSIC, genre="house"):
    offsets = tuple(i * beat_len for i in range(4)) if kind == MUSIC else (0,)
    n = 4 * beat_len if kind == MUSIC else beat_len
    return SegmentPlan(index=index, kind=kind, start_sample=start, n_samples=n, sample_rate=SR, bar=index,
                       beat_offsets=offsets, bpm=60.0 * SR / beat_len, genre=genre)


def test_quantisation_to_the_next_16th_of_the_planned_beats():
    grid = AccentGrid()
    grid.add(_bar(0, 0, 24000, kind=IDLE))
    grid.add(_bar(1, 24000, 24000))                          # 120 BPM: a 16th is 6000 samples
    grid.add(_bar(2, 24000 + 96000, 25000))                  # a slightly slower bar
    assert grid.next_step(100) is None, "no accent while the idle pad plays"
    assert grid.next_step(24000)[0] == 24000                 # on a 16th: that 16th
    assert grid.next_step(24001)[0] == 30000                 # just after: the next one
    assert grid.next_step(24000 + 95999)[0] == 120000        # into the next bar's downbeat
    pos, plan = grid.next_step(120000 + 6251)
    assert pos == 120000 + 12500 and plan.index == 2
    assert grid.next_step(120000 + 100000 + 1) is None, "not planned that far"
    steps = sixteenths(_bar(5, 1000, 24001))
    assert len(steps) == 16 and steps[0] == 1000 and all(np.diff(steps) > 0)


def test_conductor_accent_lands_on_the_first_16th_after_detection_plus_margin():
    dancer = hit_dancer(bpm=120.0, n=3, start=6.0)
    cond = Conductor(ConductorConfig(genre="house"))
    plans, hits = [], []
    for f in dancer.frames(12.0):
        for ev in cond.push_frame(f):
            if isinstance(ev, HitDetected):
                hits.append(ev.hit)
            elif hasattr(ev, "plan"):
                plans.append(ev.plan)
    assert len(hits) >= 2
    for hit in hits:
        assert hit.accent_sample is not None and hit.genre == "house"
        earliest = hit.t + ACCENT_MARGIN_S
        bar = next(p for p in plans if p.start_sample <= hit.accent_sample < p.end_sample)
        assert bar.kind == MUSIC
        grid = [s for p in plans if p.kind == MUSIC for s in sixteenths(p)]
        expected = min(s for s in grid if s >= earliest * SR)
        assert hit.accent_sample == expected
        assert hit.accent_sample / SR - hit.move_t < 0.05 + ACCENT_MARGIN_S + 60 / 120 / 4 + 1e-6
    st = cond.status()["hits"]
    assert (st["sensitivity"], st["hits"], st["accents"], st["irregular_frames"], st["resyncs"]) == (0.5, len(hits), len(hits), 0, 0)


def test_frames_stamped_in_a_burst_make_no_hit():
    """A stall then a burst of frames (a network hiccup) would look like a jump then a stop: not a hit."""
    from dataclasses import replace

    dancer = SyntheticDancer(tempo=120.0, sharpness=1.0, noise=0.002, seed=6, amplitude=1.5)
    frames = dancer.frames(12.0)
    stamped = []
    for i, f in enumerate(frames):
        t = f.t
        if i % 150 in (140, 141, 142, 143, 144, 145):       # held back, then all arrive at once
            t = frames[i - i % 150 + 145].t + 0.0005 * (i % 150 - 140)
        stamped.append(replace(f, t=round(t, 6)))
    det = HitDetector(0.8)
    found = []
    for f in stamped:
        found += det.push(f)
    assert det.irregular_frames >= 5
    assert found == []


def test_accent_is_in_the_rendered_audio_at_its_sample_and_render_is_deterministic():
    from d2m.synth import SynthGenerator

    frames = hit_dancer(bpm=120.0, n=2, start=6.0).frames(10.0)
    with_hits = render_motion(frames, SynthGenerator(SR), ConductorConfig(genre="house"))
    again = render_motion(frames, SynthGenerator(SR), ConductorConfig(genre="house"))
    without = render_motion(frames, SynthGenerator(SR), ConductorConfig(genre="house", hit_sensitivity=0.0))
    assert np.array_equal(with_hits.audio, again.audio)
    assert without.hits == [] and len(with_hits.hits) >= 2
    diff = np.abs(with_hits.audio - without.audio).max(axis=1)
    changed = np.flatnonzero(diff > 0)
    starts = [h.accent_sample for h in with_hits.hits]
    assert changed[0] == starts[0], "nothing changes before the first accent"
    for s in starts:
        assert diff[s] > 0 and np.all(diff[s - 100:s] == 0), f"the accent starts exactly at {s}"
        # the accent is loud: its first 50 ms add clearly audible energy
        added = with_hits.audio[s:s + 2400] - without.audio[s:s + 2400]
        assert np.sqrt(np.mean(added ** 2)) > 0.02
    assert np.abs(with_hits.audio).max() <= 1.0


def test_blockwise_mixing_equals_mixing_at_once():
    bank = AccentBank(SR)
    rng = np.random.default_rng(0)
    music = rng.uniform(-0.9, 0.9, (SR * 4, 2)).astype(np.float32)
    hits = [Hit(t=0.1, move_t=0.05, strength=s, accent_sample=a, genre=g, index=i)
            for i, (a, s, g) in enumerate([(3000, 1.2, "house"), (3001, 3.0, "krump"), (50000, 2.0, "break"),
                                           (SR * 4 - 100, 1.0, "pop")])]
    whole = AccentTrack(bank)
    for h in hits:
        whole.add(h)
    once = whole.mix(music.copy(), 0)
    live = AccentTrack(bank)
    for h in hits:
        live.add(h)
    blocks = music.copy()
    for start in range(0, len(blocks), 480):
        live.mix(blocks[start:start + 480], start)
    assert np.array_equal(once, blocks)
    assert not np.array_equal(once, music)
    assert np.abs(once).max() <= 1.0
    assert live.status()["played"] == 4 and live.status()["pending"] == 1, "the last one rings on"


def test_an_accent_whose_sample_has_played_is_dropped_and_counted():
    track = AccentTrack(AccentBank(SR))
    track.mix(np.zeros((960, 2), np.float32), 0)
    late = Hit(t=0.0, move_t=0.0, strength=1.0, accent_sample=500, genre="house")
    assert track.add(late) is False
    assert track.add(Hit(t=0.0, move_t=0.0, strength=1.0, accent_sample=None)) is False
    assert track.status()["late"] == 1 and track.status()["scheduled"] == 0
