"""The ``pose`` event: the skeleton d2m follows, for the web page to draw.

:class:`PoseFeed` turns the frames of the lead person (the one the
conductor follows) into WebSocket ``pose`` events at most
:data:`POSE_EVENT_HZ` times a second of session time, so the page can draw
the tracked skeleton (over the camera preview, or alone). Pure: the frame's
own timestamp paces it. Message (``docs/protocol.md``, WebSocket)::

    {"type": "pose", "t": 12.3417, "person": 0, "layout": "coco17",
     "joints": [[x, y, confidence], ...]}

``x, y`` are image-normalised (0..1, y down), 4 decimals; a missing joint is
``null``.
"""

from __future__ import annotations

import math

from d2m.skeleton import MIN_CONFIDENCE, SkeletonFrame

#: Most ``pose`` events per second of session time (the page draws at this rate).
POSE_EVENT_HZ = 15.0
#: Decimals of a joint coordinate in a ``pose`` event (1e-4 of the image: sub-pixel at 4K).
POSE_DECIMALS = 4


class PoseFeed:
    """Throttle the lead person's frames into ``pose`` events."""

    def __init__(self, rate_hz: float = POSE_EVENT_HZ):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.interval_s = 1.0 / rate_hz
        self._next_t = -math.inf
        self.sent = 0             #: events made
        self.skipped = 0          #: lead frames not sent (too soon after the last)

    def message(self, frame: SkeletonFrame, lead: int | None) -> dict | None:
        """The ``pose`` event for ``frame``, or None (not the lead person, or too soon)."""
        if lead is None or frame.person != lead:
            return None
        if frame.t < self._next_t:
            if frame.t < self._next_t - 2 * self.interval_s:   # time went back (a new session)
                self._next_t = -math.inf
            else:
                self.skipped += 1
                return None
        # on a grid of interval_s (so 60 fps in gives 15 events a second, not every 5th frame)
        behind = frame.t - self._next_t
        self._next_t = self._next_t + self.interval_s if behind < self.interval_s \
            else frame.t + self.interval_s
        self.sent += 1
        joints = []
        for x, y, _z, c in frame.joints.tolist():
            if c >= MIN_CONFIDENCE and math.isfinite(x) and math.isfinite(y):
                joints.append([round(x, POSE_DECIMALS), round(y, POSE_DECIMALS), round(c, 3)])
            else:
                joints.append(None)
        return {"type": "pose", "t": round(frame.t, 4), "person": frame.person,
                "layout": frame.layout.value, "joints": joints}
