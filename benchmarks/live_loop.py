"""The live loop's cost and lock-in, and the synth's render speed (issue 2); prints JSON.

1. **Synth speed** (``synth``): the built-in :class:`~d2m.synth.SynthGenerator`
   renders the plans the conductor makes for a held-out dancer, once per genre,
   in this process pinned to one core with one BLAS/OpenMP thread. Reported in
   × real time: audio seconds per second of the rendering thread's CPU time
   (median of ``--repeats`` runs), overall, per genre and for music bars
   alone; the wall-clock figure too (lower when other processes share the
   core). Target: >= 100×.
2. **Live loop** (``live``): the real server runs in a subprocess
   (``d2m serve --audio-out none``, the paced clock standing in for a sound
   card) and the held-out dancer :data:`heldout.LIVE` is streamed to it over
   OSC at 60 Hz (``/d2m/pose``, COCO-17) for ``--seconds``. The server
   process's CPU time (``utime + stime`` of all its threads, from
   ``/proc/PID/stat``) over the streaming window, divided by the window's wall
   time, is its CPU share in % of one core. Target: < 15 %. One WebSocket
   client is connected for events (no audio subscription): the beat events give
   the music's beat times on the session clock, which is related to this
   process's clock by a status round trip; the dancer's beats are known
   exactly, so lock-in is measured as in ``alignment.py`` (both ways, 50 ms).

Usage: python benchmarks/live_loop.py [--quick] [--seconds S] [--no-live] [--no-synth] [--out FILE]
"""

from __future__ import annotations

import os

#: Environment of the server subprocess: this process's environment before we pin threads.
SERVER_ENV = dict(os.environ)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"          # the synth measurement runs on one core, one thread

import argparse  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import heldout  # noqa: E402

#: Motion rate streamed to the server (Hz).
STREAM_FPS = 60.0
#: Default streaming window (s) and the --quick one.
STREAM_S, QUICK_STREAM_S = 30.0, 12.0
#: Idle window measured before streaming (s): the server's cost with no input.
IDLE_S, QUICK_IDLE_S = 5.0, 2.0
#: Seconds of music rendered per genre for the synth speed, and repeats (median taken).
SYNTH_S, QUICK_SYNTH_S = 20.0, 8.0
REPEATS, QUICK_REPEATS = 3, 1
#: Targets (issue 2).
TARGET_SYNTH_X = 100.0
TARGET_CPU_PCT = 15.0
#: Longest wait for the server to go live (s): the first start compiles librosa.
START_TIMEOUT_S = 120.0
#: Status round trips used to relate the session clock to ours (best one kept).
SYNC_ROUND_TRIPS = 5


# -- synth speed ------------------------------------------------------------------------

def synth_speed(seconds: float = SYNTH_S, repeats: int = REPEATS) -> dict:
    """Render speed of the synth on one core, × real time, per genre and overall."""
    from d2m.conductor import Conductor, ConductorConfig
    from d2m.events import SegmentPlanned
    from d2m.generator import SegmentStream
    from d2m.genres import GENRES
    from d2m.plan import MUSIC
    from d2m.synth import SynthGenerator

    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        pinned = True
    except (AttributeError, OSError):
        pinned = False
    case = heldout.LIVE
    frames = case.frames(seconds + 1.0)
    per_genre, total_audio, total_cpu, total_wall, total_music, total_music_cpu = {}, 0.0, 0.0, 0.0, 0.0, 0.0
    for genre in GENRES:
        cond = Conductor(ConductorConfig(genre=genre, seed=case.seed))
        plans = [e.plan for e in cond.advance(0.0) if isinstance(e, SegmentPlanned)]
        for f in frames:
            plans += [e.plan for e in cond.push_frame(f) if isinstance(e, SegmentPlanned)]
        plans = [p for p in plans if p.end_sample <= seconds * p.sample_rate]
        audio_s = sum(p.n_samples for p in plans) / plans[0].sample_rate
        music_s = sum(p.n_samples for p in plans if p.kind == MUSIC) / plans[0].sample_rate
        walls, cpus, music_cpus = [], [], []
        for _ in range(repeats):
            stream = SegmentStream(SynthGenerator(sample_rate=plans[0].sample_rate, seed=case.seed))
            t0, c0 = time.perf_counter(), time.thread_time()
            in_music = 0.0
            for p in plans:
                ca = time.thread_time()
                stream.render(p)
                if p.kind == MUSIC:
                    in_music += time.thread_time() - ca
            walls.append(time.perf_counter() - t0)
            cpus.append(time.thread_time() - c0)
            music_cpus.append(in_music)
        cpu = float(np.median(cpus))
        per_genre[genre] = round(audio_s / cpu, 1)
        total_audio += audio_s
        total_cpu += cpu
        total_wall += float(np.median(walls))
        total_music += music_s
        total_music_cpu += float(np.median(music_cpus))
    x = total_audio / total_cpu
    return {"x_realtime": round(x, 1), "x_realtime_min_genre": min(per_genre.values()),
            "x_realtime_music_only": round(total_music / total_music_cpu, 1),
            "x_realtime_wall": round(total_audio / total_wall, 1),
            "per_genre": per_genre, "audio_s": round(total_audio, 1), "music_s": round(total_music, 1),
            "clock": "thread CPU time (x_realtime_wall: wall clock, lower when the machine is busy)",
            "repeats": repeats,
            "one_core": pinned, "threads": 1, "target_x": TARGET_SYNTH_X, "meets_target": x >= TARGET_SYNTH_X}


