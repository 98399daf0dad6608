"""OSC in: an asyncio UDP receiver that decodes, routes and hands results to a callback.

Every datagram is decoded with the bounded decoder of
:mod:`d2m_server.osc_codec`, every message routed with
:func:`d2m_server.osc_route.route`, and the result passed to
``on_routed(routed, addr)``. Bad input (oversized datagrams, undecodable
bytes, unknown addresses, wrong arguments) is counted in ``stats`` (an
:class:`InputStats` named "osc") under its reason code and never stops the
receiver; neither does an exception raised by the callback (counted as
``callback_error``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable, Iterable

from .osc_codec import (MAX_BUNDLE_DEPTH, MAX_OSC_ARGS, MAX_OSC_MESSAGES, MAX_OSC_PACKET,
                        OscDecodeError, decode_packet)
from .osc_route import Routed, route
from .stats import InputStats

log = logging.getLogger("d2m.osc")

#: Where motion and controls are received when no --osc-in is given.
DEFAULT_OSC_IN_HOST = "127.0.0.1"
DEFAULT_OSC_IN_PORT = 9000

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
    ) -> None:
        self.on_routed = on_routed
        self.clock = clock
        self.stats = stats if stats is not None else InputStats("osc")
        self.max_packet = max_packet
        self.max_depth = max_depth
        self.max_args = max_args
        self.max_messages = max_messages
        self.datagrams = 0                  #: datagrams received, good or bad
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
        self.datagrams += 1
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
        for message in messages:
            routed = route(message, t)
            if routed.error:
                self.stats.reject(routed.error, routed.detail)
            else:
                self.stats.ok()
            try:
                self.on_routed(routed, addr)
            except Exception as exc:  # noqa: BLE001 - a bad callback must not stop input
                self.stats.reject("callback_error", f"{message.address}: {exc!r}")
                log.debug("OSC callback failed for %s", message.address, exc_info=True)

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
