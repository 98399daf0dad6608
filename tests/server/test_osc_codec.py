"""The bounded OSC decoder: every type tag, bundles, and hostile bytes."""

from __future__ import annotations

import math
import struct
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from d2m_server.osc_codec import (BUNDLE_TAG, DECODE_REASONS, IMPULSE, MAX_OSC_ARGS,
                                  OscDecodeError, OscMessage, Timetag, decode_packet)


def build(address: str, *args) -> bytes:
    """A message from python-osc's builder; args are values or (value, type tag) pairs."""
    builder = OscMessageBuilder(address=address)
    for arg in args:
        if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], str) and len(arg[1]) == 1:
            builder.add_arg(arg[0], arg[1])
        else:
            builder.add_arg(arg)
    return builder.build().dgram


def bundle(*contents: bytes, timetag: int = 1) -> bytes:
    """A bundle of raw elements (message or bundle datagrams)."""
    body = b"".join(struct.pack(">i", len(c)) + c for c in contents)
    return BUNDLE_TAG + struct.pack(">Q", timetag) + body


def osc_string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


def raw_message(address: str, tags: str, payload: bytes = b"") -> bytes:
    return osc_string(address) + osc_string("," + tags) + payload


# ---------------------------------------------------------------- valid input

def test_every_python_osc_type_decodes_to_its_value():
    data = build("/all", (7, "i"), (0.5, "f"), ("héllo", "s"), (b"\x01\x02\x03", "b"),
                 (-2.25, "d"), (-(2**40), "h"), (0x11223344, "r"), ((1, 0x90, 60, 127), "m"),
                 (True, "T"), (False, "F"), (None, "N"), [3, 4.0])
    [msg] = decode_packet(data)
    assert msg == OscMessage("/all", [7, 0.5, "héllo", b"\x01\x02\x03", -2.25, -(2**40),
                                      (0x11, 0x22, 0x33, 0x44), (1, 0x90, 60, 127),
                                      True, False, None, [3, 4.0]])


def test_types_python_osc_cannot_build_symbol_char_timetag_impulse():
    payload = (osc_string("sym") + struct.pack(">I", ord("é")) + struct.pack(">Q", (5 << 32) | 2**31))
    [msg] = decode_packet(raw_message("/x", "SctI", payload))
    assert msg.args[:2] == ["sym", "é"]
    assert msg.args[2] == Timetag((5 << 32) | 2**31) and msg.args[2].seconds == 5.5
    assert msg.args[3] is IMPULSE


def test_liblo_oscsend_bytes_decode():
    # oscsend writes the datagram to stdout when the URL is "-".
    out = subprocess.run(
        ["oscsend", "-", "/d2m/test", "ihfdsScmTFN", "-3", "1099511627776", "1.5", "2.25",
         "hello world", "sym", "Z", "00904060"],
        capture_output=True, check=True, timeout=10).stdout
    [msg] = decode_packet(out)
    assert msg.address == "/d2m/test"
    assert msg.args == [-3, 2**40, 1.5, 2.25, "hello world", "sym", "Z", (0, 0x90, 0x40, 0x60),
                        True, False, None]


def test_no_arguments_and_missing_type_tag_string():
    assert decode_packet(build("/d2m/start")) == [OscMessage("/d2m/start", [])]
    # OSC 1.0 asks to tolerate old senders that omit the type tag string.
    assert decode_packet(osc_string("/d2m/stop")) == [OscMessage("/d2m/stop", [])]


def test_float32_nan_and_infinity_are_kept():
    [msg] = decode_packet(build("/f", (math.nan, "f"), (math.inf, "f")))
    assert math.isnan(msg.args[0]) and msg.args[1] == math.inf


def test_nested_bundles_flatten_in_order_and_ignore_timetags():
    far_future = (2**32 - 1) << 32         # year 2036: must not be waited for
    inner = bundle(build("/b", 2), build("/c", 3), timetag=far_future)
    data = bundle(build("/a", 1), inner, build("/d", 4), timetag=far_future)
    started = time.monotonic()
    msgs = decode_packet(data)
    assert time.monotonic() - started < 1.0
    assert [(m.address, m.args) for m in msgs] == [("/a", [1]), ("/b", [2]), ("/c", [3]), ("/d", [4])]


