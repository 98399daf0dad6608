"""Style tracker: energy, sharpness and the heuristic genre estimate."""

import json
import math

import numpy as np
import pytest

from d2m.genres import GENRES
from d2m.style import StyleState, StyleTracker

RATE = 60.0

#: Standing COCO-17 pose, hip-centred, in torso lengths (y down).
STANDING = np.array([
    [0.0, -1.45], [-0.07, -1.5], [0.07, -1.5], [-0.15, -1.45], [0.15, -1.45],   # head
    [-0.35, -1.0], [0.35, -1.0],                                                 # shoulders
    [-0.45, -0.5], [0.45, -0.5], [-0.5, 0.0], [0.5, 0.0],                        # elbows, wrists
    [-0.2, 0.0], [0.2, 0.0],                                                     # hips
    [-0.22, 0.8], [0.22, 0.8], [-0.22, 1.6], [0.22, 1.6],                        # knees, ankles
])
ARMS, LEGS, UPPER = [7, 8, 9, 10], [13, 14, 15, 16], [0, 1, 2, 3, 4, 5, 6]


def wave(kind, phase):
    if kind == "sine":
        return np.sin(phase)
    if kind == "triangle":
        return (2 / np.pi) * np.arcsin(np.sin(phase))
    if kind == "square":
        return np.sign(np.sin(phase))
    raise ValueError(kind)


def poses(secs, freq=1.0, arms=0.4, legs=0.2, upper=0.1, kind="sine", vertical=0.3, t0=0.0):
    """(t, pose) pairs: the standing pose with joint groups moved by a periodic wave."""
    direction = np.array([1.0 - vertical, vertical])
    for i in range(int(round(secs * RATE))):
        t = t0 + i / RATE
        w = wave(kind, 2 * np.pi * freq * t)
        p = STANDING.copy()
        p[ARMS] += arms * w * direction
        p[LEGS] += legs * w * direction
        p[UPPER] += upper * w * direction
        yield t, p


def run(tracker=None, **kw) -> StyleTracker:
    tracker = tracker or StyleTracker()
    for t, p in poses(**kw):
        tracker.update(t, p)
    return tracker


def test_still_pose_has_no_energy_or_sharpness():
    s = run(secs=6, arms=0, legs=0, upper=0).state()
    assert s.energy < 0.01
    assert s.sharpness == 0.0


def test_faster_motion_has_more_energy():
    energies = [run(secs=6, freq=f).state().energy for f in (0.25, 0.5, 1.0, 2.0, 3.0)]
    assert all(a < b for a, b in zip(energies, energies[1:])), energies
    assert energies[0] < 0.2
    assert energies[-1] > 0.6
    assert all(0.0 <= e <= 1.0 for e in energies)


def test_energy_scale_casual_sway_vs_vigorous_dancing():
    casual = run(secs=6, freq=1.0, arms=0.3, legs=0.05, upper=0.1).state().energy
    vigorous = run(secs=6, freq=2.0, arms=0.9, legs=0.5, upper=0.3).state().energy
    assert 0.1 < casual < 0.35
    assert vigorous > 0.75


@pytest.mark.parametrize("kind", ["triangle", "square"])
def test_jerky_motion_is_sharper_than_smooth_sway(kind):
    smooth = run(secs=6, freq=1.0, kind="sine").state()
    jerky = run(secs=6, freq=1.0, kind=kind).state()
    assert abs(jerky.energy - smooth.energy) < 0.1          # comparable energy
    assert smooth.sharpness < 0.1
    assert jerky.sharpness > smooth.sharpness + 0.5


def test_genre_probs_sum_to_one_and_are_stable():
    tracker = StyleTracker()
    previous = None
    for t, p in poses(secs=12, freq=2.0, arms=0.7, legs=0.3):
        tracker.update(t, p)
        s = tracker.state()
        assert len(s.genre_probs) == len(GENRES)
        assert math.isclose(sum(s.genre_probs), 1.0, abs_tol=1e-9)
        assert min(s.genre_probs) >= 0.0
        assert s.genre == GENRES[int(np.argmax(s.genre_probs))]
        assert 0.0 <= s.genre_confidence <= 1.0
        if previous is not None:
            assert max(abs(a - b) for a, b in zip(s.genre_probs, previous)) < 0.01
        previous = s.genre_probs
    assert s.genre_confidence > 0.1          # it did settle on something


