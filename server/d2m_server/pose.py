"""Pose estimation from images with MediaPipe Pose (the optional camera stack).

OpenCV and MediaPipe are an optional extra (``pip install -e .[camera]``).
Nothing here imports them at module import time: :func:`require_camera_stack`
does, and turns a missing package into :class:`CameraStackMissing` with the
exact command to run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from d2m.skeleton import Layout, SkeletonFrame, sanitize

#: MediaPipe Pose model: 0 = lite (fastest), 1 = full (default), 2 = heavy.
MODEL_COMPLEXITY = 1
#: Minimum person-detector score for a new person to be picked up.
MIN_DETECTION_CONFIDENCE = 0.5
#: Minimum landmark-tracking score before MediaPipe re-runs the person detector.
MIN_TRACKING_CONFIDENCE = 0.5
#: Joints in a MediaPipe Pose result.
N_LANDMARKS = Layout.MEDIAPIPE33.n_joints

INSTALL_HINT = (
    "install the camera extra: pip install -e '.[camera]' "
    "(that is opencv-python-headless and mediapipe==0.10.21, with numpy<2)"
)


#: Landmark model file MediaPipe loads for each model_complexity. Only the full model (1)
#: ships in the mediapipe wheel; MediaPipe downloads the others from the internet on first use.
MODEL_FILES = {0: "pose_landmark_lite.tflite", 1: "pose_landmark_full.tflite",
               2: "pose_landmark_heavy.tflite"}


class CameraStackMissing(ImportError):
    """OpenCV or MediaPipe is not installed; the message says what to install."""


class PoseModelMissing(RuntimeError):
    """The landmark model for the chosen model_complexity is not on disk; the message says what to do."""


def _quiet_native_logs() -> None:
    # MediaPipe / TFLite print several INFO/WARNING lines per graph to stderr.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def require_cv2() -> Any:
    """Import and return ``cv2``; raise :class:`CameraStackMissing` if it is not installed."""
    try:
        import cv2  # noqa: PLC0415 (optional dependency)
    except ImportError as exc:
        raise CameraStackMissing(
            f"Camera and video input need OpenCV, which is not installed ({exc}); {INSTALL_HINT}."
        ) from None
    return cv2


def require_camera_stack() -> tuple[Any, Any]:
    """Import and return ``(cv2, mediapipe)``; raise :class:`CameraStackMissing` naming what to install."""
    cv2 = require_cv2()
    _quiet_native_logs()
    try:
        import mediapipe  # noqa: PLC0415 (optional dependency)
        _ = mediapipe.solutions.pose
    except (ImportError, AttributeError) as exc:
        raise CameraStackMissing(
            f"Camera and video input need MediaPipe Pose, which is not available ({exc}); {INSTALL_HINT}."
        ) from None
    return cv2, mediapipe


def check_pose_model(mediapipe, model_complexity: int) -> Path:
    """Path of the landmark model for ``model_complexity``; :class:`PoseModelMissing` if it is absent.

    MediaPipe would otherwise try to download it when the first frame arrives
    (and fail with a network error where there is no internet).
    """
    path = Path(mediapipe.__file__).parent / "modules" / "pose_landmark" / MODEL_FILES[model_complexity]
    if not path.is_file():
        raise PoseModelMissing(
            f"MediaPipe Pose model_complexity={model_complexity} needs {path.name}, which is not in "
            f"the mediapipe wheel (only model_complexity=1 is) and is downloaded from "
            f"storage.googleapis.com on first use. Use model_complexity=1, or fetch it once on a "
            f"machine with internet access: python -c \"import mediapipe as mp; "
            f"mp.solutions.pose.Pose(model_complexity={model_complexity})\""
        )
    return path


def landmarks_to_joints(landmarks) -> np.ndarray:
    """MediaPipe ``pose_landmarks`` -> ``(33, 4)`` array of x, y, z, confidence (visibility).

    x and y are normalised image coordinates (y down), z is MediaPipe's relative
    depth (hips at 0, same scale as x). Low-visibility joints are marked missing
    by :func:`d2m.skeleton.sanitize`.
    """
    joints = np.array([(p.x, p.y, p.z, p.visibility) for p in landmarks.landmark], dtype=np.float64)
    if joints.shape != (N_LANDMARKS, 4):
        raise ValueError(f"expected {N_LANDMARKS} landmarks, got {joints.shape[0]}")
    return sanitize(joints)


class PoseEstimator:
    """One MediaPipe Pose tracker for one video stream (not thread-safe: use from one thread).

    ``detect`` takes a BGR image (as OpenCV delivers it) and returns the
    ``(33, 4)`` joints of the person found, or ``None`` when there is none.
    Frames must be fed in time order: MediaPipe tracks between frames.
    """

    def __init__(self, *, model_complexity: int = MODEL_COMPLEXITY,
                 min_detection_confidence: float = MIN_DETECTION_CONFIDENCE,
                 min_tracking_confidence: float = MIN_TRACKING_CONFIDENCE,
                 static_images: bool = False):
        if model_complexity not in (0, 1, 2):
            raise ValueError(f"model_complexity must be 0, 1 or 2, got {model_complexity}")
        self._cv2, mp = require_camera_stack()
        check_pose_model(mp, model_complexity)
        self.model_complexity = model_complexity
        self._pose = mp.solutions.pose.Pose(
            static_image_mode=static_images,
            model_complexity=model_complexity,
            smooth_landmarks=True,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        """Joints ``(33, 4)`` of the person in ``bgr`` (H, W, 3 uint8), or ``None`` if no person."""
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.size == 0:
            raise ValueError("expected a colour image of shape (H, W, 3)")
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        rgb.flags.writeable = False
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        return landmarks_to_joints(result.pose_landmarks)

    def frame(self, bgr: np.ndarray, t: float, person: int = 0) -> SkeletonFrame | None:
        """A MediaPipe-33 :class:`SkeletonFrame` at time ``t`` for ``bgr``, or ``None`` if no person."""
        joints = self.detect(bgr)
        if joints is None:
            return None
        return SkeletonFrame(float(t), person, Layout.MEDIAPIPE33, joints)

    def close(self) -> None:
        """Release MediaPipe's graph (idempotent)."""
        pose, self._pose = self._pose, None
        if pose is not None:
            pose.close()

    def __enter__(self) -> "PoseEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
