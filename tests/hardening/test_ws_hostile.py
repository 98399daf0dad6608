"""Hostile WebSocket input against a live session: schema-checked, size-capped, rate-limited.

Every bad message is answered with a clear error to its sender alone, counted,
and changes nothing; the connection stays open (except a message over the
size cap, which closes it with 1009). A client flooding messages is
rate-limited without stalling anyone.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from d2m_server.ws import CLIENT_MESSAGES_PER_S, MAX_MESSAGE_BYTES

from .support import live_session, recv_json, recv_reply, ws_client, ws_url

#: (message, words the error must contain)
BAD_MESSAGES = [
    ('{"type": "control", "genre": "house", "tempo": 120}', "unknown control field(s) tempo"),
    ('{"type": "control", "volume": "loud"}', "volume must be a number"),
    ('{"type": "control", "bpm": 1e400}', "bpm must be finite"),
    ('{"type": "control", "volume": NaN}', "volume must be finite"),
    ('{"type": "control", "volume": 3}', "volume must be between 0 and 1"),
    ('{"type": "control", "genre": "polka"}', "polka"),
    ('{"type": "control", "prompt": "' + "x" * 600 + '"}', "longer than 500"),
    ('{"type": "control", "playing": "yes"}', "playing must be true or false"),
    ('{"type": "control"}', "changes nothing"),
    ('{"type": "control", "volume": 0.5, "id": {"a": 1}}', "id must be"),
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ("{}", "message type is missing"),
    ('{"type": "dance"}', "unknown ('dance')"),
    ('{"type": "status", "verbose": true}', "status takes no fields"),
    ('{"type": "subscribe", "audio": "yes"}', "subscribe needs audio"),
    ('{"type": "subscribe", "audio": true, "video": true}', "unknown subscribe field(s) video"),
    ('{"type": "pose", "joints": "none", "extra": 1}', "unknown pose field(s) extra"),
    ('{"type": "pose", "joints": [[0.5, 0.5]]}', "pose"),
    ('{"type": "auth", "token": 5}', "auth needs token"),
    ("[" * 30000 + "]" * 30000, "not valid JSON"),
    (b"\x00\x01\x02binary", "binary messages are not accepted"),
]


async def drain(ws, seconds: float) -> list[dict]:
    """Every JSON message received during ``seconds`` (events keep coming, so read for a time)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    out = []
    while (left := end - loop.time()) > 0:
        try:
            msg = await asyncio.wait_for(ws.recv(), left)
        except (asyncio.TimeoutError, TimeoutError):
            break
        if isinstance(msg, str):
            out.append(json.loads(msg))
    return out


def test_bad_messages_get_a_clear_error_to_the_sender_alone(run):
    async def main():
        async with live_session() as session:
            before = session.conductor.status()
            async with ws_client(ws_url(session)) as a, ws_client(ws_url(session)) as b:
                await recv_json(b)                                  # hello
                replies = []
                for text, _ in BAD_MESSAGES:
                    await a.send(text)
                    replies.append(await recv_reply(a))
                # the sender is still connected and served
                await a.send(json.dumps({"type": "control", "genre": "krump", "id": 7}))
                ack = await recv_reply(a)
                # everything b saw in the meantime: events only, no errors meant for a
                seen_by_b = await drain(b, 0.5)
                after = session.conductor.status()
                ws_input = session.status()["inputs"]["websocket"]
            return before, replies, ack, seen_by_b, after, ws_input

    before, replies, ack, seen_by_b, after, ws_input = run(main())
    for (text, words), reply in zip(BAD_MESSAGES, replies):
        assert reply["type"] == "error", (text[:60], reply)
        assert words in reply["message"], (text[:60], reply["message"])
    assert ack == {"type": "ack", "request": "control", "changes": {"genre": "krump"}, "id": 7}
    assert not [m for m in seen_by_b if m.get("type") in ("error", "ack")], seen_by_b
    # nothing bad changed the show
    assert before["volume"] == after["volume"] == 1.0 and before["prompt"] == after["prompt"]
    assert ws_input["rejected"] == len(BAD_MESSAGES)


def test_an_oversized_message_closes_only_that_connection(run):
    async def main():
        async with live_session() as session:
            async with ws_client(ws_url(session), max_size=None) as a, ws_client(ws_url(session)) as b:
                await recv_json(a)
                await a.send(json.dumps({"type": "control", "prompt": "x" * (MAX_MESSAGE_BYTES + 10)}))
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(a.recv(), 10)
                await b.send(json.dumps({"type": "status"}))
                status = await recv_reply(b)
            return closed.value.rcvd.code if closed.value.rcvd else None, status

    code, status = run(main())
    assert code == 1009
    assert status["type"] == "status"


def test_a_flooding_client_is_rate_limited_and_others_are_served(run):
    async def main():
        async with live_session() as session:
            async with ws_client(ws_url(session)) as flood, ws_client(ws_url(session)) as calm:
                await recv_json(flood)
                n = int(CLIENT_MESSAGES_PER_S * 3)
                for k in range(n):
                    await flood.send('{"type": "status", "id": %d}' % k)
                await calm.send(json.dumps({"type": "status", "id": "calm"}))
                calm_reply = await recv_reply(calm, kinds=("status",))
                got = await drain(flood, 2.0)
                statuses = sum(m.get("type") == "status" for m in got)
                errors = sum(m.get("type") == "error" and "too many messages" in m["message"] for m in got)
                hub = session.ws.status()
            return n, calm_reply, statuses, errors, hub

    n, calm_reply, statuses, errors, hub = run(main())
    assert calm_reply["id"] == "calm"
    assert 0 < statuses < n, statuses
    assert errors >= 1
    assert hub["input"]["by_reason"]["rate limited"] == n - statuses
