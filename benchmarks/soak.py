"""Soak: run ``d2m serve`` for a long time under a real show's load and report how it held up, as JSON.

The server is a real ``d2m serve`` subprocess (no sound card: ``--audio-out none``,
paced by its own clock), recording WAV and motion. All at once, for ``--seconds``:

* a **video source** on loop through MediaPipe (``--source video:CLIP --loop``): by
  default the first of :data:`REAL_CLIPS` in ``../shared/realvideo`` (development
  machines), else the committed ``tests/data/dance_clip.mp4``; ``--no-video`` leaves
  it out (and it is left out, saying so, when the camera extra is not installed);
* **mocap over OSC**: a synthetic dancer streaming ``/d2m/pose`` at 60 Hz (as person 1,
  so the video's dancer keeps the lead);
* **hostile junk**: random and mutated OSC packets (tests/hardening/osc_fuzz.py) at
  ``--junk-rate``, bad WebSocket messages, bad MQTT controls;
* **browsers joining and leaving**: ``--clients`` real WebSocket clients that load the
  web page over HTTP, subscribe to audio, listen for 1-5 s (checking the audio is
  contiguous), leave and come back; every ``STALL_EVERY_S`` one client that stops
  reading (the server must drop it);
* **MQTT**: a real mosquitto broker (``--no-mqtt`` leaves it out; left out, saying so,
  when mosquitto is not installed) with a subscriber and controls over MQTT; the
  broker is **restarted in the middle** of the run;
* **operator controls** over WebSocket, OSC and MQTT every couple of seconds;
* a **monitor** asking the server for its status every ``--poll`` seconds; the status
  ``memory`` section gives the server's RSS, fds, threads, tasks and buffer sizes.

Printed (and written to ``--out``, rewritten every ``--partial-every`` seconds while
it runs, with ``"complete": false`` until the end): memory sampled over the whole run
(after ``--warmup``: growth, growth per hour, the least-squares slope over the last
half, one sample a minute), file descriptors, tasks and threads (first after warm-up,
last, min, max), underruns, event-loop lag, generator lateness, drops, what the
clients saw, the MQTT restart, and whether the recordings are readable at the end.

    python benchmarks/soak.py --seconds 300                     # a quick look (5 min)
    nice -n 10 python benchmarks/soak.py --seconds 3600 --out benchmarks/soak-1h.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.hardening.osc_fuzz import frame_message, message, packets  # noqa: E402

#: Seconds of load before the memory baseline is taken (imports, numba and MediaPipe
#: warm-up, the synth's tone cache filling); shorter runs use a quarter of their length.
WARMUP_S = 300.0
#: Real dance clips tried first for the video source (development machines only).
REAL_VIDEO_DIR = REPO.parent / "shared" / "realvideo"
REAL_CLIPS = ("musepose_dance.mp4", "v2p3d_kunkun_cut.mp4", "tb_handdance9.mp4")
#: The committed clip used when the real ones are absent.
TEST_CLIP = REPO / "tests" / "data" / "dance_clip.mp4"
#: One WebSocket client that stops reading is started this often (s).
STALL_EVERY_S = 120.0
#: Seconds a server may take to go live (numba warm-up, the pose model).
LIVE_TIMEOUT_S = 180.0
#: Longest wait for a status reply before the poll is counted as missed (s).
POLL_TIMEOUT_S = 10.0
#: Memory samples listed in the JSON (one per this many seconds).
LIST_EVERY_S = 60.0
MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


#: The server's last log lines (shown if something went wrong).
LOG_TAIL: list[str] = []


def _drain(stream) -> None:
    for line in stream:
        LOG_TAIL.append(line.rstrip())
        del LOG_TAIL[:-50]


def pick_video(args) -> tuple[str | None, str]:
    """The clip to loop, and why (or why there is none)."""
    if args.no_video:
        return None, "left out (--no-video)"
    try:
        import cv2  # noqa: F401
        import mediapipe  # noqa: F401
    except ImportError:
        return None, "left out: the camera extra is not installed (pip install -e '.[camera]')"
    if args.video:
        return args.video, "given"
    for name in REAL_CLIPS:
        if (REAL_VIDEO_DIR / name).exists():
            return str(REAL_VIDEO_DIR / name), "real dancer (../shared/realvideo)"
    return str(TEST_CLIP), "committed test clip (../shared/realvideo absent)"


class Broker:
    """A mosquitto broker on a loopback port, generated config; stopped by its pid."""

    def __init__(self, tmp: Path, port: int):
        self.port = port
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
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


def start_server(args, tmp: Path, video: str | None, mqtt_port: int | None):
    osc_port, ws_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{osc_port}", "--osc-out", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
           "--ws", f"127.0.0.1:{ws_port}", "--duration", str(args.seconds + 60),
           "--record", str(tmp / "soak.wav"), "--record-motion", str(tmp / "soak.jsonl")]
    if video:
        cmd += ["--source", f"video:{video}", "--loop"]
    if mqtt_port:
        cmd += ["--mqtt", f"127.0.0.1:{mqtt_port}", "--mqtt-instance", "soak"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + LIVE_TIMEOUT_S
    for line in proc.stdout:
        LOG_TAIL.append(line.rstrip())
        if "d2m is live" in line:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the server did not go live within {LIVE_TIMEOUT_S:g} s")
    else:
        raise RuntimeError(f"the server exited before going live (code {proc.wait()}):\n"
                           + "\n".join(LOG_TAIL[-20:]))
    # keep reading its log, or a full pipe would block the server's logging (and its loop)
    threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
    return proc, osc_port, ws_port


async def _discard(ws) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:  # noqa: BLE001
        pass


class Load:
    def __init__(self, args, osc_port: int, ws_port: int, pid: int, broker: Broker | None):
        self.args = args
        self.osc = ("127.0.0.1", osc_port)
        self.url = f"ws://127.0.0.1:{ws_port}"
        self.http = ("127.0.0.1", ws_port)
        self.pid = pid
        self.broker = broker
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.t0 = 0.0
        self.end = 0.0
        self.sent = {"motion": 0, "junk": 0, "osc_controls": 0, "ws_controls": 0, "ws_junk": 0,
                     "mqtt_controls": 0, "mqtt_junk": 0}
        self.clients = {"connections": 0, "pages_loaded": 0, "audio_frames": 0, "gaps": 0,
                        "errors": 0, "stalled_started": 0, "stalled_dropped": 0}
        self.mqtt = {"messages": 0, "beats": 0, "errors": 0, "reconnects": 0,
                     "broker_restart_at_s": None, "messages_after_restart": 0}
        self.polls: list[dict] = []
        self.missed_polls = 0
        self.on_partial = None

    def _send(self, data: bytes) -> None:
        try:
            self.sock.sendto(data, self.osc)
        except (BlockingIOError, OSError):
            pass

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    def running(self) -> bool:
        return asyncio.get_running_loop().time() < self.end

    # -- load -----------------------------------------------------------------
    async def motion(self) -> None:
        from d2m.dancer import SyntheticDancer, TempoCurve

        dancer = SyntheticDancer(tempo=TempoCurve.linear(112.0, 128.0, 0.0, self.args.seconds), seed=1)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        k = 0
        while self.running():
            k += 1
            await asyncio.sleep(max(0.0, t0 + k / 60.0 - loop.time()))
            self._send(frame_message(dancer.frame(k / 60.0), person=1))
            self.sent["motion"] += 1

    async def junk(self) -> None:
        loop = asyncio.get_running_loop()
        batch = 10
        period = batch / self.args.junk_rate
        source = packets(self.args.seed, 10**12)
        t0, k = loop.time(), 0
        while self.running():
            for _ in range(batch):
                self._send(next(source)[:65507])
                self.sent["junk"] += 1
            k += 1
            await asyncio.sleep(max(0.0, t0 + k * period - loop.time()))

    async def controls(self) -> None:
        from websockets.asyncio.client import connect

        rng = random.Random(self.args.seed)
        junk = ['{"type": "control"', '{"type": "control", "volume": 7}', '[1, 2, 3]',
                '{"type": "nonsense"}', '{"type": "control", "genre": "polka"}', "\x00" * 100]
        while self.running():
            try:
                async with connect(self.url) as ws:
                    reader = asyncio.create_task(_discard(ws))
                    try:
                        while self.running():
                            await asyncio.sleep(2.0)
                            choice = rng.choice([{"volume": round(rng.uniform(0.6, 1.0), 2)},
                                                 {"genre": rng.choice(["house", "krump", "auto"])},
                                                 {"tempo_lock": True}, {"tempo_lock": False},
                                                 {"prompt": "soak test"}])
                            await ws.send(json.dumps({"type": "control", **choice}))
                            self.sent["ws_controls"] += 1
                            await ws.send(rng.choice(junk))
                            self.sent["ws_junk"] += 1
                            self._send(message("/d2m/volume", "f", struct.pack(">f", rng.uniform(0.6, 1.0))))
                            self.sent["osc_controls"] += 1
                    finally:
                        reader.cancel()
            except Exception:  # noqa: BLE001 - counted; the soak goes on
                self.clients["errors"] += 1
                await asyncio.sleep(1.0)

    async def _load_page(self) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.http), 10)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)
            if data.startswith(b"HTTP/1.1 200"):
                self.clients["pages_loaded"] += 1
        finally:
            writer.close()

    async def browser(self, k: int) -> None:
        from websockets.asyncio.client import connect

        from d2m_server.ws import decode_audio_frame

        rng = random.Random(self.args.seed * 1000 + k)
        loop = asyncio.get_running_loop()
        while self.running():
            try:
                if rng.random() < 0.5:
                    await self._load_page()
                async with connect(self.url, open_timeout=10,
                                   origin=f"http://127.0.0.1:{self.http[1]}") as ws:
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

    async def stalled_clients(self) -> None:
        """Every STALL_EVERY_S, a client subscribes to audio and stops reading; the server drops it."""
        while self.running():
            await asyncio.sleep(min(STALL_EVERY_S, max(0.0, self.end - asyncio.get_running_loop().time())))
            if not self.running():
                return
            sock = None
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                await loop.sock_connect(sock, self.http)
                key = "c29ha3Rlc3RzdGFsbGVkIQ=="
                await loop.sock_sendall(sock, (
                    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
                await asyncio.sleep(0.5)
                payload = json.dumps({"type": "subscribe", "audio": True}).encode()
                mask = b"\x01\x02\x03\x04"
                frame = bytes([0x81, 0x80 | len(payload)]) + mask + bytes(
                    b ^ mask[i % 4] for i, b in enumerate(payload))
                await loop.sock_sendall(sock, frame)
                self.clients["stalled_started"] += 1
                # never read again: the server's slow-client timeout must reset the connection
                deadline = loop.time() + 60
                while loop.time() < deadline and self.running():
                    await asyncio.sleep(1.0)
                    try:
                        sock.send(b"")
                        sock.getpeername()
                        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    except OSError:
                        err = 1
                    if err:
                        self.clients["stalled_dropped"] += 1
                        break
            except Exception:  # noqa: BLE001
                self.clients["errors"] += 1
            finally:
                if sock is not None:
                    sock.close()

    async def mqtt_client(self) -> None:
        import aiomqtt

        rng = random.Random(self.args.seed + 7)
        prefix = "d2m/soak/"
        while self.running():
            try:
                async with aiomqtt.Client("127.0.0.1", self.broker.port,
                                          identifier=f"soak-{os.getpid()}") as client:
                    await client.subscribe(prefix + "#")
                    pub = asyncio.create_task(self._mqtt_publish(client, prefix, rng))
                    try:
                        async for msg in client.messages:
                            self.mqtt["messages"] += 1
                            if self.mqtt["broker_restart_at_s"] is not None:
                                self.mqtt["messages_after_restart"] += 1
                            if str(msg.topic).endswith("/beat"):
                                self.mqtt["beats"] += 1
                            if not self.running():
                                break
                    finally:
                        pub.cancel()
            except aiomqtt.MqttError:
                self.mqtt["reconnects"] += 1
                await asyncio.sleep(1.0)
            except Exception:  # noqa: BLE001
                self.mqtt["errors"] += 1
                await asyncio.sleep(1.0)

    async def _mqtt_publish(self, client, prefix: str, rng: random.Random) -> None:
        while True:
            await asyncio.sleep(3.0)
            await client.publish(prefix + "control/volume", str(round(rng.uniform(0.6, 1.0), 2)))
            self.sent["mqtt_controls"] += 1
            await client.publish(prefix + "control", rng.choice([b"{", b'{"volume": 9}', b"\xff\xfe",
                                                                 b'{"genre": 12}']))
            self.sent["mqtt_junk"] += 1

    async def broker_restart(self) -> None:
        await asyncio.sleep(self.args.seconds / 2)
        if not self.running():
            return
        await asyncio.to_thread(self.broker.stop)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(self.broker.start)
        self.broker.restarts += 1
        self.mqtt["broker_restart_at_s"] = round(self.elapsed(), 1)

    # -- monitor ----------------------------------------------------------------
    async def monitor(self) -> None:
        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        next_partial = loop.time() + self.args.partial_every
        n = 0
        while self.running():
            try:
                async with connect(self.url, max_size=None) as ws:
                    while self.running():
                        await asyncio.sleep(self.args.poll)
                        n += 1
                        await ws.send(json.dumps({"type": "status", "id": n}))
                        st = await self._reply(ws, n)
                        if st is None:
                            self.missed_polls += 1
                            continue
                        mem = st.get("memory") or {}
                        self.polls.append({
                            "t": self.elapsed(), "rss_mb": rss_mb(self.pid), "memory": mem,
                            "telemetry": st["telemetry"], "generator": st["generator"],
                            "clients": st["clients"], "osc": st["inputs"]["osc"], "audio": st["audio"],
                            "mqtt": st.get("mqtt"), "recording": st.get("recording"),
                            "sources": st.get("sources")})
                        if loop.time() >= next_partial and self.on_partial is not None:
                            next_partial = loop.time() + self.args.partial_every
                            self.on_partial()
            except Exception:  # noqa: BLE001 - counted; polling goes on
                self.missed_polls += 1
                await asyncio.sleep(1.0)

    async def _reply(self, ws, n: int) -> dict | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + POLL_TIMEOUT_S
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await asyncio.wait_for(ws.recv(), left)
            except (asyncio.TimeoutError, TimeoutError):
                return None
            if isinstance(msg, str):
                obj = json.loads(msg)
                if obj.get("id") == n:
                    return obj
        return None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        # the MQTT client library's socket callbacks complain when the broker is restarted
        # under them: counted, not printed
        loop.set_exception_handler(lambda _loop, ctx: self.mqtt.__setitem__(
            "client_loop_errors", self.mqtt.get("client_loop_errors", 0) + 1))
        self.t0 = loop.time()
        self.end = self.t0 + self.args.seconds
        tasks = [self.motion(), self.junk(), self.controls(), self.monitor(), self.stalled_clients()]
        tasks += [self.browser(k) for k in range(self.args.clients)]
        if self.broker is not None:
            tasks += [self.mqtt_client(), self.broker_restart()]
        running = [asyncio.ensure_future(t) for t in tasks]
        await asyncio.sleep(self.args.seconds)
        await asyncio.sleep(1.0)
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)


# ---------------------------------------------------------------------------
# Summary

def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[int(q * (len(values) - 1))] if values else float("nan")


def slope_per_hour(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ``ys`` against ``ts`` (s), per hour."""
    if len(ts) < 3:
        return None
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    if den <= 0:
        return None
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den * 3600.0


