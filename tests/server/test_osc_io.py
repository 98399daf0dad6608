"""OSC over real UDP on 127.0.0.1: receiving from python-osc and liblo, sending, status replies."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket

import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.udp_client import SimpleUDPClient

from d2m.control import Control
from d2m.events import Beat
from d2m.skeleton import Layout
from d2m_server.osc_codec import decode_packet
from d2m_server.osc_in import OscReceiver
from d2m_server.osc_out import OscSender, encode_event, encode_status
from d2m_server.osc_route import Routed

#: Generous wait for a datagram on loopback (only a failure waits this long).
WAIT_S = 5.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class Inbox:
    """Collects what an OscReceiver routes; a test awaits the next item."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[Routed, tuple]] = asyncio.Queue()

    def __call__(self, routed: Routed, addr: tuple) -> None:
        self.queue.put_nowait((routed, addr))

    async def next(self) -> tuple[Routed, tuple]:
        return await asyncio.wait_for(self.queue.get(), WAIT_S)


async def started_receiver(inbox, **kw) -> OscReceiver:
    receiver = OscReceiver(inbox, clock=lambda: 12.5, **kw)
    await receiver.start("127.0.0.1", 0)
    assert receiver.port > 0
    return receiver


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def recv(sock: socket.socket) -> tuple[bytes, tuple]:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recvfrom(sock, 70000), WAIT_S)


def test_python_osc_client_controls_and_pose_reach_the_callback():
    async def main():
        inbox = Inbox()
        receiver = await started_receiver(inbox)
        try:
            client = SimpleUDPClient("127.0.0.1", receiver.port)
            client.send_message("/d2m/genre", "house")
            routed, addr = await inbox.next()
            assert routed.control == Control(genre="house") and addr[0] == "127.0.0.1"

            client.send_message("/d2m/pose", [1, "coco17"] + [0.5, 0.5, 0.9] * 17)
            routed, _ = await inbox.next()
            [frame] = routed.frames
            assert (frame.t, frame.person, frame.layout) == (12.5, 1, Layout.COCO17)

            outer = OscBundleBuilder(IMMEDIATELY)
            outer.add_content(OscMessageBuilder("/d2m/volume").build())   # no args: rejected
            msg = OscMessageBuilder("/d2m/volume")
            msg.add_arg(0.25)
            outer.add_content(msg.build())
            client.send(outer.build())
            first, _ = await inbox.next()
            second, _ = await inbox.next()
            assert first.error == "bad_args"
            assert second.control == Control(volume=0.25)
            assert receiver.stats.accepted == 3 and receiver.stats.counts["bad_args"] == 1
        finally:
            receiver.close()
    run(main())


