"""MQTT for installations: state and telemetry out, operator controls in.

``d2m serve --mqtt HOST[:PORT] [--mqtt-instance NAME]`` connects to an MQTT
broker (mosquitto, EMQX, Home Assistant's, ...) and, under
``d2m/<instance>/``, publishes the music's tempo, genre, energy, beats,
the next segment's plan, a state summary, health telemetry and an
online/offline status (the broker's last will); it subscribes to
``d2m/<instance>/control`` (one JSON object, the same fields as a WebSocket
``control``) and ``d2m/<instance>/control/<field>`` (one plain value).
Topics, payloads, QoS and limits: ``docs/protocol.md``.

The music never waits on the broker: :meth:`MqttBridge.on_event` and
:meth:`MqttBridge.publish` only queue. State topics keep only their latest
value (re-published after every reconnect); events (beats, replies) go to a
bounded queue that drops its oldest entry when full and skips entries older
than :data:`EVENT_MAX_AGE_S`. One task connects, publishes and receives,
and reconnects with exponential backoff (:data:`RECONNECT_MIN_S` doubling up
to :data:`RECONNECT_MAX_S`) whenever the broker goes away.

The mapping from server events to messages (:func:`event_messages`) and
from control messages to :class:`~d2m.control.Control` (:func:`parse_control`)
are pure functions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import socket
import time
from collections import OrderedDict, deque
from typing import Callable, NamedTuple

from d2m.control import MAX_BPM, MIN_BPM, Control, InvalidControl

log = logging.getLogger("d2m.mqtt")

#: Broker port when ``--mqtt`` names only a host.
DEFAULT_MQTT_PORT = 1883
#: First topic level of everything d2m publishes or reads.
TOPIC_ROOT = "d2m"
#: Instance name when the host name is unusable.
FALLBACK_INSTANCE = "d2m"
#: Longest instance name (characters).
MAX_INSTANCE_CHARS = 64
#: Events (beats, control replies) queued while the broker is slow or away; beyond it the
#: oldest is dropped and counted.
EVENT_QUEUE_MESSAGES = 256
#: Queued events older than this are dropped instead of sent late (s).
EVENT_MAX_AGE_S = 5.0
#: ``energy`` and ``sharpness`` are published at most this often (s).
STYLE_INTERVAL_S = 0.5
#: Reconnect backoff: first wait, doubled after each failure up to the maximum (s).
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0
#: Seconds to wait for the broker to accept a connection / acknowledge a publish.
CONNECT_TIMEOUT_S = 5.0
PUBLISH_TIMEOUT_S = 5.0
#: MQTT keepalive (s): the broker publishes the last will this long (x1.5) after d2m vanishes.
KEEPALIVE_S = 15
#: Largest control payload accepted (bytes).
MAX_CONTROL_BYTES = 4096
#: Incoming control messages buffered before the client stops reading.
INCOMING_QUEUE_MESSAGES = 64
#: Payload of the ``status`` topic.
ONLINE, OFFLINE = "online", "offline"

_CONTROL_FIELDS = tuple(Control.__dataclass_fields__)
_INSTANCE_BAD = re.compile(r"[^a-z0-9_-]+")
_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no"}


class Outgoing(NamedTuple):
    """One message to publish; ``topic`` is relative to ``d2m/<instance>/``."""
    topic: str
    payload: str
    qos: int = 0
    retain: bool = False


# ---------------------------------------------------------------------------
# Names


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST``, ``HOST:PORT`` or ``[IPv6]:PORT`` -> ``(host, port)``; port defaults to 1883."""
    raw = str(text).strip()
    hint = f"expected HOST or HOST:PORT such as localhost:{DEFAULT_MQTT_PORT}; got {text!r}"
    if not raw:
        raise ValueError(f"empty MQTT broker address: {hint}")
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0:
            raise ValueError(f"bad MQTT broker address: {hint}")
        host, rest = raw[1:close], raw[close + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad MQTT broker address: {hint}")
        port_text = rest[1:] if rest else str(DEFAULT_MQTT_PORT)
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    elif ":" in raw:
        raise ValueError(f"put IPv6 addresses in brackets, e.g. [::1]:{DEFAULT_MQTT_PORT}; got {text!r}")
    else:
        host, port_text = raw, str(DEFAULT_MQTT_PORT)
    host = host.strip()
    if not host:
        raise ValueError(f"MQTT broker host is missing: {hint}")
    if not port_text.strip().isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad MQTT broker port {port_text!r}: {hint}")
    return host, int(port_text)


def default_instance() -> str:
    """The host name made topic-safe (lower case, ``[a-z0-9_-]``), or ``"d2m"``."""
    name = _INSTANCE_BAD.sub("-", socket.gethostname().lower()).strip("-")
    return name[:MAX_INSTANCE_CHARS] or FALLBACK_INSTANCE


def check_instance(name: str) -> str:
    """Validate an instance name (one MQTT topic level); ValueError saying what is allowed."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("MQTT instance name is empty; give a name such as stage-left")
    name = name.strip()
    if any(c in name for c in "/+#\x00") or len(name) > MAX_INSTANCE_CHARS:
        raise ValueError(f"MQTT instance name {name!r} must be one topic level: at most "
                         f"{MAX_INSTANCE_CHARS} characters, without '/', '+', '#'")
    return name


# ---------------------------------------------------------------------------
# Server events -> messages (pure)


def _num(value, digits: int = 3) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "null"
    return f"{round(value, digits):g}" if math.isfinite(value) else "null"


def _json(obj) -> str:
    return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def state_summary(status: dict) -> dict:
    """The ``state`` payload: what is playing, from the server's status."""
    tempo = status.get("tempo") or {}
    return {
        "bpm": tempo.get("bpm"), "dance_bpm": tempo.get("dance_bpm"),
        "confidence": tempo.get("confidence"), "locked": tempo.get("locked"),
        "tempo_lock": tempo.get("tempo_lock"),
        "genre": status.get("genre"), "genre_source": status.get("genre_source"),
        "energy": status.get("energy"), "sharpness": status.get("sharpness"),
        "playing": status.get("playing"), "volume": status.get("volume"),
        "prompt": status.get("prompt"), "bar": status.get("bar"),
    }


def health_summary(status: dict) -> dict:
    """The ``health`` payload: telemetry an installation's monitoring can alarm on."""
    tel = status.get("telemetry") or {}
    clients = status.get("clients") or {}
    gen = status.get("generator") or {}
    return {
        "uptime_s": status.get("uptime_s"),
        "underruns": tel.get("underruns"), "loop_lag_ms_p99": tel.get("loop_lag_ms_p99"),
        "dropped_packets": tel.get("dropped_packets"), "lookahead_s": tel.get("lookahead_s"),
        "fallback": tel.get("fallback"), "late_ms": tel.get("late_ms"),
        "websocket_clients": clients.get("websocket"),
        "generator": gen.get("name") if isinstance(gen, dict) else None,
    }


def event_messages(msg: dict) -> list[Outgoing]:
    """Messages for one server event (the dicts the WebSocket hub broadcasts); ``[]`` if none.

    ``style`` events are not rate-limited here (see :class:`MqttBridge`).
    """
    kind = msg.get("type")
    if kind == "tempo":
        return [Outgoing("tempo", _num(msg.get("bpm"), 2), 1, True),
                Outgoing("tempo/confidence", _num(msg.get("confidence")), 1, True),
                Outgoing("tempo/locked", "1" if msg.get("locked") else "0", 1, True),
                Outgoing("tempo/mode", str(msg.get("mode", "")), 1, True)]
    if kind == "genre":
        return [Outgoing("genre", str(msg.get("genre", "")), 1, True),
                Outgoing("genre/source", str(msg.get("source", "")), 1, True)]
    if kind == "style":
        return [Outgoing("energy", _num(msg.get("energy")), 0, True),
                Outgoing("sharpness", _num(msg.get("sharpness")), 0, True)]
    if kind == "beat":
        return [Outgoing("beat", _json({k: msg.get(k) for k in ("bar", "beat", "bpm", "time")}), 0, False)]
    if kind == "hit":
        return [Outgoing("hit", _json({k: msg.get(k) for k in ("index", "strength", "move_t", "accent_time",
                                                               "genre")}), 0, False)]
    if kind == "segment":
        plan = {k: v for k, v in msg.items() if k != "type"}
        out = [Outgoing("next", _json(plan), 0, True)]
        if plan.get("section"):     # the song form, for cueing visuals to the next section
            out.append(Outgoing("section", _json({k: plan.get(k) for k in (
                "section", "section_bar", "bars_to_next_section", "next_section", "bar", "start_time")}), 0, True))
        return out
    if kind == "state":
        return [Outgoing("state", _json(state_summary(msg)), 0, True),
                Outgoing("health", _json(health_summary(msg)), 0, True)]
    return []


# ---------------------------------------------------------------------------
# Control messages -> Control (pure)


def _text(payload: bytes) -> str:
    if len(payload) > MAX_CONTROL_BYTES:
        raise InvalidControl(f"control payload of {len(payload)} bytes is larger than "
                             f"{MAX_CONTROL_BYTES} bytes")
    try:
        return bytes(payload).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidControl("control payload is not UTF-8 text") from None


def _bool(text: str, name: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidControl(f"{name} must be true or false (also 1/0, on/off), got {text[:40]!r}")


def _float(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidControl(f"{name} must be a number, got {text[:40]!r}") from None


def parse_control(subtopic: str, payload: bytes) -> Control:
    """A control from a message on ``d2m/<instance>/<subtopic>``; raises InvalidControl.

    ``control``: a JSON object with any of the Control fields.
    ``control/<field>``: one plain value: ``genre`` (key, alias or ``auto``),
    ``prompt`` (text; empty clears), ``bpm`` (60-200), ``volume`` (0-1),
    ``playing`` (true/false), ``tempo_lock`` (true/false, or a BPM to hold).
    """
    text = _text(payload)
    if subtopic == "control":
        try:
            obj = json.loads(text) if text else None
        except ValueError as exc:
            raise InvalidControl(f"control payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidControl("control payload is nested too deeply; send a flat JSON object") from None
        if not isinstance(obj, dict) or not obj:
            raise InvalidControl('control payload must be a JSON object with at least one of '
                                 + ", ".join(_CONTROL_FIELDS) + ', e.g. {"genre": "house"}')
        try:
            return Control.from_dict(obj)
        except TypeError as exc:
            raise InvalidControl(f"bad control: {exc}") from None
    prefix = "control/"
    field = subtopic[len(prefix):] if subtopic.startswith(prefix) else ""
    if field not in _CONTROL_FIELDS:
        raise InvalidControl(f"unknown control topic {subtopic!r}; use control (JSON) or control/<field> "
                             f"with field one of {', '.join(_CONTROL_FIELDS)}")
    if len(text) >= 2 and text[0] == text[-1] == '"':      # a JSON string is fine too
        try:
            text = str(json.loads(text))
        except ValueError:
            pass
    if field in ("genre", "prompt"):
        return Control(**{field: text})
    if field in ("bpm", "volume"):
        return Control(**{field: _float(text, field)})
    if field == "playing":
        return Control(playing=_bool(text, field))
    # tempo_lock: a boolean, or the BPM to hold
    try:
        return Control(tempo_lock=_bool(text, field))
    except InvalidControl:
        try:
            bpm = float(text)
        except ValueError:
            raise InvalidControl(f"tempo_lock must be true/false or a BPM ({MIN_BPM:g}-{MAX_BPM:g}) "
                                 f"to hold, got {text[:40]!r}") from None
        return Control(tempo_lock=True, bpm=bpm)


# ---------------------------------------------------------------------------
# The bridge


class MqttBridge:
    """Publish d2m's state to an MQTT broker and apply controls from it (see the module doc).

    ``on_control(control)`` is called on the event loop for every valid
    control. ``client_factory(**kwargs)`` builds the ``aiomqtt.Client``
    (tests may wrap it). Call :meth:`start` once on the running loop and
    :meth:`close` at the end.
    """

    def __init__(self, broker: tuple[str, int], *, on_control: Callable[[Control], None],
                 instance: str | None = None, event_queue: int = EVENT_QUEUE_MESSAGES,
                 event_max_age_s: float = EVENT_MAX_AGE_S, style_interval_s: float = STYLE_INTERVAL_S,
                 reconnect_min_s: float = RECONNECT_MIN_S, reconnect_max_s: float = RECONNECT_MAX_S,
                 keepalive_s: int = KEEPALIVE_S, clock: Callable[[], float] = time.monotonic,
                 client_factory: Callable[..., object] | None = None):
        self.host, self.port = broker
        self.instance = check_instance(instance) if instance is not None else default_instance()
        self.prefix = f"{TOPIC_ROOT}/{self.instance}/"
        self.on_control = on_control
        self.event_queue = event_queue
        self.event_max_age_s = event_max_age_s
        self.style_interval_s = style_interval_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.keepalive_s = keepalive_s
        self.clock = clock
        self._factory = client_factory
        self._latest: dict[str, Outgoing] = {}
        self._dirty: OrderedDict[str, None] = OrderedDict()
        self._events: deque[tuple[float, Outgoing]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._client = None
        self._next_style = -math.inf
        self.connected = False
        self.connects = 0           #: successful connections
        self.disconnects = 0        #: connections lost
        self.failures = 0           #: connection attempts that failed
        self.published = 0          #: messages the broker accepted
        self.dropped = 0            #: events dropped because the queue was full
        self.stale = 0              #: events dropped because they waited too long
        self.publish_errors = 0     #: publishes that failed (the connection is then rebuilt)
        self.controls = 0           #: controls applied
        self.rejected = 0           #: control messages refused
        self.last_error = ""
        self.next_retry_s: float | None = None
        self._streak = 0            # failed attempts since the last connection (for logging)
        self._set(Outgoing("status", ONLINE, 1, True))

    def topic(self, sub: str) -> str:
        """Full topic of a sub-topic: ``d2m/<instance>/<sub>``."""
        return self.prefix + sub

    # -- queueing (event loop, never waits) -------------------------------------
    def publish(self, message: Outgoing) -> None:
        """Queue one message: retained ones keep only their latest value, others go to the event queue."""
        if message.retain:
            self._set(message)
        else:
            if len(self._events) >= self.event_queue:
                self._events.popleft()
                self.dropped += 1
            self._events.append((self.clock(), message))
        if self._wake is not None:
            self._wake.set()

    def _set(self, message: Outgoing) -> None:
        self._latest[message.topic] = message
        self._dirty[message.topic] = None
        self._dirty.move_to_end(message.topic)

    def on_event(self, msg: dict) -> None:
        """A server event (a WebSocket broadcast dict); never waits."""
        if msg.get("type") == "style":
            now = self.clock()
            if now < self._next_style:
                return
            self._next_style = now + self.style_interval_s
        for message in event_messages(msg):
            self.publish(message)

    def _next(self) -> Outgoing | None:
        while self._dirty:
            topic, _ = self._dirty.popitem(last=False)
            message = self._latest.get(topic)
            if message is not None:
                return message
        now = self.clock()
        while self._events:
            queued_at, message = self._events.popleft()
            if now - queued_at <= self.event_max_age_s:
                return message
            self.stale += 1
        return None

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background (returns at once; a missing broker is retried)."""
        if self._task is not None:
            raise RuntimeError("MqttBridge already started")
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="d2m-mqtt")

    async def close(self, timeout: float = 1.0) -> None:
        """Publish ``offline`` (if connected, waiting at most ``timeout`` s) and disconnect."""
        client = self._client
        if client is not None and self.connected:
            try:
                await asyncio.wait_for(client.publish(self.topic("status"), OFFLINE, qos=1, retain=True),
                                       timeout)
            except Exception as exc:  # noqa: BLE001 - closing must not fail
                log.debug("MQTT: could not publish offline: %r", exc)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await asyncio.wait_for(task, timeout + 1.0)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
        self.connected = False

    def _make_client(self):
        import aiomqtt   # optional dependency (the mqtt extra)

        kwargs = dict(hostname=self.host, port=self.port,
                      identifier=f"d2m-{self.instance}-{os.getpid()}"[:64],
                      will=aiomqtt.Will(self.topic("status"), OFFLINE, qos=1, retain=True),
                      keepalive=self.keepalive_s, timeout=CONNECT_TIMEOUT_S,
                      max_queued_incoming_messages=INCOMING_QUEUE_MESSAGES)
        factory = self._factory or aiomqtt.Client
        return factory(**kwargs)

    async def _run(self) -> None:
        try:
            import aiomqtt
        except ImportError as exc:
            self.last_error = (f"MQTT needs aiomqtt, which is not installed ({exc}); "
                               "install it with: pip install -e '.[mqtt]'")
            log.error("%s", self.last_error)
            return
        delay = self.reconnect_min_s
        while True:
            was_connected = False
            try:
                client = self._make_client()
                async with client:
                    was_connected = True
                    await self._session(client)
            except asyncio.CancelledError:
                raise
            except (aiomqtt.MqttError, OSError, asyncio.TimeoutError) as exc:
                self._lost(exc, was_connected)
            except Exception as exc:  # noqa: BLE001 - the bridge must keep trying
                log.exception("MQTT: unexpected error")
                self._lost(exc, was_connected)
            finally:
                self._client = None
                self.connected = False
            if was_connected:
                delay = self.reconnect_min_s
            self.next_retry_s = delay
            await asyncio.sleep(delay)
            self.next_retry_s = None
            delay = min(delay * 2.0, self.reconnect_max_s)

    def _lost(self, exc: BaseException, was_connected: bool) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if was_connected:
            self.disconnects += 1
            log.warning("MQTT: lost the broker %s:%d (%s); reconnecting (the music is not affected)",
                        self.host, self.port, self.last_error)
        else:
            self.failures += 1
            self._streak += 1
            if self._streak == 1 or self._streak % 20 == 0:
                log.warning("MQTT: cannot reach the broker %s:%d (%s); retrying every %g s at most "
                            "(the music is not affected)", self.host, self.port, self.last_error,
                            self.reconnect_max_s)

    async def _session(self, client) -> None:
        self._client = client
        self.connected = True
        self.connects += 1
        self._streak = 0
        self.last_error = ""
        log.info("MQTT: connected to %s:%d, topics under %s", self.host, self.port, self.prefix)
        await client.subscribe(self.topic("control"), qos=1)
        await client.subscribe(self.topic("control/+"), qos=1)
        self._set(Outgoing("status", ONLINE, 1, True))
        for topic in self._latest:           # a broker may have lost retained values: send them all
            self._dirty[topic] = None
        self._wake.set()
        tasks = [asyncio.create_task(self._send_loop(client), name="d2m-mqtt-send"),
                 asyncio.create_task(self._receive_loop(client), name="d2m-mqtt-receive")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()            # raises what ended the session
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _send_loop(self, client) -> None:
        while True:
            message = self._next()
            if message is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await client.publish(self.topic(message.topic), message.payload, qos=message.qos,
                                     retain=message.retain, timeout=PUBLISH_TIMEOUT_S)
            except Exception:
                self.publish_errors += 1
                if message.retain and message.topic not in self._dirty:
                    self._dirty[message.topic] = None
                raise
            self.published += 1

    async def _receive_loop(self, client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            sub = topic[len(self.prefix):] if topic.startswith(self.prefix) else topic
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode("utf-8")
            elif payload is None:
                payload = b""
            elif not isinstance(payload, (bytes, bytearray)):
                payload = str(payload).encode("utf-8")
            self.handle_control(sub, bytes(payload))

    def handle_control(self, subtopic: str, payload: bytes) -> bool:
        """Apply one control message; publish ``ack`` or ``error``; return whether it was applied."""
        try:
            control = parse_control(subtopic, payload)
            self.on_control(control)
        except InvalidControl as exc:
            self.rejected += 1
            log.warning("MQTT: rejected control on %s: %s", self.topic(subtopic), exc)
            self.publish(Outgoing("error", _json({"topic": self.topic(subtopic), "message": str(exc)})))
            return False
        except Exception as exc:  # noqa: BLE001 - a bad control must not stop receiving
            self.rejected += 1
            log.exception("MQTT: applying a control failed")
            self.publish(Outgoing("error", _json({"topic": self.topic(subtopic),
                                                  "message": f"internal error: {exc}"})))
            return False
        self.controls += 1
        self.publish(Outgoing("ack", _json({"topic": self.topic(subtopic), "changes": control.changes()})))
        return True

    # -- status ------------------------------------------------------------------
    def status(self) -> dict:
        """Counters for the server's status."""
        return {
            "broker": f"{self.host}:{self.port}", "prefix": self.prefix, "connected": self.connected,
            "connects": self.connects, "disconnects": self.disconnects, "failures": self.failures,
            "published": self.published, "queued_events": len(self._events),
            "pending_state": len(self._dirty), "dropped": self.dropped, "stale": self.stale,
            "publish_errors": self.publish_errors, "controls": self.controls,
            "rejected": self.rejected, "last_error": self.last_error,
            "next_retry_s": self.next_retry_s,
        }
