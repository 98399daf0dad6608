"""One Euro filter and pose smoother."""

import math

import numpy as np
import pytest

from d2m.smoothing import OneEuroFilter, PoseSmoother, smoothing_factor

RATE = 60.0


def test_reduces_jitter_on_a_still_point():
    rng = np.random.default_rng(1)
    f = OneEuroFilter()
    noisy = 100.0 + rng.normal(0.0, 2.0, size=(1200, 2))     # pixels, detector jitter
    out = np.array([f(i / RATE, x) for i, x in enumerate(noisy)])
    settled = slice(120, None)
    assert out[settled].var(axis=0).max() < 0.1 * noisy[settled].var(axis=0).min()
    assert np.abs(out[settled].mean(axis=0) - 100.0).max() < 0.5


def test_beta_cuts_lag_on_fast_moves():
    speed = 500.0                                               # pixels/s
    lags = {}
    for beta in (0.0, 0.05):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        for i in range(120):
            t = i / RATE
            y = f(t, np.array([speed * t]))
        lags[beta] = speed * t - float(y[0])
    # beta = 0 is a plain low-pass: steady lag = speed * tau exactly.
    tau = 1.0 / (2 * math.pi * 1.0)
    assert lags[0.0] == pytest.approx(speed * tau, rel=0.02)
    assert lags[0.05] < 0.1 * lags[0.0]


def test_first_value_is_returned_as_is():
    f = OneEuroFilter()
    assert np.array_equal(f(0.0, [3.0, -2.0]), [3.0, -2.0])


def test_nan_entries_pass_through_and_restart_cleanly():
    rng = np.random.default_rng(2)
    both = OneEuroFilter(beta=0.0)
    alone = OneEuroFilter(beta=0.0)
    for i in range(60):
        t = i / RATE
        x = np.array([rng.normal(), 5.0 + rng.normal()])
        if 20 <= i < 40:
            x[1] = np.nan
        if i >= 40:
            x[1] = 50.0 + 0.1 * i - 4.0     # the entry comes back somewhere else (50.0 at i=40)
        out = both(t, x)
        ref = alone(t, x[:1])
        assert out[0] == pytest.approx(ref[0])       # other entries unaffected
        if 20 <= i < 40:
            assert math.isnan(out[1])
        if i == 40:
            assert out[1] == 50.0           # no blending with the stale value
        if i > 40:
            assert 49.0 < out[1] < 52.0     # smoothing resumed from the new value
            assert out[1] < x[1]            # ... and is a smoothed (lagging) value


def test_irregular_timestamps():
    rng = np.random.default_rng(3)
    # Ramp sampled at random intervals: a plain low-pass lags by exactly speed * tau.
    f = OneEuroFilter(min_cutoff=2.0, beta=0.0)
    t = 0.0
    for _ in range(400):
        t += rng.uniform(0.005, 0.05)
        y = f(t, np.array([3.0 * t]))
    assert 3.0 * t - y[0] == pytest.approx(3.0 / (2 * math.pi * 2.0), rel=1e-3)
    # Jitter is still removed with irregular frames.
    g = OneEuroFilter()
    t, outs, ins = 0.0, [], []
    for _ in range(800):
        t += rng.uniform(0.005, 0.05)
        x = rng.normal(0.0, 1.0)
        ins.append(x)
        outs.append(g(t, [x])[0])
    assert np.var(outs[100:]) < 0.2 * np.var(ins[100:])
    # After a long gap the new value dominates.
    y = g(t + 30.0, [40.0])
    assert y[0] > 39.0
    assert smoothing_factor(30.0, 1.0) > 0.99


def test_non_increasing_timestamp_returns_last_output_and_keeps_state():
    a, b = OneEuroFilter(), OneEuroFilter()
    for i in range(10):
        a(i / RATE, [float(i)])
        b(i / RATE, [float(i)])
    last = a(10 / RATE, [10.0])
    b(10 / RATE, [10.0])
    assert np.array_equal(a(10 / RATE, [99.0]), last)
    assert np.array_equal(a(5 / RATE, [-99.0]), last)
    assert np.array_equal(a(11 / RATE, [11.0]), b(11 / RATE, [11.0]))


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroFilter(beta=-1.0)


def test_pose_smoother_smooths_and_resets():
    rng = np.random.default_rng(4)
    base = rng.uniform(-1.5, 1.5, size=(17, 2))
    sm = PoseSmoother()
    outs, ins = [], []
    for i in range(600):
        pose = base + rng.normal(0.0, 0.02, size=(17, 2))
        pose[3] = np.nan                               # an ear never seen
        ins.append(pose)
        outs.append(sm(i / RATE, pose))
    outs, ins = np.array(outs), np.array(ins)
    assert np.isnan(outs[:, 3]).all()
    keep = [j for j in range(17) if j != 3]
    assert outs[60:, keep].var(axis=0).mean() < 0.1 * ins[60:, keep].var(axis=0).mean()
    sm.reset()
    fresh = base + 1.0
    assert np.allclose(sm(100.0, fresh), fresh)       # first value after reset passes as is
    with pytest.raises(ValueError, match="17, 2"):
        sm(101.0, np.zeros((33, 2)))
