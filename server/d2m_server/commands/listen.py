"""``d2m listen``: print the OSC events a d2m server sends, decoded (what TouchDesigner would see).

Datagrams are decoded with d2m's own bounded decoder
(:func:`d2m_server.osc_codec.decode_packet`); bundles are flattened. Each
message is one line: seconds since start, the address and the arguments
(strings quoted), or with ``--json`` one JSON object per line. Undecodable
datagrams are reported on stderr and counted; listening goes on.
"""

from __future__ import annotations

import json
import math
import socket
import sys
import time

from ..osc_codec import IMPULSE, OscDecodeError, Timetag, decode_packet
from ..osc_out import DEFAULT_OSC_OUT_PORT
from ..stats import InputStats

#: How often the receive loop wakes to check --duration (s).
POLL_S = 0.2
#: Receive buffer: the largest UDP datagram.
MAX_DATAGRAM = 65535


def register(sub) -> None:
    p = sub.add_parser("listen", help="print the OSC events d2m sends (decoded)",
                       description="Listen where d2m sends its OSC events (its --osc-out) and print "
                                   "every message, decoded.")
    p.add_argument("--port", type=int, default=DEFAULT_OSC_OUT_PORT,
                   help=f"UDP port to listen on (default {DEFAULT_OSC_OUT_PORT}, d2m's --osc-out)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0: all; default 127.0.0.1)")
    p.add_argument("--filter", action="append", default=[], metavar="PREFIX",
                   help="print only addresses starting with PREFIX (repeatable), e.g. --filter /d2m/beat")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--count", type=int, default=None, help="stop after printing this many messages")
    p.set_defaults(func=run)


def _jsonable(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray)):
        return {"blob": bytes(value).hex()}
    if isinstance(value, Timetag):
        return {"timetag": value.ntp}
    if value is IMPULSE:
        return "IMPULSE"
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _text(value) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (bytes, bytearray)):
        return f"<blob {len(value)} bytes>"
    if isinstance(value, list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if value is None:
        return "nil"
    return str(value)


def format_message(t: float, address: str, args: list, sender: tuple, as_json: bool) -> str:
    """One output line for a decoded message received ``t`` s after start."""
    if as_json:
        return json.dumps({"t": round(t, 6), "address": address, "args": _jsonable(args),
                           "from": f"{sender[0]}:{sender[1]}"}, ensure_ascii=False, allow_nan=False)
    return f"{t:9.3f} {address}" + "".join(" " + _text(a) for a in args)


def run(args) -> int:
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(f"d2m listen: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; is another "
              f"program (TouchDesigner, oscdump) using the port? choose another with --port", file=sys.stderr)
        sock.close()
        return 2
    sock.settimeout(POLL_S)
    bad = InputStats("listen")
    printed = 0
    start = time.monotonic()
    print(f"listening for d2m's OSC events on {args.host}:{sock.getsockname()[1]} (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    try:
        while True:
            if args.duration is not None and time.monotonic() - start >= args.duration:
                break
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM)
            except socket.timeout:
                continue
            t = time.monotonic() - start
            try:
                messages = decode_packet(data)
            except OscDecodeError as exc:
                bad.reject(exc.reason, f"{len(data)} bytes from {sender[0]}:{sender[1]}: {exc}")
                continue
            for message in messages:
                if args.filter and not any(message.address.startswith(p) for p in args.filter):
                    continue
                print(format_message(t, message.address, message.args, sender, args.json), flush=True)
                printed += 1
                if args.count is not None and printed >= args.count:
                    return 0
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if bad.rejected:
            print(f"d2m listen: {bad.rejected} undecodable datagram(s): {dict(bad.counts)}", file=sys.stderr)
    return 0
