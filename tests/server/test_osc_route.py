"""Routing OSC messages to skeleton frames, controls and status requests."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from d2m.control import AUTO, MAX_PROMPT_CHARS, Control
from d2m.genres import GENRES
from d2m.skeleton import Layout
from d2m_server.osc_codec import IMPULSE, OscMessage
from d2m_server.osc_route import INPUT_ADDRESSES, MAX_DETAIL_CHARS, ROUTE_ERRORS, route


def r(address: str, *args, t: float = 1.5):
    return route(OscMessage(address, list(args)), t)


def coco_values(dims: int) -> list[float]:
    """17 joints with x = j/100, y = j/50 (+ z = 0.1, conf = 0.9 as dims allow)."""
    out = []
    for j in range(17):
        row = [j / 100, j / 50]
        if dims == 4:
            row += [0.1, 0.9]
        elif dims == 3:
            row += [0.9]
        out += row
    return out


# ---------------------------------------------------------------- /d2m/pose

@pytest.mark.parametrize("dims", [2, 3, 4])
def test_d2m_pose_infers_dims_from_the_count(dims):
    res = r("/d2m/pose", 3, "coco17", *coco_values(dims), t=2.25)
    assert res.error is None and res.control is None
    [frame] = res.frames
    assert (frame.t, frame.person, frame.layout) == (2.25, 3, Layout.COCO17)
    np.testing.assert_allclose(frame.joints[:, 0], np.arange(17) / 100)
    np.testing.assert_allclose(frame.joints[:, 1], np.arange(17) / 50)
    np.testing.assert_allclose(frame.joints[:, 2], 0.1 if dims == 4 else 0.0)
    np.testing.assert_allclose(frame.joints[:, 3], 1.0 if dims == 2 else 0.9)


def test_d2m_pose_mediapipe33_and_float_person_from_touchdesigner():
    values = [0.5, 0.25, 0.0, 1.0] * 33
    [frame] = r("/d2m/pose", 2.0, "mediapipe33", *values).frames
    assert frame.person == 2 and frame.layout is Layout.MEDIAPIPE33 and frame.joints.shape == (33, 4)
    assert frame.to_coco17().joints.shape == (17, 4)


def test_d2m_pose_nan_and_nil_joints_are_missing_not_errors():
    values = coco_values(3)
    values[0] = math.nan          # joint 0 x
    values[3] = None              # joint 1 x as OSC nil
    res = r("/d2m/pose", 0, "coco17", *values)
    assert res.error is None
    [frame] = res.frames
    assert list(frame.valid[:3]) == [False, False, True]


@pytest.mark.parametrize("args, error, words", [
    ((0, "coco17", *([0.5] * 50)), "bad_args", "34, 51 or 68"),
    ((0, "body25", *([0.5] * 34)), "bad_args", "coco17"),
    ((0, 17, *([0.5] * 34)), "bad_args", "layout must be a string"),
    (("zero", "coco17", *([0.5] * 34)), "bad_args", "person must be a number"),
    ((math.nan, "coco17", *([0.5] * 34)), "bad_value", "finite"),
    ((-1, "coco17", *([0.5] * 34)), "bad_value", "person"),
    ((1.5, "coco17", *([0.5] * 34)), "bad_value", "whole number"),
    ((0, "coco17", *(["x"] * 34)), "bad_args", "joint value 0"),
    ((0, "coco17"), "bad_args", "joint values"),
])
def test_d2m_pose_rejects_bad_arguments_with_a_reason(args, error, words):
    res = r("/d2m/pose", *args)
    assert res.frames == [] and res.error == error and words in res.detail
    assert res.address == "/d2m/pose"


def test_non_finite_timestamp_is_a_bad_value():
    res = r("/d2m/pose", 0, "coco17", *coco_values(2), t=math.inf)
    assert res.error == "bad_value" and res.frames == []


# ---------------------------------------------------------------- /mediapipe/pose

def mediapipe_pose(offset: float) -> list[float]:
    return [v for k in range(33) for v in ((k + offset) / 100, 0.5, -0.2, 0.8)]


def test_mediapipe_osc_one_pose():
    res = r("/mediapipe/pose", 1, *mediapipe_pose(0))
    [frame] = res.frames
    assert frame.layout is Layout.MEDIAPIPE33 and frame.person == 0
    np.testing.assert_allclose(frame.joints[:, 0], np.arange(33) / 100)
    np.testing.assert_allclose(frame.joints[:, 2], -0.2)        # z kept
    np.testing.assert_allclose(frame.joints[:, 3], 0.8)         # visibility -> confidence


def test_mediapipe_osc_count_as_landmarks_and_several_poses():
    [frame] = r("/mediapipe/pose", 33, *mediapipe_pose(0)).frames
    assert frame.person == 0
    frames = r("/mediapipe/pose", 2, *mediapipe_pose(0), *mediapipe_pose(1)).frames
    assert [f.person for f in frames] == [0, 1]
    assert frames[1].joints[0, 0] == pytest.approx(0.01)


def test_mediapipe_osc_zero_means_nobody_in_view():
    res = r("/mediapipe/pose", 0)
    assert res.error is None and res.frames == []


@pytest.mark.parametrize("args", [(), (1, *([0.5] * 100)), (2, *mediapipe_pose(0)), ("one",),
                                  (0, *mediapipe_pose(0))])
def test_mediapipe_osc_wrong_counts(args):
    res = r("/mediapipe/pose", *args)
    assert res.error == "bad_args" and res.frames == []


# ---------------------------------------------------------------- /poses/arr (PoseOSC)

def poseosc_pose(x0: float) -> list[float]:
    out = [0.95]                                     # pose score
    for k in range(17):
        out += [x0 + 10 * k, 240 + k, 0.7]           # pixels
    return out


def test_poseosc_pixels_are_normalised_by_width_and_height():
    res = r("/poses/arr", 640, 480, 2, *poseosc_pose(0), *poseosc_pose(320))
    assert res.error is None
    a, b = res.frames
    assert (a.person, b.person) == (0, 1) and a.layout is Layout.COCO17
    np.testing.assert_allclose(a.joints[:, 0], (10 * np.arange(17)) / 640)
    np.testing.assert_allclose(b.joints[:, 0], (320 + 10 * np.arange(17)) / 640)
    np.testing.assert_allclose(a.joints[:, 1], (240 + np.arange(17)) / 480)
    np.testing.assert_allclose(a.joints[:, 3], 0.7)


def test_poseosc_integer_coordinates_from_osc_js_and_no_poses():
    values = [0] + [v for k in range(17) for v in (64, 48, 1)]      # osc-js sends whole numbers as ints
    [frame] = r("/poses/arr", 640, 480, 1, *values).frames
    np.testing.assert_allclose(frame.joints[:, :2], [[0.1, 0.1]] * 17)
    assert r("/poses/arr", 640, 480, 0).frames == [] and r("/poses/arr", 640, 480, 0).error is None


@pytest.mark.parametrize("args, error", [
    ((640, 480, 1, *([1.0] * 51)), "bad_args"),
    ((640, 480, 2, *poseosc_pose(0)), "bad_args"),
    ((0, 480, 1, *poseosc_pose(0)), "bad_value"),
    ((math.inf, 480, 1, *poseosc_pose(0)), "bad_value"),
    ((640, 480), "bad_args"),
    ((640, 480, -1), "bad_args"),
])
def test_poseosc_rejects(args, error):
    assert r("/poses/arr", *args).error == error


# ---------------------------------------------------------------- controls

def test_genre_by_name_alias_index_and_auto():
    assert r("/d2m/genre", "house").control == Control(genre="house")
    assert r("/d2m/genre", "Breakdance").control == Control(genre="break")
    assert r("/d2m/genre", "middle", "hip-hop").control == Control(genre="middle_hiphop")  # Max words
    assert r("/d2m/genre", 5).control == Control(genre=GENRES[5])
    assert r("/d2m/genre", 2.0).control == Control(genre=GENRES[2])
    assert r("/d2m/genre", "Auto").control == Control(genre=AUTO)
    assert r("/d2m/genre", -1).control == Control(genre=AUTO)


@pytest.mark.parametrize("args, error", [
    (("polka",), "bad_value"), ((10,), "bad_value"), ((1.5,), "bad_value"), ((), "bad_args"),
    ((b"blob",), "bad_args"), ((math.nan,), "bad_value"),
])
def test_genre_rejects(args, error):
    res = r("/d2m/genre", *args)
    assert res.error == error and res.control is None


def test_prompt():
    assert r("/d2m/prompt", "dark rolling bass").control == Control(prompt="dark rolling bass")
    assert r("/d2m/prompt", "90s", "house", 120, "bpm").control == Control(prompt="90s house 120 bpm")
    assert r("/d2m/prompt", "").control == Control(prompt="")
    assert r("/d2m/prompt").control == Control(prompt="")
    assert r("/d2m/prompt", "x" * (MAX_PROMPT_CHARS + 1)).error == "bad_value"
    assert r("/d2m/prompt", None).error == "bad_args"


def test_tempo_lock_and_unlock():
    assert r("/d2m/tempo/lock").control == Control(tempo_lock=True)
    assert r("/d2m/tempo/lock", 124.5).control == Control(tempo_lock=True, bpm=124.5)
    assert r("/d2m/tempo/lock", 120).control == Control(tempo_lock=True, bpm=120.0)
    assert r("/d2m/tempo/lock", 500.0).error == "bad_value"
    assert r("/d2m/tempo/lock", math.nan).error == "bad_value"
    assert r("/d2m/tempo/lock", "fast").error == "bad_args"
    assert r("/d2m/tempo/lock", 120, 1).error == "bad_args"
    assert r("/d2m/tempo/unlock").control == Control(tempo_lock=False)


def test_volume():
    assert r("/d2m/volume", 0.25).control == Control(volume=0.25)
    assert r("/d2m/volume", 1).control == Control(volume=1.0)
    assert r("/d2m/volume", 1.5).error == "bad_value"
    assert r("/d2m/volume", math.nan).error == "bad_value"
    assert r("/d2m/volume").error == "bad_args"
    assert r("/d2m/volume", True).error == "bad_args"
    assert r("/d2m/volume", "loud").error == "bad_args"


def test_start_stop_status_triggers_ignore_button_release():
    assert r("/d2m/start").control == Control(playing=True)
    assert r("/d2m/stop").control == Control(playing=False)
    assert r("/d2m/stop", 1.0).control == Control(playing=False)
    assert r("/d2m/start", IMPULSE).control == Control(playing=True)
    released = r("/d2m/stop", 0.0)                 # TouchDesigner button release
    assert released.control is None and released.error is None
    assert r("/d2m/status").status_request is True
    assert r("/d2m/status", True).status_request is True
    assert r("/d2m/status", False).status_request is False
    assert r("/d2m/start", "now").error == "bad_args"
    assert r("/d2m/start", 1, 2).error == "bad_args"


def test_unknown_address():
    res = r("/d2m/nope", 1)
    assert res.error == "unknown_address" and "/d2m/nope" in res.detail
    assert r("/d2m/*", 1).error == "unknown_address"      # no pattern matching


def test_every_address_survives_any_argument_list_without_warnings():
    odd_args = [[], [None], [IMPULSE], [b""], [[1, 2]], ["x"] * 3, [math.inf] * 200,
                [2**62], [True, False], [-1e308, 1e308], ["y" * 5000],
                [1e-300, 1e-300, 1, *([1e308] * 52)], [0, "coco17", *([2**62] * 34)]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for address in INPUT_ADDRESSES:
            for args in odd_args:
                res = route(OscMessage(address, list(args)), 0.0)
                assert res.error is None or res.error in ROUTE_ERRORS
                assert len(res.detail) <= MAX_DETAIL_CHARS
