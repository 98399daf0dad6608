"""OSC in: an asyncio UDP receiver that decodes, routes and hands results to a callback.

Every datagram is decoded with the bounded decoder of
:mod:`d2m_server.osc_codec`, every message routed with
:func:`d2m_server.osc_route.route`, and the result passed to
``on_routed(routed, addr)``. Bad input (oversized datagrams, undecodable
bytes, unknown addresses, wrong arguments) is counted in ``stats`` (an
:class:`InputStats` named "osc") under its reason code and never stops the
receiver; neither does an exception raised by the callback (counted as
``callback_error``).

Hardening (see docs/protocol.md):

* ``allow``: when given, datagrams from source addresses outside these
  networks are dropped before decoding and counted as ``not_allowed``
  (``d2m serve`` sets it whenever OSC-in binds a non-loopback address).
* One datagram never holds the event loop for long: routing stops after
  :data:`DATAGRAM_BUDGET_S` (the rest counted as ``over_budget``), and of
  several frames of the same person in one datagram (all stamped with the same
  arrival time) only the last is delivered (the others counted in
  :attr:`OscReceiver.frames_superseded`).
* Status requests are answered at most :data:`MAX_STATUS_REPLIES_PER_S` times
  a second and once per datagram (more counted as ``rate_limited``), so a
  flood of tiny requests cannot turn the server into an amplifier.
* Delivering the routed messages to the callback has a budget of its own
  (the rest counted as ``over_budget``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import Callable, Iterable, Sequence

from .osc_codec import (MAX_BUNDLE_DEPTH, MAX_OSC_ARGS, MAX_OSC_MESSAGES, MAX_OSC_PACKET,
                        OscDecodeError, decode_packet)
from .osc_route import Routed, route
from .stats import InputStats

log = logging.getLogger("d2m.osc")

#: Where motion and controls are received when no --osc-in is given.
DEFAULT_OSC_IN_HOST = "127.0.0.1"
DEFAULT_OSC_IN_PORT = 9000
#: Most wall time (s) spent routing and delivering the messages of one datagram;
#: messages left when it is spent are dropped and counted as ``over_budget``.
DATAGRAM_BUDGET_S = 0.002
#: Most ``/d2m/status`` requests answered per second (all senders together).
MAX_STATUS_REPLIES_PER_S = 20.0
#: Sender addresses whose allowlist verdict is remembered; the memo is emptied beyond it.
ALLOWED_CACHE_HOSTS = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(specs: Iterable[str]) -> list[Network]:
    """``["10.0.0.0/8", "192.168.1.20"]`` -> networks; raises ValueError naming a bad entry."""
    out = []
    for spec in specs:
        try:
            out.append(ipaddress.ip_network(str(spec).strip(), strict=False))
        except ValueError:
            raise ValueError(f"--osc-allow {spec!r} is not an address or network "
                             "(examples: 192.168.1.20, 10.0.0.0/8, fd00::/8)") from None
    return out


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.x.x.x`` and ``::1`` (what binds only this machine)."""
    if host.strip().lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


#: Networks always allowed when an allowlist is active (this machine).
LOOPBACK_NETWORKS: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.0/8"),
                                          ipaddress.ip_network("::1/128"))

OnRouted = Callable[[Routed, tuple], None]


class _ReceiveProtocol(asyncio.DatagramProtocol):
    def __init__(self, receiver: "OscReceiver") -> None:
        self.receiver = receiver

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.receiver.handle_datagram(data, addr)
        except Exception as exc:  # noqa: BLE001 - the protocol must survive anything
            self.receiver.stats.reject("internal_error", repr(exc))
            log.debug("OSC datagram from %s failed", addr, exc_info=True)

    def error_received(self, exc: Exception) -> None:
        self.receiver.stats.reject("socket_error", repr(exc))


