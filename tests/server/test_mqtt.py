"""MQTT for installations: topics and payloads, controls, and a broker that goes away.

The live test runs a real ``LiveSession`` (synth music, the demo dancer, paced output)
against a real mosquitto broker started here on a free loopback port and stopped by its
process id. It skips, saying so, only when mosquitto is not installed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from d2m.conductor import ConductorConfig
from d2m.control import Control, InvalidControl
from d2m_server.mqtt import (DEFAULT_MQTT_PORT, MqttBridge, Outgoing, check_instance, default_instance,
                             event_messages, parse_broker, parse_control)
from tests.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
TIMEOUT = 15.0


# ---------------------------------------------------------------------------
# Pure parts


def test_broker_and_instance_names():
    assert parse_broker("localhost") == ("localhost", DEFAULT_MQTT_PORT)
    assert parse_broker("10.0.0.5:1884") == ("10.0.0.5", 1884)
    assert parse_broker("[::1]:1885") == ("::1", 1885)
    assert parse_broker("[::1]") == ("::1", DEFAULT_MQTT_PORT)
    for bad in ("", ":1883", "host:0", "host:x", "::1:1883", "host:70000"):
        with pytest.raises(ValueError):
            parse_broker(bad)
    assert check_instance(" stage-left ") == "stage-left"
    for bad in ("", "a/b", "a+", "#", "x" * 65):
        with pytest.raises(ValueError):
            check_instance(bad)
    name = default_instance()
    assert name and all(c.isalnum() or c in "_-" for c in name) and name == name.lower()


def test_events_become_topics_and_payloads():
    tempo = event_messages({"type": "tempo", "bpm": 123.456, "confidence": 0.9, "locked": True})
    assert tempo == [Outgoing("tempo", "123.46", 1, True), Outgoing("tempo/confidence", "0.9", 1, True),
                     Outgoing("tempo/locked", "1", 1, True), Outgoing("tempo/mode", "", 1, True)]
    assert event_messages({"type": "genre", "genre": "house", "source": "operator"}) == [
        Outgoing("genre", "house", 1, True), Outgoing("genre/source", "operator", 1, True)]
    assert event_messages({"type": "style", "energy": 0.25, "sharpness": float("nan")}) == [
        Outgoing("energy", "0.25", 0, True), Outgoing("sharpness", "null", 0, True)]
    (beat,) = event_messages({"type": "beat", "bar": 3, "beat": 2, "bpm": 120.0, "time": 9.5})
    assert (beat.topic, beat.retain, json.loads(beat.payload)) == \
        ("beat", False, {"bar": 3, "beat": 2, "bpm": 120.0, "time": 9.5})
    (plan,) = event_messages({"type": "segment", "bar": 4, "kind": "music", "bpm": 120.0, "genre": "pop"})
    assert plan.topic == "next" and json.loads(plan.payload)["genre"] == "pop"
    status = {"tempo": {"bpm": 118.0, "dance_bpm": 118.2, "confidence": 0.9, "locked": True,
                        "tempo_lock": False}, "genre": "house", "genre_source": "motion",
              "energy": 0.3, "sharpness": 0.6, "playing": True, "volume": 1.0, "prompt": "", "bar": 7,
              "uptime_s": 12.0, "telemetry": {"underruns": 0.0, "lookahead_s": 1.5, "late_ms": 0.0},
              "clients": {"websocket": 2}}
    state, health = event_messages({"type": "state", **status})
    assert json.loads(state.payload)["bpm"] == 118.0 and json.loads(state.payload)["genre"] == "house"
    assert json.loads(health.payload)["lookahead_s"] == 1.5
    assert json.loads(health.payload)["websocket_clients"] == 2
    assert event_messages({"type": "control_applied", "t": 1.0}) == []


def test_control_topics():
    assert parse_control("control", b'{"genre": "house", "volume": 0.5}') == Control(genre="house", volume=0.5)
    assert parse_control("control/genre", b"breakdance") == Control(genre="break")
    assert parse_control("control/genre", b'"auto"') == Control(genre="auto")
    assert parse_control("control/prompt", b"  warm bass  ") == Control(prompt="warm bass")
    assert parse_control("control/prompt", b"") == Control(prompt="")
    assert parse_control("control/bpm", b"124") == Control(bpm=124.0)
    assert parse_control("control/volume", b"0.25") == Control(volume=0.25)
    assert parse_control("control/playing", b"off") == Control(playing=False)
    assert parse_control("control/tempo_lock", b"true") == Control(tempo_lock=True)
    assert parse_control("control/tempo_lock", b"126.5") == Control(tempo_lock=True, bpm=126.5)
    for topic, payload in (("control", b"[1]"), ("control", b"{}"), ("control", b"{"),
                           ("control", b'{"tempo": 1}'), ("control/genre", b"polka"),
                           ("control/volume", b"loud"), ("control/volume", b"2"),
                           ("control/bpm", b"300"), ("control/playing", b"maybe"),
                           ("control/tempo_lock", b"fast"), ("control/colour", b"red"),
                           ("control/genre", b"\xff\xfe"), ("control/prompt", b"x" * 5000)):
        with pytest.raises(InvalidControl):
            parse_control(topic, payload)


def test_outgoing_queue_is_bounded_and_keeps_the_latest_state():
    now = [0.0]
    bridge = MqttBridge(("127.0.0.1", 1), on_control=lambda c: None, instance="t", event_queue=3,
                        event_max_age_s=1.0, style_interval_s=0.5, clock=lambda: now[0])
    assert bridge.topic("tempo") == "d2m/t/tempo"
    for bpm in (100.0, 110.0, 120.0):           # state topics keep only their latest value
        bridge.on_event({"type": "tempo", "bpm": bpm, "confidence": 1.0, "locked": True})
    for i in range(5):                          # events: the oldest are dropped beyond 3
        bridge.on_event({"type": "beat", "bar": i, "beat": 1, "bpm": 120.0, "time": float(i)})
    bridge.on_event({"type": "style", "energy": 0.1, "sharpness": 0.1})
    bridge.on_event({"type": "style", "energy": 0.9, "sharpness": 0.9})   # within 0.5 s: skipped
    assert bridge.status()["dropped"] == 2 and bridge.status()["queued_events"] == 3
    sent = []
    while (m := bridge._next()) is not None:
        sent.append(m)
    topics = [m.topic for m in sent]
    assert topics.count("tempo") == 1 and sent[topics.index("tempo")].payload == "120"
    assert [json.loads(m.payload)["bar"] for m in sent if m.topic == "beat"] == [2, 3, 4]
    assert [m.payload for m in sent if m.topic == "energy"] == ["0.1"]
    assert "status" in topics                   # "online" waits for the first connection
    bridge.on_event({"type": "beat", "bar": 9, "beat": 1, "bpm": 120.0, "time": 9.0})
    now[0] = 5.0                                # the broker was away: late beats are not sent
    assert bridge._next() is None and bridge.status()["stale"] == 1


def test_serve_command_takes_mqtt_options():
    from d2m_server.cli import build_parser
    from d2m_server.commands.serve import build_options

    args = build_parser().parse_args(["serve", "--mqtt", "broker.local", "--mqtt-instance", "hall"])
    options = build_options(args, demo=False)
    assert (options.mqtt, options.mqtt_instance) == (("broker.local", DEFAULT_MQTT_PORT), "hall")
    assert build_options(build_parser().parse_args(["serve"]), demo=False).mqtt is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--mqtt-instance", "a/b"])


# ---------------------------------------------------------------------------
# A real broker



class Mosquitto:
    """A mosquitto broker on a loopback port, with a generated config; stopped by its pid."""

    def __init__(self, tmp: Path, port: int):
        self.port = port
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             f"log_dest stdout\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


class Watcher:
    """An independent aiomqtt client recording everything under d2m/<instance>/."""

    def __init__(self, port: int, prefix: str):
        self.port, self.prefix = port, prefix
        self.messages: list[tuple[str, str, bool]] = []

    def last(self, sub: str) -> str | None:
        for topic, payload, _ in reversed(self.messages):
            if topic == self.prefix + sub:
                return payload
        return None

    def all(self, sub: str) -> list[str]:
        return [p for t, p, _ in self.messages if t == self.prefix + sub]

    async def run(self, ready: asyncio.Event, client_box: list) -> None:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", self.port, identifier=f"watcher-{time.monotonic_ns()}") as client:
            client_box.append(client)
            await client.subscribe(self.prefix + "#", qos=1)
            ready.set()
            async for message in client.messages:
                payload = message.payload.decode() if isinstance(message.payload, bytes) else str(message.payload)
                self.messages.append((str(message.topic), payload, bool(message.retain)))


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.e2e
@pytest.mark.slow
def test_live_session_over_a_real_broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian: apt-get install mosquitto)")
    pytest.importorskip("aiomqtt", reason="aiomqtt is not installed (pip install -e '.[mqtt]')")
    from d2m.motion import coarse_tempo
    from d2m_server.app import LiveSession, ServeOptions
    from d2m_server.backends import make_generator

    env = np.zeros(240)
    env[::30] = 1.0
    coarse_tempo(env)                 # compile librosa's kernels before the loop runs
    broker = Mosquitto(tmp_path, _free_port())
    broker.start()

    async def main():
        options = ServeOptions(osc_in=None, osc_out=[], ws=None, audio_out="none", demo_dancer=True,
                               mqtt=("127.0.0.1", broker.port), mqtt_instance="test",
                               conductor=ConductorConfig())
        session = LiveSession(options, make_generator("synth", sample_rate=48000))
        await session.start()
        bridge = session.mqtt
        bridge.reconnect_max_s = 1.0          # keep the test short (default: RECONNECT_MAX_S)
        watcher = Watcher(broker.port, "d2m/test/")
        ready, box = asyncio.Event(), []
        watch = asyncio.create_task(watcher.run(ready, box))
        try:
            await asyncio.wait_for(ready.wait(), TIMEOUT)
            # state, telemetry and events arrive under d2m/test/
            wanted = ("status", "tempo", "tempo/confidence", "tempo/locked", "genre", "genre/source",
                      "energy", "sharpness", "next", "state", "health", "beat")
            await _until(lambda: all(watcher.last(t) is not None for t in wanted), 20,
                         f"topics {wanted}; got {sorted({t for t, _, _ in watcher.messages})}")
            assert watcher.last("status") == "online"
            assert 60 <= float(watcher.last("tempo")) <= 200
            assert watcher.last("tempo/locked") in ("0", "1")
            assert 0.0 <= float(watcher.last("energy")) <= 1.0
            beat = json.loads(watcher.last("beat"))
            assert set(beat) == {"bar", "beat", "bpm", "time"} and 1 <= beat["beat"] <= 4
            state = json.loads(watcher.last("state"))
            assert state["genre"] == session.status()["genre"] and state["playing"] is True
            health = json.loads(watcher.last("health"))
            assert health["underruns"] is not None and health["lookahead_s"] > 0
            assert json.loads(watcher.last("next"))["kind"] in ("music", "idle", "silence")

            # a control published to the broker changes the server's genre
            client = box[0]
            await client.publish("d2m/test/control/genre", "house", qos=1)
            await _until(lambda: session.status()["genre"] == "house", TIMEOUT, "genre house")
            await _until(lambda: watcher.last("genre") == "house", TIMEOUT, "genre topic house")
            assert watcher.last("genre/source") == "operator"
            assert json.loads(watcher.last("ack"))["changes"] == {"genre": "house"}
            await client.publish("d2m/test/control", json.dumps({"volume": 0.5}), qos=1)
            await _until(lambda: session.status()["volume"] == 0.5, TIMEOUT, "volume 0.5")
            await client.publish("d2m/test/control/bpm", "fast", qos=1)
            await _until(lambda: watcher.last("error") is not None, TIMEOUT, "an error reply")
            assert "bpm must be a number" in json.loads(watcher.last("error"))["message"]
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

        # the broker goes away: the music keeps playing at real-time pace
        broker.stop()
        await _until(lambda: not bridge.connected, TIMEOUT, "the bridge noticing the broker left")
        pos0, t0 = session.clock.position, time.monotonic()
        await asyncio.sleep(1.5)
        advanced = (session.clock.position - pos0) / 48000
        assert advanced >= 0.8 * (time.monotonic() - t0), f"audio advanced only {advanced:.2f} s"
        assert session.ring.status()["underruns"] == 0
        assert bridge.status()["failures"] >= 1          # it keeps trying meanwhile

        # the broker comes back: the bridge reconnects, republishes its state, takes controls
        broker.start()
        await _until(lambda: bridge.connected and bridge.connects == 2, TIMEOUT, "reconnect")
        watcher2 = Watcher(broker.port, "d2m/test/")
        ready2, box2 = asyncio.Event(), []
        watch2 = asyncio.create_task(watcher2.run(ready2, box2))
        try:
            await asyncio.wait_for(ready2.wait(), TIMEOUT)
            await _until(lambda: watcher2.last("genre") == "house" and watcher2.last("status") == "online",
                         TIMEOUT, "state re-published to the new broker")
            await box2[0].publish("d2m/test/control/genre", "krump", qos=1)
            await _until(lambda: session.status()["genre"] == "krump", TIMEOUT, "genre krump")
        finally:
            watch2.cancel()
            await asyncio.gather(watch2, return_exceptions=True)
        status = session.status()["mqtt"]
        await session.close()
        return status

    try:
        status = asyncio.run(main())
    finally:
        broker.stop()
    assert status["connects"] == 2 and status["disconnects"] == 1
    assert status["controls"] == 3 and status["rejected"] == 1
    assert status["published"] > 20 and status["dropped"] == 0


# ---------------------------------------------------------------------------
# Code, protocol doc and client guides agree on the topics

GUIDES = [REPO / "clients" / "touchdesigner" / "README.md", REPO / "clients" / "unity" / "README.md"]


def documented_topics() -> set[str]:
    """Sub-topics (after ``d2m/<instance>/``) named in the MQTT doc's tables."""
    doc = REPO / "docs" / "_mqtt.md"
    text = doc.read_text() if doc.exists() else \
        (REPO / "docs" / "protocol.md").read_text().split("## MQTT", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `d2m/stage/([a-z_/]+)` \|", text, flags=re.M))


def test_doc_and_guides_name_every_topic():
    docs = documented_topics()
    samples = [{"type": "tempo", "bpm": 1.0, "confidence": 1.0, "locked": True},
               {"type": "genre", "genre": "pop", "source": "motion"},
               {"type": "style", "energy": 0.1, "sharpness": 0.1},
               {"type": "beat", "bar": 0, "beat": 1, "bpm": 120.0, "time": 0.0},
               {"type": "segment", "bar": 0, "section": "peak"}, {"type": "state"},
               {"type": "hit", "index": 0, "strength": 1.5, "move_t": 1.0, "accent_time": 1.1, "genre": "pop"}]
    published = {m.topic for ev in samples for m in event_messages(ev)} | {"status", "ack", "error"}
    subscribed = {"control"} | {f"control/{f}" for f in Control.__dataclass_fields__}
    assert published | subscribed == docs, (published | subscribed) ^ docs
    for guide in GUIDES:
        text = guide.read_text()
        for topic in docs:
            assert f"`d2m/<instance>/{topic}`" in text, f"{guide.relative_to(REPO)} does not name {topic}"
