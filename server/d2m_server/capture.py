"""Frame capture threads: a webcam (or any OpenCV source) and a video file played in real time.

Each capture runs in its own thread and writes into a :class:`LatestFrame`
slot that holds only the newest frame: when pose estimation is slower than the
camera, unread frames are replaced (and counted as dropped), so pose always
works on the freshest image and latency never piles up.

Every frame carries its capture time on ``time.monotonic()`` (for a camera:
when ``read()`` returned; for a file played live: when it is due on screen),
never the time pose finished, so rhythm survives a slow pose model.
"""

from __future__ import annotations

import abc

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .pose import require_cv2
from .video import VideoError, VideoReader

log = logging.getLogger("d2m.capture")

#: Camera frame size and rate requested from the driver (it may pick the nearest it supports).
CAMERA_WIDTH = 640
CAMERA_HEIGHT = 480
CAMERA_FPS = 30.0
#: Consecutive failed reads after which the camera counts as lost and is reopened.
MAX_READ_FAILURES = 5
#: First and longest wait between attempts to reopen a lost camera (s); doubles each failure.
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 5.0
#: Window over which frame rates are measured (s).
RATE_WINDOW_S = 2.0
#: Longest a stopping capture thread is waited for (s); a blocked driver read can exceed it.
JOIN_TIMEOUT_S = 5.0


class CameraUnavailable(RuntimeError):
    """A camera cannot be opened or read; the message says what to check."""


@dataclass(frozen=True, eq=False)
class CapturedFrame:
    image: np.ndarray          #: BGR image (H, W, 3) uint8
    mono: float                #: capture time on time.monotonic() (s)
    index: int                 #: frames captured by this source before this one
    session_t: float | None = None   #: exact session time when the source knows it (video played live)


class LatestFrame:
    """A one-frame mailbox between a capture thread and a pose thread.

    :meth:`put` replaces an unread frame (counted in :attr:`dropped`);
    :meth:`get` waits for a frame that has not been read yet.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._item: CapturedFrame | None = None
        self._closed = False
        self.dropped = 0
        #: Drops per second over the recent window.
        self.drops = RateMeter()

    def put(self, item: CapturedFrame) -> bool:
        """Store ``item`` as the newest frame; return True if an unread frame was dropped."""
        with self._cond:
            dropped = self._item is not None
            if dropped:
                self.dropped += 1
                self.drops.tick()
            self._item = item
            self._cond.notify()
            return dropped

    def get(self, timeout: float | None = None) -> CapturedFrame | None:
        """The newest unread frame, waiting up to ``timeout`` s; ``None`` on timeout or when closed."""
        with self._cond:
            if self._item is None and not self._closed:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake any waiting reader; later gets return what is left, then ``None``."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class RateMeter:
    """Events per second over the last ``window_s`` seconds (thread-safe enough: one writer)."""

    def __init__(self, window_s: float = RATE_WINDOW_S, clock: Callable[[], float] = time.monotonic):
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque()
        self.total = 0
        self._first: float | None = None

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        if self._first is None:
            self._first = now
        self.total += 1
        self._times.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def count(self, now: float | None = None) -> int:
        now = self._clock() if now is None else now
        times = list(self._times)
        return sum(1 for x in times if now - x <= self.window_s)

    def rate(self, now: float | None = None) -> float:
        """Events per second in the window (over the time since the first event while younger)."""
        now = self._clock() if now is None else now
        if self._first is None:
            return 0.0
        span = min(self.window_s, max(now - self._first, 1e-3))
        return self.count(now) / span


class CaptureThread(abc.ABC):
    """Base of the capture threads: start/stop, counters, state and message for status."""

    kind = "capture"

    def __init__(self, name: str, slot: LatestFrame):
        self.name = name
        self.slot = slot
        self.captured = RateMeter()
        self.state = "opened"
        self.message = ""
        self.nominal_fps: float = 0.0
        self.reconnects = 0
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: capture already started")
        self._thread = threading.Thread(target=self._run_guarded, name=f"d2m-capture-{self.name}",
                                        daemon=True)
        self._thread.start()

    def _run_guarded(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a capture bug must not kill the server silently
            self.state, self.message = "error", f"{self.name}: capture failed: {exc!r}"
            log.exception("%s: capture thread failed", self.name)
        finally:
            self.ended.set()
            self.slot.close()

    @abc.abstractmethod
    def run(self) -> None:
        """Capture until stopped, handing frames to :meth:`_emit` (each source does its own)."""

    def _emit(self, image: np.ndarray, mono: float, session_t: float | None = None) -> None:
        index = self.captured.total
        self.captured.tick(time.monotonic())
        self.slot.put(CapturedFrame(image, mono, index, session_t))

    def close(self) -> None:
        """Release the device or file (used when the thread never started)."""

    def stop(self, timeout: float = JOIN_TIMEOUT_S) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` s; return whether it ended."""
        self._stop.set()
        if self._thread is None:
            self.close()
            self.state, self.message = "stopped", f"{self.name} closed"
            return True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s: capture thread still blocked after %.1f s (driver read); leaving it",
                            self.name, timeout)
                return False
        return True


