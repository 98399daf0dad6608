"""Fixed rhythm features: directogram envelope, peaks, window fitting."""

from __future__ import annotations

import numpy as np

from d2m.musicgen.rhythm import (DEFAULT_WINDOW_FRAMES, directogram, fit_window, keypoint_features,
                                 pick_peaks, rhythm_window, window_frames)


def test_default_window_is_307_frames():
    assert window_frames(5.12) == DEFAULT_WINDOW_FRAMES == 307
    assert window_frames(4.0) == 240


def test_directogram_bins_velocity_by_direction():
    xy = np.zeros((3, 2, 2))
    xy[1, 0] = [1.0, 0.0]            # joint 0 moves right by 1
    xy[2, 1] = [0.0, -2.0]           # joint 1 moves up (negative y) by 2
    d = directogram(xy, bins=4)
    assert d.shape == (3, 4) and np.allclose(d[0], 0)
    assert np.isclose(d[1].sum(), 1.0) and np.isclose(d[2].sum(), 1.0 + 2.0)
    assert np.count_nonzero(d[2]) == 2


def test_missing_joints_contribute_nothing():
    xy = np.zeros((3, 1, 2))
    xy[1] = np.nan
    assert np.allclose(directogram(xy), 0)


def test_one_hit_per_beat_gives_one_peak_per_beat():
    # a fast move on each beat, a slow return: one kinetic onset per beat at 120 bpm
    t = np.arange(600) / 60.0
    phase = (t * 2.0) % 1.0
    hit = np.where(phase < 0.1, phase / 0.1, 1 - (phase - 0.1) / 0.9)
    xy = np.zeros((600, 17, 2))
    xy[..., 0] = hit[:, None] * np.linspace(1, 2, 17)
    env, peaks = keypoint_features(xy)
    assert env.shape == peaks.shape == (600,)
    where = np.flatnonzero(peaks)
    assert len(where) == 20
    assert np.all(np.diff(where) == 30)


def test_out_and_back_motion_has_an_onset_per_direction_change():
    t = np.arange(600) / 60.0
    swing = np.abs(np.sin(np.pi * 2.0 * t)) ** 4
    xy = np.zeros((600, 17, 2))
    xy[..., 0] = swing[:, None]
    _, peaks = keypoint_features(xy)
    assert int(peaks.sum()) == 40


def test_pick_peaks_ignores_flat_signal():
    assert pick_peaks(np.ones(100)).sum() == 0
    assert pick_peaks(np.zeros(100)).sum() == 0


def test_fit_window_keeps_the_newest_frames_without_stretching():
    x = np.arange(1, 11, dtype=float)
    assert fit_window(x, 4).tolist() == [7, 8, 9, 10]
    assert fit_window(x, 12).tolist() == [0, 0] + list(range(1, 11))


def test_fit_window_resamples_other_rates_keeping_peak_times():
    peaks = np.zeros(30)
    peaks[[0, 15, 29]] = 1                    # 30 Hz: t = 0, 0.5, 0.967 s
    out = fit_window(peaks, 60, rate=30.0)
    assert np.flatnonzero(out).tolist() == [0, 30, 58]


def test_rhythm_window_shapes_and_normalisation():
    env = np.linspace(0, 4, 100)
    w = rhythm_window(env, None, 307)
    assert w.shape == (2, 307) and w.dtype == np.float32
    assert np.isclose(w[1].max(), 1.0) and np.all(w[:, :207] == 0)
    assert np.array_equal(rhythm_window(None, None, 50), np.zeros((2, 50), np.float32))