@pytest.mark.skipif(shutil.which("oscsend") is None, reason="liblo-tools (oscsend) not installed")
def test_liblo_oscsend_cli_reaches_the_receiver():
    async def main():
        inbox = Inbox()
        receiver = await started_receiver(inbox)
        try:
            for argv, expected in [
                (["/d2m/genre", "s", "house"], Control(genre="house")),
                (["/d2m/tempo/lock", "f", "126.5"], Control(tempo_lock=True, bpm=126.5)),
                (["/d2m/genre", "i", "7"], Control(genre="krump")),
                (["/d2m/stop"], Control(playing=False)),
            ]:
                proc = await asyncio.create_subprocess_exec(
                    "oscsend", "localhost", str(receiver.port), *argv,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
                _, err = await proc.communicate()
                assert proc.returncode == 0, err
                routed, _ = await inbox.next()
                assert routed.error is None and routed.control == expected
        finally:
            receiver.close()
    run(main())


def test_bad_datagrams_are_counted_and_the_receiver_keeps_going():
    async def main():
        inbox = Inbox()
        receiver = await started_receiver(inbox, max_packet=256)
        sock = udp_socket()
        try:
            target = ("127.0.0.1", receiver.port)
            sock.sendto(b"\x00garbage", target)                     # undecodable
            sock.sendto(b"/big\x00\x00\x00\x00" + b"\x00" * 400, target)  # over max_packet
            sock.sendto(OscMessageBuilder("/who/knows").build().dgram, target)
            sock.sendto(OscMessageBuilder("/d2m/start").build().dgram, target)
            unknown, _ = await inbox.next()
            start, _ = await inbox.next()
            assert unknown.error == "unknown_address"
            assert start.control == Control(playing=True)
            snap = receiver.stats.snapshot()
            assert snap["by_reason"] == {"bad_address": 1, "too_large": 1, "unknown_address": 1}
            assert snap["accepted"] == 1 and receiver.datagrams == 4
        finally:
            sock.close()
            receiver.close()
    run(main())


def test_callback_exceptions_are_counted_not_fatal():
    async def main():
        seen: list[Routed] = []
        got_second = asyncio.Event()

        def flaky(routed: Routed, addr: tuple) -> None:
            seen.append(routed)
            if len(seen) == 1:
                raise RuntimeError("boom")
            got_second.set()

        receiver = OscReceiver(flaky, clock=lambda: 0.0)
        await receiver.start("127.0.0.1", 0)
        try:
            client = SimpleUDPClient("127.0.0.1", receiver.port)
            client.send_message("/d2m/start", [])
            client.send_message("/d2m/stop", [])
            await asyncio.wait_for(got_second.wait(), WAIT_S)
            assert [r.control.playing for r in seen] == [True, False]
            assert receiver.stats.counts["callback_error"] == 1
        finally:
            receiver.close()
    run(main())


def test_sender_reaches_every_target_and_never_raises():
    async def main():
        a, b = udp_socket(), udp_socket()
        sender = OscSender([a.getsockname(), ("localhost", b.getsockname()[1])])
        sender.send(encode_event(Beat(0, 0.0, bar=0, beat=1, bpm=100.0)))   # not started: counted
        assert sender.stats.counts["send_error"] >= 1
        await sender.start()
        try:
            packets = encode_event(Beat(sample=0, time=0.0, bar=2, beat=3, bpm=99.5))
            sender.send(packets)
            for sock in (a, b):
                got = [decode_packet((await recv(sock))[0])[0] for _ in packets]
                assert [(m.address, m.args) for m in got] == [
                    ("/d2m/beat", [3]), ("/d2m/bar", [2]), ("/d2m/bpm", [99.5]),
                    ("/d2m/downbeat", [0]), ("/d2m/beat/full", [2, 3, 99.5])]
            assert sender.sent == 2 * len(packets)
        finally:
            sender.close()
            a.close()
            b.close()
        sender.send(packets)                 # after close: counted, no exception
    run(main())


def test_sender_rejects_unresolvable_host_clearly():
    async def main():
        sender = OscSender([("no-such-host.invalid", 9001)])
        with pytest.raises(ValueError, match="cannot resolve OSC target"):
            await sender.start()
    run(main())


def test_status_request_is_answered_to_the_senders_address_and_port():
    async def main():
        receiver: OscReceiver

        def on_routed(routed: Routed, addr: tuple) -> None:
            if routed.status_request:
                receiver.send_to(addr, encode_status({"bpm": 118.0, "playing": True}))

        receiver = OscReceiver(on_routed, clock=lambda: 0.0)
        await receiver.start("127.0.0.1", 0)
        client = udp_socket()
        try:
            client.sendto(OscMessageBuilder("/d2m/status").build().dgram, ("127.0.0.1", receiver.port))
            data, source = await recv(client)
            [msg] = decode_packet(data)
            assert msg.address == "/d2m/status"
            assert json.loads(msg.args[0]) == {"bpm": 118.0, "playing": True}
            assert source == ("127.0.0.1", receiver.port)       # reply comes from the OSC-in port
        finally:
            client.close()
            receiver.close()
    run(main())


def test_python_osc_client_reads_a_status_reply_on_its_own_socket():
    async def main():
        sender = OscSender([])
        await sender.start()
        inbox = Inbox()
        receiver = await started_receiver(inbox)
        try:
            client = SimpleUDPClient("127.0.0.1", receiver.port)
            client.send_message("/d2m/status", [])
            routed, addr = await inbox.next()
            assert routed.status_request
            sender.send_to(addr, encode_status({"genre": "pop"}))   # the OscSender path
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(None, client.receive, WAIT_S)
            [msg] = decode_packet(data)
            assert json.loads(msg.args[0]) == {"genre": "pop"}
        finally:
            receiver.close()
            sender.close()
    run(main())


def test_port_in_use_gives_a_clear_error():
    async def main():
        first = OscReceiver(lambda r, a: None, clock=lambda: 0.0)
        await first.start("127.0.0.1", 0)
        try:
            second = OscReceiver(lambda r, a: None, clock=lambda: 0.0)
            with pytest.raises(OSError, match="--osc-in"):
                await second.start("127.0.0.1", first.port)
        finally:
            first.close()
    run(main())
