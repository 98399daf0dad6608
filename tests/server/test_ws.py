"""The WebSocket hub, with real websockets clients on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import struct

import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from d2m.control import Control
from d2m.skeleton import SkeletonFrame
from d2m_server.ws import (
    AUDIO_HEADER, AUDIO_HEADER_FIELDS, MAX_MESSAGE_BYTES, ProtocolError, WebSocketHub,
    WebSocketUnavailable, decode_audio_frame, encode_audio_frame, parse_client_message,
)

SR = 48000
TIMEOUT = 10.0   # generous: only reached when something is broken


def joints17():
    return [[0.5, 0.1 + 0.04 * i, 0.0, 0.9] for i in range(17)]


class Server:
    """A hub with recording callbacks, started on a free port."""

    def __init__(self, with_pose=True, **kwargs):
        self.controls: list[Control] = []
        self.poses: list[SkeletonFrame] = []
        self.hub = WebSocketHub(self.controls.append, lambda: {"bpm": 120.0, "state": "playing"},
                                self.poses.append if with_pose else None,
                                clock=lambda: 42.5, **kwargs)

    async def __aenter__(self):
        await self.hub.start("127.0.0.1", 0)
        self.url = f"ws://127.0.0.1:{self.hub.port}"
        return self

    async def __aexit__(self, *exc):
        await self.hub.close()

    async def client(self, **kwargs):
        ws = await connect(self.url, **kwargs)
        hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert hello["type"] == "hello"
        return ws


async def ask(ws, msg) -> dict:
    await ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


# -- pure parts ------------------------------------------------------------------


def test_audio_frame_header_layout_is_as_documented():
    assert AUDIO_HEADER.size == 32
    data = encode_audio_frame(2**40 + 5, np.zeros((3, 2), np.float32), sample_rate=SR,
                              bar=-1, bpm=123.5)
    values = {"magic": b"D2MA", "version": 1, "channels": 2, "header_bytes": 32,
              "sample_rate": SR, "frames": 3, "sample_index": 2**40 + 5, "bar": -1, "bpm": 123.5}
    codes = {"4s": "4s", "u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i", "f32": "f"}
    for name, offset, kind in AUDIO_HEADER_FIELDS:
        (value,) = struct.unpack_from("<" + codes[kind], data, offset)
        assert value == values[name], name
    assert len(data) == 32 + 3 * 2 * 2


def test_audio_frame_round_trip_is_interleaved_int16():
    block = np.array([[0.5, -0.5], [1.5, -1.0], [0.0, 0.25]], np.float32)
    data = encode_audio_frame(480, block, sample_rate=SR, bar=7, bpm=128.0)
    assert np.frombuffer(data[32:], "<i2").tolist() == [16384, -16384, 32767, -32767, 0, 8192]
    frame = decode_audio_frame(data)
    assert (frame.sample_index, frame.bar, frame.bpm, frame.frames, frame.channels) == (480, 7, 128.0, 3, 2)
    np.testing.assert_allclose(frame.to_float(), np.clip(block, -1, 1), atol=1 / 32767)
    with pytest.raises(ValueError, match="magic"):
        decode_audio_frame(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="PCM bytes"):
        decode_audio_frame(data[:-2])


@pytest.mark.parametrize("text, fragment", [
    ("{nope", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"genre": "house"}', "type is missing"),
    ('{"type": "dance"}', "unknown ('dance')"),
    ('{"type": "control", "colour": "red"}', "unknown control field(s) colour"),
    ('{"type": "control", "bpm": 500}', "bpm must be between 60 and 200"),
    ('{"type": "control", "genre": "polka"}', "polka"),
    ('{"type": "control"}', "changes nothing"),
    ('{"type": "status", "verbose": true}', "status takes no fields"),
    ('{"type": "subscribe", "audio": "yes"}', "audio: true or false"),
    ('{"type": "subscribe", "video": true}', "unknown subscribe field(s) video"),
    ('{"type": "pose", "t": "soon", "joints": []}', "finite number"),
    ('{"type": "pose", "person": 0}', "needs joints"),
    ('{"type": "pose", "joints": [], "colour": 1}', "unknown pose field(s) colour"),
    ('{"type": "status", "id": [1]}', "id must be"),
])
def test_bad_client_messages_get_clear_errors(text, fragment):
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert fragment in str(err.value)


def test_binary_client_messages_are_refused():
    with pytest.raises(ProtocolError, match="binary messages are not accepted"):
        parse_client_message(b"\x00\x01")


# -- over a real socket --------------------------------------------------------------


def test_hello_describes_the_audio_format():
    async def main():
        async with Server() as srv:
            async with connect(srv.url) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

    hello = run(main())
    assert hello["version"] == 1 and hello["sample_rate"] == SR and hello["channels"] == 2
    assert hello["audio_format"] == "int16le interleaved"
    assert hello["header"]["magic"] == "D2MA" and hello["header"]["bytes"] == 32
    assert [f["name"] for f in hello["header"]["fields"]][-3:] == ["sample_index", "bar", "bpm"]


def test_control_round_trip_reaches_on_control_validated():
    async def main():
        async with Server() as srv:
            ws = await srv.client()
            reply = await ask(ws, {"type": "control", "genre": "House", "volume": 0.5, "id": 7})
            await ws.close()
            return srv.controls, reply, srv.hub.stats.accepted

    controls, reply, accepted = run(main())
    assert controls == [Control(genre="house", volume=0.5)]
    assert reply == {"type": "ack", "request": "control", "changes": {"genre": "house", "volume": 0.5},
                     "id": 7}
    assert accepted == 1


def test_status_is_answered_to_the_asking_client_alone():
    async def main():
        async with Server() as srv:
            a, b = await srv.client(), await srv.client()
            status = await ask(a, {"type": "status", "id": "s1"})
            srv.hub.broadcast({"type": "beat", "bar": 3, "beat": 1})
            first_at_b = json.loads(await asyncio.wait_for(b.recv(), TIMEOUT))
            first_at_a = json.loads(await asyncio.wait_for(a.recv(), TIMEOUT))
            return status, first_at_a, first_at_b

    status, at_a, at_b = run(main())
    assert status == {"type": "status", "bpm": 120.0, "state": "playing", "id": "s1"}
    assert at_b == {"type": "beat", "bar": 3, "beat": 1}, "b never saw a's status"
    assert at_a == at_b


def test_errors_go_to_the_sender_and_the_connection_stays_open():
    async def main():
        async with Server() as srv:
            ws, other = await srv.client(), await srv.client()
            errors = [await ask(ws, m) for m in (
                "{not json", {"type": "control", "tempo": 120}, {"type": "control", "bpm": 20},
                {"type": "launch"}, b"\x00binary", {"type": "control", "volume": 2, "id": "v"},
            )]
            still_open = await ask(ws, {"type": "status"})
            srv.hub.broadcast({"type": "tick"})
            other_first = json.loads(await asyncio.wait_for(other.recv(), TIMEOUT))
            return errors, still_open, other_first, srv.controls, srv.hub.status()

    errors, still_open, other_first, controls, status = run(main())
    assert all(e["type"] == "error" for e in errors)
    assert "not valid JSON" in errors[0]["message"]
    assert "unknown control field(s) tempo" in errors[1]["message"]
    assert errors[1]["request"] == "control"
    assert "bpm must be between" in errors[2]["message"]
    assert "unknown ('launch')" in errors[3]["message"]
    assert "binary messages are not accepted" in errors[4]["message"]
    assert errors[5]["id"] == "v" and "volume" in errors[5]["message"]
    assert still_open["type"] == "status"
    assert other_first == {"type": "tick"}, "errors are not broadcast"
    assert controls == []
    assert status["input"]["rejected"] == 6
    assert status["input"]["by_reason"]["bad control"] == 3


def test_pose_messages_become_frames_stamped_by_the_session_clock():
    async def main():
        async with Server() as srv:
            ws = await srv.client()
            await ws.send(json.dumps({"type": "pose", "person": 1, "joints": joints17()}))
            await ws.send(json.dumps({"type": "pose", "t": 3.25, "layout": "coco17",
                                      "joints": joints17()}))
            bad = await ask(ws, {"type": "pose", "joints": [[0.1, 0.2]] * 5})
            return srv.poses, bad

    poses, bad = run(main())
    assert [p.t for p in poses] == [42.5, 3.25]
    assert poses[0].person == 1 and poses[0].joints.shape == (17, 4)
    assert poses[1].joints[2, 1] == pytest.approx(0.18)
    assert bad["type"] == "error" and "17 joints" in bad["message"]


def test_pose_refused_when_the_server_takes_no_poses():
    async def main():
        async with Server(with_pose=False) as srv:
            return await ask(await srv.client(), {"type": "pose", "joints": joints17()})

    assert "does not take poses" in run(main())["message"]


def test_audio_frames_reach_subscribers_only_with_increasing_sample_index():
    async def main():
        async with Server() as srv:
            sub, plain = await srv.client(), await srv.client()
            assert (await ask(sub, {"type": "subscribe", "audio": True}))["audio"] is True
            blocks = [np.full((480, 2), i / 10, np.float32) for i in range(5)]
            for i, block in enumerate(blocks):
                assert srv.hub.broadcast_audio(480 * i, block, sample_rate=SR, bar=i // 2,
                                               bpm=124.0) == 1
            srv.hub.broadcast({"type": "end"})
            got = [await asyncio.wait_for(sub.recv(), TIMEOUT) for _ in range(6)]
            plain_first = await asyncio.wait_for(plain.recv(), TIMEOUT)
            return got, plain_first, blocks

    got, plain_first, blocks = run(main())
    assert json.loads(plain_first) == {"type": "end"}, "no audio to unsubscribed clients"
    binary = [decode_audio_frame(m) for m in got if isinstance(m, bytes)]
    assert [f.sample_index for f in binary] == [0, 480, 960, 1440, 1920]
    assert [f.bar for f in binary] == [0, 0, 1, 1, 2] and {f.bpm for f in binary} == {124.0}
    for frame, block in zip(binary, blocks):
        assert frame.sample_rate == SR and frame.pcm.shape == (480, 2)
        np.testing.assert_allclose(frame.to_float(), block, atol=1 / 32767)


def test_a_client_that_never_reads_loses_old_audio_and_does_not_slow_others():
    block = np.zeros((48000, 2), np.float32)  # 192 kB per frame fills socket buffers quickly
    n_blocks = 120

    async def main():
        async with Server(audio_queue_frames=4 * 48000) as srv:
            fast = await srv.client(max_size=None)
            slow = await srv.client(max_size=None, max_queue=1)   # reads nothing from here on
            for ws in (fast, slow):
                await ask(ws, {"type": "subscribe", "audio": True})
            received = []
            for i in range(n_blocks):
                srv.hub.broadcast_audio(48000 * i, block, sample_rate=SR)
                # the fast client keeps up; the broadcast itself never waited for anyone
                received.append(decode_audio_frame(await asyncio.wait_for(fast.recv(), TIMEOUT)))
            status = srv.hub.status()
            # the slow client starts reading again: it gets what was buffered, then the newest
            late = []
            while not late or late[-1] < 48000 * (n_blocks - 1):
                late.append(decode_audio_frame(await asyncio.wait_for(slow.recv(), TIMEOUT)).sample_index)
            await slow.close()
            await fast.close()
            return received, status, late

    received, status, late = run(main())
    assert late == sorted(set(late)) and late[-1] == 48000 * (n_blocks - 1)
    assert len(late) < n_blocks, "the oldest audio was dropped, the newest kept"
    assert [f.sample_index for f in received] == [48000 * i for i in range(n_blocks)]
    per = {c["client"]: c for c in status["per_client"]}
    fast_c, slow_c = per[1], per[2]
    assert fast_c["audio_blocks_dropped"] == 0 and fast_c["audio_blocks_sent"] == n_blocks
    assert slow_c["audio_blocks_dropped"] > 0
    assert slow_c["audio_frames_dropped"] == 48000 * slow_c["audio_blocks_dropped"]
    assert slow_c["audio_frames_queued"] <= 4 * 48000, "the slow client's queue stays bounded"
    assert status["audio_blocks_dropped"] == slow_c["audio_blocks_dropped"]


def test_events_are_counted_when_a_stalled_clients_queue_overflows():
    async def main():
        async with Server(event_queue=10) as srv:
            fast = await srv.client(max_size=None)
            slow = await srv.client(max_queue=1)   # reads nothing from here on
            for i in range(300):  # 18 MB of events
                srv.hub.broadcast({"type": "segment", "index": i, "pad": "x" * 60000})
                got = json.loads(await asyncio.wait_for(fast.recv(), TIMEOUT))
                assert got["index"] == i
            status = srv.hub.status()
            slow.transport.abort()
            return status

    status = run(main())
    fast_c, slow_c = status["per_client"]
    assert fast_c["events_dropped"] == 0 and fast_c["events_sent"] == 301   # hello + 300
    assert slow_c["events_dropped"] > 0
    assert status["events_dropped"] == slow_c["events_dropped"]


def test_non_finite_numbers_are_sent_as_null():
    async def main():
        async with Server() as srv:
            ws = await srv.client()
            srv.hub.broadcast({"type": "tempo", "bpm": math.nan, "confidence": np.float32(0.5)})
            return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))

    assert run(main()) == {"type": "tempo", "bpm": None, "confidence": 0.5}


def test_oversized_messages_close_the_connection_with_1009():
    async def main():
        async with Server() as srv:
            ws = await srv.client()
            await ws.send(json.dumps({"type": "status", "pad": "x" * MAX_MESSAGE_BYTES}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), TIMEOUT)
            return closed.value.rcvd.code, srv.hub.clients

    code, _ = run(main())
    assert code == 1009


def test_a_busy_port_gives_a_clear_error():
    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            hub = WebSocketHub(lambda c: None, dict)
            with pytest.raises(WebSocketUnavailable, match=f"127.0.0.1:{port}.*choose another port"):
                await hub.start("127.0.0.1", port)

    run(main())


def test_clients_are_counted_and_close_disconnects_them():
    async def main():
        async with Server() as srv:
            a, b = await srv.client(), await srv.client()
            n = srv.hub.clients
            await a.close()
            for _ in range(100):
                if srv.hub.clients == 1:
                    break
                await asyncio.sleep(0.01)
            one = srv.hub.clients
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(b.recv(), TIMEOUT)
        return n, one, b.close_code

    n, one, code = run(main())
    assert (n, one, code) == (2, 1, 1001)
