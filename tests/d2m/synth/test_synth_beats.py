"""A beat tracker hears the plan's tempo and beats in the synth's music (librosa, as the e2e test does)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from d2m.genres import GENRES

SR = 48000
HOP = 512
#: Bars at the start that the tracker may spend locking on.
SKIP_BARS = 2
TEMPO_TOLERANCE = 0.02
BEAT_TOLERANCE_S = 0.05


def track(audio: np.ndarray, plans) -> tuple[float, np.ndarray, np.ndarray]:
    """librosa's tempo, its beat times after the first bars, and the plans' beat times there."""
    tempo, beats = librosa.beat.beat_track(y=audio.mean(axis=1), sr=SR, hop_length=HOP, units="time")
    grid = np.array([t for p in plans[SKIP_BARS:] for t in p.beat_times()])
    late = beats[beats >= grid[0] - BEAT_TOLERANCE_S]
    return float(np.atleast_1d(tempo)[0]), late, grid


def assert_on_the_grid(beats: np.ndarray, grid: np.ndarray):
    errors = np.array([np.min(np.abs(grid - b)) for b in beats])
    assert len(beats) >= 0.85 * len(grid), f"tracked {len(beats)} beats for {len(grid)} (half tempo?)"
    assert errors.max() <= BEAT_TOLERANCE_S, f"beat off the grid by {errors.max() * 1000:.0f} ms"


@pytest.mark.parametrize("bpm", [96.0, 120.0, 140.0])
@pytest.mark.parametrize("genre", GENRES)
def test_tempo_and_beats_match_the_plan(builder, render, genre, bpm):
    plans = builder(genre, energy=0.5).bars(12, bpm).plans
    audio, _ = render(plans)
    tempo, beats, grid = track(audio, plans)
    assert abs(tempo - bpm) <= TEMPO_TOLERANCE * bpm, f"{genre}: heard {tempo:.1f} BPM, planned {bpm}"
    assert_on_the_grid(beats, grid)


@pytest.mark.parametrize("genre,bpm", [("break", 96.0), ("krump", 140.0), ("middle_hiphop", 140.0),
                                       ("ballet_jazz", 96.0), ("la_hiphop", 140.0)])
@pytest.mark.parametrize("energy", [0.3, 1.0])
def test_sparse_and_dense_arrangements_keep_the_pulse(builder, render, genre, bpm, energy):
    plans = builder(genre, energy=energy, sharpness=1.0 - energy).bars(12, bpm).plans
    audio, _ = render(plans)
    tempo, beats, grid = track(audio, plans)
    assert abs(tempo - bpm) <= TEMPO_TOLERANCE * bpm, f"{genre}@{energy}: heard {tempo:.1f}, planned {bpm}"
    assert_on_the_grid(beats, grid)


@pytest.mark.parametrize("genre", ["house", "break", "street_jazz"])
def test_beats_follow_bars_of_changing_length(builder, render, genre):
    """The tempo follows the dancer and the planner corrects phase: bars stretch by up to 12 %."""
    stretch = [1.0, 1.12, 0.88, 1.05, 0.95, 1.1, 0.9, 1.0, 1.03, 0.97, 1.08, 0.92, 1.0, 1.0]
    plans = builder(genre, energy=0.6).bars(len(stretch), 118.0, stretch=stretch).plans
    audio, _ = render(plans)
    _, beats, grid = track(audio, plans)
    assert_on_the_grid(beats, grid)


def test_tempo_ramp_is_followed(builder, render):
    """A dancer speeding up from 100 to 125 BPM: tracked with librosa's time-varying tempo."""
    b = builder("pop", energy=0.6)
    for bpm in np.linspace(100.0, 125.0, 14):
        b.bars(1, float(bpm))
    audio, _ = render(b.plans)
    y = audio.mean(axis=1)
    env = librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP, aggregate=np.median)
    local_bpm = librosa.feature.tempo(onset_envelope=env, sr=SR, hop_length=HOP, aggregate=None)
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=SR, hop_length=HOP, bpm=local_bpm, units="time")
    grid = np.array([t for p in b.plans[SKIP_BARS:] for t in p.beat_times()])
    assert_on_the_grid(beats[beats >= grid[0] - BEAT_TOLERANCE_S], grid)
