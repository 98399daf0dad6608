"""What the browser page needs from the server: its static files, and pose from its camera.

* :class:`StaticSite` answers plain HTTP ``GET`` requests that reach the
  WebSocket port (``http://127.0.0.1:8765/`` by default) with the files of
  ``clients/web/`` (``index.html``, ``app.js``, ``worklet.js``,
  ``style.css``). It is the ``http_handler`` of
  :class:`~d2m_server.ws.WebSocketHub`: WebSocket upgrade requests pass
  through untouched. Only regular files directly inside the web root with a
  known extension are served; ``..``, hidden files, backslashes, NUL bytes
  and symlinks leading out of the root are answered 404.
* :class:`WebcamPose` takes the camera frames the page sends over the
  WebSocket (binary messages with the :data:`VIDEO_HEADER`, see
  ``clients/web/README.md``), decodes the JPEG with OpenCV and runs
  MediaPipe Pose (:class:`~d2m_server.pose.PoseEstimator`) on a worker
  thread, never on the event loop. Only the newest frame waits: a frame
  that arrives while pose is busy replaces the waiting one (counted as
  dropped). One browser sends at a time; another is refused until the
  first has been quiet for :data:`VIDEO_TAKEOVER_S`.
"""

from __future__ import annotations

import asyncio
import http
import logging
import math
import os
import statistics
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote

import numpy as np
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from d2m.skeleton import SkeletonFrame

log = logging.getLogger("d2m.web")

# ---------------------------------------------------------------------------
# Static files

#: Environment variable naming another directory to serve the page from.
WEB_ROOT_ENV = "D2M_WEB_ROOT"


def shipped_path(*parts: str) -> Path:
    """Where a file or folder shipped with d2m is: ``shipped_path("clients", "web")``.

    An installed wheel carries ``clients/`` and ``docs/`` as package data of
    ``d2m_server`` (see ``pyproject.toml``); a source tree (and an editable
    install) has them at the top of the checkout.
    """
    here = Path(__file__).resolve().parent
    installed = here.joinpath(*parts)
    return installed if installed.exists() else here.parents[1].joinpath(*parts)


#: The page shipped with d2m: ``clients/web/`` (installed package data, or the source tree).
DEFAULT_WEB_ROOT = shipped_path("clients", "web")
#: The file served for ``/``.
INDEX_FILE = "index.html"
#: Extensions served, with their Content-Type; anything else is 404.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
#: Largest file served (bytes); the page's files are a few tens of kB.
MAX_FILE_BYTES = 2 * 1024 * 1024
#: Content-Security-Policy of every page response: nothing is loaded from elsewhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
                           "media-src 'self' blob: mediastream:; worker-src 'self'; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def web_root() -> Path:
    """The directory the page is served from: ``$D2M_WEB_ROOT`` or :data:`DEFAULT_WEB_ROOT`."""
    env = os.environ.get(WEB_ROOT_ENV)
    return Path(env).expanduser() if env else DEFAULT_WEB_ROOT


def _is_upgrade(request: Request) -> bool:
    upgrade = request.headers.get("Upgrade", "") or ""
    return "websocket" in upgrade.lower()