def _count_summary(polls: list[dict], key: str) -> dict:
    vals = [p["memory"].get(key) for p in polls if p["memory"].get(key) is not None]
    if not vals:
        return {}
    return {"after_warmup": vals[0], "end": vals[-1], "min": min(vals), "max": max(vals),
            "growth": vals[-1] - vals[0]}


def summarise(load: Load, args, warmup: float, video: tuple, extra: dict, complete: bool) -> dict:
    polls = load.polls
    if not polls:
        return {"complete": complete, "error": "no status replies yet", "missed_polls": load.missed_polls}
    warm = [p for p in polls if p["t"] >= warmup] or polls[-1:]
    first, last = warm[0], polls[-1]
    tel = last["telemetry"]
    p99s = [p["telemetry"]["loop_lag_ms_p99"] for p in polls]
    ts = [p["t"] for p in warm if p["rss_mb"] is not None]
    ys = [p["rss_mb"] for p in warm if p["rss_mb"] is not None]
    half = [(t, y) for t, y in zip(ts, ys) if t >= (ts[0] + ts[-1]) / 2] if ts else []
    hours = max((last["t"] - first["t"]) / 3600.0, 1e-9)
    sizes = {k: v for k, v in last["memory"].items()
             if k not in ("rss_mb", "fds", "threads", "os_threads", "tasks")}
    gen = last["generator"]
    return {
        "complete": complete,
        "seconds": round(last["t"], 1), "seconds_asked": args.seconds, "warmup_s": warmup,
        "load": {**load.sent, "browsers": args.clients, "junk_rate": args.junk_rate,
                 "video": video[0], "video_why": video[1], "mqtt": extra.get("mqtt_why")},
        "memory_mb": {
            "rss_after_warmup": round(first["rss_mb"], 1), "rss_end": round(last["rss_mb"], 1),
            "rss_max_after_warmup": round(max(ys), 1) if ys else None,
            "growth_after_warmup": round(last["rss_mb"] - first["rss_mb"], 2),
            "growth_per_hour": round((last["rss_mb"] - first["rss_mb"]) / hours, 1),
            "slope_per_hour_after_warmup": _r(slope_per_hour(ts, ys)),
            "slope_per_hour_last_half": _r(slope_per_hour([t for t, _ in half], [y for _, y in half])),
            "rss_first_sample": round(polls[0]["rss_mb"], 1),
            "rss_every_minute": _every(polls, LIST_EVERY_S),
        },
        "fds": _count_summary(warm, "fds"), "tasks": _count_summary(warm, "tasks"),
        "threads": _count_summary(warm, "threads"), "os_threads": _count_summary(warm, "os_threads"),
        "sizes_at_end": sizes,
        "underruns": tel["underruns"],
        "loop_lag_ms": {
            "p50_median_window": round(statistics.median(p["telemetry"]["loop_lag_ms_p50"] for p in polls), 3),
            "p99_median_window": round(statistics.median(p99s), 3),
            "p99_worst_window": round(max(p99s), 3),
            "max": round(max(p["telemetry"]["loop_lag_ms_max"] for p in polls), 3),
            "max_seen_at_s": round(max(polls, key=lambda p: p["telemetry"]["loop_lag_ms_max"])["t"], 1),
        },
        "generator": {"late_ms": tel["late_ms"],
                      **{k: gen.get(k) for k in ("segments", "late_segments", "fallback_segments", "errors",
                                                 "restarts", "silent_segments", "realtime_factor")}},
        "osc": {k: last["osc"].get(k) for k in ("datagrams", "accepted", "rejected", "slowest_datagram_ms")},
        "websocket": {"connections": last["clients"].get("connections"),
                      "slow_disconnects": last["clients"].get("slow_disconnects"),
                      "refused": last["clients"].get("refused"),
                      "server_audio_frames_dropped": last["clients"].get("audio_frames_dropped"),
                      **{f"client_{k}": v for k, v in load.clients.items()},
                      "client_audio_s": round(load.clients["audio_frames"] / 48000, 1)},
        "mqtt": ({**load.mqtt, **{k: last["mqtt"].get(k) for k in ("connected", "connects", "disconnects",
                                                                    "published", "dropped", "stale",
                                                                    "controls", "rejected")}}
                 if last.get("mqtt") else None),
        "sources": [{k: s.get(k) for k in ("source", "state", "pose_fps", "frames_posed", "frames_delivered",
                                           "detect_ms", "frames_dropped")} for s in (last.get("sources") or [])],
        "audio": {"position_s": round(last["audio"]["position"] / 48000, 2),
                  "resyncs": last["audio"].get("resyncs")},
        "recording": last.get("recording"),
        "status_polls": len(polls), "missed_polls": load.missed_polls,
        **{k: v for k, v in extra.items() if k != "mqtt_why"},
    }