def test_python_osc_bundle_builder_round_trip():
    outer = OscBundleBuilder(IMMEDIATELY)
    outer.add_content(OscMessageBuilder("/one").build())
    inner = OscBundleBuilder(IMMEDIATELY)
    inner.add_content(OscMessageBuilder("/two").build())
    outer.add_content(inner.build())
    assert [m.address for m in decode_packet(outer.build().dgram)] == ["/one", "/two"]


def test_empty_bundle_gives_no_messages():
    assert decode_packet(bundle()) == []


def test_bundle_depth_limit():
    nested = build("/deep")
    for _ in range(4):
        nested = bundle(nested)
    assert [m.address for m in decode_packet(nested, max_depth=4)] == ["/deep"]
    with pytest.raises(OscDecodeError) as err:
        decode_packet(bundle(nested), max_depth=4)
    assert err.value.reason == "too_deep"


def test_arrays_nested_and_limited():
    [msg] = decode_packet(raw_message("/arr", "i[i[f]]", struct.pack(">iif", 1, 2, 0.5)))
    assert msg.args == [1, [2, [0.5]]]
    for tags, reason in [("[[[i]]]", "bad_array"), ("[i", "bad_array"), ("i]", "bad_array")]:
        with pytest.raises(OscDecodeError) as err:
            decode_packet(raw_message("/arr", tags, struct.pack(">i", 1)))
        assert err.value.reason == reason


def test_max_args_fits_the_motion_layouts_and_is_enforced():
    poses = [0.5] * (3 + 19 * 52)          # PoseOSC with 19 people
    [msg] = decode_packet(build("/poses/arr", *poses))
    assert len(msg.args) == len(poses) <= MAX_OSC_ARGS
    with pytest.raises(OscDecodeError) as err:
        decode_packet(build("/x", *([1.0] * 11)), max_args=10)
    assert err.value.reason == "too_many_args"


# ---------------------------------------------------------------- hostile input

def reason_of(data, **kw) -> str:
    with pytest.raises(OscDecodeError) as err:
        decode_packet(data, **kw)
    assert err.value.reason in DECODE_REASONS
    return err.value.reason


def test_specific_malformed_packets_name_their_reason():
    good = build("/d2m/volume", 0.5)
    cases = {
        "empty": b"",
        "too_large": b"/abc" * 20000,
        "bad_alignment": good + b"\x00",
        "bad_address": b"abc\x00" + osc_string(",i") + b"\x00\x00\x00\x01",
        "bad_string": b"/abc",                                   # no terminating NUL
        "bad_typetags": osc_string("/a") + osc_string("i") + b"\x00\x00\x00\x01",
        "unknown_type": raw_message("/a", "x", b"\x00" * 4),
        "trailing_bytes": good + b"\x00\x00\x00\x00",
        "bad_blob": raw_message("/a", "b", struct.pack(">i", -8)),
        "bad_char": raw_message("/a", "c", struct.pack(">I", 0x7FFFFFFF)),
        "bad_bundle": BUNDLE_TAG + b"\x00" * 8 + struct.pack(">i", 0),
    }
    for reason, data in cases.items():
        assert reason_of(data) == reason, reason
    assert reason_of("not bytes") == "not_bytes"


def test_truncation_at_every_length_is_an_error_or_a_shorter_bundle():
    data = bundle(build("/a", 1, 2.5, "text", b"blob"), bundle(build("/b", (3.0, "d"))),
                  build("/c", "x"))
    full = decode_packet(data)
    errors = 0
    for cut in range(1, len(data)):
        try:
            msgs = decode_packet(data[:cut])
        except OscDecodeError as exc:
            assert exc.reason in DECODE_REASONS
            if cut % 4:
                assert exc.reason == "bad_alignment"
            errors += 1
        else:
            # A cut exactly between elements of the outer bundle is a valid, shorter bundle.
            assert cut % 4 == 0 and msgs == full[:len(msgs)] and len(msgs) < len(full)
    assert errors >= len(data) - 4


