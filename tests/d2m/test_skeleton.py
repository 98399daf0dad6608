import json
import math

import numpy as np
import pytest

from d2m.skeleton import (MEDIAPIPE33_NAMES, MEDIAPIPE33_TO_COCO17, InvalidFrame, Layout,
                          SkeletonFrame, frame_from_json, normalise)
from d2m.dancer import STANDING_COCO17


def test_mediapipe_maps_onto_coco_joint_by_joint():
    assert [MEDIAPIPE33_NAMES[i] for i in MEDIAPIPE33_TO_COCO17][:3] == ["nose", "left_eye", "right_eye"]
    values = np.arange(33 * 4, dtype=float) / 200.0
    values[3::4] = 0.9
    f = SkeletonFrame.from_values(1.0, 0, "mediapipe33", values)
    coco = f.to_coco17()
    assert coco.layout is Layout.COCO17 and coco.joints.shape == (17, 4)
    np.testing.assert_allclose(coco.joints[5], f.joints[11])   # left shoulder


def test_nan_and_low_confidence_joints_are_missing_not_errors():
    values = np.full((17, 3), 0.5)
    values[3] = [math.nan, 0.2, 0.9]
    values[4] = [0.1, math.inf, 0.9]
    values[5] = [0.1, 0.1, 0.01]
    f = SkeletonFrame.from_values(0.0, 0, "coco17", values.reshape(-1), dims=3)
    assert list(np.flatnonzero(~f.valid)) == [3, 4, 5]
    with pytest.raises(InvalidFrame, match="needs 17 joints"):
        SkeletonFrame.from_values(0.0, 0, "coco17", [0.1] * 10)


def test_normalise_centres_hips_and_scales_by_torso_regardless_of_distance():
    near = np.column_stack([STANDING_COCO17, np.zeros(17), np.ones(17)])
    far = near.copy()
    far[:, 0:2] = 0.5 + (near[:, 0:2] - 0.5) * 0.5
    a = normalise(SkeletonFrame(0, 0, Layout.COCO17, near))
    b = normalise(SkeletonFrame(0, 0, Layout.COCO17, far))
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose((a[11] + a[12]) / 2, [0, 0], atol=1e-9)


def test_json_line_round_trip_keeps_missing_joints_missing():
    joints = np.column_stack([STANDING_COCO17, np.zeros(17), np.ones(17)])
    joints[2, :] = [math.nan, math.nan, 0, 0]
    f = SkeletonFrame(2.5, 7, Layout.COCO17, joints)
    line = f.to_json()
    assert "NaN" not in line
    g = frame_from_json(json.loads(line))
    assert g.t == 2.5 and g.person == 7 and not g.valid[2] and g.valid.sum() == 16
    with pytest.raises(InvalidFrame):
        frame_from_json({"t": 1, "joints": [[1, 2, 3, 4, 5]]})
