"""OSC out: encode conductor events as OSC messages and send them over UDP.

Outgoing messages carry one number per address wherever that suffices, so
TouchDesigner's OSC In CHOP turns each address into a channel; strings (genre,
segment kind, status JSON) go to an OSC In DAT. ``/d2m/beat/full`` bundles
bar, beat and bpm into one message for Unity (OscJack, extOSC) users.

Every encoder returns ``list[bytes]``: one datagram per message, ready for
:meth:`OscSender.send`. Messages are built with python-osc's builder (safe for
building; incoming data never goes through python-osc, see
:mod:`d2m_server.osc_codec`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
from typing import Iterable, Mapping

from pythonosc.osc_message_builder import BuildError, OscMessageBuilder

from d2m.events import Beat, GenreChanged, SegmentPlanned, TempoChanged
from d2m.genres import GENRES
from d2m.hits import HitDetected

from .osc_codec import MAX_OSC_PACKET
from .stats import InputStats


#: Where events go when no --osc-out is given.
DEFAULT_OSC_OUT_HOST = "127.0.0.1"
DEFAULT_OSC_OUT_PORT = 9001
#: Prefix of every telemetry address: /d2m/telemetry/<name>.
TELEMETRY_PREFIX = "/d2m/telemetry/"
#: Longest status JSON sent in one datagram; longer status is replaced by a short error object.
MAX_STATUS_BYTES = MAX_OSC_PACKET - 64

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-/]+")


# ---------------------------------------------------------------- encoding

def _message(address: str, *args: tuple[str, object]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for arg_type, value in args:
        builder.add_arg(value, arg_type)
    return builder.build().dgram


def _f(value: float) -> tuple[str, float]:
    return ("f", float(value))


def _i(value: int) -> tuple[str, int]:
    return ("i", max(_INT32_MIN, min(_INT32_MAX, int(value))))


def _s(value: str) -> tuple[str, str]:
    return ("s", str(value))


def encode_event(event) -> list[bytes]:
    """Datagrams announcing a conductor event; ``[]`` for events OSC does not announce.

    * :class:`~d2m.events.Beat`: ``/d2m/beat`` i (1..4), ``/d2m/bar`` i (0-based),
      ``/d2m/bpm`` f, ``/d2m/downbeat`` i (1 on beat 1 else 0),
      ``/d2m/beat/full`` i i f (bar, beat, bpm).
    * :class:`~d2m.events.TempoChanged`: ``/d2m/tempo`` f, ``/d2m/tempo/confidence`` f,
      ``/d2m/tempo/locked`` i (0/1), ``/d2m/tempo/mode`` s (following / holding / locked / idle).
    * :class:`~d2m.events.GenreChanged`: ``/d2m/genre`` s, ``/d2m/genre/index`` i.
    * :class:`~d2m.events.SegmentPlanned`: ``/d2m/next/bar`` i, ``/d2m/next/bpm`` f,
      ``/d2m/next/genre`` s, ``/d2m/next/kind`` s, ``/d2m/next/time`` f (session s),
      ``/d2m/next/energy`` f; the song form (:mod:`d2m.form`): ``/d2m/next/section`` s,
      ``/d2m/next/section_bar`` i, ``/d2m/next/bars_to_next_section`` i, ``/d2m/next/next_section`` s
      and all four in ``/d2m/section/full`` s i i s (empty / 0 for idle and silent segments).
    * :class:`~d2m.hits.HitDetected`: ``/d2m/hit`` f (strength, >= 1), ``/d2m/hit/full``
      i f f f s (index, strength, move time, accent time or -1, genre; session s).
    """
    if isinstance(event, Beat):
        return [
            _message("/d2m/beat", _i(event.beat)),
            _message("/d2m/bar", _i(event.bar)),
            _message("/d2m/bpm", _f(event.bpm)),
            _message("/d2m/downbeat", _i(1 if event.beat == 1 else 0)),
            _message("/d2m/beat/full", _i(event.bar), _i(event.beat), _f(event.bpm)),
        ]
    if isinstance(event, TempoChanged):
        return [
            _message("/d2m/tempo", _f(event.bpm)),
            _message("/d2m/tempo/confidence", _f(event.confidence)),
            _message("/d2m/tempo/locked", _i(1 if event.locked else 0)),
            _message("/d2m/tempo/mode", _s(event.mode)),
        ]
    if isinstance(event, GenreChanged):
        index = GENRES.index(event.genre) if event.genre in GENRES else -1
        return [
            _message("/d2m/genre", _s(event.genre)),
            _message("/d2m/genre/index", _i(index)),
        ]
    if isinstance(event, HitDetected):
        hit = event.hit
        accent_t = hit.accent_time if hit.accent_time is not None else -1.0
        return [
            _message("/d2m/hit", _f(hit.strength)),
            _message("/d2m/hit/full", _i(hit.index), _f(hit.strength), _f(hit.move_t), _f(accent_t),
                     _s(hit.genre)),
        ]
    if isinstance(event, SegmentPlanned):
        plan = event.plan
        return [
            _message("/d2m/next/bar", _i(plan.bar)),
            _message("/d2m/next/bpm", _f(plan.bpm)),
            _message("/d2m/next/genre", _s(plan.genre)),
            _message("/d2m/next/kind", _s(plan.kind)),
            _message("/d2m/next/time", _f(plan.start_time)),
            _message("/d2m/next/energy", _f(plan.energy)),
            _message("/d2m/next/section", _s(plan.section)),
            _message("/d2m/next/section_bar", _i(plan.section_bar)),
            _message("/d2m/next/bars_to_next_section", _i(plan.bars_to_next_section)),
            _message("/d2m/next/next_section", _s(plan.next_section)),
            _message("/d2m/section/full", _s(plan.section), _i(plan.section_bar), _i(plan.bars_to_next_section),
                     _s(plan.next_section)),
        ]
    return []


def encode_style(energy: float, sharpness: float) -> list[bytes]:
    """``/d2m/energy`` f and ``/d2m/sharpness`` f (both 0..1)."""
    return [_message("/d2m/energy", _f(energy)), _message("/d2m/sharpness", _f(sharpness))]


def telemetry_address(name: str) -> str | None:
    """``/d2m/telemetry/<name>`` with characters OSC addresses cannot hold replaced by '_'."""
    clean = _NAME_BAD.sub("_", str(name)).strip("/")
    clean = re.sub(r"/{2,}", "/", clean)
    return TELEMETRY_PREFIX + clean if clean else None


def encode_telemetry(values: Mapping[str, float]) -> list[bytes]:
    """One ``/d2m/telemetry/<name>`` f message per finite number; other values are skipped."""
    out = []
    for name, value in values.items():
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        address = telemetry_address(name)
        if address is None:
            continue
        try:
            out.append(_message(address, _f(value)))
        except (BuildError, OverflowError):
            continue        # beyond float32 range
    return out


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):          # numpy scalars
        try:
            return _jsonable(value.item())
        except Exception:  # noqa: BLE001
            pass
    return str(value)


def encode_status(status: Mapping) -> list[bytes]:
    """One ``/d2m/status`` s message holding ``status`` as JSON (non-finite numbers become null).

    A status longer than :data:`MAX_STATUS_BYTES` is replaced by
    ``{"error": "status_too_large", "bytes": N}`` so the reply still fits a datagram.
    """
    text = json.dumps(_jsonable(status), separators=(",", ":"), allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > MAX_STATUS_BYTES:
        text = json.dumps({"error": "status_too_large", "bytes": size})
    return [_message("/d2m/status", _s(text))]


# ---------------------------------------------------------------- addresses

def parse_hostport(text: str, default_host: str = "127.0.0.1", *,
                   allow_port_zero: bool = False) -> tuple[str, int]:
    """Parse ``HOST:PORT``, ``[IPv6]:PORT``, ``:PORT`` or ``PORT`` into ``(host, port)``.

    Raises ValueError with an example of the expected form.
    """
    raw = str(text).strip()
    hint = (f"expected HOST:PORT such as 127.0.0.1:{DEFAULT_OSC_OUT_PORT}, "
            f"[::1]:{DEFAULT_OSC_OUT_PORT} or just a port; got {text!r}")
    if not raw:
        raise ValueError(f"empty OSC address: {hint}")
    if raw.startswith("["):
        close = raw.find("]")
        if close < 0 or raw[close + 1:close + 2] != ":":
            raise ValueError(f"bad OSC address: {hint}")
        host, port_text = raw[1:close], raw[close + 2:]
    elif raw.count(":") > 1:
        raise ValueError(f"put IPv6 addresses in brackets, e.g. [::1]:{DEFAULT_OSC_OUT_PORT}; got {text!r}")
    elif ":" in raw:
        host, port_text = raw.split(":", 1)
    else:
        host, port_text = "", raw
    host = host.strip() or default_host
    if not port_text.strip().isdigit():
        raise ValueError(f"bad OSC port {port_text!r}: {hint}")
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise ValueError(f"OSC port must be {low}..65535, got {port} in {text!r}")
    return host, port


# ---------------------------------------------------------------- sending

class _SendProtocol(asyncio.DatagramProtocol):
    def __init__(self, stats: InputStats) -> None:
        self.stats = stats

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable when nobody listens on a target: count, never fail.
        self.stats.reject("socket_error", repr(exc))


class OscSender:
    """Sends datagrams to a fixed list of ``(host, port)`` targets; never raises while sending.

    Host names are resolved once in :meth:`start`. Send failures (no route,
    nobody listening, buffer full) are counted in ``stats`` (an
    :class:`InputStats` named "osc-out") under ``socket_error``/``send_error``.
    """

    def __init__(self, targets: Iterable[tuple[str, int]], *, stats: InputStats | None = None) -> None:
        self.targets = [(str(h), int(p)) for h, p in targets]
        self.stats = stats if stats is not None else InputStats("osc-out")
        self.sent = 0                    #: datagrams handed to the OS
        self._resolved: list[tuple[int, tuple]] = []
        self._transports: dict[int, asyncio.DatagramTransport] = {}

    async def start(self) -> None:
        """Resolve the targets and open the sending socket(s); raises ValueError for bad hosts."""
        loop = asyncio.get_running_loop()
        resolved = []
        for host, port in self.targets:
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            except OSError as exc:
                raise ValueError(f"cannot resolve OSC target {host}:{port}: {exc}") from None
            infos.sort(key=lambda info: info[0] != socket.AF_INET)   # prefer IPv4
            family, _, _, _, sockaddr = infos[0]
            resolved.append((family, sockaddr))
        needed = {family for family, _ in resolved}
        # IPv4 always (replies to status requests), IPv6 when a target needs it or the host has it.
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _SendProtocol(self.stats), family=family, allow_broadcast=True)
            except OSError as exc:
                if family in needed:
                    self.close()
                    raise ValueError(f"cannot open a UDP socket for OSC out: {exc}") from None
                continue
            self._transports[family] = transport
        self._resolved = resolved

    def send(self, packets: Iterable[bytes]) -> None:
        """Send every packet to every target."""
        if not self._transports:
            self.stats.reject("send_error", "OscSender is not started (await start()) or is closed")
            return
        packets = list(packets)
        for family, sockaddr in self._resolved:
            self._send(family, sockaddr, packets)

    def send_to(self, addr: tuple, packets: Iterable[bytes]) -> None:
        """Send packets to one numeric address (e.g. the sender of a status request)."""
        host = str(addr[0])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._send(family, tuple(addr), list(packets))

    def _send(self, family: int, sockaddr: tuple, packets: list[bytes]) -> None:
        transport = self._transports.get(family)
        if transport is None or transport.is_closing():
            self.stats.reject("send_error", f"sender not started or closed ({sockaddr})")
            return
        for packet in packets:
            try:
                transport.sendto(packet, sockaddr)
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - sending must never raise
                self.stats.reject("send_error", f"{sockaddr}: {exc!r}")

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