def test_arm_heavy_and_leg_heavy_motion_give_different_genres():
    arm = run(secs=20, freq=2.0, arms=0.6, legs=0.0, upper=0.05).state()
    leg = run(secs=20, freq=2.0, arms=0.05, legs=0.5, upper=0.05).state()
    l1 = sum(abs(a - b) for a, b in zip(arm.genre_probs, leg.genre_probs))
    assert l1 > 0.5
    assert arm.genre != leg.genre
    i_waack, i_house = GENRES.index("waack"), GENRES.index("house")
    assert arm.genre_probs[i_waack] > leg.genre_probs[i_waack]
    assert leg.genre_probs[i_house] > arm.genre_probs[i_house]


def test_nan_joints_do_not_break_it():
    rng = np.random.default_rng(5)
    clean = StyleTracker()
    holey = StyleTracker()
    upper_body_only = StyleTracker()
    for t, p in poses(secs=8, freq=1.5):
        clean.update(t, p)
        q = p.copy()
        q[rng.random(17) < 0.3] = np.nan                 # 30 % dropout
        holey.update(t, q)
        r = p.copy()
        r[LEGS] = np.nan                                 # webcam framing: no legs
        upper_body_only.update(t, r)
    for tracker in (holey, upper_body_only):
        s = tracker.state()
        assert all(math.isfinite(v) for v in (s.energy, s.sharpness, s.genre_confidence))
        assert math.isclose(sum(s.genre_probs), 1.0, abs_tol=1e-9)
        assert s.energy > 0.2
    assert abs(holey.state().energy - clean.state().energy) < 0.1
    assert math.isnan(upper_body_only.features()["arm_share"])


def test_tracking_glitches_are_not_read_as_hits():
    clean, glitchy = StyleTracker(), StyleTracker()
    for i, (t, p) in enumerate(poses(secs=8, freq=1.0)):
        clean.update(t, p)
        if i % 90 == 45:
            p = p.copy()
            p[9] += 5.0                                  # the left wrist jumps for one frame
        glitchy.update(t, p)
    assert glitchy.state().sharpness < 0.1
    assert abs(glitchy.state().energy - clean.state().energy) < 0.03


def test_frames_without_joints_or_going_back_in_time_change_nothing():
    tracker = run(secs=5, freq=2.0)
    before = tracker.state()
    tracker.update(5.0, np.full((17, 2), np.nan))
    tracker.update(4.0, STANDING)                        # earlier than the last frame
    tracker.update(float("nan"), STANDING)
    tracker.update(5.1, np.zeros((33, 2)))               # wrong shape
    assert tracker.state() == before


def test_window_forgets_and_still_dancer_keeps_genre():
    tracker = run(secs=20, freq=2.0, arms=0.6, legs=0.0, upper=0.05)
    danced = tracker.state()
    assert danced.energy > 0.3
    run(tracker, secs=1, arms=0, legs=0, upper=0, t0=20.0)
    stopped = tracker.state()
    run(tracker, secs=5, arms=0, legs=0, upper=0, t0=21.0)
    still = tracker.state()
    assert still.energy < 0.01                           # the 4 s window moved on
    assert still.genre_probs == stopped.genre_probs      # frozen while still
    assert still.genre == danced.genre
    assert still.genre_probs == pytest.approx(danced.genre_probs, abs=0.03)


def test_running_sums_do_not_drift():
    long_run = run(secs=40, freq=1.3, kind="triangle")
    short = run(secs=6, freq=1.3, kind="triangle", t0=34.0)
    f_long, f_short = long_run.features(), short.features()
    for key in ("mean_speed", "peakiness", "arm_share", "vertical_share", "lowness"):
        assert f_long[key] == pytest.approx(f_short[key], rel=1e-6, abs=1e-9), key


def test_deterministic_and_serialisable():
    a, b = run(secs=5, freq=1.7, kind="square"), run(secs=5, freq=1.7, kind="square")
    assert a.state() == b.state()
    d = json.loads(json.dumps(a.state().to_dict()))
    assert set(d["genre_probs"]) == set(GENRES)
    assert d["genre"] in GENRES
    assert isinstance(a.state(), StyleState)


def test_rejects_bad_window():
    with pytest.raises(ValueError, match="window_s"):
        StyleTracker(window_s=0)
    with pytest.raises(ValueError, match="rate"):
        StyleTracker(rate=float("nan"))
