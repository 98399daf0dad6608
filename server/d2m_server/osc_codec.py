"""A small, bounded OSC 1.0 decoder for untrusted network input (sans-I/O).

:func:`decode_packet` turns one UDP datagram into a flat list of
:class:`OscMessage` s. It never sleeps on a bundle's timetag (every message is
delivered at once), walks nested bundles with an explicit stack (no
recursion), visits each byte a bounded number of times (linear time) and
raises nothing but :class:`OscDecodeError`, whose ``reason`` is one of
:data:`DECODE_REASONS` so bad input can be counted by kind.

python-osc's parser is deliberately not used on network input; python-osc is
only used to *build* outgoing messages (see :mod:`d2m_server.osc_out`).

Argument types (OSC 1.0 plus the common extensions):

====  =========================  ===========================================
tag   OSC type                   Python value
====  =========================  ===========================================
i     int32                      ``int``
h     int64                      ``int``
f     float32                    ``float`` (NaN/inf kept as they are)
d     float64                    ``float``
s, S  string, symbol (UTF-8)     ``str``
b     blob                       ``bytes``
t     timetag (NTP 64 bit)       :class:`Timetag`
c     char (as int32)            ``str`` of length 1
m     MIDI (port, status, d1, d2) ``tuple`` of 4 ints
r     RGBA colour                ``tuple`` of 4 ints (r, g, b, a)
T, F  true, false                ``True``, ``False``
N     nil                        ``None``
I     impulse / infinitum        :data:`IMPULSE`
[ ]   array (nesting <= MAX_ARRAY_DEPTH)  ``list``
====  =========================  ===========================================
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

#: Largest datagram accepted, in bytes (the largest UDP payload over IPv4).
MAX_OSC_PACKET = 65507
#: Deepest bundle nesting accepted (a plain bundle is depth 1).
MAX_BUNDLE_DEPTH = 4
#: Most arguments in one message. 1024 fits a MediaPipe pose (1 + 33 x 4 = 133),
#: a /d2m/pose (2 + 33 x 4 = 134) and PoseOSC with up to 19 people (3 + 19 x 52).
MAX_OSC_ARGS = 1024
#: Most messages delivered from one datagram (all bundle levels together). A bundle of
#: 33 per-landmark messages per person fits several people; 1024 tiny messages took
#: 2.5-12 ms just to decode, so the cap is 256.
MAX_OSC_MESSAGES = 256
#: Deepest ``[ ]`` array nesting accepted inside one message.
MAX_ARRAY_DEPTH = 2
#: Most ``[`` and ``]`` tags in one message. Brackets are not arguments, so without
#: this cap a 64 KiB tag string of ``[][][]...`` would cost ~30 ms of parsing.
MAX_ARRAY_TAGS = 64

BUNDLE_TAG = b"#bundle\x00"

#: Every reason code :class:`OscDecodeError` can carry.
DECODE_REASONS: tuple[str, ...] = (
    "not_bytes",          # the input is not a bytes-like object
    "empty",              # zero-length datagram
    "too_large",          # longer than max_packet
    "bad_alignment",      # length of a packet or bundle element is not a multiple of 4
    "truncated",          # a string, number, blob or element runs past the end
    "bad_string",         # unterminated, non-zero padding, or not UTF-8
    "bad_address",        # address does not start with '/'
    "bad_typetags",       # type tag string missing its ',' or not ASCII
    "unknown_type",       # a type tag this decoder does not know
    "too_many_args",      # more than max_args arguments
    "too_many_tags",      # more than MAX_ARRAY_TAGS '[' / ']' tags in one message
    "bad_array",          # unbalanced or too deeply nested [ ]
    "bad_blob",           # negative blob size
    "bad_char",           # 'c' value is not a Unicode code point
    "bad_bundle",         # bundle element of size <= 0 or not a multiple of 4, short header
    "too_deep",           # bundles nested deeper than max_depth
    "too_many_messages",  # more than max_messages messages in one datagram
    "trailing_bytes",     # bytes left over after a message's last argument
)


class OscDecodeError(ValueError):
    """A datagram that is not valid OSC; ``reason`` is one of :data:`DECODE_REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class OscMessage(NamedTuple):
    """One decoded OSC message."""
    address: str
    args: list


class Timetag(NamedTuple):
    """An OSC timetag argument ('t'): raw 64-bit NTP time (seconds << 32 | fraction)."""
    ntp: int

    @property
    def seconds(self) -> float:
        """Seconds since 1900-01-01 (NTP epoch)."""
        return self.ntp / 4294967296.0


class _Impulse:
    """The OSC 'I' (impulse, a.k.a. infinitum/bang) argument."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "IMPULSE"


#: The value decoded for the 'I' type tag.
IMPULSE = _Impulse()

# Fixed-size numeric tags decoded in runs with one struct call.
_NUMERIC = {"i": (4, "i"), "f": (4, "f"), "h": (8, "q"), "d": (8, "d")}
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")
_UINT64 = struct.Struct(">Q")
_CONSTANTS = {"T": True, "F": False, "N": None, "I": IMPULSE}


def decode_packet(
    data: bytes,
    *,
    max_packet: int = MAX_OSC_PACKET,
    max_depth: int = MAX_BUNDLE_DEPTH,
    max_args: int = MAX_OSC_ARGS,
    max_messages: int = MAX_OSC_MESSAGES,
) -> list[OscMessage]:
    """Decode one datagram (a message or a bundle) into its messages, in order.

    Bundles are flattened depth-first and their timetags ignored (messages are
    for *now*). Raises only :class:`OscDecodeError`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise OscDecodeError("not_bytes", type(data).__name__)
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise OscDecodeError("empty")
    if n > max_packet:
        raise OscDecodeError("too_large", f"{n} bytes > {max_packet}")
    if n % 4:
        raise OscDecodeError("bad_alignment", f"packet of {n} bytes is not a multiple of 4")
    if not data.startswith(BUNDLE_TAG):
        return [_decode_message(data, 0, n, max_args)]
    if max_depth < 1:
        raise OscDecodeError("too_deep", "bundles are not accepted")
    if n < 16:
        raise OscDecodeError("bad_bundle", "bundle header shorter than 16 bytes")

    out: list[OscMessage] = []
    # Each entry: [next element position, end of this bundle, depth].
    stack: list[list[int]] = [[16, n, 1]]
    while stack:
        top = stack[-1]
        pos, end, depth = top
        if pos >= end:
            stack.pop()
            continue
        if end - pos < 4:
            raise OscDecodeError("truncated", "bundle element size")
        size = _INT32.unpack_from(data, pos)[0]
        if size <= 0:
            raise OscDecodeError("bad_bundle", f"element size {size}")
        if size % 4:
            raise OscDecodeError("bad_alignment", f"bundle element of {size} bytes")
        start = pos + 4
        stop = start + size
        if stop > end:
            raise OscDecodeError("truncated", f"bundle element of {size} bytes runs past the end")
        top[0] = stop
        if data.startswith(BUNDLE_TAG, start):
            if depth + 1 > max_depth:
                raise OscDecodeError("too_deep", f"bundles nested deeper than {max_depth}")
            if size < 16:
                raise OscDecodeError("bad_bundle", "bundle header shorter than 16 bytes")
            stack.append([start + 16, stop, depth + 1])
        else:
            out.append(_decode_message(data, start, stop, max_args))
            if len(out) > max_messages:
                raise OscDecodeError("too_many_messages", f"more than {max_messages} messages")
    return out


def _read_string(data: bytes, pos: int, end: int) -> tuple[str, int]:
    """An OSC-string at ``pos``: UTF-8, NUL-terminated, zero-padded to 4 bytes."""
    nul = data.find(b"\x00", pos, end)
    if nul < 0:
        raise OscDecodeError("bad_string", "string without a terminating NUL")
    nxt = pos + ((nul - pos) // 4 + 1) * 4
    if nxt > end:
        raise OscDecodeError("truncated", "string padding runs past the end")
    if data.count(b"\x00", nul, nxt) != nxt - nul:
        raise OscDecodeError("bad_string", "string padding is not NUL bytes")
    try:
        text = data[pos:nul].decode("utf-8")
    except UnicodeDecodeError:
        raise OscDecodeError("bad_string", "string is not UTF-8") from None
    return text, nxt


def _decode_message(data: bytes, pos: int, end: int, max_args: int) -> OscMessage:
    if data[pos:pos + 1] != b"/":
        raise OscDecodeError("bad_address", "address must start with '/'")
    address, pos = _read_string(data, pos, end)
    if pos == end:
        # OSC 1.0 asks receivers to tolerate a missing type tag string: no arguments.
        return OscMessage(address, [])
    if data[pos:pos + 1] != b",":
        raise OscDecodeError("bad_typetags", "type tag string must start with ','")
    tag_string, pos = _read_string(data, pos, end)
    tags = tag_string[1:]
    if not tags.isascii():
        raise OscDecodeError("bad_typetags", "type tags are not ASCII")
    n_brackets = tags.count("[") + tags.count("]")
    if n_brackets > MAX_ARRAY_TAGS:
        raise OscDecodeError("too_many_tags", f"{n_brackets} array tags > {MAX_ARRAY_TAGS}")
    n_args = len(tags) - n_brackets
    if n_args > max_args:
        raise OscDecodeError("too_many_args", f"{n_args} arguments > {max_args}")

    args: list[Any] = []
    arrays: list[list[Any]] = []   # open '[' arrays; args go to the innermost
    current = args
    i, n_tags = 0, len(tags)
    while i < n_tags:
        tag = tags[i]
        numeric = _NUMERIC.get(tag)
        if numeric is not None:
            j = i + 1
            while j < n_tags and tags[j] == tag:
                j += 1
            size, code = numeric
            count = j - i
            if pos + size * count > end:
                raise OscDecodeError("truncated", f"{count} x '{tag}' run past the end")
            current.extend(struct.unpack_from(f">{count}{code}", data, pos))
            pos += size * count
            i = j
            continue
        if tag == "s" or tag == "S":
            text, pos = _read_string(data, pos, end)
            current.append(text)
        elif tag in _CONSTANTS:
            current.append(_CONSTANTS[tag])
        elif tag == "b":
            if pos + 4 > end:
                raise OscDecodeError("truncated", "blob size")
            size = _INT32.unpack_from(data, pos)[0]
            if size < 0:
                raise OscDecodeError("bad_blob", f"blob size {size}")
            start = pos + 4
            nxt = start + (size + 3) // 4 * 4
            if nxt > end:
                raise OscDecodeError("truncated", f"blob of {size} bytes runs past the end")
            current.append(data[start:start + size])
            pos = nxt
        elif tag == "t":
            if pos + 8 > end:
                raise OscDecodeError("truncated", "timetag")
            current.append(Timetag(_UINT64.unpack_from(data, pos)[0]))
            pos += 8
        elif tag == "c" or tag == "m" or tag == "r":
            if pos + 4 > end:
                raise OscDecodeError("truncated", f"'{tag}' argument")
            if tag == "c":
                code = _UINT32.unpack_from(data, pos)[0]
                if code >= 0x110000:
                    raise OscDecodeError("bad_char", f"char code {code}")
                current.append(chr(code))
            else:
                current.append(tuple(data[pos:pos + 4]))
            pos += 4
        elif tag == "[":
            if len(arrays) >= MAX_ARRAY_DEPTH:
                raise OscDecodeError("bad_array", f"arrays nested deeper than {MAX_ARRAY_DEPTH}")
            new: list[Any] = []
            current.append(new)
            arrays.append(current)
            current = new
        elif tag == "]":
            if not arrays:
                raise OscDecodeError("bad_array", "']' without '['")
            current = arrays.pop()
        else:
            raise OscDecodeError("unknown_type", f"type tag {tag!r}")
        i += 1
    if arrays:
        raise OscDecodeError("bad_array", "'[' without ']'")
    if pos != end:
        raise OscDecodeError("trailing_bytes", f"{end - pos} bytes after the last argument")
    return OscMessage(address, args)