def _every(polls: list[dict], step: float) -> list[list[float]]:
    """``[t, rss_mb]`` of the first poll in each ``step`` seconds."""
    out, next_t = [], -1.0
    for p in polls:
        if p["t"] >= next_t and p["rss_mb"] is not None:
            out.append([round(p["t"]), round(p["rss_mb"], 1)])
            next_t = p["t"] + step
    return out


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def check_recordings(tmp: Path) -> dict:
    """Are the WAV and motion recordings readable after the server stopped?"""
    out: dict = {}
    try:
        import soundfile as sf
        info = sf.info(str(tmp / "soak.wav"))
        out["wav_seconds"] = round(info.frames / info.samplerate, 1)
    except Exception as exc:  # noqa: BLE001
        out["wav_error"] = repr(exc)
    try:
        from d2m.recording import parse_recording
        with open(tmp / "soak.jsonl") as f:
            rec = parse_recording(f)
        frames = [i for i in rec.items if hasattr(i, "joints")]
        out["motion_lines"] = len(rec.items)
        out["motion_last_t"] = round(frames[-1].t, 1) if frames else None
        out["motion_errors"] = len(rec.errors)
        if rec.errors:
            out["motion_first_error"] = rec.errors[0][1][:160]
    except Exception as exc:  # noqa: BLE001
        out["motion_error"] = repr(exc)
    return out