def test_huge_counts_do_not_allocate_or_loop():
    huge_blob = raw_message("/a", "b", struct.pack(">i", 2**31 - 1))
    assert reason_of(huge_blob) == "truncated"
    huge_element = BUNDLE_TAG + b"\x00" * 8 + struct.pack(">i", 2**31 - 4) + b"\x00" * 4
    assert reason_of(huge_element) == "truncated"
    many_tags = raw_message("/a", "f" * 5000)
    assert reason_of(many_tags) == "too_many_args"


def test_non_padded_strings_are_rejected():
    unpadded = b"/abcd\x00" + b",\x00\x00\x00" + b"\x00\x00"   # address not padded to 8 bytes
    assert reason_of(unpadded) == "bad_string"
    unpadded_tags = osc_string("/a") + b",s\x00" + b"hi\x00\x00" + b"\x00"
    reason_of(unpadded_tags)
    dirty_padding = b"/a\x00X" + osc_string(",")
    assert reason_of(dirty_padding) == "bad_string"
    not_utf8 = b"/a\xff\x00" + osc_string(",")
    assert reason_of(not_utf8) == "bad_string"


def test_deeply_nested_bundle_bomb_is_rejected_fast():
    # 4000 nested bundle headers in one max-size datagram: no recursion, linear work.
    depth = 4000
    data = build("/x")
    for _ in range(depth):
        data = bundle(data)
    started = time.monotonic()
    assert reason_of(data, max_packet=len(data)) == "too_deep"
    assert time.monotonic() - started < 2.0


def test_many_messages_in_one_bundle_are_capped():
    data = bundle(*[build("/m")] * 20)
    assert len(decode_packet(data)) == 20
    assert reason_of(data, max_messages=10) == "too_many_messages"


VALID_SAMPLES = [
    build("/d2m/pose", 0, "coco17", *([0.5] * 68)),
    build("/d2m/genre", "house"),
    bundle(build("/a", 1, "x", b"yz"), bundle(build("/b", (2.0, "d"), True, None, [1, 2]))),
    raw_message("/t", "tcIS", struct.pack(">Q", 1) + struct.pack(">I", 65) + osc_string("s")),
]


# Random tails after a plausible start, so the fuzzing reaches past the first byte check.
RANDOM_PACKETS = st.one_of(
    st.binary(max_size=600),
    st.binary(max_size=600).map(lambda b: b"/d2m/pose\x00\x00\x00," + b),
    st.binary(max_size=600).map(lambda b: BUNDLE_TAG + b"\x00" * 8 + b),
    st.lists(st.sampled_from([b"\x00", b",", b"/", b"[", b"]", b"s", b"b", b"i", b"#bundle\x00",
                              b"\x00\x00\x00\x10", b"\xff\xff\xff\xff"]), max_size=80).map(b"".join),
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RANDOM_PACKETS)
def test_random_bytes_only_raise_decode_errors(data):
    try:
        msgs = decode_packet(data)
    except OscDecodeError as exc:
        assert exc.reason in DECODE_REASONS
    else:
        assert all(isinstance(m, OscMessage) and m.address.startswith("/") for m in msgs)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(VALID_SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                 min_size=1, max_size=8),
       st.integers(0, 10_000))
def test_mutated_valid_packets_only_raise_decode_errors(sample, flips, cut):
    data = bytearray(sample)
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(4, len(data) - cut % 16)])
    try:
        decode_packet(data)
    except OscDecodeError as exc:
        assert exc.reason in DECODE_REASONS


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(-(2**31), 2**31 - 1), st.floats(width=32, allow_nan=False),
                          st.text(max_size=20).filter(lambda s: "\x00" not in s),
                          st.binary(min_size=1, max_size=20), st.booleans(), st.none()), max_size=30))
def test_python_osc_messages_round_trip(args):
    [msg] = decode_packet(build("/rt", *args))
    assert msg.args == args
