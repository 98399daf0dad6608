"""Hostile MQTT control payloads: validated through Control.from_dict, size-capped, counted.

The broker outage itself (audio keeps real time, reconnect with backoff, state
re-published) is tested against a real mosquitto in
tests/server/test_mqtt.py::test_live_session_over_a_real_broker.
"""

from __future__ import annotations

import json

from d2m.control import Control
from d2m_server.mqtt import MAX_CONTROL_BYTES, MqttBridge

HOSTILE = [
    ("control", b'{"genre": "house", "tempo": 120}', "unknown control field(s) tempo"),
    ("control", b'{"volume": "loud"}', "volume must be a number"),
    ("control", b'{"bpm": 1e400}', "bpm must be finite"),
    ("control", b'{"volume": NaN}', "volume must be finite"),
    ("control", b"[1, 2]", "JSON object"),
    ("control", b"{}", "JSON object"),
    ("control", b"not json", "not valid JSON"),
    ("control", b"\xff\xfe", "not UTF-8"),
    ("control", b'{"prompt": "' + b"x" * MAX_CONTROL_BYTES + b'"}', "larger than"),
    ("control", b"[" * 4000, ""),                              # deep nesting: refused, not a crash
    ("control/tempo", b"120", "unknown control topic"),
    ("control/bpm", b"fast", "bpm must be a number"),
    ("control/volume", b"2", "volume must be between 0 and 1"),
    ("control/playing", b"maybe", "playing"),
    ("control/genre", b"polka", "polka"),
]


def test_hostile_control_payloads_are_refused_and_counted():
    applied: list[Control] = []
    bridge = MqttBridge(("127.0.0.1", 1883), on_control=applied.append, instance="test")
    for sub, payload, _ in HOSTILE:
        assert bridge.handle_control(sub, payload) is False, (sub, payload[:40])
    assert applied == []
    assert bridge.rejected == len(HOSTILE)
    errors = [json.loads(m.payload) for _, m in bridge._events if m.topic == "error"]
    assert len(errors) == len(HOSTILE)
    for (sub, payload, words), err in zip(HOSTILE, errors):
        assert err["topic"] == f"d2m/test/{sub}"
        assert words in err["message"], (sub, payload[:40], err["message"])
    # and a good one still works
    assert bridge.handle_control("control", b'{"genre": "house", "volume": 0.5}')
    assert applied == [Control(genre="house", volume=0.5)]


def test_deeply_nested_mqtt_control_is_a_clear_rejection_not_a_crash():
    from d2m.control import InvalidControl
    from d2m_server.mqtt import parse_control

    import pytest as _pytest
    with _pytest.raises(InvalidControl, match="nested too deeply"):
        parse_control("control", b"[" * 1500 + b"]" * 1500)
