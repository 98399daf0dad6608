"""Two real Ableton Link peers: ``d2m demo --link`` (or ``d2m serve --link-follow``) and an aalink peer.

Run only inside a network namespace that has the loopback interface alone
(``unshare -rn sh -c 'ip link set lo up && python link_peers.py lead'``):
Link discovers peers by multicast on every interface. Prints one JSON object.

* ``lead``: the d2m demo dancer (118 BPM) leads; at every music beat d2m
  announces over OSC (``/d2m/beat/full``: bar, beat, bpm), the peer notes its
  own Link tempo and bar phase (quantum 4).
* ``follow``: ``d2m serve --link-follow`` (no dancer); the peer sets the
  session tempo to :data:`FOLLOW_BPM`, and d2m's music beats come at that tempo.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

from pythonosc.osc_packet import OscPacket

FOLLOW_BPM = 100.0
#: Music beats to collect before judging.
BEATS = 8
#: The peer's tempo is read this long after a beat arrives (a tempo change travels between peers).
TEMPO_LAG_S = 0.05
#: Longest run (s).
TIMEOUT_S = 60.0


def free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_d2m(mode: str, osc_out: int):
    base = [sys.executable, "-m", "d2m_server.cli"]
    common = ["--audio-out", "none", "--no-ws", "--osc-in", f"127.0.0.1:{free_udp()}",
              "--osc-out", f"127.0.0.1:{osc_out}", "--duration", str(TIMEOUT_S + 10)]
    cmd = base + (["demo", "--link"] if mode == "lead" else ["serve", "--link-follow"]) + common
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def run(mode: str) -> dict:
    from aalink import Link

    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    proc = start_d2m(mode, sock.getsockname()[1])
    peer = Link(90.0)
    peer.quantum = 4
    peer.enabled = True
    beats: list[dict] = []
    out: dict = {"mode": mode}
    set_at = None
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < TIMEOUT_S and proc.poll() is None:
            if mode == "follow" and set_at is None and peer.num_peers > 0:
                await asyncio.sleep(1.0)        # let d2m's session settle, then change the tempo
                peer.tempo = FOLLOW_BPM
                set_at = time.monotonic()
            try:
                data = await asyncio.wait_for(loop.sock_recv(sock, 65536), 0.5)
            except (asyncio.TimeoutError, TimeoutError):
                continue
            now = time.monotonic()
            phase, tempo = float(peer.phase), float(peer.tempo)
            for m in OscPacket(data).messages:
                msg = m.message
                if msg.address == "/d2m/beat/full":
                    bar, beat, bpm = msg.params
                    if mode == "follow" and (set_at is None or now < set_at + 3.0):
                        continue
                    await asyncio.sleep(TEMPO_LAG_S)
                    beats.append({"t": now, "bar": bar, "beat": beat, "bpm": bpm, "peer_phase": phase,
                                  "peer_tempo_at_beat": tempo, "peer_tempo": float(peer.tempo),
                                  "peers": int(peer.num_peers)})
            if len(beats) >= BEATS + 4:
                break
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        peer.enabled = False
    out["beats"] = beats[4:]                 # the first few while the session settles
    out["d2m_exit"] = proc.returncode
    out["d2m_log_tail"] = (err or "")[-4000:]
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run(sys.argv[1]))))
