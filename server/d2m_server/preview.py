"""Preview of the camera input: skeleton, tempo and a beat pulse drawn over the frame.

:func:`draw_preview` is pure (returns a new image, the input is untouched).
:func:`encode_jpeg` gives bytes the web client can show; :class:`PreviewWindow`
shows frames in a desktop window when there is an X display and it works.
"""

from __future__ import annotations

import logging
import math
import os

import numpy as np

from d2m.skeleton import Layout, SkeletonFrame, valid_mask

from .pose import require_cv2

log = logging.getLogger("d2m.preview")

#: Bones drawn for a MediaPipe-33 skeleton (same pairs as mediapipe's POSE_CONNECTIONS).
MEDIAPIPE33_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28),
    (27, 29), (28, 30), (29, 31), (30, 32), (27, 31), (28, 32),
)
#: Bones drawn for a COCO-17 skeleton.
COCO17_EDGES: tuple[tuple[int, int], ...] = (
    (0, 1), (0, 2), (1, 3), (2, 4), (5, 6), (5, 7), (7, 9), (6, 8), (8, 10),
    (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16),
)
#: Colours (BGR).
BONE_COLOUR = (255, 200, 0)
JOINT_COLOUR = (0, 220, 255)
TEXT_COLOUR = (255, 255, 255)
PULSE_COLOUR = (60, 60, 255)
#: How fast the beat pulse fades over one beat (brightness = exp(-PULSE_DECAY * phase)).
PULSE_DECAY = 4.0
#: JPEG quality of preview images (0-100).
JPEG_QUALITY = 80


def _edges(layout: Layout) -> tuple[tuple[int, int], ...]:
    return MEDIAPIPE33_EDGES if layout is Layout.MEDIAPIPE33 else COCO17_EDGES


def draw_preview(image: np.ndarray, frame: SkeletonFrame | None, bpm: float | None,
                 beat_phase: float | None) -> np.ndarray:
    """A copy of ``image`` (BGR, H x W x 3 uint8) with the pose, BPM and a beat pulse drawn on it.

    ``frame`` may be ``None`` (no person: nothing drawn for the pose); ``bpm``
    ``None`` shows ``-- BPM``; ``beat_phase`` (0..1, 0 = on the beat) sets the
    pulse in the top-right corner: full and bright on the beat, fading over the
    beat; ``None`` draws only its outline.
    """
    cv2 = require_cv2()
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError("draw_preview needs a colour image of shape (H, W, 3)")
    out = np.ascontiguousarray(image, dtype=np.uint8).copy()
    h, w = out.shape[:2]
    unit = max(1, round(min(h, w) / 240))  # line width scales with the image

    if frame is not None:
        ok = valid_mask(frame.joints)
        pts = np.zeros((len(ok), 2), dtype=np.int32)
        pts[ok] = np.round(frame.joints[ok, 0:2] * (w, h)).astype(np.int32)
        for a, b in _edges(frame.layout):
            if a < len(ok) and b < len(ok) and ok[a] and ok[b]:
                cv2.line(out, tuple(map(int, pts[a])), tuple(map(int, pts[b])), BONE_COLOUR,
                         2 * unit, cv2.LINE_AA)
        for i in np.flatnonzero(ok):
            cv2.circle(out, tuple(map(int, pts[i])), 2 * unit + 1, JOINT_COLOUR, -1, cv2.LINE_AA)

    label = "-- BPM" if bpm is None or not math.isfinite(bpm) else f"{bpm:.0f} BPM"
    scale = 0.6 * unit
    (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, unit + 1)
    pad = 4 * unit
    cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, label, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR,
                unit + 1, cv2.LINE_AA)

    radius = 10 * unit
    centre = (w - radius - pad, radius + pad)
    if beat_phase is not None and math.isfinite(beat_phase):
        strength = math.exp(-PULSE_DECAY * (beat_phase % 1.0))
        # blend a red disc over the image (only in its bounding box): opaque on the beat, fading
        x0, y0 = max(0, centre[0] - radius - 1), max(0, centre[1] - radius - 1)
        x1, y1 = min(w, centre[0] + radius + 2), min(h, centre[1] + radius + 2)
        roi = out[y0:y1, x0:x1]
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.circle(mask, (centre[0] - x0, centre[1] - y0),
                   max(2, round(radius * (0.4 + 0.6 * strength))), 255, -1, cv2.LINE_AA)
        alpha = (mask.astype(np.float32) * (strength / 255.0))[..., None]
        blended = roi * (1.0 - alpha) + np.array(PULSE_COLOUR, np.float32) * alpha
        roi[...] = np.round(blended).astype(np.uint8)
    cv2.circle(out, centre, radius, TEXT_COLOUR, max(1, unit), cv2.LINE_AA)
    return out


def encode_jpeg(image: np.ndarray, *, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes of a BGR image."""
    cv2 = require_cv2()
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the preview image as JPEG")
    return buf.tobytes()


class PreviewWindow:
    """A desktop window showing preview frames, only where an X display is available and works.

    Without ``DISPLAY``, or when OpenCV has no GUI support (headless build),
    :meth:`show` does nothing after logging once why there is no window.
    Call it from one thread only.
    """

    def __init__(self, title: str = "d2m preview"):
        self.title = title
        self.enabled = bool(os.environ.get("DISPLAY"))
        self._opened = False
        if not self.enabled:
            log.info("preview: no DISPLAY, so no preview window (the web client still shows it)")

    def show(self, image: np.ndarray) -> bool:
        """Show ``image``; return whether a window is showing it."""
        if not self.enabled:
            return False
        cv2 = require_cv2()
        try:
            cv2.imshow(self.title, image)
            cv2.waitKey(1)
            self._opened = True
            return True
        except cv2.error as exc:
            self.enabled = False
            log.info("preview: cannot open a window (%s); the web client still shows the preview",
                     str(exc).strip().splitlines()[-1] if str(exc).strip() else exc)
            return False

    def close(self) -> None:
        if self._opened:
            cv2 = require_cv2()
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self._opened = False
