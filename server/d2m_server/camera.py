"""Camera and video input: frames -> MediaPipe Pose -> skeleton frames for the live loop.

``--source camera:N`` (a webcam) or ``--source video:PATH`` (a file played in
real time, optionally looping) becomes a :class:`PoseSource`::

    source = PoseSource.open("camera:0", clock=session.clock, on_frame=handle)
    await source.start()      # capture thread + pose thread
    ...
    source.status()           # pose fps, detection ms, drops, keeping up?
    await source.stop()

Capture and pose each run in their own thread, never on the event loop; frames
reach ``on_frame`` through ``loop.call_soon_threadsafe`` with ``t`` = capture
time on the session clock. When no person is visible, or the camera is
unplugged, no frames are delivered (the music holds its last tempo) and the
source keeps running until frames return.

Offline helpers (:func:`video_motion`, :func:`mux`) and the preview drawing
(:func:`draw_preview`) are re-exported here.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from d2m.skeleton import Layout, SkeletonFrame

from .capture import (CameraCapture, CameraUnavailable, CaptureThread, RateMeter,
                      VideoPlayback)
from .pose import (MODEL_COMPLEXITY, CameraStackMissing, PoseEstimator, PoseModelMissing, check_pose_model,
                   require_camera_stack)
from .preview import PreviewWindow, draw_preview, encode_jpeg
from .stats import InputStats
from .video import FFmpegMissing, VideoError, VideoInfo, VideoReader, mux, stream_types, video_info, video_motion

__all__ = [
    "PoseSource", "SourceSpec", "parse_source", "CameraUnavailable", "VideoError",
    "CameraStackMissing", "PoseModelMissing", "FFmpegMissing", "video_motion", "video_info", "VideoInfo",
    "VideoReader", "mux", "stream_types", "draw_preview", "encode_jpeg",
]

log = logging.getLogger("d2m.camera")

#: Pose keeps up when it processes at least this fraction of captured frames.
KEEP_UP_RATIO = 0.9
#: Detection times kept for the status median (frames).
DETECT_HISTORY = 90
#: Most preview JPEGs encoded per second (encoding costs CPU the pose needs).
PREVIEW_MAX_FPS = 15.0
#: Seconds (capture time) without a person before the status says so.
NO_PERSON_STATUS_S = 0.5
#: How long the pose thread waits for a frame before re-checking for stop/end (s).
POLL_S = 0.2
#: Longest stop() waits for each thread (s).
STOP_TIMEOUT_S = 5.0

SOURCE_USAGE = ("a source is camera:N (a webcam, e.g. camera:0) or video:PATH (a video file, "
                "e.g. video:dance.mp4)")


@dataclass(frozen=True)
class SourceSpec:
    kind: str             #: "camera" or "video"
    target: int | str     #: camera index (or device path/URL), or video file path

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_source(spec: str) -> SourceSpec:
    """``"camera:N"`` / ``"camera"`` / ``"video:PATH"`` -> :class:`SourceSpec`; ValueError saying the format otherwise."""
    text = (spec or "").strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if kind == "camera":
        rest = rest.strip()
        if not sep or rest == "":
            return SourceSpec("camera", 0)
        try:
            index = int(rest)
        except ValueError:
            return SourceSpec("camera", rest)  # a device path or stream URL OpenCV can open
        if index < 0:
            raise ValueError(f"camera index must be 0 or more, got {index}; {SOURCE_USAGE}")
        return SourceSpec("camera", index)
    if kind == "video" and sep and rest.strip():
        return SourceSpec("video", str(Path(rest.strip()).expanduser()))
    raise ValueError(f"unknown source {spec!r}: {SOURCE_USAGE}")


class PoseSource:
    """Live skeleton frames from a camera or a video file (see the module docstring).

    Build with :meth:`open`, which checks the camera stack is installed
    (:class:`CameraStackMissing`) and opens the device or file
    (:class:`CameraUnavailable`, :class:`VideoError`), and that the pose model
    is on disk (:class:`PoseModelMissing`), so a bad ``--source`` fails before
    the server starts.
    """

    def __init__(self, spec: SourceSpec, capture: CaptureThread, *, clock: Callable[[], float],
                 on_frame: Callable[[SkeletonFrame], None], preview: bool = False,
                 model_complexity: int = MODEL_COMPLEXITY, on_end: Callable[[], None] | None = None,
                 person: int = 0, window: bool = True):
        self.spec = spec
        self.capture = capture
        self.clock = clock
        self.on_frame = on_frame
        self.on_end = on_end
        self.preview = preview
        self.person = person
        self.model_complexity = model_complexity
        self.stats = InputStats(f"pose source {spec}")
        self._window = PreviewWindow(f"d2m {spec}") if (preview and window) else None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._estimator: PoseEstimator | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._processed = RateMeter()
        self._detect_ms: deque[float] = deque(maxlen=DETECT_HISTORY)
        self._delivered = 0
        self._no_person = 0
        self._empty_since: float | None = None   # capture time of the first frame of a no-person run
        self._empty_for = 0.0                     # how long the current no-person run has lasted (s)
        self._last_t = -float("inf")
        self._tempo: tuple[float | None, float | None, float] = (None, None, 0.0)
        self._jpeg: bytes | None = None
        self._jpeg_at = -float("inf")
        self._previews = 0
        self._state = "opened"
        self._message = f"{spec} opened"

    # -- construction -----------------------------------------------------------------
    @classmethod
    def open(cls, spec: str, *, loop: bool = False, clock: Callable[[], float],
             on_frame: Callable[[SkeletonFrame], None], preview: bool = False,
             model_complexity: int = MODEL_COMPLEXITY, on_end: Callable[[], None] | None = None,
             window: bool = True, camera_size: tuple[int, int] = (640, 480),
             camera_fps: float = 30.0) -> "PoseSource":
        """Open ``spec`` (``camera:N`` or ``video:PATH``) without starting it.

        ``loop`` restarts a video at its end; ``clock`` is the session clock
        (seconds, same rate as ``time.monotonic``); ``on_frame`` is called on
        the event loop with each MediaPipe-33 frame; ``preview`` draws preview
        images (:meth:`latest_preview_jpeg`, and a window when there is a
        display and ``window``); ``on_end`` is called on the event loop when a
        non-looping video ends. Opening a camera can block for up to a
        second: call this before the event loop serves, or via
        ``asyncio.to_thread``.
        """
        parsed = parse_source(spec)
        _, mediapipe = require_camera_stack()
        check_pose_model(mediapipe, model_complexity)
        if parsed.kind == "camera":
            capture: CaptureThread = CameraCapture(parsed.target, width=camera_size[0],
                                                   height=camera_size[1], fps=camera_fps).open()
        else:
            capture = VideoPlayback(parsed.target, loop=loop).open()
        return cls(parsed, capture, clock=clock, on_frame=on_frame, preview=preview,
                   model_complexity=model_complexity, on_end=on_end, window=window)

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Load the pose model (in a worker thread) and start capture and pose threads."""
        if self._thread is not None:
            raise RuntimeError(f"{self.spec}: already started")
        self._loop = asyncio.get_running_loop()
        self._state, self._message = "starting", f"{self.spec}: loading the pose model"
        self._estimator = await asyncio.to_thread(self._load_model)
        self._thread = threading.Thread(target=self._pose_loop, name=f"d2m-pose-{self.spec.kind}",
                                        daemon=True)
        self._thread.start()
        if isinstance(self.capture, VideoPlayback):
            self.capture.start_at(time.monotonic(), self.clock())
        else:
            self.capture.start()
        self._state, self._message = "running", f"{self.spec}: running"
        log.info("%s: started (MediaPipe Pose, model_complexity=%d)", self.spec, self.model_complexity)

    def _load_model(self) -> PoseEstimator:
        estimator = PoseEstimator(model_complexity=self.model_complexity)
        estimator.detect(np.zeros((64, 64, 3), dtype=np.uint8))  # build the graph before frames arrive
        return estimator

    async def stop(self) -> None:
        """Stop both threads and release the device (idempotent)."""
        self._stop.set()
        self.capture.slot.close()
        await asyncio.to_thread(self.capture.stop, STOP_TIMEOUT_S)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)
        elif self._estimator is not None:
            self._estimator.close()
        if self._state not in ("ended", "error"):
            self._state, self._message = "stopped", f"{self.spec}: stopped"

    async def __aenter__(self) -> "PoseSource":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- pose thread ----------------------------------------------------------------
    def _pose_loop(self) -> None:
        estimator = self._estimator
        try:
            while not self._stop.is_set():
                item = self.capture.slot.get(POLL_S)
                if item is None:
                    if self.capture.ended.is_set():
                        break
                    continue
                self._process(estimator, item)
        except Exception as exc:  # keep the server alive; say what happened
            self._state, self._message = "error", f"{self.spec}: pose failed: {exc!r}"
            log.exception("%s: pose thread failed", self.spec)
        finally:
            estimator.close()
            if self._window is not None:
                self._window.close()
            if self.capture.ended.is_set() and not self._stop.is_set():
                self._finish()

    def _process(self, estimator: PoseEstimator, item) -> None:
        start = time.perf_counter()
        try:
            joints = estimator.detect(item.image)
        except ValueError as exc:
            self.stats.reject("bad image", str(exc))
            return
        self._detect_ms.append((time.perf_counter() - start) * 1000.0)
        self._processed.tick()
        if item.session_t is not None:
            # a video's own timeline, but never ahead of the session clock: that clock stops
            # when the output stalls, and frames from its future would make the conductor
            # plan ahead of the music (plans piling up over a long show)
            t = min(item.session_t, self.clock())
        else:  # camera: monotonic capture time mapped onto the session clock
            t = self.clock() - (time.monotonic() - item.mono)
        t = max(t, self._last_t + 1e-6)
        self._last_t = t
        frame = None
        if joints is None:
            self._no_person += 1
            if self._empty_since is None:
                self._empty_since = t
            self._empty_for = t - self._empty_since
            self.stats.reject("no person in frame",
                              "step into the camera's view (whole body, good light); the music holds its tempo")
        else:
            if self._empty_for >= NO_PERSON_STATUS_S:
                log.info("%s: person detected again after %.1f s", self.spec, self._empty_for)
            self._empty_since, self._empty_for = None, 0.0
            self.stats.ok()
            frame = SkeletonFrame(t, self.person, Layout.MEDIAPIPE33, joints)
            self._deliver_threadsafe(frame)
        if self.preview:
            self._update_preview(item.image, frame)

    def _deliver_threadsafe(self, frame: SkeletonFrame) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, frame)
        except RuntimeError:  # event loop closed: nobody is listening any more
            self._stop.set()

    def _deliver(self, frame: SkeletonFrame) -> None:
        self._delivered += 1
        try:
            self.on_frame(frame)
        except Exception:
            self.stats.reject("on_frame raised")
            log.exception("%s: on_frame callback failed", self.spec)

    def _finish(self) -> None:
        self._state = self.capture.state if self.capture.state in ("ended", "error") else "ended"
        self._message = self.capture.message or f"{self.spec}: ended"
        if self.on_end is not None and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self.on_end)
            except RuntimeError:
                pass

    # -- preview --------------------------------------------------------------------
    def set_tempo(self, bpm: float | None, beat_phase: float | None, t: float | None = None) -> None:
        """Tell the preview the current tempo: ``beat_phase`` (0..1, 0 on the beat) at session time ``t`` (default now)."""
        self._tempo = (bpm, beat_phase, self.clock() if t is None else t)

    def _phase_now(self) -> tuple[float | None, float | None]:
        bpm, phase, t_ref = self._tempo
        if bpm is None or phase is None or not bpm > 0:
            return bpm, phase
        return bpm, (phase + (self.clock() - t_ref) * bpm / 60.0) % 1.0

    def _update_preview(self, image: np.ndarray, frame: SkeletonFrame | None) -> None:
        bpm, phase = self._phase_now()
        drawn = draw_preview(image, frame, bpm, phase)
        now = time.monotonic()
        if now - self._jpeg_at >= 1.0 / PREVIEW_MAX_FPS:
            self._jpeg = encode_jpeg(drawn)
            self._jpeg_at = now
            self._previews += 1
        if self._window is not None:
            self._window.show(drawn)

    def latest_preview_jpeg(self) -> bytes | None:
        """JPEG bytes of the newest preview image (None before the first, or without ``preview``)."""
        return self._jpeg

    # -- telemetry ------------------------------------------------------------------
    def status(self) -> dict:
        """Telemetry for the UI and logs (plain JSON-able values)."""
        now = time.monotonic()
        cap = self.capture
        capture_fps = cap.captured.rate(now)
        pose_fps = self._processed.rate(now)
        captured_recent = cap.captured.count(now)
        processed_recent = self._processed.count(now)
        keeping_up = None
        if captured_recent >= 5:
            keeping_up = processed_recent >= KEEP_UP_RATIO * captured_recent
        detect = list(self._detect_ms)
        state, message = self._state, self._message
        if state in ("running", "starting") and cap.state in ("reconnecting", "error", "ended"):
            state, message = cap.state, cap.message
        elif state == "running" and self._empty_for >= NO_PERSON_STATUS_S:
            state = "no_person"
            message = f"{self.spec}: no person in view; step into the frame (the music holds its tempo)"
        return {
            "source": str(self.spec),
            "kind": self.spec.kind,
            "state": state,
            "message": message,
            "model_complexity": self.model_complexity,
            "nominal_fps": round(cap.nominal_fps, 3),
            "capture_fps": round(capture_fps, 2),
            "pose_fps": round(pose_fps, 2),
            "detect_ms": round(statistics.median(detect), 2) if detect else None,
            "detect_ms_max": round(max(detect), 2) if detect else None,
            "frames_captured": cap.captured.total,
            "frames_posed": self._processed.total,
            "frames_delivered": self._delivered,
            "frames_no_person": self._no_person,
            "frames_dropped": cap.slot.dropped,
            "keeping_up": keeping_up,
            "reconnects": cap.reconnects,
            "preview_frames": self._previews,
            "input": self.stats.snapshot(),
        }
