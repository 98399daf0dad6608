"""A crash must not lose the show: ``kill -9`` a real ``d2m serve`` mid-run, read what it recorded, restart it.

A real server subprocess, a synthetic dancer over real OSC (UDP loopback), real
recordings on disk. After SIGKILL (no clean-up of any kind can run) the WAV,
the motion JSONL and the MIDI file are readable up to the last flush (at most
:data:`d2m_server.recorder.FLUSH_INTERVAL_S` before the kill). The same command
started again comes back (goes live) quickly, records to new files
(``show-run2.*``) and leaves the crashed run's recordings as they were. How
quickly it comes back is measured by ``benchmarks/crash_restart.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from d2m.dancer import SyntheticDancer, TempoCurve
from d2m.recording import parse_recording
from d2m_server.osc_codec import decode_packet
from d2m_server.recorder import FLUSH_INTERVAL_S
from tests.hardening.osc_fuzz import frame_message, message
from tests.ports import free_tcp_port, free_udp_port

REPO = Path(__file__).resolve().parents[2]
#: A start (imports, the numba warm-up) that takes longer than this is a hang, not slowness.
#: How fast a restart is, is measured by benchmarks/crash_restart.py, not asserted here.
START_TIMEOUT_S = 120.0
#: Seconds of dancing before the kill.
DANCE_S = 8.0
#: Recorded data may end this much before the kill (flush interval plus one audio block and slack).
LOSS_LIMIT_S = FLUSH_INTERVAL_S + 0.5


class Server:
    def __init__(self, cmd: list[str]):
        self.cmd = cmd
        self.lines: list[str] = []
        self.live = threading.Event()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.live_after: float | None = None
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)
            if "d2m is live" in line and not self.live.is_set():
                self.live_after = time.monotonic() - self.started
                self.live.set()
        self.live.set()

    def wait_live(self, timeout: float) -> float:
        self.live.wait(timeout)
        assert self.live_after is not None, "server did not go live:\n" + "".join(self.lines[-30:])
        return self.live_after

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def status(sock: socket.socket, port: int) -> dict:
    """The server's status over OSC (``/d2m/status``), from the socket that asked."""
    sock.sendto(message("/d2m/status", "", b""), ("127.0.0.1", port))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        data, _ = sock.recvfrom(65536)
        for msg in decode_packet(data):
            if msg.address == "/d2m/status":
                return json.loads(msg.args[0])
    raise AssertionError("no status reply")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_kill_9_keeps_the_recordings_and_a_restart_comes_back(tmp_path):
    try:
        import mido
    except ImportError:
        mido = None
        print("MIDI part skipped: mido is not installed (pip install -e '.[midi]')")
    osc_port = free_udp_port()
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{osc_port}", "--osc-out", f"127.0.0.1:{free_udp_port()}",
           "--ws", f"127.0.0.1:{free_tcp_port()}", "--no-web", "--genre", "house",
           "--record", str(tmp_path / "show.wav"), "--record-motion", str(tmp_path / "show.jsonl")]
    if mido is not None:
        cmd += ["--record-midi", str(tmp_path / "show.mid")]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    first = Server(cmd)
    second = None
    try:
        first.wait_live(START_TIMEOUT_S)
        dancer = SyntheticDancer(tempo=TempoCurve.constant(120.0), seed=3)
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < DANCE_S:
            k += 1
            sock.sendto(frame_message(dancer.frame(k / 60.0)), ("127.0.0.1", osc_port))
            if k == 60:
                sock.sendto(message("/d2m/volume", "f", struct.pack(">f", 0.8)), ("127.0.0.1", osc_port))
            time.sleep(max(0.0, t0 + k / 60.0 - time.monotonic()))
        st = status(sock, osc_port)
        t_kill = st["time"]
        first.proc.kill()                   # SIGKILL: no flush, no finaliser, no atexit
        first.proc.wait(10)
        assert first.proc.returncode == -9

        # -- what the crashed run left on disk ------------------------------------------
        info = sf.info(str(tmp_path / "show.wav"))
        assert info.samplerate == 48000 and info.channels == 2
        wav_s = info.frames / info.samplerate
        assert t_kill - LOSS_LIMIT_S <= wav_s <= t_kill + 0.5, (wav_s, t_kill)
        audio, _ = sf.read(str(tmp_path / "show.wav"), dtype="float32")
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01, "music was recorded"

        with open(tmp_path / "show.jsonl", encoding="utf-8") as f:
            rec = parse_recording(f)
        assert rec.errors == [], rec.errors[:3]          # whole lines only, even after a kill
        frames = rec.frames
        assert len(frames) >= 30 and frames[-1].t >= t_kill - LOSS_LIMIT_S, (frames[-1].t, t_kill)
        assert rec.controls, "the volume control was recorded"

        if mido is not None:
            mf = mido.MidiFile(str(tmp_path / "show.mid"))   # a complete file, rewritten atomically
            assert mf.tracks and mf.tracks[0].name == "d2m tempo map"
        kept = {name: digest(tmp_path / name) for name in ("show.wav", "show.jsonl")}

        # -- the same command again ------------------------------------------------------
        second = Server(cmd)
        second.wait_live(START_TIMEOUT_S)              # the ports are free again at once
        st = status(sock, osc_port)                       # same OSC port, answering
        assert st["recording"]["path"] == str(tmp_path / "show-run2.wav")
        for k in range(30):
            sock.sendto(frame_message(dancer.frame(DANCE_S + k / 60.0)), ("127.0.0.1", osc_port))
            time.sleep(1 / 60)
        second.stop()
        assert second.proc.returncode == 0, "".join(second.lines[-20:])
        assert {name: digest(tmp_path / name) for name in kept} == kept, "the crashed run's files are kept"
        assert sf.info(str(tmp_path / "show-run2.wav")).frames > 0
        with open(tmp_path / "show-run2.jsonl", encoding="utf-8") as f:
            assert parse_recording(f).frames
        if mido is not None:
            assert (tmp_path / "show-run2.mid").exists()
    finally:
        sock.close()
        first.stop()
        if second is not None:
            second.stop()
