"""The pure beat warp puts detected beats on the grid."""

from __future__ import annotations

import numpy as np

from d2m.musicgen.beatwarp import apply_warp, beat_lock, match_beats, warp_positions


def clicks(positions, n):
    x = np.zeros((n, 2), dtype=np.float32)
    for p in positions:
        x[int(round(p))] = 1.0
    return x


def peaks_of(audio):
    return np.flatnonzero(audio[:, 0] > 0.5)


def test_no_anchors_is_identity_plus_origin():
    src = np.random.default_rng(0).standard_normal((1000, 2)).astype(np.float32)
    out, anchors = beat_lock(src, [], [0, 250, 500, 750], 600, origin=100, period=250)
    assert anchors == []
    assert np.array_equal(out, src[100:700])


def test_off_grid_beats_land_on_the_grid():
    period = 1000
    targets = [0, 1000, 2000, 3000]
    origin = 500
    detected = [origin + t + d for t, d in zip(targets, (40, -60, 90, -30))]  # sloppy beats
    src = clicks(detected, 6000)
    out, anchors = beat_lock(src, detected, targets, 3500, origin=origin, period=period)
    assert len(anchors) == 4
    got = peaks_of(out)
    assert len(got) == 4
    assert np.all(np.abs(got - np.array(targets)) <= 1)


def test_beats_outside_tolerance_are_left_alone():
    pairs = match_beats([0.0, 700.0], [0.0, 1000.0], tolerance=200.0)
    assert pairs == [(0.0, 0.0)]


def test_each_detected_beat_is_used_once():
    pairs = match_beats([1000.0], [950.0, 1050.0], tolerance=200.0)
    assert len(pairs) == 1


def test_stretch_limit_drops_anchors_that_would_distort():
    # second anchor asks for 2x stretch: dropped, the map stays a shift
    pos = warp_positions([(0.0, 10.0), (100.0, 210.0)], 200, max_stretch=1.2)
    assert np.allclose(pos, np.arange(200) + 10.0)
    pos = warp_positions([(0.0, 10.0), (100.0, 120.0)], 200, max_stretch=1.2)
    assert np.isclose(pos[100], 120.0) and np.isclose(pos[50], 65.0)
    assert np.allclose(np.diff(pos[100:]), 1.0)


def test_apply_warp_interpolates_and_clamps():
    src = np.arange(10, dtype=np.float32)
    assert np.allclose(apply_warp(src, [0.5, 2.25, -3.0, 20.0]), [0.5, 2.25, 0.0, 9.0])
    stereo = np.stack([src, -src], axis=1)
    out = apply_warp(stereo, np.array([1.5]))
    assert out.shape == (1, 2) and np.allclose(out, [[1.5, -1.5]])
