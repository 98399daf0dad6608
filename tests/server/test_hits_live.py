"""Live: a dancer's hits streamed over real UDP OSC to a running LiveSession are announced
on ``/d2m/hit`` (real UDP out), their accents are in the recorded audio, and ``d2m render``
of the motion recording gives the same samples, accents included."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import soundfile as sf

from d2m.conductor import ConductorConfig
from d2m.dancer import SyntheticDancer
from d2m.hit_dancer import HitDancer, MarkedHit
from d2m.recording import ControlEntry, parse_recording
from d2m.render import render_motion
from d2m_server.osc_codec import decode_packet
from tests.hardening.support import live_session, shared_synth

SR = 48000
DANCE_S = 9.0
HIT_TIMES = (5.0, 7.1)


def send_dancer(dancer: HitDancer, port: int, seconds: float, fps: float = 60.0) -> None:
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    t0 = time.monotonic()
    for i in range(int(seconds * fps)):
        delay = t0 + i / fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f = dancer.frame(i / fps)
        client.send_message("/d2m/pose", [0, "coco17", *[float(v) for v in f.joints.reshape(-1)]])


def test_hits_over_osc_are_announced_and_accented_and_render_matches(tmp_path):
    wav, motion = tmp_path / "live.wav", tmp_path / "motion.jsonl"
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    out_port = listener.getsockname()[1]
    dancer = HitDancer(SyntheticDancer(tempo=120.0, sharpness=0.9, noise=0.002, seed=5, phase_offset=0.3),
                       [MarkedHit(t, kind) for t, kind in zip(HIT_TIMES, ("snap", "stomp"))])
    received: list[tuple[str, list]] = []

    async def main():
        async with live_session(record=str(wav), record_motion=str(motion),
                                osc_out=[("127.0.0.1", out_port)]) as session:
            loop = asyncio.get_running_loop()
            sender = threading.Thread(target=send_dancer, args=(dancer, session.osc_in.port, DANCE_S))
            sender.start()
            end = loop.time() + DANCE_S + 1.5
            while loop.time() < end:
                try:
                    data = await loop.sock_recv(listener, 65536)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                for msg in decode_packet(data):
                    if msg.address.startswith("/d2m/hit"):
                        received.append((msg.address, list(msg.args)))
                if not sender.is_alive() and loop.time() > end - 1.0:
                    break
            sender.join()
            return session.status()

    try:
        st = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        listener.close()
    full = [args for addr, args in received if addr == "/d2m/hit/full"]
    assert [a for addr, a in received if addr == "/d2m/hit"], "plain /d2m/hit arrived"
    assert len(full) == len(HIT_TIMES), received
    assert st["hits"]["hits"] == len(HIT_TIMES) and st["accents"]["played"] == len(HIT_TIMES)
    assert st["accents"]["late"] == 0

    # the accents are in what was played: render the motion recording with and without hits
    rec = parse_recording(motion.read_text().splitlines())
    items = [(it.t, it.control) if isinstance(it, ControlEntry) else it for it in rec.items]
    live, sr = sf.read(str(wav), dtype="int16")
    cfg = ConductorConfig(genre="house")
    rendered = render_motion(items, shared_synth(), cfg, duration=len(live) / SR)
    plain = render_motion(items, shared_synth(), ConductorConfig(genre="house", hit_sensitivity=0.0),
                          duration=len(live) / SR)
    from d2m_server.recorder import WavRecorder

    out = tmp_path / "rendered.wav"
    with WavRecorder(str(out), SR, 2) as w:
        w.write(rendered.audio)
    again, _ = sf.read(str(out), dtype="int16")
    n = min(len(live), len(again))
    assert n > (DANCE_S - 1) * SR
    assert np.array_equal(live[:n], again[:n]), "render of the recording == the music played live"
    accent_times = sorted(a[3] for a in full)
    assert [round(h.accent_time, 3) for h in rendered.hits] == [round(t, 3) for t in accent_times]
    for h in rendered.hits:
        s = h.accent_sample
        assert np.array_equal(rendered.audio[s - 480:s], plain.audio[s - 480:s])
        assert np.abs(rendered.audio[s:s + 2400] - plain.audio[s:s + 2400]).max() > 0.05
