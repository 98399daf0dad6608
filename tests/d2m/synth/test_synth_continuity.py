"""Segments join without clicks: ringing notes and the pad carry across every boundary."""

from __future__ import annotations

import numpy as np
import pytest


SR = 48000


def _jumps(audio: np.ndarray) -> np.ndarray:
    return np.abs(np.diff(audio, axis=0)).max(axis=1)


def _boundaries(chunks) -> np.ndarray:
    return np.cumsum([len(c) for c in chunks])[:-1]


@pytest.mark.parametrize("genre", ["house", "krump", "ballet_jazz"])
def test_bar_boundaries_jump_no_more_than_beats_inside_bars(builder, render, genre):
    """Every bar starts with a drum hit, so compare with the hits on beats inside the bars."""
    b = builder(genre, energy=0.7).bars(8, 118.0)
    audio, chunks = render(b.plans)
    jumps = _jumps(audio)
    inside = [jumps[p.start_sample + o - 1: p.start_sample + o + 64].max()
              for p in b.plans for o in p.beat_offsets[1:]]
    at_bounds = [jumps[s - 1: s + 64].max() for s in _boundaries(chunks)]
    assert max(at_bounds) <= 1.25 * max(inside)


def test_silence_lets_notes_ring_out_then_is_exactly_zero(builder, render):
    b = builder("la_hiphop", energy=0.9, sharpness=0.0).bars(4, 100.0).silence(6.0, pieces=12)
    audio, chunks = render(b.plans)
    music_end = sum(len(c) for c in chunks[:4])
    tail = audio[music_end:]
    # rings on right after the stop (no cut) ...
    assert np.abs(tail[:2400]).max() > 0.01
    # ... without a jump at the stop itself ...
    before = _jumps(audio[music_end - 480: music_end]).max()
    assert _jumps(audio[music_end - 1: music_end + 1])[0] <= max(before, 0.02)
    # ... decays, and ends in exact digital silence (no denormal hiss, no pad left over).
    assert np.abs(tail[SR: 2 * SR]).max() < np.abs(tail[:SR]).max()
    assert not np.any(tail[5 * SR:])


def test_splitting_silence_differently_changes_nothing(builder, render):
    """What rings over from the music is carried exactly, however the stop is cut up."""
    whole, _ = render(builder("waack", energy=0.8).bars(3, 125.0).silence(2.0, pieces=1).plans)
    split, _ = render(builder("waack", energy=0.8).bars(3, 125.0).silence(2.0, pieces=7).plans)
    assert np.array_equal(whole, split)


def test_idle_pad_is_continuous_across_one_beat_segments(builder, render):
    b = builder("ballet_jazz").idle(24, bpm=97.0)
    audio, chunks = render(b.plans)
    steady = audio[2 * SR:]
    jumps = _jumps(audio)
    # a smooth pad: no sample step at a boundary stands out from its neighbourhood
    for s in _boundaries(chunks)[8:]:
        assert jumps[s - 1] <= 2.0 * jumps[s - 200: s + 200].mean() + 1e-4
    assert np.sqrt(np.mean(steady ** 2)) > 0.01


def test_idle_split_into_different_segments_is_the_same_pad(builder, render):
    a = builder("house").idle(8, bpm=120.0)
    b = builder("house").idle(16, bpm=240.0)  # same span in half-length segments
    audio_a, _ = render(a.plans)
    audio_b, _ = render(b.plans)
    assert audio_a.shape == audio_b.shape
    assert np.allclose(audio_a, audio_b, atol=1e-4)


@pytest.mark.parametrize("path", [("music", "idle"), ("idle", "music"), ("music", "silence"),
                                  ("silence", "music")])
def test_kind_changes_do_not_click(builder, render, path):
    b = builder("street_jazz", energy=0.6)
    for kind in path:
        if kind == "music":
            b.bars(2, 110.0)
        elif kind == "idle":
            b.idle(4, bpm=110.0)
        else:
            b.silence(1.0, pieces=2)
    audio, chunks = render(b.plans)
    jumps = _jumps(audio)
    switch = next(p.start_sample for p, q in zip(b.plans[1:], b.plans) if p.kind != q.kind)
    if path[1] == "music":  # entering music starts with a drum hit, like any beat inside a bar
        limit = max(jumps[p.start_sample + o - 1: p.start_sample + o + 64].max()
                    for p in b.plans if p.kind == "music" for o in p.beat_offsets[1:])
    else:  # everything else must continue smoothly from what was playing
        limit = 1.5 * jumps[switch - 480: switch - 1].max() + 1e-3
    assert jumps[switch - 1] <= limit


def test_ringing_notes_carry_over_bar_lines(builder, render):
    """Bars whose first beat comes late: nothing starts at the bar line, so any loss of the
    previous bar's ringing notes (a cut) would show as a sudden drop in level there."""
    b = builder("lock", energy=0.8, sharpness=0.0)
    beat = round(60.0 / 112.0 * SR)
    late = SR // 10
    for _ in range(6):
        b.segment("music", 4 * beat, [late + k * beat for k in range(4)], 112.0)
        b.bar += 1
    audio, chunks = render(b.plans)
    window = SR // 200  # 5 ms
    for s in _boundaries(chunks):
        before = np.sqrt(np.mean(audio[s - window: s] ** 2))
        after = np.sqrt(np.mean(audio[s: s + window] ** 2))
        assert 0.5 * before <= after <= 1.5 * before + 1e-4, (s, before, after)