class OscReceiver:
    """Listens for OSC on UDP and calls ``on_routed(routed, addr)`` for every message.

    ``clock()`` gives the session time stamped on frames (read once per
    datagram). ``on_routed`` runs on the event loop and must be cheap; it is
    also called for rejected messages (``routed.error`` set, already counted
    in ``stats``) so a caller can announce them. Limits are keyword arguments
    defaulting to the named constants in :mod:`d2m_server.osc_codec`.
    """

    def __init__(
        self,
        on_routed: OnRouted,
        clock: Callable[[], float],
        *,
        stats: InputStats | None = None,
        max_packet: int = MAX_OSC_PACKET,
        max_depth: int = MAX_BUNDLE_DEPTH,
        max_args: int = MAX_OSC_ARGS,
        max_messages: int = MAX_OSC_MESSAGES,
        allow: Sequence[Network | str] | None = None,
        budget_s: float = DATAGRAM_BUDGET_S,
        max_status_per_s: float = MAX_STATUS_REPLIES_PER_S,
    ) -> None:
        self.on_routed = on_routed
        self.clock = clock
        self.stats = stats if stats is not None else InputStats("osc")
        self.max_packet = max_packet
        self.max_depth = max_depth
        self.max_args = max_args
        self.max_messages = max_messages
        #: None: accept every sender; else only these networks (and loopback).
        self.allow: tuple[Network, ...] | None = (
            None if allow is None else LOOPBACK_NETWORKS + tuple(
                a if isinstance(a, (ipaddress.IPv4Network, ipaddress.IPv6Network))
                else parse_networks([a])[0] for a in allow))
        self.budget_s = budget_s
        self.max_status_per_s = max_status_per_s
        self.datagrams = 0                  #: datagrams received, good or bad
        self.frames_superseded = 0          #: frames replaced by a later one of the same person
        self.slowest_datagram_s = 0.0       #: longest handle_datagram call so far (s)
        self._status_tokens = max(1.0, max_status_per_s)
        self._status_refill = time.monotonic()
        self._allowed_cache: dict[str, bool] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str = DEFAULT_OSC_IN_HOST, port: int = DEFAULT_OSC_IN_PORT) -> None:
        """Bind the UDP socket (port 0 picks a free port; see :attr:`port`)."""
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _ReceiveProtocol(self), local_addr=(host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for OSC on {host}:{port}: {exc.strerror}; "
                                     "is another program using the port? choose another with "
                                     "--osc-in HOST:PORT") from None

    @property
    def address(self) -> tuple:
        """The bound socket address ``(host, port, ...)``."""
        if self._transport is None:
            raise RuntimeError("OscReceiver is not started")
        return self._transport.get_extra_info("sockname")

    @property
    def port(self) -> int:
        """The bound UDP port (the real one when started with port 0)."""
        return int(self.address[1])

    def handle_datagram(self, data: bytes, addr: tuple) -> None:
        """Decode, route and deliver one datagram (what the protocol calls; usable in tests)."""
        started = time.perf_counter()
        try:
            self._handle(data, addr, started)
        finally:
            spent = time.perf_counter() - started
            if spent > self.slowest_datagram_s:
                self.slowest_datagram_s = spent

    def is_allowed(self, host: str) -> bool:
        """Whether OSC from ``host`` is accepted (always True without an allowlist)."""
        if self.allow is None:
            return True
        known = self._allowed_cache.get(host)
        if known is None:
            try:
                ip = ipaddress.ip_address(host.split("%", 1)[0])
                if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                known = any(ip in net for net in self.allow)
            except ValueError:
                known = False
            if len(self._allowed_cache) > ALLOWED_CACHE_HOSTS:   # spoofed sources cannot grow it
                self._allowed_cache.clear()
            self._allowed_cache[host] = known
        return known

    def _handle(self, data: bytes, addr: tuple, started: float) -> None:
        self.datagrams += 1
        if self.allow is not None and not self.is_allowed(str(addr[0])):
            self.stats.reject("not_allowed", f"datagram from {addr[0]}:{addr[1]} (not in --osc-allow)")
            return
        if len(data) > self.max_packet:
            self.stats.reject("too_large", f"{len(data)} bytes from {addr[0]}:{addr[1]}")
            return
        try:
            messages = decode_packet(data, max_packet=self.max_packet, max_depth=self.max_depth,
                                     max_args=self.max_args, max_messages=self.max_messages)
        except OscDecodeError as exc:
            self.stats.reject(exc.reason, f"{exc} (from {addr[0]}:{addr[1]})")
            return
        t = self.clock()
        deadline = started + self.budget_s
        results: list[Routed] = []
        status_asked = False
        for k, message in enumerate(messages):
            if k and time.perf_counter() > deadline:
                left = len(messages) - k
                self.stats.counts["over_budget"] += left - 1     # one reject() call logs them all
                self.stats.reject("over_budget", f"{left} of {len(messages)} messages from "
                                                 f"{addr[0]}:{addr[1]} dropped (time budget spent)")
                break
            routed = route(message, t)
            if routed.error:
                self.stats.reject(routed.error, routed.detail)
            elif routed.status_request and (status_asked or not self._take_status_token()):
                routed.status_request = False
                routed.error, routed.detail = "rate_limited", "too many /d2m/status requests"
                self.stats.reject("rate_limited", f"/d2m/status from {addr[0]}:{addr[1]}")
            else:
                status_asked = status_asked or routed.status_request
                self.stats.ok()
            results.append(routed)
        if len(results) > 1:
            self._keep_last_frame_per_person(results)
        deadline = time.perf_counter() + self.budget_s      # delivering gets its own budget
        for k, routed in enumerate(results):
            if k and time.perf_counter() > deadline:
                left = sum(1 for r in results[k:] if r.frames or r.control is not None or r.status_request)
                if left:
                    self.stats.counts["over_budget"] += left - 1
                    self.stats.reject("over_budget", f"{left} routed messages from {addr[0]}:{addr[1]} "
                                                     "not delivered (time budget spent)")
                break
            try:
                self.on_routed(routed, addr)
            except Exception as exc:  # noqa: BLE001 - a bad callback must not stop input
                self.stats.reject("callback_error", f"{routed.address}: {exc!r}")
                log.debug("OSC callback failed for %s", routed.address, exc_info=True)

    def _keep_last_frame_per_person(self, results: list[Routed]) -> None:
        """Frames of one datagram share one timestamp: only the last per person is news."""
        seen: set[int] = set()
        for routed in reversed(results):
            if not routed.frames:
                continue
            kept = []
            for frame in reversed(routed.frames):
                if frame.person in seen:
                    self.frames_superseded += 1
                else:
                    seen.add(frame.person)
                    kept.append(frame)
            kept.reverse()
            routed.frames = kept

    def _take_status_token(self) -> bool:
        now = time.monotonic()
        rate = self.max_status_per_s
        self._status_tokens = min(max(1.0, rate), self._status_tokens + (now - self._status_refill) * rate)
        self._status_refill = now
        if self._status_tokens >= 1.0:
            self._status_tokens -= 1.0
            return True
        return False

    def status(self) -> dict:
        """Counters for the server's status."""
        return {**self.stats.snapshot(), "datagrams": self.datagrams,
                "frames_superseded": self.frames_superseded,
                "slowest_datagram_ms": round(self.slowest_datagram_s * 1000, 3),
                "allowlist": None if self.allow is None else [str(n) for n in self.allow]}

    def send_to(self, addr: tuple, packets: Iterable[bytes]) -> None:
        """Reply from the listening socket (so the source port is the OSC-in port); never raises."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self.stats.reject("send_error", "receiver not started or closed")
            return
        for packet in packets:
            try:
                transport.sendto(packet, addr)
            except Exception as exc:  # noqa: BLE001
                self.stats.reject("send_error", f"{addr}: {exc!r}")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