class CameraCapture(CaptureThread):
    """Frames from a camera index (or any source ``cv2.VideoCapture`` accepts: a device path, URL or file).

    :meth:`open` raises :class:`CameraUnavailable` if the source cannot be
    opened. Once running, a source that stops delivering frames (unplugged,
    end of a file) is released and reopened with exponential backoff
    (``retry_initial_s`` doubling up to ``retry_max_s``) until it returns.
    """

    kind = "camera"

    def __init__(self, device: int | str, *, slot: LatestFrame | None = None,
                 width: int = CAMERA_WIDTH, height: int = CAMERA_HEIGHT, fps: float = CAMERA_FPS,
                 max_read_failures: int = MAX_READ_FAILURES, retry_initial_s: float = RETRY_INITIAL_S,
                 retry_max_s: float = RETRY_MAX_S, max_fps: float | None = None):
        super().__init__(f"camera {device}", slot or LatestFrame())
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.max_read_failures = max_read_failures
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        #: Read at most this many frames per second (None: as fast as the source delivers).
        self.max_fps = max_fps
        self.read_failures = 0
        self._cap = None

    def _unavailable_message(self) -> str:
        if isinstance(self.device, int):
            return (f"camera {self.device} could not be opened: check that a webcam is plugged in, "
                    f"that no other program is using it, and that you may access it (Linux: "
                    f"`ls /dev/video*` lists cameras; your user may need to be in the 'video' group). "
                    f"Try another index, e.g. --source camera:0")
        return (f"video source {self.device!r} could not be opened: check the device path or URL "
                f"(for a file, use --source video:PATH)")

    def _try_open(self):
        cv2 = require_cv2()
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            return None
        if isinstance(self.device, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer frames queued in the driver: lower latency
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if math.isfinite(fps) and 0 < fps < 1000 else self.fps
        return cap

    def open(self) -> "CameraCapture":
        """Open the device now; raise :class:`CameraUnavailable` with what to check if it cannot be."""
        self._cap = self._try_open()
        if self._cap is None:
            raise CameraUnavailable(self._unavailable_message())
        self.state, self.message = "opened", f"{self.name} opened"
        return self

    def run(self) -> None:
        if self._cap is None:
            self.open()
        self.state, self.message = "running", f"{self.name} running"
        failures = 0
        next_due = time.monotonic()
        try:
            while not self._stop.is_set():
                if self._cap is None:
                    if not self._reconnect():
                        break
                    failures = 0
                    continue
                if self.max_fps:
                    wait = next_due - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                    next_due = max(next_due + 1.0 / self.max_fps, time.monotonic() - 1.0 / self.max_fps)
                ok, image = self._cap.read()
                mono = time.monotonic()
                if ok and image is not None and image.ndim == 3:
                    failures = 0
                    if self.state != "running":
                        self.state, self.message = "running", f"{self.name} running"
                    self._emit(image, mono)
                    continue
                failures += 1
                self.read_failures += 1
                if failures >= self.max_read_failures:
                    self._lost()
                else:
                    self._stop.wait(0.01)
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _lost(self) -> None:
        self._cap.release()
        self._cap = None
        self.state = "reconnecting"
        self.message = (f"{self.name} stopped delivering frames (unplugged or in use?); reopening it "
                        f"every {self.retry_initial_s:g}-{self.retry_max_s:g} s. The music holds its "
                        f"tempo until frames return")
        log.warning("%s", self.message)

    def _reconnect(self) -> bool:
        """Reopen with backoff; return False if stopped before the device came back."""
        delay = self.retry_initial_s
        while not self._stop.wait(delay):
            cap = self._try_open()
            if cap is not None:
                self._cap = cap
                self.reconnects += 1
                log.info("%s: reopened after it was lost; frames should resume", self.name)
                return True
            delay = min(delay * 2, self.retry_max_s)
        return False


class VideoPlayback(CaptureThread):
    """A video file played in real time, as if it were a camera.

    Frame *k* is due at ``start + stream_time(k)`` (plus one file length per
    completed loop): the thread decodes it, waits until then and hands it on
    with that time, so the motion has the file's own rhythm whatever the pose
    speed. With ``loop`` the file restarts at its end; otherwise the source
    ends (:attr:`ended` is set). :meth:`open` raises :class:`VideoError` for an
    unreadable file.
    """

    kind = "video"

    def __init__(self, path: str | Path, *, slot: LatestFrame | None = None, loop: bool = False):
        super().__init__(f"video {Path(path).name}", slot or LatestFrame())
        self.path = str(path)
        self.loop = loop
        self.loops_done = 0
        self.truncated = False
        self._reader: VideoReader | None = None
        self._mono0 = 0.0
        self._session0 = 0.0

    def open(self) -> "VideoPlayback":
        """Open the file now; raise :class:`VideoError` saying what is wrong if it cannot be decoded."""
        self._reader = VideoReader(self.path)
        self.nominal_fps = self._reader.info.fps
        self.state, self.message = "opened", f"{self.name} opened ({self.nominal_fps:g} fps)"
        return self

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def start_at(self, mono0: float, session0: float) -> None:
        """Start playing: stream time 0 is ``mono0`` on time.monotonic() and ``session0`` on the session clock."""
        self._mono0, self._session0 = mono0, session0
        self.start()

    def run(self) -> None:
        if self._reader is None:
            self.open()
        self.state, self.message = "running", f"{self.name} playing"
        offset = 0.0
        reader = self._reader
        while not self._stop.is_set():
            last_t = None
            for _, t, image in reader.frames():
                due = offset + t
                wait = self._mono0 + due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                self._emit(image, self._mono0 + due, self._session0 + due)
                last_t = t
                if self._stop.is_set():
                    break
            self.truncated |= reader.truncated
            if self._stop.is_set():
                break
            if not self.loop or last_t is None:
                self.state = "ended"
                self.message = (f"{self.name} ended after {self.captured.total} frames"
                                + (" (the file is truncated)" if self.truncated else ""))
                log.info("%s", self.message)
                return
            offset += last_t + 1.0 / reader.info.fps
            self.loops_done += 1
            try:
                reader = self._reader = VideoReader(self.path)
            except VideoError as exc:
                self.state, self.message = "error", f"{self.name}: cannot restart the loop: {exc}"
                log.warning("%s", self.message)
                return
        reader.close()
