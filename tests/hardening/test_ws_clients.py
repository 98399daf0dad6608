"""Clients and load: a stalled client never delays the others; churn leaks nothing.

* A live session with a fast WebSocket client and a stalled one (a raw
  socket with a tiny receive buffer that subscribes to audio and then never
  reads): the fast client gets contiguous audio in real time, the paced
  output keeps time, and the stalled client loses its oldest audio (counted)
  and is disconnected after ``slow_client_timeout``.
* 500 connect/disconnect cycles, 50 clients at a time (half of them take
  audio, some send controls): file descriptors, asyncio tasks, live Python
  objects and RSS end where they started (within a small tolerance).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import os
import socket
import time


from d2m_server.ws import decode_audio_frame

from .support import live_session, open_fds, recv_reply, ws_client, ws_url

SR = 48000
SLOW_TIMEOUT_S = 1.0
CHURN_CYCLES = int(os.environ.get("D2M_CHURN_CYCLES", "500"))
CHURN_CONCURRENT = 50


def masked_text_frame(text: str) -> bytes:
    """A client-to-server WebSocket text frame (clients must mask)."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def stalled_client(port: int) -> socket.socket:
    """Handshake over a raw socket with a 4 KiB receive buffer, subscribe to audio, stop reading."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(sock, (
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += await asyncio.wait_for(loop.sock_recv(sock, 1), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    await loop.sock_sendall(sock, masked_text_frame('{"type": "subscribe", "audio": true}'))
    return sock


async def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Drain what the server had sent; True once it closes the connection (EOF or reset)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.01, end - loop.time()))
        except (ConnectionResetError, BrokenPipeError):
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return False
        if not data:
            return True
    return False


def test_a_stalled_client_is_dropped_without_delaying_the_fast_one(run):
    async def main():
        async with live_session() as session:
            hub = session.ws
            hub.slow_client_timeout = SLOW_TIMEOUT_S
            stalled = await stalled_client(hub.port)
            try:
                async with ws_client(ws_url(session)) as fast:
                    await fast.send(json.dumps({"type": "subscribe", "audio": True}))
                    frames = []
                    pos0, t0 = session.clock.position, time.monotonic()
                    while time.monotonic() - t0 < SLOW_TIMEOUT_S + 3.0:
                        msg = await asyncio.wait_for(fast.recv(), 5)
                        if isinstance(msg, bytes):
                            frames.append(decode_audio_frame(msg))
                    played_s = (session.clock.position - pos0) / SR
                    elapsed = time.monotonic() - t0
                    stalled_status = hub.status()
                    # the fast client is still served after the stalled one is gone
                    await fast.send(json.dumps({"type": "status", "id": 1}))
                    reply = await recv_reply(fast)
                gone = await closed_by_server(stalled, 5.0)
            finally:
                stalled.close()
            return frames, played_s, elapsed, stalled_status, reply, gone, session.status()

    frames, played_s, elapsed, hub_st, reply, gone, st = run(main())
    # fast client: contiguous audio, in real time
    idx = [f.sample_index for f in frames]
    assert all(b == a + f.frames for a, b, f in zip(idx, idx[1:], frames)), "the fast client lost audio"
    streamed = (idx[-1] + frames[-1].frames - idx[0]) / SR
    assert streamed > elapsed - 0.5, (streamed, elapsed)
    # the paced output kept time
    assert abs(played_s - elapsed) < 0.3, (played_s, elapsed)
    assert st["audio"]["resyncs"] == 0
    # the stalled client lost its oldest audio, was counted, and was disconnected
    assert hub_st["slow_disconnects"] == 1, hub_st
    assert hub_st["audio_frames_dropped"] > 0, hub_st
    assert gone, "the server did not close the stalled connection"
    assert reply["type"] == "status" and reply["clients"]["slow_disconnects"] == 1
    assert st["telemetry"]["ws_slow_disconnects"] == 1.0
    assert st["clients"]["websocket"] == 0


async def churn_client(url: str, k: int) -> None:
    async with ws_client(url, open_timeout=20) as ws:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 20))
        assert hello["type"] == "hello"
        if k % 2 == 0:
            await ws.send(json.dumps({"type": "subscribe", "audio": True}))
            got = 0
            while got < 2:
                if isinstance(await asyncio.wait_for(ws.recv(), 20), bytes):
                    got += 1
        if k % 5 == 0:
            await ws.send(json.dumps({"type": "control", "volume": 0.8, "id": k}))
        if k % 7 == 0:
            await ws.send(json.dumps({"type": "status"}))
        if k % 11 == 0:
            await ws.send(json.dumps({"type": "control", "nope": 1}))


async def churn(url: str, cycles: int, concurrent: int) -> None:
    for start in range(0, cycles, concurrent):
        await asyncio.gather(*(churn_client(url, k) for k in range(start, min(start + concurrent, cycles))))


async def settle(session) -> None:
    for _ in range(200):
        if session.ws.clients == 0:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    gc.collect()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_connect_disconnect_churn_leaves_no_leaks(run):
    async def main():
        async with live_session() as session:
            url = ws_url(session)
            await churn(url, CHURN_CONCURRENT, CHURN_CONCURRENT)        # warm up (imports, caches)
            await settle(session)
            fds0, tasks0 = open_fds(), len(asyncio.all_tasks())
            objs0, rss0 = len(gc.get_objects()), rss_bytes()
            t0 = time.monotonic()
            await churn(url, CHURN_CYCLES, CHURN_CONCURRENT)
            spent = time.monotonic() - t0
            await settle(session)
            objs1, rss1 = len(gc.get_objects()), rss_bytes()
            fds1, tasks1 = open_fds(), len(asyncio.all_tasks())
            return (fds0, fds1, tasks0, tasks1, objs0, objs1, rss0, rss1, spent, session.ws.status(),
                    session.status())

    fds0, fds1, tasks0, tasks1, objs0, objs1, rss0, rss1, spent, hub, st = run(main(), timeout=300)
    print(f"{CHURN_CYCLES} connections in {spent:.1f} s; fds {fds0}->{fds1}, tasks {tasks0}->{tasks1}, "
          f"gc objects {objs0}->{objs1}, RSS {rss0 / 1e6:.1f}->{rss1 / 1e6:.1f} MB")
    assert hub["connections"] == CHURN_CYCLES + CHURN_CONCURRENT and hub["clients"] == 0
    assert hub["refused"] == 0
    assert abs(fds1 - fds0) <= 2, (fds0, fds1)
    assert abs(tasks1 - tasks0) <= 1, (tasks0, tasks1)
    # every connection allocates a few hundred objects: 500 leaked ones would add >100,000
    assert objs1 - objs0 < 5_000, (objs0, objs1)
    assert rss1 - rss0 < 20_000_000, f"RSS grew by {(rss1 - rss0) / 1e6:.1f} MB"
    assert st["inputs"]["websocket"]["by_reason"].get("bad control", 0) > 0
    assert st["audio"]["resyncs"] == 0, "the audio clock kept time through the churn"
