"""The WebSocket hub: controls, status and poses in; events and live audio out.

Protocol (documented in ``docs/protocol.md``, WebSocket section):

* client -> server: JSON text messages ``control``, ``status``, ``pose``,
  ``subscribe``, ``auth``. Bad input is answered with ``{"type": "error", ...}``
  to that client alone, counted, and the connection stays open.
* server -> client: a ``hello`` on connect, JSON events from
  :meth:`WebSocketHub.broadcast`, and, to clients subscribed to audio, binary
  frames: a 32-byte little-endian header (:data:`AUDIO_HEADER`) followed by
  interleaved int16 PCM.

Every client has a bounded send queue and its own sender task: a client that
stops reading loses its *oldest* audio (counted per client) and never delays
other clients or the caller, and is reset after :data:`SLOW_CLIENT_TIMEOUT_S`;
:meth:`broadcast` and :meth:`broadcast_audio` never await. Each client may
send at most :data:`CLIENT_MESSAGES_PER_S` messages a second.

Access control (``docs/protocol.md``): with a ``token``, a client's first
message must be ``{"type": "auth", "token": ...}`` (compared in constant
time; else close 1008), and until then it gets nothing but ``hello``. A
browser handshake whose ``Origin`` is neither the server's own host nor in
``allow_origins`` is refused with HTTP 403 (:func:`origin_allowed`).

The message parsing (:func:`parse_client_message`) and the audio frame codec
(:func:`encode_audio_frame`, :func:`decode_audio_frame`) are pure functions,
usable without a socket.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import ipaddress
import itertools
import json
import logging
import math
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from d2m.control import Control, InvalidControl
from d2m.skeleton import InvalidFrame, SkeletonFrame, frame_from_json

from .stats import InputStats
from .web import VIDEO_MAGIC

#: Version of the WebSocket protocol (in ``hello`` and in every audio header).
PROTOCOL_VERSION = 1
#: Default interface and port of the WebSocket server.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: Sample rate announced in ``hello`` (Hz).
SAMPLE_RATE = 48000
#: Audio channels (interleaved in audio frames).
CHANNELS = 2
#: Largest message a client may send (bytes); a larger one closes the connection (code 1009).
MAX_MESSAGE_BYTES = 64 * 1024
#: Incoming frames buffered per client before the server stops reading from it.
MAX_QUEUE = 16
#: JSON messages (events, replies) queued per client; beyond it the oldest is dropped and counted.
EVENT_QUEUE_MESSAGES = 1024
#: Audio queued per client, in sample frames (0.5 s at 48 kHz); beyond it the oldest
#: audio frames are dropped and counted.
AUDIO_QUEUE_FRAMES = 24000
#: Seconds between keepalive pings; a client that does not answer within
#: :data:`PING_TIMEOUT_S` (for example one that stopped reading) is disconnected.
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
#: High-water mark of each connection's transport write buffer (bytes). Kept small so
#: that backlog stays in the per-client queue, where old audio can be dropped.
WRITE_LIMIT_BYTES = 64 * 1024
#: Seconds to wait for a client to complete the closing handshake.
CLOSE_TIMEOUT_S = 2.0
#: Clients served at once; more are refused with close code 1013 (try again later).
MAX_CLIENTS = 64
#: Longest request ``id`` echoed back (characters).
MAX_ID_CHARS = 64
#: A client with something queued that completes no send for this long (s) is stalled:
#: its connection is aborted and counted (``slow_disconnects``). Until then it only
#: loses its oldest audio and events.
SLOW_CLIENT_TIMEOUT_S = 5.0
#: Kernel send buffer of each client socket (bytes; Linux doubles it). Fixed and small so a
#: client that stops reading fills it within a second or so and its backlog shows up in
#: the per-client queue, instead of the kernel's autotuning soaking up megabytes first.
SOCKET_SEND_BUFFER_BYTES = 64 * 1024
#: With a token, a client must send ``{"type": "auth", "token": ...}`` within this long (s).
AUTH_TIMEOUT_S = 5.0
#: Connections still waiting to authenticate, at most; more are refused at once (1013).
MAX_UNAUTHENTICATED = 8
#: Longest token accepted (characters).
MAX_TOKEN_CHARS = 256
#: Messages a client may send per second (sustained; bursts up to the same number).
#: Beyond it messages are dropped and counted (``rate_limited``), with one error a second.
CLIENT_MESSAGES_PER_S = 200.0
#: Close code for a refused token or a missing authentication (policy violation).
CLOSE_POLICY = 1008

#: Binary audio frame header, little-endian, 32 bytes:
#: magic "D2MA", version u8, channels u8, header_bytes u16, sample_rate u32,
#: frames u32, sample_index u64, bar i32 (-1 unknown), bpm f32 (0 unknown).
AUDIO_HEADER = struct.Struct("<4sBBHIIQif")
AUDIO_MAGIC = b"D2MA"
AUDIO_FORMAT = "int16le interleaved"
#: ``(name, byte offset, struct code)`` of every header field, as announced in ``hello``.
AUDIO_HEADER_FIELDS: tuple[tuple[str, int, str], ...] = (
    ("magic", 0, "4s"), ("version", 4, "u8"), ("channels", 5, "u8"),
    ("header_bytes", 6, "u16"), ("sample_rate", 8, "u32"), ("frames", 12, "u32"),
    ("sample_index", 16, "u64"), ("bar", 24, "i32"), ("bpm", 28, "f32"),
)

log = logging.getLogger("d2m.ws")


class ProtocolError(ValueError):
    """A client message that cannot be accepted; the message is sent back to the client."""

    def __init__(self, message: str, *, request: str | None = None, id: Any = None,
                 reason: str = "bad message"):
        super().__init__(message)
        self.request = request
        self.id = id
        self.reason = reason


class WebSocketUnavailable(OSError):
    """The WebSocket server cannot listen; the message says where and what to do."""


# ---------------------------------------------------------------------------
# Audio frames


@dataclass(frozen=True)
class AudioFrame:
    """One decoded binary audio frame."""
    sample_index: int        #: session sample index of the first frame
    sample_rate: int
    bar: int                 #: bar number playing at the first frame (-1 unknown)
    bpm: float               #: tempo (0 unknown)
    pcm: np.ndarray          #: (frames, channels) int16
    version: int = PROTOCOL_VERSION

    @property
    def frames(self) -> int:
        return self.pcm.shape[0]

    @property
    def channels(self) -> int:
        return self.pcm.shape[1]

    def to_float(self) -> np.ndarray:
        return self.pcm.astype(np.float32) / 32767.0


def pcm16(block: np.ndarray) -> bytes:
    """Float (frames x channels) in -1..1 -> interleaved little-endian int16 bytes (clipped)."""
    return np.rint(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def audio_header(sample_index: int, frames: int, channels: int, *, sample_rate: int,
                 bar: int = -1, bpm: float = 0.0) -> bytes:
    """The 32-byte header of an audio frame."""
    return AUDIO_HEADER.pack(AUDIO_MAGIC, PROTOCOL_VERSION, channels, AUDIO_HEADER.size,
                             sample_rate, frames, sample_index, bar, bpm)


def encode_audio_frame(sample_index: int, block: np.ndarray, *, sample_rate: int = SAMPLE_RATE,
                       bar: int = -1, bpm: float = 0.0) -> bytes:
    """Header + interleaved int16 PCM of a float (frames x channels) block."""
    block = np.asarray(block)
    if block.ndim != 2:
        raise ValueError(f"block must be (frames, channels), got {block.shape}")
    return audio_header(int(sample_index), block.shape[0], block.shape[1], sample_rate=sample_rate,
                        bar=int(bar), bpm=float(bpm)) + pcm16(block)


def decode_audio_frame(data: bytes) -> AudioFrame:
    """Parse a binary audio frame; raises :class:`ValueError` if it is not one."""
    if len(data) < AUDIO_HEADER.size:
        raise ValueError(f"audio frame shorter than its {AUDIO_HEADER.size}-byte header")
    magic, version, channels, header_bytes, sr, frames, index, bar, bpm = \
        AUDIO_HEADER.unpack_from(data)
    if magic != AUDIO_MAGIC:
        raise ValueError(f"not a d2m audio frame (magic {magic!r})")
    if header_bytes < AUDIO_HEADER.size or channels == 0:
        raise ValueError("corrupt audio header")
    if len(data) != header_bytes + frames * channels * 2:
        raise ValueError(f"audio frame has {len(data) - header_bytes} PCM bytes, header says "
                         f"{frames * channels * 2}")
    pcm = np.frombuffer(data, dtype="<i2", offset=header_bytes).reshape(frames, channels)
    return AudioFrame(index, sr, bar, bpm, pcm, version)


# ---------------------------------------------------------------------------
# Client messages (pure)

CONTROL, STATUS, POSE, SUBSCRIBE, AUTH = "control", "status", "pose", "subscribe", "auth"
CLIENT_TYPES = (CONTROL, STATUS, POSE, SUBSCRIBE, AUTH)
_POSE_FIELDS = {"type", "id", "t", "person", "layout", "joints"}


@dataclass(frozen=True)
class ClientMessage:
    """A parsed, validated client message."""
    type: str
    id: Any = None                     #: the client's request id, echoed in the reply
    control: Control | None = None     #: for "control"
    audio: bool | None = None          #: for "subscribe"
    pose: dict | None = None           #: for "pose": the JSON fields, ``t`` possibly missing
    token: str | None = None           #: for "auth"


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client message; raises :class:`ProtocolError` with a clear message."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raise ProtocolError("binary messages are not accepted; send JSON text messages",
                            reason="binary message")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}", reason="bad json") from None
    if not isinstance(obj, dict):
        raise ProtocolError('message must be a JSON object like {"type": "status"}',
                            reason="not an object")
    mid = obj.pop("id", None)
    if mid is not None and not (isinstance(mid, (str, int)) and not isinstance(mid, bool)
                                and len(str(mid)) <= MAX_ID_CHARS):
        raise ProtocolError(f"id must be a string or integer of at most {MAX_ID_CHARS} characters",
                            reason="bad id")
    kind = obj.pop("type", None)
    if kind not in CLIENT_TYPES:
        what = "missing" if kind is None else f"unknown ({kind!r})"
        raise ProtocolError(f"message type is {what}; expected one of {', '.join(CLIENT_TYPES)}",
                            id=mid, reason="unknown type")

    def fail(message: str, reason: str) -> ProtocolError:
        return ProtocolError(message, request=kind, id=mid, reason=reason)

    if kind == CONTROL:
        if not obj:
            raise fail("control message changes nothing; give at least one of "
                       + ", ".join(Control.__dataclass_fields__), "bad control")
        try:
            return ClientMessage(kind, mid, control=Control.from_dict(obj))
        except InvalidControl as exc:
            raise fail(str(exc), "bad control") from None
        except TypeError as exc:
            raise fail(f"bad control: {exc}", "bad control") from None
    if kind == AUTH:
        unknown = sorted(set(obj) - {"token"})
        if unknown:
            raise fail(f"unknown auth field(s) {', '.join(unknown)}; allowed: token", "bad auth")
        token = obj.get("token")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise fail(f"auth needs token: a string of 1..{MAX_TOKEN_CHARS} characters", "bad auth")
        return ClientMessage(kind, mid, token=token)
    if kind == STATUS:
        if obj:
            raise fail(f"status takes no fields, got {', '.join(sorted(obj))}", "bad status")
        return ClientMessage(kind, mid)
    if kind == SUBSCRIBE:
        unknown = sorted(set(obj) - {"audio"})
        if unknown:
            raise fail(f"unknown subscribe field(s) {', '.join(unknown)}; allowed: audio",
                       "bad subscribe")
        audio = obj.get("audio")
        if not isinstance(audio, bool):
            raise fail("subscribe needs audio: true or false", "bad subscribe")
        return ClientMessage(kind, mid, audio=audio)
    # pose
    unknown = sorted(set(obj) - _POSE_FIELDS)
    if unknown:
        raise fail(f"unknown pose field(s) {', '.join(unknown)}; allowed: "
                   + ", ".join(sorted(_POSE_FIELDS - {"type", "id"})), "bad pose")
    t = obj.get("t")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))
                          or not math.isfinite(t)):
        raise fail("pose t must be a finite number of session seconds (or left out)", "bad pose")
    if "joints" not in obj:
        raise fail("pose needs joints: [[x, y, z, conf], ...]", "bad pose")
    return ClientMessage(kind, mid, pose=obj)


def pose_frame(fields: dict, t: float) -> SkeletonFrame:
    """Build the skeleton frame of a parsed pose message (``t`` used if the client gave none)."""
    obj = dict(fields)
    if obj.get("t") is None:
        obj["t"] = t
    return frame_from_json(obj)


def to_json(msg: dict) -> str:
    """Compact JSON that browsers can parse: NaN/infinity become null, unknown objects strings."""
    try:
        return json.dumps(msg, separators=(",", ":"), allow_nan=False, default=_default)
    except ValueError:
        return json.dumps(_finite(msg), separators=(",", ":"), allow_nan=False, default=_default)


def _default(value):
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        return _finite(value.item())
    return str(value)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _limit_send_buffer(ws) -> None:
    sock = getattr(ws, "transport", None) and ws.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SEND_BUFFER_BYTES)
        except OSError:
            pass


def _hostname(value: str) -> str:
    """Host name of a ``Host`` header (``name:port``, ``[v6]:port``), lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _is_literal_or_localhost(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def origin_allowed(origin: str | None, host: str | None, allow: Sequence[str] = (), *,
                   token_required: bool = False) -> bool:
    """Whether a browser page from ``origin`` may connect (pure; see docs/protocol.md).

    No ``Origin`` header (not a browser): allowed. ``"*"`` in ``allow``: any
    origin. An origin listed in ``allow`` (scheme://host[:port]): allowed.
    Otherwise only the *same host* the request was sent to (``Host`` header),
    and, unless a token is required, only when that host is an IP address or
    ``localhost`` (so a DNS-rebinding page cannot pass as "same host").
    """
    if origin is None:
        return True
    norm = origin.strip().rstrip("/").lower()
    listed = {a.strip().rstrip("/").lower() for a in allow}
    if "*" in listed or norm in listed:
        return True
    if norm == "null" or not host:
        return False
    try:
        origin_host = (urlsplit(norm).hostname or "").lower()
    except ValueError:
        return False
    request_host = _hostname(host)
    if not origin_host or origin_host != request_host:
        return False
    return token_required or _is_literal_or_localhost(request_host)


# ---------------------------------------------------------------------------
# The hub


class _Client:
    """One connection: its queues, its sender task and its counters."""

    def __init__(self, number: int, ws: ServerConnection):
        self.number = number
        self.ws = ws
        try:
            host, port = ws.remote_address[:2]
            self.remote = f"{host}:{port}"
        except Exception:
            self.remote = "?"
        self.audio = False
        self.events: deque[str] = deque()
        self.audio_queue: deque[tuple[bytes, int]] = deque()
        self.audio_frames_queued = 0
        self.wake = asyncio.Event()
        self.sender: asyncio.Task | None = None
        self.events_sent = 0
        self.events_dropped = 0
        self.audio_blocks_sent = 0
        self.audio_blocks_dropped = 0
        self.audio_frames_dropped = 0
        self.authenticated = False
        self.send_started: float | None = None   #: monotonic time the pending send began
        self.dropped = False                     #: disconnected for being too slow
        self.tokens = CLIENT_MESSAGES_PER_S      #: rate limit bucket
        self.tokens_at = time.monotonic()
        self.rate_limited = 0
        self.rate_error_at = -1e9

    def snapshot(self) -> dict:
        return {
            "client": self.number, "remote": self.remote, "audio": self.audio,
            "events_sent": self.events_sent, "events_dropped": self.events_dropped,
            "audio_blocks_sent": self.audio_blocks_sent,
            "audio_blocks_dropped": self.audio_blocks_dropped,
            "audio_frames_dropped": self.audio_frames_dropped,
            "audio_frames_queued": self.audio_frames_queued,
            "authenticated": self.authenticated, "rate_limited": self.rate_limited,
        }


class WebSocketHub:
    """WebSocket server for controls, status, poses, events and live audio.

    ``on_control(control)`` receives every validated :class:`Control`;
    ``on_status()`` returns the status dict sent to a client that asks;
    ``on_pose(frame)`` (optional) receives poses sent by clients, stamped with
    ``clock()`` (the session clock) when they carry no ``t``.
    ``http_handler(connection, request)`` (optional) answers plain HTTP
    requests on the same port (the web page, :class:`d2m_server.web.StaticSite`);
    ``on_video(client_number, data)`` (optional) takes binary camera frames
    starting with :data:`d2m_server.web.VIDEO_MAGIC` and raises ``ValueError``
    for a bad one (see :class:`d2m_server.web.WebcamPose`). All callbacks
    run on the event loop. :meth:`broadcast` and :meth:`broadcast_audio` must
    be called from the event loop and never wait for a client.
    """

    def __init__(self, on_control: Callable[[Control], None], on_status: Callable[[], dict],
                 on_pose: Callable[[SkeletonFrame], None] | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sample_rate: int = SAMPLE_RATE, channels: int = CHANNELS,
                 max_message: int = MAX_MESSAGE_BYTES, max_queue: int = MAX_QUEUE,
                 event_queue: int = EVENT_QUEUE_MESSAGES,
                 audio_queue_frames: int = AUDIO_QUEUE_FRAMES,
                 ping_interval: float | None = PING_INTERVAL_S,
                 ping_timeout: float | None = PING_TIMEOUT_S,
                 write_limit: int = WRITE_LIMIT_BYTES, close_timeout: float = CLOSE_TIMEOUT_S,
                 max_clients: int = MAX_CLIENTS,
                 http_handler: Callable[[ServerConnection, Any], Any] | None = None,
                 on_video: Callable[[int, bytes], None] | None = None,
                 token: str | None = None, allow_origins: Sequence[str] = (),
                 slow_client_timeout: float = SLOW_CLIENT_TIMEOUT_S,
                 auth_timeout: float = AUTH_TIMEOUT_S,
                 messages_per_s: float = CLIENT_MESSAGES_PER_S):
        self.on_control = on_control
        self.http_handler = http_handler
        self.on_video = on_video
        self.on_status = on_status
        self.on_pose = on_pose
        self.clock = clock
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.max_message = max_message
        self.max_queue = max_queue
        self.event_queue = event_queue
        self.audio_queue_frames = audio_queue_frames
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.write_limit = write_limit
        self.close_timeout = close_timeout
        self.max_clients = max_clients
        #: Shared secret every client must send first (None: no authentication).
        self.token = token or None
        #: Browser origins allowed besides the same host ("*": any).
        self.allow_origins = tuple(allow_origins)
        self.slow_client_timeout = slow_client_timeout
        self.auth_timeout = auth_timeout
        self.messages_per_s = messages_per_s
        self.slow_disconnects = 0       #: clients aborted for not reading (SLOW_CLIENT_TIMEOUT_S)
        self.auth_failures = 0          #: clients closed for a wrong, missing or late token
        self.origin_refused = 0         #: handshakes refused for their Origin
        self.stats = InputStats("websocket")
        self._clients: dict[ServerConnection, _Client] = {}
        self._numbers = itertools.count(1)
        self._server: Server | None = None
        self.connections = 0            #: clients accepted since start
        self.refused = 0                #: clients refused (too many)
        self.callback_errors = 0        #: exceptions raised by on_control/on_status/on_pose
        # totals of clients that have gone, so status survives disconnects
        self._gone = {"events_dropped": 0, "audio_blocks_dropped": 0, "audio_frames_dropped": 0}

    # -- lifecycle --------------------------------------------------------------

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        """Listen on ``host:port`` (port 0: any free port, see :attr:`port`)."""
        try:
            self._server = await serve(
                self._serve, host, port, max_size=self.max_message, max_queue=self.max_queue,
                ping_interval=self.ping_interval, ping_timeout=self.ping_timeout,
                write_limit=self.write_limit, close_timeout=self.close_timeout,
                compression=None, server_header=f"d2m websocket/{PROTOCOL_VERSION}",
                process_request=self._process_request,
            )
        except OSError as exc:
            raise WebSocketUnavailable(
                f"cannot listen for WebSocket clients on {host}:{port}: "
                f"{exc.strerror or exc}; choose another port or interface (port 0 picks a free one)"
            ) from None

    @property
    def port(self) -> int:
        """The port actually listened on."""
        if self._server is None:
            raise RuntimeError("WebSocketHub is not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    @property
    def audio_clients(self) -> int:
        """Clients subscribed to audio now (skip rendering streams when 0)."""
        return sum(1 for c in self._clients.values() if c.audio)

    async def close(self) -> None:
        """Close every connection (code 1001) and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        for client in list(self._clients.values()):
            if client.sender is not None:
                client.sender.cancel()

    # -- sending ----------------------------------------------------------------

    def hello(self) -> dict:
        """The message every client receives on connect."""
        return {
            "type": "hello", "version": PROTOCOL_VERSION, "server": "d2m",
            "sample_rate": self.sample_rate, "channels": self.channels,
            "audio_format": AUDIO_FORMAT,
            "header": {
                "magic": AUDIO_MAGIC.decode(), "bytes": AUDIO_HEADER.size,
                "byte_order": "little",
                "fields": [{"name": n, "offset": o, "type": t} for n, o, t in AUDIO_HEADER_FIELDS],
            },
            "audio": False,
            "auth_required": self.token is not None,
            "limits": {"max_message_bytes": self.max_message,
                       "audio_queue_frames": self.audio_queue_frames,
                       "event_queue_messages": self.event_queue},
        }

    def broadcast(self, msg: dict) -> None:
        """Queue a JSON event (must have a ``type``) for every client. Never waits.

        Non-finite numbers are sent as ``null``.
        """
        if "type" not in msg:
            raise ValueError("broadcast messages need a 'type'")
        text = to_json(msg)
        now = time.monotonic()
        for client in list(self._clients.values()):
            if client.authenticated:
                self._queue_json(client, text)
                self._check_stalled(client, now)

    def broadcast_audio(self, sample_index: int, block: np.ndarray, *, sample_rate: int | None = None,
                        bar: int = -1, bpm: float = 0.0) -> int:
        """Queue a binary audio frame for every audio-subscribed client; return how many.

        ``sample_index`` is the session sample of the block's first frame,
        ``bar``/``bpm`` what is playing there (-1 / 0 when unknown). A client
        whose queue holds more than ``audio_queue_frames`` loses its oldest
        audio. Never waits.
        """
        targets = [c for c in self._clients.values() if c.audio and c.authenticated]
        if not targets:
            return 0
        now = time.monotonic()
        frames = int(np.shape(block)[0])
        data = encode_audio_frame(sample_index, block,
                                  sample_rate=self.sample_rate if sample_rate is None else sample_rate,
                                  bar=bar, bpm=bpm if math.isfinite(bpm) else 0.0)
        for client in targets:
            client.audio_queue.append((data, frames))
            client.audio_frames_queued += frames
            while client.audio_frames_queued > self.audio_queue_frames and len(client.audio_queue) > 1:
                _, dropped = client.audio_queue.popleft()
                client.audio_frames_queued -= dropped
                client.audio_blocks_dropped += 1
                client.audio_frames_dropped += dropped
            client.wake.set()
            self._check_stalled(client, now)
        return len(targets)

    def _queue_json(self, client: _Client, text: str) -> None:
        if len(client.events) >= self.event_queue:
            client.events.popleft()
            client.events_dropped += 1
            if client.events_dropped == 1:
                log.warning("websocket client %s is not reading; dropping its oldest events "
                            "(counted in status)", client.remote)
        client.events.append(text)
        client.wake.set()

    def _reply(self, client: _Client, msg: dict, id: Any = None) -> None:
        if id is not None:
            msg["id"] = id
        self._queue_json(client, to_json(msg))

    def _check_stalled(self, client: _Client, now: float) -> None:
        """Abort a client whose pending send has not completed for ``slow_client_timeout``."""
        started = client.send_started
        if started is None or client.dropped or now - started <= self.slow_client_timeout:
            return
        client.dropped = True
        self.slow_disconnects += 1
        log.warning("websocket client %s has not read for %.1f s; disconnecting it (its oldest "
                    "audio was being dropped meanwhile)", client.remote, now - started)
        transport = getattr(client.ws, "transport", None)
        if transport is not None:
            # A close handshake cannot get through a full buffer: reset the connection
            # (SO_LINGER 0), so the kernel drops the unsent data at once instead of keeping
            # an orphaned socket probing a zero window.
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()

    async def _send_loop(self, client: _Client) -> None:
        ws = client.ws
        try:
            while True:
                if client.events:
                    text = client.events.popleft()
                    client.send_started = time.monotonic()
                    await ws.send(text)
                    client.send_started = None
                    client.events_sent += 1
                elif client.audio_queue:
                    data, frames = client.audio_queue.popleft()
                    client.audio_frames_queued -= frames
                    client.send_started = time.monotonic()
                    await ws.send(data)
                    client.send_started = None
                    client.audio_blocks_sent += 1
                else:
                    client.wake.clear()
                    await client.wake.wait()
        except ConnectionClosed:
            pass

    # -- receiving --------------------------------------------------------------

    async def _serve(self, ws: ServerConnection) -> None:
        if len(self._clients) >= self.max_clients:
            self.refused += 1
            await ws.close(1013, f"too many clients (at most {self.max_clients})")
            return
        if self.token is not None and sum(
                1 for c in self._clients.values() if not c.authenticated) >= MAX_UNAUTHENTICATED:
            self.refused += 1
            await ws.close(1013, f"too many unauthenticated connections (at most {MAX_UNAUTHENTICATED})")
            return
        _limit_send_buffer(ws)
        client = _Client(next(self._numbers), ws)
        client.authenticated = self.token is None
        self._clients[ws] = client
        self.connections += 1
        log.info("websocket client %s connected", client.remote)
        client.sender = asyncio.get_running_loop().create_task(
            self._send_loop(client), name=f"d2m-ws-send-{client.number}")
        self._reply(client, self.hello())
        try:
            if not client.authenticated and not await self._authenticate(client):
                return
            async for message in ws:
                if self._allow_message(client):
                    self._handle(client, message)
        except ConnectionClosed:
            pass
        finally:
            del self._clients[ws]
            client.sender.cancel()
            for key in self._gone:
                self._gone[key] += getattr(client, key)
            log.info("websocket client %s disconnected", client.remote)

    # -- access control -----------------------------------------------------------

    async def _process_request(self, connection: ServerConnection, request):
        """Handshake hook: refuse WebSocket upgrades from foreign origins; pass HTTP on."""
        headers = request.headers
        if "websocket" in (headers.get("Upgrade", "") or "").lower():
            origin = headers.get("Origin")
            if not origin_allowed(origin, headers.get("Host"), self.allow_origins,
                                  token_required=self.token is not None):
                self.origin_refused += 1
                self.stats.reject("origin refused", str(origin))
                return connection.respond(
                    403, f"origin {origin} is not allowed; start the server with "
                         f"--allow-origin {origin} to allow it\n")
            return None
        if self.http_handler is None:
            return None
        response = self.http_handler(connection, request)
        if inspect.isawaitable(response):
            response = await response
        return response

    async def _authenticate(self, client: _Client) -> bool:
        """The first message must be ``{"type": "auth", "token": ...}`` with the right token."""
        ws = client.ws
        try:
            message = await asyncio.wait_for(ws.recv(), self.auth_timeout)
        except (asyncio.TimeoutError, TimeoutError):
            return await self._refuse(client, "auth timeout",
                                      f"authenticate within {self.auth_timeout:g} s: send "
                                      '{"type": "auth", "token": "..."} first')
        try:
            msg = parse_client_message(message)
        except ProtocolError as exc:
            return await self._refuse(client, "auth missing", f"authenticate first ({exc})")
        if msg.type != AUTH:
            return await self._refuse(client, "auth missing",
                                      'this server needs a token: send {"type": "auth", '
                                      '"token": "..."} as the first message')
        if not hmac.compare_digest(msg.token.encode("utf-8"), self.token.encode("utf-8")):
            return await self._refuse(client, "auth refused", "wrong token")
        client.authenticated = True
        self._reply(client, {"type": "ack", "request": AUTH}, msg.id)
        self.stats.ok()
        return True

    async def _refuse(self, client: _Client, reason: str, message: str) -> bool:
        self.auth_failures += 1
        self.stats.reject(reason, client.remote)
        self._reply(client, {"type": "error", "request": AUTH, "message": message})
        for _ in range(50):                    # let the sender deliver the error (<= 0.5 s)
            if not client.events:
                break
            await asyncio.sleep(0.01)
        await client.ws.close(CLOSE_POLICY, reason)
        return False

    def _allow_message(self, client: _Client) -> bool:
        """Per-client token bucket (``messages_per_s``); excess is dropped and counted."""
        now = time.monotonic()
        rate = self.messages_per_s
        client.tokens = min(rate, client.tokens + (now - client.tokens_at) * rate)
        client.tokens_at = now
        if client.tokens >= 1.0:
            client.tokens -= 1.0
            return True
        client.rate_limited += 1
        self.stats.reject("rate limited", client.remote)
        if now - client.rate_error_at >= 1.0:
            client.rate_error_at = now
            self._reply(client, {"type": "error", "message": f"too many messages: at most "
                                                              f"{rate:g} a second; some were dropped"})
        return False

    def _handle(self, client: _Client, message: str | bytes) -> None:
        if isinstance(message, (bytes, bytearray)) and message[:4] == VIDEO_MAGIC:
            self._handle_video(client, bytes(message))
            return
        try:
            msg = parse_client_message(message)
        except ProtocolError as exc:
            self.stats.reject(exc.reason, f"{client.remote}: {exc}")
            reply = {"type": "error", "message": str(exc)}
            if exc.request:
                reply["request"] = exc.request
            self._reply(client, reply, exc.id)
            return
        try:
            if msg.type == CONTROL:
                self.on_control(msg.control)
                self._reply(client, {"type": "ack", "request": CONTROL,
                                     "changes": msg.control.changes()}, msg.id)
            elif msg.type == STATUS:
                status = dict(self.on_status())
                status["type"] = "status"
                self._reply(client, status, msg.id)
            elif msg.type == AUTH:
                self._reply(client, {"type": "ack", "request": AUTH}, msg.id)
            elif msg.type == SUBSCRIBE:
                client.audio = msg.audio
                if not msg.audio:
                    client.audio_queue.clear()
                    client.audio_frames_queued = 0
                self._reply(client, {"type": "ack", "request": SUBSCRIBE, "audio": msg.audio},
                            msg.id)
            else:
                if self.on_pose is None:
                    raise ProtocolError("this server does not take poses over WebSocket",
                                        request=POSE, reason="pose not accepted")
                try:
                    frame = pose_frame(msg.pose, self.clock())
                except InvalidFrame as exc:
                    raise ProtocolError(f"bad pose: {exc}", request=POSE, reason="bad pose") from None
                self.on_pose(frame)
        except (ProtocolError, InvalidControl, InvalidFrame) as exc:
            reason = getattr(exc, "reason", f"bad {msg.type}")
            self.stats.reject(reason, f"{client.remote}: {exc}")
            self._reply(client, {"type": "error", "request": msg.type, "message": str(exc)}, msg.id)
            return
        except Exception as exc:  # a bug in a callback must not close the connection
            self.callback_errors += 1
            log.exception("websocket %s handler failed", msg.type)
            self._reply(client, {"type": "error", "request": msg.type,
                                 "message": f"internal error handling {msg.type}: {exc}"}, msg.id)
            return
        self.stats.ok()

    def _handle_video(self, client: _Client, data: bytes) -> None:
        """A binary camera frame from the web page (header: :data:`d2m_server.web.VIDEO_HEADER`)."""
        if self.on_video is None:
            self.stats.reject("video not accepted", client.remote)
            self._reply(client, {"type": "error", "request": "video_frame",
                                 "message": "this server does not take camera frames; "
                                            "start it with --web-camera"})
            return
        try:
            self.on_video(client.number, data)
        except ValueError as exc:
            self.stats.reject("bad video frame", f"{client.remote}: {exc}")
            self._reply(client, {"type": "error", "request": "video_frame", "message": str(exc)})
            return
        except Exception as exc:  # a bug in the callback must not close the connection
            self.callback_errors += 1
            log.exception("websocket video frame handler failed")
            self._reply(client, {"type": "error", "request": "video_frame",
                                 "message": f"internal error handling a camera frame: {exc}"})
            return
        self.stats.ok()

    # -- status -----------------------------------------------------------------

    def memory(self) -> dict:
        """What the hub holds now, and its limits: clients and their queues (status ``memory``)."""
        clients = list(self._clients.values())
        return {
            "clients": len(clients), "max_clients": self.max_clients,
            "events_queued": sum(len(c.events) for c in clients),
            "events_queued_max": max((len(c.events) for c in clients), default=0),
            "event_queue_limit": self.event_queue,
            "audio_frames_queued": sum(c.audio_frames_queued for c in clients),
            "audio_frames_queued_max": max((c.audio_frames_queued for c in clients), default=0),
            "audio_queue_limit_frames": self.audio_queue_frames,
        }

    def status(self) -> dict:
        """Counters for the server's status: clients, drops, rejected input."""
        live = [c.snapshot() for c in self._clients.values()]
        totals = {key: value + sum(c[key] for c in live) for key, value in self._gone.items()}
        return {
            "port": self.port if self._server is not None else None,
            "clients": len(live), "audio_clients": sum(1 for c in live if c["audio"]),
            "connections": self.connections, "refused": self.refused,
            "callback_errors": self.callback_errors, "slow_disconnects": self.slow_disconnects,
            "auth_failures": self.auth_failures, "origin_refused": self.origin_refused,
            "auth_required": self.token is not None,
            "input": self.stats.snapshot(), **totals, "per_client": live,
        }