def write_json(path: str | None, result: dict) -> None:
    if not path:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=300.0, help="how long to run the load (default 300)")
    ap.add_argument("--warmup", type=float, default=None,
                    help=f"seconds before the memory baseline (default {WARMUP_S:g}, a quarter of short runs)")
    ap.add_argument("--clients", type=int, default=8, help="browsers (WebSocket audio clients) coming and going")
    ap.add_argument("--junk-rate", type=float, default=500.0, help="junk OSC packets per second")
    ap.add_argument("--poll", type=float, default=5.0, help="seconds between status polls (default 5)")
    ap.add_argument("--video", default=None, help="clip to loop through MediaPipe (default: see above)")
    ap.add_argument("--no-video", action="store_true", help="no video source")
    ap.add_argument("--no-mqtt", action="store_true", help="no MQTT broker")
    ap.add_argument("--out", default=None, help="also write the JSON here (rewritten while it runs)")
    ap.add_argument("--partial-every", type=float, default=60.0,
                    help="seconds between partial JSON writes to --out (default 60)")
    ap.add_argument("--keep", default=None, metavar="DIR", help="keep the recordings in DIR")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else min(WARMUP_S, args.seconds / 4)
    if args.seconds < warmup + 4 * args.poll:
        ap.error(f"--seconds must be at least the warm-up plus four polls ({warmup + 4 * args.poll:g})")
    video = pick_video(args)
    if video[0] is None:
        print(f"soak: video source {video[1]}", file=sys.stderr)
    mqtt_why = "real mosquitto, restarted at half time"
    if args.no_mqtt:
        mqtt_why = "left out (--no-mqtt)"
    elif MOSQUITTO is None:
        mqtt_why = "left out: mosquitto is not installed (apt-get install mosquitto)"
    else:
        try:
            import aiomqtt  # noqa: F401
        except ImportError:
            mqtt_why = "left out: aiomqtt is not installed (pip install -e '.[mqtt]')"
    if not mqtt_why.startswith("real"):
        print(f"soak: MQTT {mqtt_why}", file=sys.stderr)

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="d2m-soak-"))
    tmp.mkdir(parents=True, exist_ok=True)
    broker = None
    if mqtt_why.startswith("real"):
        broker = Broker(tmp, free_port(socket.SOCK_STREAM))
        broker.start()
    proc = None
    try:
        proc, osc_port, ws_port = start_server(args, tmp, video[0], broker.port if broker else None)
        load = Load(args, osc_port, ws_port, proc.pid, broker)
        extra = {"mqtt_why": mqtt_why}
        load.on_partial = lambda: write_json(args.out, summarise(load, args, warmup, video, extra, False))
        asyncio.run(load.run())
        proc.terminate()           # SIGTERM: the server closes cleanly
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        extra["server_exit_code"] = proc.returncode
        extra["recordings_after_stop"] = check_recordings(tmp)
        if proc.returncode not in (0, -15):
            extra["server_log_tail"] = LOG_TAIL[-20:]
        result = summarise(load, args, warmup, video, extra, True)
        result["command"] = "python benchmarks/soak.py " + " ".join(argv if argv is not None else sys.argv[1:])
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if broker is not None:
            broker.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