# -- the live server ------------------------------------------------------------------------

def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``d2m serve --audio-out none`` in a subprocess on free loopback ports."""

    def __init__(self, *extra: str, duration: float = 600.0):
        self.osc_port = free_port()
        self.ws_port = free_port(socket.SOCK_STREAM)
        cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
               "--osc-in", f"127.0.0.1:{self.osc_port}", "--osc-out", f"127.0.0.1:{free_port()}",
               "--ws", f"127.0.0.1:{self.ws_port}", "--duration", str(duration), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**SERVER_ENV, "PYTHONUNBUFFERED": "1"})
        self.log: list[str] = []
        ready = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line.rstrip())
                if "d2m is live" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(START_TIMEOUT_S) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("the server did not go live:\n" + "\n".join(self.log[-20:]))
        self.clk_tck = os.sysconf("SC_CLK_TCK")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all threads) so far."""
        with open(f"/proc/{self.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.clk_tck    # utime, stime

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


class WsListener:
    """A WebSocket event client on a thread: collects messages with our receive time."""

    def __init__(self, port: int):
        from websockets.sync.client import connect

        self.ws = connect(f"ws://127.0.0.1:{port}", max_size=None)
        self.messages: list[tuple[float, dict]] = []
        self.replies: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self.ws:
                t = time.monotonic()
                if isinstance(raw, bytes):
                    continue
                msg = json.loads(raw)
                self.messages.append((t, msg))
                if "id" in msg:
                    self.replies.put((t, msg))
        except Exception:
            pass

    def request(self, msg: dict, timeout: float = 5.0) -> tuple[float, float, dict]:
        """Send a request with an id; returns (send time, reply time, reply)."""
        mid = f"r{time.monotonic_ns()}"
        t_send = time.monotonic()
        self.ws.send(json.dumps({**msg, "id": mid}))
        deadline = t_send + timeout
        while True:
            t, reply = self.replies.get(timeout=max(0.01, deadline - time.monotonic()))
            if reply.get("id") == mid:
                return t_send, t, reply

    def session_offset(self) -> tuple[float, float]:
        """``session time - our monotonic time`` from the best status round trip, and its RTT (s)."""
        best = None
        for _ in range(SYNC_ROUND_TRIPS):
            t0, t1, reply = self.request({"type": "status"})
            off = reply["time"] - (t0 + t1) / 2
            if best is None or t1 - t0 < best[1]:
                best = (off, t1 - t0)
            time.sleep(0.05)
        return best

    def of_type(self, kind: str) -> list[tuple[float, dict]]:
        return [(t, m) for t, m in list(self.messages) if m.get("type") == kind]

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:
            pass


def pose_args(frame) -> list:
    return [int(frame.person), frame.layout.value, *[float(v) for v in np.asarray(frame.joints).reshape(-1)]]


def stream_dancer(case: heldout.HeldOutCase, port: int, seconds: float, *, on_second=None,
                  fps: float = STREAM_FPS) -> tuple[float, int]:
    """Send the case's frames in real time; returns (our monotonic time of dancer t=0, frames sent).

    Frames are computed ahead so the sender's own work does not disturb the pacing.
    """
    from pythonosc.udp_client import SimpleUDPClient

    client = SimpleUDPClient("127.0.0.1", port)
    frames = case.make_dancer().frames(seconds, fps)
    args = [pose_args(f) for f in frames]
    t0 = time.monotonic()
    next_s = 1
    for i, (f, a) in enumerate(zip(frames, args)):
        delay = t0 + f.t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        client.send_message("/d2m/pose", a)
        if on_second is not None and f.t >= next_s:
            on_second(next_s)
            next_s += 1
    return t0, len(frames)


def live_loop(seconds: float = STREAM_S, idle_s: float = IDLE_S) -> dict:
    """Run the server, measure idle and streaming CPU share and the lock-in."""
    from alignment import LOCK_TOLERANCE_S, count_before, lock_both_ways

    case = heldout.LIVE
    t_launch = time.monotonic()
    server = LiveServer()
    startup_s = time.monotonic() - t_launch
    ws = None
    try:
        ws = WsListener(server.ws_port)
        offset, rtt = ws.session_offset()
        time.sleep(1.0)
        c0, w0 = server.cpu_seconds(), time.monotonic()
        time.sleep(idle_s)
        c1, w1 = server.cpu_seconds(), time.monotonic()
        samples: list[tuple[float, float]] = [(w1, c1)]
        t0, sent = stream_dancer(case, server.osc_port, seconds,
                                 on_second=lambda s: samples.append((time.monotonic(), server.cpu_seconds())))
        c2, w2 = server.cpu_seconds(), time.monotonic()
        samples.append((w2, c2))
        time.sleep(1.0)
        offset2, rtt2 = ws.session_offset()
        t_status, _, status = ws.request({"type": "status"})
    finally:
        if ws is not None:
            ws.close()
        rc = server.stop()
    shares = [100.0 * (cb - ca) / (wb - wa) for (wa, ca), (wb, cb) in zip(samples, samples[1:]) if wb > wa]
    stream_pct = 100.0 * (c2 - c1) / (w2 - w1)
    # beats: session time -> dancer time
    dancer_zero = t0 + (offset + offset2) / 2           # session time of dancer t = 0
    beats = np.array(sorted(m["time"] for _, m in ws.of_type("beat"))) - dancer_zero
    dance = case.make_dancer().beat_times(0.0, seconds)
    music = beats[(beats >= 0) & (beats <= dance[-1] + LOCK_TOLERANCE_S)]
    lock = lock_both_ways(music, dance, 0.0, dance[-1] + LOCK_TOLERANCE_S) if music.size else {"locked": False}
    out_lock = {"locked": lock["locked"], "music_start_s": round(float(music[0]), 3) if music.size else None}
    if music.size:
        out_lock["music_start_beats"] = count_before(dance, music[0])
    if lock["locked"]:
        t = lock["time_s"]
        st = lock["offsets_after"]
        out_lock.update({"time_s": round(t, 3), "beats_from_dance_start": count_before(dance, t),
                         "beats_from_music_start": count_before(dance, t) - count_before(dance, music[0]),
                         "offset_median_abs_ms": round(st.median_abs_ms, 1),
                         "offset_p90_abs_ms": round(st.p90_abs_ms, 1)})
    else:
        out_lock["reason"] = lock.get("reason", "no music beats")
    tel = status.get("telemetry", {})
    tempo = status.get("tempo", {})
    return {
        "cpu_pct_one_core": round(stream_pct, 2),
        "cpu_pct_windows_1s": {"median": round(float(np.median(shares)), 2),
                               "p90": round(float(np.percentile(shares, 90)), 2),
                               "max": round(float(np.max(shares)), 2)} if shares else None,
        "cpu_pct_idle": round(100.0 * (c1 - c0) / (w1 - w0), 2),
        "target_cpu_pct": TARGET_CPU_PCT, "meets_target": stream_pct < TARGET_CPU_PCT,
        "stream": {"seconds": seconds, "fps": STREAM_FPS, "frames_sent": sent,
                   "frames_accepted": status.get("motion", {}).get("frames"), "layout": "coco17",
                   "dancer": case.name, "dancer_bpm": case.bpm_at(0.0)},
        "lock_in": out_lock,
        "tempo_end": {"bpm": tempo.get("bpm"), "locked": tempo.get("locked")},
        "telemetry": {k: tel.get(k) for k in ("underruns", "loop_lag_ms_p99", "late_ms", "fallback")},
        "clock_sync_rtt_ms": round(1000 * min(rtt, rtt2), 2),
        "clock_drift_ms": round(1000 * (offset2 - offset), 2),
        "server_startup_s": round(startup_s, 1), "server_exit_code": rc,
        "setup": "d2m serve --audio-out none (paced clock), synth backend, 1 WebSocket event client, "
                 "OSC in + 1 OSC out target",
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter windows, one repeat")
    ap.add_argument("--seconds", type=float, default=None, help="streaming window (s)")
    ap.add_argument("--no-live", action="store_true", help="skip the live server")
    ap.add_argument("--no-synth", action="store_true", help="skip the synth speed")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    res: dict = {"benchmark": "live_loop", "version": 1, "quick": a.quick, "cpus": os.cpu_count()}
    errors = {}
    if not a.no_live:
        try:
            res["live"] = live_loop(a.seconds or (QUICK_STREAM_S if a.quick else STREAM_S),
                                    QUICK_IDLE_S if a.quick else IDLE_S)
        except Exception as exc:
            errors["live"] = f"{type(exc).__name__}: {exc}"
    if not a.no_synth:
        res["synth"] = synth_speed(QUICK_SYNTH_S if a.quick else SYNTH_S, QUICK_REPEATS if a.quick else REPEATS)
    res["errors"] = errors
    res["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