class StaticSite:
    """Serve the files of one directory over the WebSocket port's HTTP handshake.

    :meth:`resolve` maps a URL path to a file (or ``None``) and is pure apart
    from reading the file system; :meth:`process_request` is the websockets
    ``process_request`` hook (returns ``None`` for WebSocket upgrades).
    """

    def __init__(self, root: str | Path | None = None, *, max_file_bytes: int = MAX_FILE_BYTES,
                 routes: dict | None = None):
        self.root = Path(root) if root is not None else web_root()
        #: Generated resources: URL path -> callable returning ``(content_type, body)`` or None (404).
        self.routes = dict(routes or {})
        self.max_file_bytes = max_file_bytes
        self.served = 0          #: files answered 200
        self.not_found = 0       #: requests answered 404

    def resolve(self, url_path: str) -> Path | None:
        """The file for ``url_path`` (query and fragment ignored), or ``None`` (404)."""
        path = url_path.split("?", 1)[0].split("#", 1)[0]
        try:
            path = unquote(path, errors="strict")
        except UnicodeDecodeError:
            return None
        if not path.startswith("/") or "\\" in path or "\x00" in path:
            return None
        parts = [p for p in path.split("/") if p]
        if not parts:
            parts = [INDEX_FILE]
        # only files directly in the root: no sub-directories, no dot-files, no '..'
        if len(parts) != 1 or parts[0].startswith("."):
            return None
        name = parts[0]
        if Path(name).suffix.lower() not in CONTENT_TYPES:
            return None
        try:
            root = self.root.resolve(strict=True)
            candidate = (root / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if candidate.parent != root or not candidate.is_file():
            return None
        return candidate

    def respond(self, url_path: str) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` for a GET of ``url_path``."""
        route = self.routes.get(url_path.split("?", 1)[0].split("#", 1)[0])
        if route is not None:
            try:
                made = route()
            except Exception:  # a failing generator must not break the page
                made = None
            if made is not None:
                content_type, data = made
                self.served += 1
                headers = self._headers(content_type, len(data))
                headers["Cache-Control"] = "no-store"
                return 200, headers, data
            self.not_found += 1
            text = f"404 not available yet: {url_path[:200]}\n".encode()
            return 404, self._headers("text/plain; charset=utf-8", len(text)), text
        target = self.resolve(url_path)
        body = None
        if target is not None:
            try:
                if target.stat().st_size <= self.max_file_bytes:
                    body = target.read_bytes()
            except OSError:
                body = None
        if body is None:
            self.not_found += 1
            hint = ""
            if not self.root.is_dir():
                hint = (f" (the page's directory {self.root} does not exist; reinstall d2m, or set "
                        f"{WEB_ROOT_ENV} to the clients/web directory of a d2m checkout)")
            text = f"404 not found: {url_path[:200]}{hint}\n".encode("utf-8", "replace")
            return 404, self._headers("text/plain; charset=utf-8", len(text)), text
        self.served += 1
        return 200, self._headers(CONTENT_TYPES[target.suffix.lower()], len(body)), body

    @staticmethod
    def _headers(content_type: str, length: int) -> dict[str, str]:
        return {
            "Content-Type": content_type,
            "Content-Length": str(length),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Connection": "close",
        }

    def process_request(self, connection, request: Request) -> Response | None:
        """websockets hook: answer plain HTTP GETs with files; let WebSocket upgrades through."""
        if _is_upgrade(request):
            return None
        status, headers, body = self.respond(request.path)
        return Response(status, http.HTTPStatus(status).phrase, Headers(headers), body)


# ---------------------------------------------------------------------------
# Camera frames from the page

#: First bytes of a camera frame message (the rest of the header: :data:`VIDEO_HEADER`).
VIDEO_MAGIC = b"D2MV"
#: Version of the camera frame header.
VIDEO_VERSION = 1
#: Image formats a camera frame may carry.
VIDEO_FORMAT_JPEG = 1
#: Camera frame header, little-endian, 24 bytes: magic "D2MV", version u8, format u8
#: (1 = JPEG), header_bytes u16, width u16, height u16, frame number u32,
#: capture_ms f64 (the page's ``performance.now()`` when the frame was captured).
VIDEO_HEADER = struct.Struct("<4sBBHHHId")
#: Largest image accepted (pixels, from the decoded size); larger frames are refused.
MAX_VIDEO_PIXELS = 1280 * 720
#: Another browser may send frames once the current one has been quiet this long (s).
VIDEO_TAKEOVER_S = 2.0
#: Frames over which the page-clock to session-clock offset is estimated (minimum delay).
VIDEO_OFFSET_WINDOW = 300
#: How long the pose thread waits for a frame before checking for stop (s).
VIDEO_POLL_S = 0.2
#: Pose times kept for the status median (frames).
VIDEO_POSE_HISTORY = 60
#: Seconds without a person before the status says so.
VIDEO_NO_PERSON_S = 0.5


class VideoFrameError(ValueError):
    """A camera frame that cannot be used; the message is sent back to the page."""


@dataclass(frozen=True)
class VideoFrame:
    """One decoded camera frame header and its compressed image."""
    version: int
    format: int
    width: int
    height: int
    number: int
    capture_ms: float
    image: bytes


def encode_video_frame(image: bytes, *, width: int, height: int, number: int = 0,
                       capture_ms: float = 0.0, fmt: int = VIDEO_FORMAT_JPEG) -> bytes:
    """Header + image bytes, as the page sends them (used by tests and other clients)."""
    return VIDEO_HEADER.pack(VIDEO_MAGIC, VIDEO_VERSION, fmt, VIDEO_HEADER.size, width, height,
                             number & 0xFFFFFFFF, float(capture_ms)) + bytes(image)


def decode_video_frame(data: bytes) -> VideoFrame:
    """Parse a camera frame message; :class:`VideoFrameError` saying what is wrong."""
    if len(data) < VIDEO_HEADER.size:
        raise VideoFrameError(f"camera frame shorter than its {VIDEO_HEADER.size}-byte header")
    magic, version, fmt, header_bytes, width, height, number, capture_ms = VIDEO_HEADER.unpack_from(data)
    if magic != VIDEO_MAGIC:
        raise VideoFrameError(f"not a camera frame (magic {magic!r}, expected {VIDEO_MAGIC!r})")
    if version != VIDEO_VERSION:
        raise VideoFrameError(f"camera frame version {version} is not supported (this server reads "
                              f"version {VIDEO_VERSION})")
    if fmt != VIDEO_FORMAT_JPEG:
        raise VideoFrameError(f"camera frame format {fmt} is not supported; send JPEG (format 1)")
    if header_bytes < VIDEO_HEADER.size or header_bytes >= len(data):
        raise VideoFrameError("camera frame has no image after its header")
    if width * height > MAX_VIDEO_PIXELS or width == 0 or height == 0:
        raise VideoFrameError(f"camera frame size {width}x{height} is not allowed (1 to "
                              f"{MAX_VIDEO_PIXELS} pixels)")
    return VideoFrame(version, fmt, width, height, number, capture_ms, bytes(data[header_bytes:]))


class WebcamPose:
    """Pose from camera frames sent by the browser page; behaves like a motion source.

    ``clock()`` is the session clock; ``on_frame(frame)`` is called on the
    event loop with each MediaPipe-33 :class:`SkeletonFrame`. Frames are
    stamped with their capture time mapped onto the session clock (the
    offset is the smallest arrival delay seen, so network and encoding
    jitter do not reach the tempo tracker). ``estimator_factory`` builds the
    pose estimator (default: :class:`~d2m_server.pose.PoseEstimator`); it is
    built in :meth:`start`, so a missing camera stack fails at start-up.
    """

    def __init__(self, clock: Callable[[], float], on_frame: Callable[[SkeletonFrame], None], *,
                 estimator_factory: Callable[[], object] | None = None,
                 takeover_s: float = VIDEO_TAKEOVER_S, person: int = 0):
        self.clock = clock
        self.on_frame = on_frame
        self.takeover_s = takeover_s
        self.person = person
        self._factory = estimator_factory
        self._estimator = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._pending: tuple[float, VideoFrame] | None = None
        self._client: int | None = None
        self._client_seen = -math.inf
        self._offsets: deque[float] = deque(maxlen=VIDEO_OFFSET_WINDOW)
        self._last_t = -math.inf
        self._pose_ms: deque[float] = deque(maxlen=VIDEO_POSE_HISTORY)
        self._no_person_since: float | None = None
        self.received = 0          #: frames accepted from the active page
        self.refused = 0           #: frames from another page while one is active
        self.dropped = 0           #: frames replaced by a newer one while pose was busy
        self.decode_errors = 0     #: JPEGs OpenCV could not decode
        self.posed = 0             #: frames pose ran on
        self.poses = 0             #: skeleton frames delivered
        self.no_person = 0         #: frames with nobody found
        self.errors = 0            #: exceptions inside pose
        self._state = "stopped"
        self._message = "web camera: not started"

    # -- lifecycle ------------------------------------------------------------
    async def start(self) -> None:
        """Load the pose model (worker thread) and start the pose thread."""
        if self._thread is not None:
            raise RuntimeError("web camera: already started")
        self._loop = asyncio.get_running_loop()
        self._estimator = await asyncio.to_thread(self._make_estimator)
        self._thread = threading.Thread(target=self._run, name="d2m-web-camera-pose", daemon=True)
        self._thread.start()
        self._state, self._message = "waiting", "web camera: waiting for a page to send frames"
        log.info("web camera: ready for camera frames from the page")

    def _make_estimator(self):
        if self._factory is not None:
            return self._factory()
        from .pose import PoseEstimator   # optional camera stack, imported only when asked for
        estimator = PoseEstimator()
        estimator.detect(np.zeros((64, 64, 3), dtype=np.uint8))   # build the graph now
        return estimator

    async def stop(self) -> None:
        """Stop the pose thread and release the model (idempotent)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, 5.0)
        est, self._estimator = self._estimator, None
        if est is not None and hasattr(est, "close"):
            est.close()
        self._state, self._message = "stopped", "web camera: stopped"

    # -- input (event loop) ---------------------------------------------------
    def submit(self, client: int, data: bytes) -> None:
        """A camera frame message from WebSocket client ``client``; raises :class:`VideoFrameError`."""
        if self._thread is None:
            raise VideoFrameError("the web camera is not running on this server")
        frame = decode_video_frame(data)
        now_mono = time.monotonic()
        if self._client is not None and client != self._client and \
                now_mono - self._client_seen < self.takeover_s:
            self.refused += 1
            raise VideoFrameError("another page is sending camera frames; only one camera at a time")
        if client != self._client:
            self._client = client
            self._offsets.clear()
        self._client_seen = now_mono
        t = self._stamp(self.clock(), frame.capture_ms)
        self.received += 1
        with self._cond:
            if self._pending is not None:
                self.dropped += 1
            self._pending = (t, frame)
            self._cond.notify()

    def _stamp(self, arrival: float, capture_ms: float) -> float:
        if math.isfinite(capture_ms) and capture_ms > 0:
            capture = capture_ms / 1000.0
            self._offsets.append(arrival - capture)
            t = capture + min(self._offsets)
            t = min(t, arrival)
        else:
            t = arrival
        t = max(t, self._last_t + 1e-6)     # frames of one page are in order
        self._last_t = t
        return round(t, 6)

    # -- pose thread ------------------------------------------------------------
    def _run(self) -> None:
        import cv2   # present: the estimator was built

        while not self._stop.is_set():
            with self._cond:
                if self._pending is None:
                    self._cond.wait(VIDEO_POLL_S)
                item, self._pending = self._pending, None
            if item is None:
                continue
            t, frame = item
            img = cv2.imdecode(np.frombuffer(frame.image, dtype=np.uint8), cv2.IMREAD_COLOR)
            if img is None or img.shape[0] * img.shape[1] > MAX_VIDEO_PIXELS:
                self.decode_errors += 1
                continue
            t0 = time.perf_counter()
            try:
                skeleton = self._estimator.frame(img, t, person=self.person)
            except Exception:  # noqa: BLE001 - a bad frame must not stop the thread
                self.errors += 1
                if self.errors == 1:
                    log.exception("web camera: pose failed (counted; further errors not logged)")
                continue
            self._pose_ms.append((time.perf_counter() - t0) * 1000.0)
            self.posed += 1
            if skeleton is None:
                self.no_person += 1
                if self._no_person_since is None:
                    self._no_person_since = time.monotonic()
                continue
            self._no_person_since = None
            self.poses += 1
            loop = self._loop
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._deliver, skeleton)
                except RuntimeError:     # loop closing
                    pass

    def _deliver(self, frame: SkeletonFrame) -> None:
        self.on_frame(frame)

    # -- status -----------------------------------------------------------------
    def status(self) -> dict:
        """Telemetry (plain JSON values), listed with the session's sources."""
        state, message = self._state, self._message
        now = time.monotonic()
        if state == "waiting" and self.received:
            state, message = "running", "web camera: running"
            if now - self._client_seen > self.takeover_s:
                state, message = "waiting", "web camera: the page stopped sending frames"
            elif self._no_person_since is not None and now - self._no_person_since >= VIDEO_NO_PERSON_S:
                state = "no_person"
                message = "web camera: no person in view; step into the frame (the music holds its tempo)"
        pose_ms = list(self._pose_ms)
        return {
            "source": "web-camera", "kind": "web-camera", "state": state, "message": message,
            "client": self._client, "frames_received": self.received, "frames_refused": self.refused,
            "frames_dropped": self.dropped, "decode_errors": self.decode_errors,
            "frames_posed": self.posed, "poses": self.poses, "no_person": self.no_person,
            "pose_errors": self.errors,
            "pose_ms": round(statistics.median(pose_ms), 2) if pose_ms else None,
        }
