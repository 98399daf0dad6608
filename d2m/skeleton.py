"""Skeleton frames: joints, layouts and normalisation.

A :class:`SkeletonFrame` is one person's pose at one instant. Joints are an
``(J, 4)`` float array of ``x, y, z, confidence``; x and y are normalised
image coordinates (0..1, y down) and z is 0 when unknown. A joint that is
missing, NaN or infinite has confidence 0 and NaN coordinates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Layout(str, Enum):
    COCO17 = "coco17"
    MEDIAPIPE33 = "mediapipe33"

    @property
    def n_joints(self) -> int:
        return 17 if self is Layout.COCO17 else 33


COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

MEDIAPIPE33_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner",
    "right_eye", "right_eye_outer", "left_ear", "right_ear", "mouth_left",
    "mouth_right", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index",
    "right_index", "left_thumb", "right_thumb", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

#: For each COCO-17 joint, the MediaPipe-33 joint it comes from.
MEDIAPIPE33_TO_COCO17: tuple[int, ...] = tuple(
    MEDIAPIPE33_NAMES.index(name) for name in COCO17_NAMES
)

# COCO-17 indices used for normalisation.
L_SHOULDER, R_SHOULDER, L_HIP, R_HIP = 5, 6, 11, 12

#: Joints with confidence below this count as missing.
MIN_CONFIDENCE = 0.1
#: Decimals kept for times and joint values in the JSONL motion format.
JSON_DECIMALS = 6
#: Torso length assumed when shoulders or hips are missing (image units).
DEFAULT_TORSO = 0.25


class InvalidFrame(ValueError):
    """A frame whose shape or values cannot be a skeleton; the message says why."""


@dataclass(frozen=True, eq=False)
class SkeletonFrame:
    t: float                 #: session time of the pose (s)
    person: int              #: person id from the sender (0 for single-person rigs)
    layout: Layout
    joints: np.ndarray       #: (J, 4) float64: x, y, z, confidence

    @classmethod
    def from_values(cls, t: float, person: int, layout: Layout | str, values, dims: int = 4) -> "SkeletonFrame":
        """Build from flat values: ``J * dims`` numbers, dims 2 (x, y), 3 (x, y, conf) or 4 (x, y, z, conf).

        Non-finite coordinates mark the joint missing (confidence 0); they are
        never an error. A wrong count is an :class:`InvalidFrame`.
        """
        layout = Layout(layout)
        if not math.isfinite(t):
            raise InvalidFrame("timestamp is not finite")
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if dims not in (2, 3, 4):
            raise InvalidFrame(f"dims must be 2, 3 or 4, got {dims}")
        if arr.size != layout.n_joints * dims:
            raise InvalidFrame(
                f"{layout.value} needs {layout.n_joints} joints x {dims} values = "
                f"{layout.n_joints * dims} numbers, got {arr.size}"
            )
        arr = arr.reshape(layout.n_joints, dims)
        joints = np.zeros((layout.n_joints, 4), dtype=np.float64)
        joints[:, 0:2] = arr[:, 0:2]
        joints[:, 3] = 1.0
        if dims == 3:
            joints[:, 3] = arr[:, 2]
        elif dims == 4:
            joints[:, 2] = arr[:, 2]
            joints[:, 3] = arr[:, 3]
        return cls(float(t), int(person), layout, sanitize(joints))

    def quantized(self) -> "SkeletonFrame":
        """The frame exactly as its JSON line stores it (t and values to 6 decimals).

        The live server conducts with quantized frames so that rendering the
        motion recording reproduces the live run sample for sample.
        """
        return SkeletonFrame(round(self.t, JSON_DECIMALS), self.person, self.layout,
                             np.round(self.joints, JSON_DECIMALS))

    def to_coco17(self) -> "SkeletonFrame":
        """The same pose as COCO-17 (MediaPipe-33 joints are mapped; COCO-17 is returned as is)."""
        if self.layout is Layout.COCO17:
            return self
        return SkeletonFrame(self.t, self.person, Layout.COCO17,
                             self.joints[list(MEDIAPIPE33_TO_COCO17)].copy())

    @property
    def valid(self) -> np.ndarray:
        """Boolean mask of joints that are present."""
        return valid_mask(self.joints)

    def to_json(self) -> str:
        """One line of the JSONL motion format (missing coordinates written as null)."""
        rows = [[_num(v) for v in row] for row in self.joints.tolist()]
        return json.dumps({"t": round(self.t, JSON_DECIMALS), "person": self.person,
                           "layout": self.layout.value, "joints": rows},
                          separators=(",", ":"))


def _num(v: float):
    return None if not math.isfinite(v) else round(v, JSON_DECIMALS)


def sanitize(joints: np.ndarray) -> np.ndarray:
    """Mark joints with any non-finite value or low confidence as missing (NaN, confidence 0)."""
    joints = np.array(joints, dtype=np.float64, copy=True)
    bad = ~np.isfinite(joints).all(axis=1)
    joints[~np.isfinite(joints[:, 3]), 3] = 0.0
    bad |= joints[:, 3] < MIN_CONFIDENCE
    joints[bad, 0:3] = np.nan
    joints[bad, 3] = 0.0
    joints[~bad, 2] = np.where(np.isfinite(joints[~bad, 2]), joints[~bad, 2], 0.0)
    return joints


def valid_mask(joints: np.ndarray) -> np.ndarray:
    return (joints[:, 3] >= MIN_CONFIDENCE) & np.isfinite(joints[:, 0]) & np.isfinite(joints[:, 1])


def normalise(frame: SkeletonFrame) -> np.ndarray:
    """COCO-17 2D pose centred on the hips and scaled by torso length.

    Returns ``(17, 2)``; missing joints are NaN. If hips are missing the
    shoulders' centre minus one torso is used; if both are missing the
    frame's valid joints' mean is the centre. The torso is the distance from
    the shoulders' centre to the hips' centre (:data:`DEFAULT_TORSO` when
    unknown), so the result does not depend on distance to the camera.
    """
    j = frame.to_coco17().joints
    ok = valid_mask(j)
    xy = np.where(ok[:, None], j[:, 0:2], np.nan)
    hips = _centre(xy, ok, L_HIP, R_HIP)
    shoulders = _centre(xy, ok, L_SHOULDER, R_SHOULDER)
    if hips is not None and shoulders is not None:
        torso = float(np.hypot(*(shoulders - hips)))
        if not torso > 1e-4:
            torso = DEFAULT_TORSO
        centre = hips
    else:
        torso = DEFAULT_TORSO
        if hips is not None:
            centre = hips
        elif shoulders is not None:
            centre = shoulders + np.array([0.0, DEFAULT_TORSO])
        elif ok.any():
            centre = np.nanmean(xy[ok], axis=0)
        else:
            return np.full((17, 2), np.nan)
    return (xy - centre) / torso


def _centre(xy: np.ndarray, ok: np.ndarray, a: int, b: int) -> np.ndarray | None:
    if ok[a] and ok[b]:
        return (xy[a] + xy[b]) / 2
    if ok[a]:
        return xy[a].copy()
    if ok[b]:
        return xy[b].copy()
    return None


def frame_from_json(obj: dict) -> SkeletonFrame:
    """Parse one JSONL motion line (already decoded) into a frame; raises InvalidFrame."""
    try:
        t = float(obj["t"])
        person = int(obj.get("person", 0))
        layout = Layout(obj.get("layout", "coco17"))
        rows = obj["joints"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidFrame(f"not a motion frame: {exc}") from None
    if not isinstance(rows, list) or not rows:
        raise InvalidFrame("joints must be a non-empty list")
    dims = len(rows[0]) if isinstance(rows[0], list) else 0
    if dims not in (2, 3, 4) or any(not isinstance(r, list) or len(r) != dims for r in rows):
        raise InvalidFrame("joints must be a list of [x, y], [x, y, conf] or [x, y, z, conf]")
    flat = [math.nan if v is None else v for r in rows for v in r]
    try:
        return SkeletonFrame.from_values(t, person, layout, flat, dims=dims)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidFrame):
            raise
        raise InvalidFrame(f"joint values must be numbers: {exc}") from None
