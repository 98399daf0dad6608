"""The song form is announced on every plan: OSC, the WebSocket/MQTT segment JSON and MQTT's section topic."""

from __future__ import annotations

import json

from d2m.plan import SegmentPlan
from d2m_server.mqtt import event_messages


def _plan(**form):
    return SegmentPlan(index=9, kind="music", start_sample=96000 * 30, n_samples=96000, sample_rate=48000, bar=29,
                       beat_offsets=(0, 24000, 48000, 72000), bpm=120.0, genre="house", **form)


def test_the_segment_json_carries_the_section_and_mqtt_publishes_it_retained():
    plan = _plan(section="build", section_bar=7, section_bars=8, bars_to_next_section=1, next_section="peak",
                 section_index=2)
    msg = {"type": "segment", **plan.to_dict()}
    assert (msg["section"], msg["bars_to_next_section"], msg["next_section"]) == ("build", 1, "peak")
    out = {o.topic: o for o in event_messages(msg)}
    assert set(out) == {"next", "section"}
    section = json.loads(out["section"].payload)
    assert section == {"section": "build", "section_bar": 7, "bars_to_next_section": 1, "next_section": "peak",
                       "bar": 29, "start_time": 60.0}
    assert out["section"].retain and json.loads(out["next"].payload)["section"] == "build"


def test_segments_without_a_section_publish_no_section_topic():
    msg = {"type": "segment", **_plan().to_dict()}
    assert [o.topic for o in event_messages(msg)] == ["next"]
