"""Seeded OSC packet generator and mutator (hardening fuzz tests and benchmarks/soak.py).

:func:`packets` yields a reproducible mix of well-formed messages and bundles
for every address d2m routes (with good and bad argument values), mutated
packets (bit flips, truncation, corrupted sizes and type tags, splices) and
raw random bytes. :func:`pathological` lists hand-made worst cases (maximum
size, bracket bombs, bundle bombs, thousands of tiny messages).

Run as a script it sends packets over UDP at a steady rate (a separate
process, so the sender never competes with the receiver's event loop for the
GIL)::

    python -m tests.hardening.osc_fuzz --port 9000 --count 20000 --rate 5000 --seed 1
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import time
from typing import Iterator

BUNDLE_TAG = b"#bundle\x00"
#: Addresses d2m routes, plus near misses.
ADDRESSES = ("/d2m/pose", "/mediapipe/pose", "/poses/arr", "/d2m/genre", "/d2m/prompt",
             "/d2m/tempo/lock", "/d2m/tempo/unlock", "/d2m/volume", "/d2m/start", "/d2m/stop",
             "/d2m/status", "/d2m", "/", "/d2m/pose/0", "/x", "/d2m/genre\x01", "/D2M/POSE")
GENRE_WORDS = ("house", "techno", "hiphop", "dnb", "ambient", "auto", "jazz", "HOUSE", "", "x" * 300)
ALL_TAGS = "ifhdsSbtcmrTFNI"
EXTREME_INTS = (0, 1, -1, 2**31 - 1, -2**31, 33, 17, 7, 1000, -1000)
EXTREME_FLOATS = (0.0, 0.5, 1.0, -1.0, 1e30, -1e30, float("nan"), float("inf"), float("-inf"),
                  3.4e38, 1e-40, 120.0, 60.0, 200.0, 59.9, 200.1)
#: Largest datagram sent over real UDP (the OS refuses more than this on loopback IPv4).
MAX_UDP = 65507


def osc_string(text: str | bytes) -> bytes:
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    raw += b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


def osc_blob(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data + b"\x00" * (-len(data) % 4)


def message(address: str | bytes, tags: str, payload: bytes) -> bytes:
    return osc_string(address) + osc_string("," + tags) + payload


def frame_message(frame, person: int | None = None) -> bytes:
    """A well-formed ``/d2m/pose`` message for a :class:`d2m.skeleton.SkeletonFrame` (as the
    frame's person, or ``person``): the senders of the soak, crash and restart runs."""
    joints = [float(v) for v in frame.joints.reshape(-1)]
    who = frame.person if person is None else person
    return message("/d2m/pose", "is" + "f" * len(joints),
                   struct.pack(">i", who) + osc_string(frame.layout.value)
                   + struct.pack(f">{len(joints)}f", *joints))


def encode_value(tag: str, value) -> bytes:
    if tag == "i":
        return struct.pack(">i", value)
    if tag == "h":
        return struct.pack(">q", value)
    if tag == "f":
        return struct.pack(">f", value)
    if tag == "d":
        return struct.pack(">d", value)
    if tag in "sS":
        return osc_string(value)
    if tag == "b":
        return osc_blob(value)
    if tag == "t":
        return struct.pack(">Q", value)
    if tag in "cmr":
        return struct.pack(">I", value)
    return b""                                  # T F N I [ ]


def random_value(rng: random.Random, tag: str):
    if tag == "i":
        return rng.choice(EXTREME_INTS) if rng.random() < 0.5 else rng.randint(-2**31, 2**31 - 1)
    if tag == "h":
        return rng.randint(-2**63, 2**63 - 1)
    if tag in "fd":
        f = rng.choice(EXTREME_FLOATS) if rng.random() < 0.4 else rng.uniform(-2, 2)
        return max(min(f, 3.4e38), -3.4e38) if tag == "f" and abs(f) != float("inf") else f
    if tag in "sS":
        return rng.choice(GENRE_WORDS) if rng.random() < 0.5 else "".join(
            chr(rng.randint(1, 0x2FF)) for _ in range(rng.randint(0, 20)))
    if tag == "b":
        return rng.randbytes(rng.randint(0, 40))
    if tag == "t":
        return rng.choice((0, 1, 2**64 - 1, rng.getrandbits(64)))
    if tag in "cmr":
        return rng.getrandbits(32) if rng.random() < 0.3 else rng.randint(0, 0x10FFFF)
    return None


def typed_message(rng: random.Random, address: str, tags: str, values=None) -> bytes:
    values = values if values is not None else [random_value(rng, t) for t in tags]
    payload = b"".join(encode_value(t, v) for t, v in zip(tags, values))
    return message(address, tags, payload)


def pose_message(rng: random.Random) -> bytes:
    """A /d2m/pose, /mediapipe/pose or /poses/arr message, mostly well-formed."""
    kind = rng.randrange(3)
    if kind == 0:
        layout, joints = rng.choice((("coco17", 17), ("mediapipe33", 33)))
        dims = rng.choice((2, 3, 4))
        n = joints * dims + (rng.choice((0, 0, 0, 1, -1)))
        vals = [rng.random() if rng.random() > 0.02 else rng.choice(EXTREME_FLOATS) for _ in range(max(n, 0))]
        person = rng.choice((0, 0, 0, 1, 2, -1, 2**31 - 1))
        return message("/d2m/pose", "is" + "f" * len(vals),
                       struct.pack(">i", person) + osc_string(layout if rng.random() > 0.05 else "bogus")
                       + struct.pack(f">{len(vals)}f", *vals))
    if kind == 1:
        count = rng.choice((0, 1, 1, 2, 33, -1))
        n = max(count, 0) * 132 if count != 33 else 132
        if rng.random() < 0.1:
            n += 1
        vals = [rng.random() for _ in range(n)]
        return message("/mediapipe/pose", "i" + "f" * n, struct.pack(">i", count) + struct.pack(f">{n}f", *vals))
    n_poses = rng.choice((0, 1, 2, 3))
    n = n_poses * 52 + (1 if rng.random() < 0.1 else 0)
    vals = [rng.uniform(0, 640) for _ in range(n)]
    width = rng.choice((640.0, 0.0, -1.0, 1e-30))
    return message("/poses/arr", "ffi" + "f" * n,
                   struct.pack(">ffi", width, 480.0, n_poses) + struct.pack(f">{n}f", *vals))


def control_message(rng: random.Random) -> bytes:
    address = rng.choice(ADDRESSES[3:])
    tags = rng.choice(("", "s", "i", "f", "d", "T", "F", "N", "I", "ss", "si", "b", "fff", "h"))
    return typed_message(rng, address, tags)


def random_typed_message(rng: random.Random) -> bytes:
    tags = "".join(rng.choice(ALL_TAGS) for _ in range(rng.randint(0, 24)))
    if rng.random() < 0.2:
        # arrays, sometimes unbalanced or too deep
        tags = "".join(rng.choice(("[", "]", "[[", "]]", "[f]", "[[[i]]]")) for _ in range(rng.randint(1, 5))) + tags
        values = [random_value(rng, t) for t in tags]
        return typed_message(rng, rng.choice(ADDRESSES), tags, values)
    return typed_message(rng, rng.choice(ADDRESSES), tags)


def bundle(elements: list[bytes], timetag: int = 1) -> bytes:
    return BUNDLE_TAG + struct.pack(">Q", timetag) + b"".join(struct.pack(">i", len(e)) + e for e in elements)


def random_bundle(rng: random.Random, depth: int = 0) -> bytes:
    elements = []
    for _ in range(rng.randint(0, 6)):
        r = rng.random()
        if r < 0.15 and depth < 6:
            elements.append(random_bundle(rng, depth + 1))
        elif r < 0.5:
            elements.append(pose_message(rng))
        elif r < 0.8:
            elements.append(control_message(rng))
        else:
            elements.append(random_typed_message(rng))
    timetag = rng.choice((0, 1, 2**64 - 1, (4_000_000_000 << 32), rng.getrandbits(64)))
    return bundle(elements, timetag)


def valid_packet(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.35:
        return pose_message(rng)
    if r < 0.6:
        return control_message(rng)
    if r < 0.8:
        return random_typed_message(rng)
    return random_bundle(rng)


_INT32_EDGES = (0, 1, 3, 4, 8, 16, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0xFFFFFFF0, 65507, 65508)


def mutate(rng: random.Random, data: bytes, other: bytes = b"") -> bytes:
    """1-4 random mutations of ``data`` (``other`` may be spliced in)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(10)
        n = len(buf)
        if op == 0 and n:                                     # flip bits
            for _ in range(rng.randint(1, 8)):
                buf[rng.randrange(n)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:                                   # set bytes
            for _ in range(rng.randint(1, 4)):
                buf[rng.randrange(n)] = rng.choice((0, 0xFF, 0x2C, 0x2F, 0x5B, 0x5D, rng.randrange(256)))
        elif op == 2:                                         # truncate
            del buf[rng.randint(0, n):]
        elif op == 3:                                         # extend
            buf += rng.randbytes(rng.choice((1, 2, 3, 4, 8, rng.randint(0, 64))))
        elif op == 4 and n >= 4:                              # delete an aligned chunk
            at = rng.randrange(0, n // 4) * 4
            del buf[at:at + 4 * rng.randint(1, 4)]
        elif op == 5 and n >= 4:                              # duplicate an aligned chunk
            at = rng.randrange(0, n // 4) * 4
            buf[at:at] = buf[at:at + 4 * rng.randint(1, 8)]
        elif op == 6 and n >= 4:                              # extreme int32 at an aligned offset
            at = rng.randrange(0, n // 4) * 4
            buf[at:at + 4] = struct.pack(">I", rng.choice(_INT32_EDGES))
        elif op == 7 and other:                               # splice
            cut = rng.randint(0, n)
            buf = buf[:cut] + bytearray(other[rng.randint(0, len(other)):])
        elif op == 8:                                         # corrupt the type tag string
            comma = buf.find(b",")
            if comma >= 0:
                at = comma + 1 + rng.randrange(8)
                buf[at:at + 1] = bytes([rng.choice(b"ifhdsSbtcmrTFNI[]xyz\x00\xff")])
        elif op == 9:                                         # wrap in (or unwrap from) a bundle
            buf = bytearray(bundle([bytes(buf)], rng.getrandbits(64))) if rng.random() < 0.7 else buf[20:]
    return bytes(buf[:MAX_UDP])


def random_bytes(rng: random.Random) -> bytes:
    n = rng.choice((0, 1, 3, 4, 8, 16, rng.randint(0, 64), rng.randint(0, 512), rng.randint(0, 2048)))
    data = rng.randbytes(n)
    if n >= 1 and rng.random() < 0.3:
        data = b"/" + data[1:]
    if n >= 8 and rng.random() < 0.2:
        data = BUNDLE_TAG + data[8:]
    return data


def packets(seed: int, count: int, *, big_every: int = 5000) -> Iterator[bytes]:
    """``count`` reproducible fuzz packets: valid (30 %), mutated (55 %), random bytes (15 %)."""
    rng = random.Random(seed)
    big = pathological()
    previous = valid_packet(rng)
    for k in range(count):
        if big_every and k % big_every == big_every - 1:
            name, data = big[(k // big_every) % len(big)]
            yield data if rng.random() < 0.5 else mutate(rng, data)
            continue
        r = rng.random()
        if r < 0.30:
            data = valid_packet(rng)
        elif r < 0.85:
            data = mutate(rng, valid_packet(rng), previous)
        else:
            data = random_bytes(rng)
        previous = data
        yield data


def pathological() -> list[tuple[str, bytes]]:
    """Hand-made worst cases for time and memory, each at most one UDP datagram."""
    out: list[tuple[str, bytes]] = []
    out.append(("bracket_bomb", message("/d2m/pose", "[]" * 32000, b"")[:65504]))
    out.append(("nested_array_bomb", message("/d2m/pose", "[[]]" * 8000, b"")))
    tiny = osc_string("/a")
    out.append(("thousands_of_tiny_messages", bundle([tiny] * ((65000 - 16) // 8))))
    out.append(("too_many_messages", bundle([osc_string("/d2m/status")] * 1100)))
    pose = message("/d2m/pose", "is" + "f" * 68, struct.pack(">i", 0) + osc_string("coco17")
                   + struct.pack(">68f", *([0.5] * 68)))
    out.append(("max_pose_bundle", bundle([pose] * (65000 // (len(pose) + 4)))))
    # Small enough to be routed whole within the datagram budget on a loaded machine (the
    # bundle above may spend the budget on its first frame): later frames supersede earlier.
    out.append(("one_person_four_frames_bundle", bundle([pose] * 4)))
    out.append(("many_people_bundle", bundle([
        message("/d2m/pose", "is" + "f" * 68, struct.pack(">i", p) + osc_string("coco17")
                + struct.pack(">68f", *([0.5] * 68))) for p in range(170)])))
    status = message("/d2m/status", "", b"")
    out.append(("status_flood_bundle", bundle([status] * 250)))
    mp = message("/mediapipe/pose", "i" + "f" * 924, struct.pack(">i", 7) + struct.pack(">924f", *([0.3] * 924)))
    out.append(("mediapipe_seven_people_bundle", bundle([mp] * (65000 // (len(mp) + 4)))))
    arr = message("/poses/arr", "ffi" + "f" * 988, struct.pack(">ffi", 640.0, 480.0, 19)
                  + struct.pack(">988f", *([100.0] * 988)))
    out.append(("poseosc_nineteen_people_bundle", bundle([arr] * (65000 // (len(arr) + 4)))))
    out.append(("max_args", message("/d2m/prompt", "s" * 1024, osc_string("ab") * 1024)))
    out.append(("too_many_args", message("/d2m/pose", "N" * 5000, b"")))
    out.append(("huge_blob_claim", message("/a", "b", struct.pack(">i", 0x7FFFFFF0))))
    out.append(("huge_string_no_nul", b"/" + b"a" * 65503))
    nested = osc_string("/x")
    for _ in range(4000):
        nested = bundle([nested])
        if len(nested) > 65000:
            break
    out.append(("deep_bundle_bomb", nested))
    out.append(("bundle_size_past_end", BUNDLE_TAG + b"\x00" * 8 + struct.pack(">i", 0x7FFFFFFC) + b"/a\x00\x00"))
    out.append(("far_future_timetag", bundle([message("/d2m/volume", "f", struct.pack(">f", 0.5))],
                                             2**64 - 1)))
    out.append(("prompt_too_long", message("/d2m/prompt", "s", osc_string("x" * 60000))))
    out.append(("max_size_zeros", b"\x00" * 65504))
    out.append(("oversize", b"/" + b"\x00" * 65507))
    return [(name, data) for name, data in out]


def send(host: str, port: int, count: int, rate: float, seed: int) -> int:
    """Send ``count`` fuzz packets to ``host:port`` at ``rate`` per second; return how many went."""
    batch = list(packets(seed, count))        # generated first: sending costs little CPU
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    t0 = time.monotonic()
    for k, data in enumerate(batch):
        if len(data) > MAX_UDP:
            data = data[:MAX_UDP]
        due = t0 + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            sock.sendto(data, (host, port))
            sent += 1
        except OSError:
            pass
    sock.close()
    return sent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    print(send(a.host, a.port, a.count, a.rate, a.seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
