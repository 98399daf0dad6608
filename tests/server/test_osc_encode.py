"""Encoding conductor events as OSC, and parsing HOST:PORT."""

from __future__ import annotations

import json
import math

import pytest
from pythonosc.osc_message import OscMessage as PyOscMessage

from d2m.events import Beat, ControlApplied, GenreChanged, SegmentPlanned, TempoChanged
from d2m.genres import GENRES
from d2m.plan import SegmentPlan
from d2m_server.osc_codec import decode_packet
from d2m_server.osc_out import (MAX_STATUS_BYTES, encode_event, encode_status, encode_style,
                                encode_telemetry, parse_hostport)


def decoded(packets: list[bytes]) -> list[tuple[str, str, list]]:
    """(address, type tags, args) of each packet, read by our decoder and checked against python-osc's."""
    out = []
    for packet in packets:
        [msg] = decode_packet(packet)
        theirs = PyOscMessage(packet)          # trusted bytes: python-osc is fine as a cross-check
        assert theirs.address == msg.address
        assert list(theirs.params) == msg.args
        out.append((msg.address, _tags(packet), msg.args))
    return out


def _tags(packet: bytes) -> str:
    start = packet.index(b",")
    return packet[start + 1:packet.index(b"\x00", start)].decode()


def test_beat_has_one_number_per_address_plus_full():
    got = decoded(encode_event(Beat(sample=96000, time=2.0, bar=7, beat=1, bpm=120.5)))
    assert got == [
        ("/d2m/beat", "i", [1]),
        ("/d2m/bar", "i", [7]),
        ("/d2m/bpm", "f", [120.5]),
        ("/d2m/downbeat", "i", [1]),
        ("/d2m/beat/full", "iif", [7, 1, 120.5]),
    ]
    off = dict((a, v) for a, _, v in decoded(encode_event(Beat(0, 0.0, bar=7, beat=3, bpm=90.0))))
    assert off["/d2m/beat"] == [3] and off["/d2m/downbeat"] == [0]


def test_tempo_and_genre_events():
    assert decoded(encode_event(TempoChanged(t=1.0, bpm=128.0, confidence=0.75, locked=True))) == [
        ("/d2m/tempo", "f", [128.0]),
        ("/d2m/tempo/confidence", "f", [0.75]),
        ("/d2m/tempo/locked", "i", [1]),
        ("/d2m/tempo/mode", "s", ["idle"]),
    ]
    assert decoded(encode_event(GenreChanged(t=1.0, genre="house", source="motion"))) == [
        ("/d2m/genre", "s", ["house"]),
        ("/d2m/genre/index", "i", [GENRES.index("house")]),
    ]


def test_segment_planned_announces_the_next_bar():
    plan = SegmentPlan(index=4, kind="music", start_sample=480000, n_samples=96000,
                       sample_rate=48000, bar=3, beat_offsets=(0, 24000, 48000, 72000),
                       bpm=120.0, genre="krump", energy=0.625, section="build", section_bar=6, section_bars=8,
                       bars_to_next_section=2, next_section="peak")
    got = decoded(encode_event(SegmentPlanned(plan)))
    assert got == [
        ("/d2m/next/bar", "i", [3]),
        ("/d2m/next/bpm", "f", [120.0]),
        ("/d2m/next/genre", "s", ["krump"]),
        ("/d2m/next/kind", "s", ["music"]),
        ("/d2m/next/time", "f", [10.0]),
        ("/d2m/next/energy", "f", [0.625]),
        ("/d2m/next/section", "s", ["build"]),
        ("/d2m/next/section_bar", "i", [6]),
        ("/d2m/next/bars_to_next_section", "i", [2]),
        ("/d2m/next/next_section", "s", ["peak"]),
        ("/d2m/section/full", "siis", ["build", 6, 2, "peak"]),
    ]


def test_events_osc_does_not_announce_encode_to_nothing():
    assert encode_event(ControlApplied(t=0.0, changes={"volume": 0.5})) == []
    assert encode_event("not an event") == []


def test_style_and_telemetry():
    assert decoded(encode_style(0.5, 0.25)) == [("/d2m/energy", "f", [0.5]),
                                                ("/d2m/sharpness", "f", [0.25])]
    got = decoded(encode_telemetry({"pose_ms": 12.5, "real time ratio": 0.5, "bad": math.nan,
                                    "text": "x", "gen/rtf": 2, "": 1.0, "huge": 1e300}))
    assert got == [("/d2m/telemetry/pose_ms", "f", [12.5]),
                   ("/d2m/telemetry/real_time_ratio", "f", [0.5]),
                   ("/d2m/telemetry/gen/rtf", "f", [2.0])]


def test_status_is_one_json_string():
    [packet] = encode_status({"bpm": 121.0, "genre": "pop", "nan": math.nan, "nested": {"a": (1, 2)}})
    [(address, tags, [text])] = decoded([packet])
    assert (address, tags) == ("/d2m/status", "s")
    assert json.loads(text) == {"bpm": 121.0, "genre": "pop", "nan": None, "nested": {"a": [1, 2]}}


def test_oversized_status_is_replaced_by_an_error_that_fits():
    [packet] = encode_status({"blob": "x" * (MAX_STATUS_BYTES + 10)})
    [msg] = decode_packet(packet)
    assert json.loads(msg.args[0])["error"] == "status_too_large"


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9001", ("127.0.0.1", 9001)),
    ("9001", ("10.0.0.5", 9001)),
    (":9002", ("10.0.0.5", 9002)),
    ("show-pc.local:7000", ("show-pc.local", 7000)),
    ("[::1]:9001", ("::1", 9001)),
    (" 192.168.1.255:9001 ", ("192.168.1.255", 9001)),
])
def test_parse_hostport(text, expected):
    assert parse_hostport(text, "10.0.0.5") == expected


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("host:", "bad OSC port"), ("host:abc", "bad OSC port"),
    ("host:70000", "65535"), ("host:0", "1..65535"), ("::1:9001", "brackets"), ("[::1]9001", "bad"),
])
def test_parse_hostport_errors_say_what_to_write(text, words):
    with pytest.raises(ValueError) as err:
        parse_hostport(text)
    assert words in str(err.value)


def test_parse_hostport_port_zero_for_listening():
    assert parse_hostport("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
