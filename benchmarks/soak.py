"""Soak: run ``d2m serve`` under mixed hostile load and report how it held up, as JSON.

Load, all at once, for ``--seconds``:

* a synthetic dancer streaming ``/d2m/pose`` over OSC at 60 Hz;
* junk OSC (random and mutated packets, tests/hardening/osc_fuzz.py) at ``--junk-rate``;
* ``--clients`` WebSocket clients that subscribe to audio, listen for 1-5 s,
  disconnect and come back (checking the audio they get is contiguous);
* operator controls over WebSocket and OSC every couple of seconds;
* a monitor asking the server for its status every ``--poll`` seconds.

Printed: underruns, the server's event-loop lag percentiles (the server keeps
a 10 s window; the median and worst window are reported), dropped packets and
clients, audio gaps seen by clients, and the server's memory growth (RSS).

    python benchmarks/soak.py --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hardening.osc_fuzz import message, packets  # noqa: E402

#: Seconds of load before the memory baseline is taken (imports, caches, first clients).
WARMUP_S = 5.0


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def start_server(seconds: float) -> tuple[subprocess.Popen, int, int]:
    osc_port, ws_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{osc_port}", "--osc-out", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
           "--ws", f"127.0.0.1:{ws_port}", "--no-web", "--duration", str(seconds + 30)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if "d2m is live" in line:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server did not go live within 120 s")
    else:
        raise RuntimeError(f"the server exited before going live (code {proc.wait()})")
    # keep reading its log, or a full pipe would block the server's logging (and its loop)
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return proc, osc_port, ws_port


#: The server's last log lines (shown if something went wrong).
LOG_TAIL: list[str] = []


def _drain(stream) -> None:
    for line in stream:
        LOG_TAIL.append(line.rstrip())
        del LOG_TAIL[:-50]


def pose_packet(frame) -> bytes:
    joints = [float(v) for v in frame.joints.reshape(-1)]
    return message("/d2m/pose", "is" + "f" * len(joints),
                   struct.pack(">i", frame.person) + _osc_string(frame.layout.value)
                   + struct.pack(f">{len(joints)}f", *joints))


def _osc_string(text: str) -> bytes:
    raw = text.encode() + b"\x00"
    return raw + b"\x00" * (-len(raw) % 4)


class Load:
    def __init__(self, args, osc_port: int, ws_port: int):
        self.args = args
        self.osc = ("127.0.0.1", osc_port)
        self.url = f"ws://127.0.0.1:{ws_port}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.end = 0.0
        self.sent = {"motion": 0, "junk": 0, "osc_controls": 0, "ws_controls": 0}
        self.clients = {"connections": 0, "audio_frames": 0, "gaps": 0, "errors": 0}
        self.polls: list[dict] = []

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.osc)
        except (BlockingIOError, OSError):
            pass

    async def motion(self) -> None:
        from d2m.dancer import SyntheticDancer, TempoCurve

        dancer = SyntheticDancer(tempo=TempoCurve.linear(112.0, 128.0, 0.0, self.args.seconds), seed=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while loop.time() < self.end:
            k += 1
            await asyncio.sleep(max(0.0, t0 + k / 60.0 - loop.time()))
            self._send(pose_packet(dancer.frame(k / 60.0)))
            self.sent["motion"] += 1

    async def junk(self) -> None:
        loop = asyncio.get_running_loop()
        batch = 10
        period = batch / self.args.junk_rate
        source = packets(self.args.seed, 10**9)
        t0, k = loop.time(), 0
        while loop.time() < self.end:
            for _ in range(batch):
                self._send(next(source)[:65507])
                self.sent["junk"] += 1
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * period - loop.time()))

    async def controls(self) -> None:
        from websockets.asyncio.client import connect

        rng = random.Random(self.args.seed)
        async with connect(self.url) as ws:
            reader = asyncio.create_task(self._discard(ws))
            try:
                loop = asyncio.get_running_loop()
                while loop.time() < self.end:
                    await asyncio.sleep(2.0)
                    choice = rng.choice([{"volume": round(rng.uniform(0.6, 1.0), 2)},
                                         {"genre": rng.choice(["house", "krump", "auto"])},
                                         {"tempo_lock": True}, {"tempo_lock": False},
                                         {"prompt": "soak test"}])
                    await ws.send(json.dumps({"type": "control", **choice}))
                    self.sent["ws_controls"] += 1
                    self._send(message("/d2m/volume", "f", struct.pack(">f", rng.uniform(0.6, 1.0))))
                    self.sent["osc_controls"] += 1
            finally:
                reader.cancel()

    async def _discard(self, ws) -> None:
        try:
            async for _ in ws:
                pass
        except Exception:  # noqa: BLE001
            pass

    async def audio_client(self, k: int) -> None:
        from websockets.asyncio.client import connect

        from d2m_server.ws import decode_audio_frame

        rng = random.Random(self.args.seed * 1000 + k)
        loop = asyncio.get_running_loop()
        while loop.time() < self.end:
            try:
                async with connect(self.url, open_timeout=10) as ws:
                    self.clients["connections"] += 1
                    await ws.send(json.dumps({"type": "subscribe", "audio": True}))
                    stop = min(self.end, loop.time() + rng.uniform(1.0, 5.0))
                    expected = None
                    while (left := stop - loop.time()) > 0:
                        try:
                            msg = await asyncio.wait_for(ws.recv(), left)
                        except (asyncio.TimeoutError, TimeoutError):
                            break
                        if isinstance(msg, bytes):
                            frame = decode_audio_frame(msg)
                            if expected is not None and frame.sample_index != expected:
                                self.clients["gaps"] += 1
                            expected = frame.sample_index + frame.frames
                            self.clients["audio_frames"] += frame.frames
            except Exception:  # noqa: BLE001 - counted; the soak goes on
                self.clients["errors"] += 1
                await asyncio.sleep(0.5)
            await asyncio.sleep(rng.uniform(0.0, 0.5))

    async def monitor(self, pid: int) -> None:
        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        async with connect(self.url, max_size=None) as ws:
            n = 0
            while loop.time() < self.end:
                await asyncio.sleep(self.args.poll)
                n += 1
                await ws.send(json.dumps({"type": "status", "id": n}))
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 10)
                    if isinstance(msg, str) and json.loads(msg).get("id") == n:
                        st = json.loads(msg)
                        break
                self.polls.append({"t": loop.time(), "rss_mb": rss_mb(pid), "telemetry": st["telemetry"],
                                   "generator": st["generator"], "clients": st["clients"],
                                   "osc": st["inputs"]["osc"], "audio": st["audio"]})

    async def run(self, pid: int) -> None:
        loop = asyncio.get_running_loop()
        self.end = loop.time() + self.args.seconds
        tasks = [self.motion(), self.junk(), self.controls(), self.monitor(pid)]
        tasks += [self.audio_client(k) for k in range(self.args.clients)]
        await asyncio.gather(*tasks)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[int(q * (len(values) - 1))] if values else float("nan")


def summarise(load: Load, seconds: float) -> dict:
    polls = load.polls
    warm = [p for p in polls if p["t"] - polls[0]["t"] >= WARMUP_S - load.args.poll] or polls
    first, last = warm[0], polls[-1]
    minutes = max((last["t"] - first["t"]) / 60.0, 1e-9)
    tel = last["telemetry"]
    p99s = [p["telemetry"]["loop_lag_ms_p99"] for p in polls]
    return {
        "seconds": seconds,
        "load": {**load.sent, "ws_clients": load.args.clients, "junk_rate": load.args.junk_rate},
        "underruns": tel["underruns"],
        "late_ms": tel["late_ms"],
        "loop_lag_ms": {
            "p50_median_window": round(statistics.median(p["telemetry"]["loop_lag_ms_p50"] for p in polls), 3),
            "p99_median_window": round(statistics.median(p99s), 3),
            "p99_worst_window": round(max(p99s), 3),
            "max": round(max(p["telemetry"]["loop_lag_ms_max"] for p in polls), 3),
        },
        "osc": {"datagrams": last["osc"]["datagrams"], "accepted": last["osc"]["accepted"],
                "rejected": last["osc"]["rejected"], "slowest_datagram_ms": last["osc"]["slowest_datagram_ms"]},
        "websocket": {"connections": last["clients"].get("connections"),
                      "slow_disconnects": last["clients"].get("slow_disconnects"),
                      "refused": last["clients"].get("refused"),
                      "server_audio_frames_dropped": last["clients"].get("audio_frames_dropped"),
                      "client_audio_gaps": load.clients["gaps"], "client_errors": load.clients["errors"],
                      "client_audio_s": round(load.clients["audio_frames"] / 48000, 1)},
        "generator": {k: last["generator"][k] for k in ("segments", "errors", "fallback_segments",
                                                        "restarts", "late_segments")},
        "audio": {"position_s": round(last["audio"]["position"] / 48000, 2),
                  "resyncs": last["audio"].get("resyncs")},
        "memory_mb": {"rss_after_warmup": round(first["rss_mb"], 1), "rss_end": round(last["rss_mb"], 1),
                      "growth": round(last["rss_mb"] - first["rss_mb"], 2),
                      "growth_per_min": round((last["rss_mb"] - first["rss_mb"]) / minutes, 2),
                      "rss_every_10s": [round(p["rss_mb"], 1) for p in polls[::max(1, round(10 / load.args.poll))]]},
        "status_polls": len(polls),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run the load (default 60)")
    ap.add_argument("--clients", type=int, default=8, help="WebSocket audio clients coming and going")
    ap.add_argument("--junk-rate", type=float, default=500.0, help="junk OSC packets per second")
    ap.add_argument("--poll", type=float, default=2.0, help="seconds between status polls")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if args.seconds < WARMUP_S + 2 * args.poll:
        ap.error(f"--seconds must be at least {WARMUP_S + 2 * args.poll:g}")
    proc, osc_port, ws_port = start_server(args.seconds)
    load = Load(args, osc_port, ws_port)
    try:
        asyncio.run(load.run(proc.pid))
    finally:
        proc.terminate()           # SIGTERM: the server closes cleanly
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result = summarise(load, args.seconds)
    result["server_exit_code"] = proc.returncode
    if proc.returncode not in (0, -15):
        result["server_log_tail"] = LOG_TAIL[-20:]
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
