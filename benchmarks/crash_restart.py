"""Crash and restart: ``kill -9`` a real ``d2m serve`` mid-show, restart it, print JSON.

For each of ``--runs`` rounds: a server recording WAV and motion (and MIDI when
mido is installed) is danced at over OSC for ``--dance`` seconds and killed
with SIGKILL; then the same command is started again. Printed: how long the
first start and each restart took to go live (``d2m is live`` in its log;
median and worst), how much of the show the crashed run's files hold
(recorded seconds against the session time at the kill), and whether they
were readable.

    nice -n 10 python benchmarks/crash_restart.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "server"))

from tests.hardening.osc_fuzz import frame_message, message  # noqa: E402

#: Longest wait for a server to go live (s).
LIVE_TIMEOUT_S = 180.0
#: Status requests (10 s apart) before a server counts as not answering.
STATUS_TRIES = 3


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str]) -> tuple[subprocess.Popen, float]:
    """Start ``cmd``; return it and the seconds it took to go live."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    live = threading.Event()
    tail: list[str] = []

    def pump():
        for line in proc.stdout:
            tail.append(line)
            del tail[:-30]
            if "d2m is live" in line:
                live.set()
        live.set()
    threading.Thread(target=pump, daemon=True).start()
    live.wait(LIVE_TIMEOUT_S)
    if proc.poll() is not None or not any("d2m is live" in ln for ln in tail):
        proc.kill()
        raise RuntimeError("server did not go live:\n" + "".join(tail))
    return proc, time.monotonic() - t0


def session_time(sock: socket.socket, port: int) -> float:
    from d2m_server.osc_codec import decode_packet

    for _ in range(STATUS_TRIES):
        sock.sendto(message("/d2m/status", "", b""), ("127.0.0.1", port))
        sock.settimeout(10)
        try:
            while True:
                data, _ = sock.recvfrom(65536)
                for msg in decode_packet(data):
                    if msg.address == "/d2m/status":
                        return float(json.loads(msg.args[0])["time"])
        except TimeoutError:
            continue
    raise RuntimeError("the server does not answer /d2m/status")


def recorded(tmp: Path, stem: str) -> dict:
    import soundfile as sf

    from d2m.recording import parse_recording

    out: dict = {}
    info = sf.info(str(tmp / f"{stem}.wav"))
    out["wav_s"] = info.frames / info.samplerate
    with open(tmp / f"{stem}.jsonl", encoding="utf-8") as f:
        rec = parse_recording(f)
    out["motion_last_t"] = rec.frames[-1].t if rec.frames else None
    out["motion_bad_lines"] = len(rec.errors)
    mid = tmp / f"{stem}.mid"
    if mid.exists():
        import mido
        out["midi_readable"] = bool(mido.MidiFile(str(mid)).tracks)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="kill/restart rounds (default 3)")
    ap.add_argument("--dance", type=float, default=6.0, help="seconds of dancing before each kill")
    args = ap.parse_args(argv)
    from d2m.dancer import SyntheticDancer, TempoCurve

    tmp = Path(tempfile.mkdtemp(prefix="d2m-crash-"))
    osc_port = free_port(socket.SOCK_DGRAM)
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{osc_port}", "--osc-out", f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}",
           "--ws", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}", "--no-web", "--genre", "house",
           "--record", str(tmp / "show.wav"), "--record-motion", str(tmp / "show.jsonl")]
    try:
        import mido  # noqa: F401
        cmd += ["--record-midi", str(tmp / "show.mid")]
    except ImportError:
        pass
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    dancer = SyntheticDancer(tempo=TempoCurve.constant(120.0), seed=3)
    starts, rounds = [], []
    proc = None
    try:
        for r in range(args.runs + 1):
            proc, took = start(cmd)
            starts.append(took)
            if r == args.runs:
                break
            t0, k = time.monotonic(), 0
            while time.monotonic() - t0 < args.dance:
                k += 1
                sock.sendto(frame_message(dancer.frame(k / 60.0)), ("127.0.0.1", osc_port))
                time.sleep(max(0.0, t0 + k / 60.0 - time.monotonic()))
            t_kill = session_time(sock, osc_port)
            proc.kill()
            proc.wait(10)
            got = recorded(tmp, "show" if r == 0 else f"show-run{r + 1}")
            rounds.append({"killed_at_s": round(t_kill, 2), "wav_s": round(got["wav_s"], 2),
                           "wav_lost_s": round(t_kill - got["wav_s"], 2),
                           "motion_lost_s": round(t_kill - (got["motion_last_t"] or 0.0), 2),
                           "motion_bad_lines": got["motion_bad_lines"],
                           **({"midi_readable": got["midi_readable"]} if "midi_readable" in got else {})})
        proc.terminate()
        proc.wait(20)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        sock.close()
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    restarts = starts[1:]
    print(json.dumps({
        "first_start_s": round(starts[0], 2),
        "restart_live_s_median": round(statistics.median(restarts), 2),
        "restart_live_s_max": round(max(restarts), 2),
        "restarts_s": [round(s, 2) for s in restarts],
        "rounds": rounds, "cpus": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 1),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
