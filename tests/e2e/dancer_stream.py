"""Stream a synthetic dancer to a running ``d2m serve`` over OSC, and score the music."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from pythonosc.udp_client import SimpleUDPClient

from d2m.dancer import SyntheticDancer
from tests.ports import free_tcp_port, free_udp_port




def start_server(tmp: Path, *extra: str, duration: float = 60.0) -> tuple[subprocess.Popen, int, Path, Path]:
    port = free_udp_port()
    wav, motion = tmp / "live.wav", tmp / "motion.jsonl"
    cmd = [sys.executable, "-m", "d2m_server.cli", "serve", "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{port}", "--osc-out", f"127.0.0.1:{free_udp_port()}",
           "--ws", f"127.0.0.1:{free_tcp_port()}", "--record", str(wav),
           "--record-motion", str(motion), "--duration", str(duration), *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        if "d2m is live" in line:
            break
        if time.monotonic() > deadline:
            break
    else:
        raise RuntimeError("server exited before going live")
    return proc, port, wav, motion


def stream(dancer: SyntheticDancer, port: int, seconds: float, fps: float = 60.0) -> float:
    """Send ``seconds`` of the dancer in real time as /d2m/pose; returns the monotonic start time."""
    client = SimpleUDPClient("127.0.0.1", port)
    t0 = time.monotonic()
    n = int(seconds * fps)
    for i in range(n):
        target = t0 + i / fps
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f = dancer.frame(i / fps)
        client.send_message("/d2m/pose", [0, "coco17", *[float(v) for v in f.joints.reshape(-1)]])
    return t0


def session_offset(motion_path: Path, fps: float = 60.0) -> float:
    """Session time minus dancer time, from the server's own stamps of the frames we sent."""
    ts = [json.loads(line)["t"] for line in motion_path.read_text().splitlines()
          if line.strip() and '"joints"' in line]
    ts = np.array(ts)
    return float(np.median(ts - np.arange(len(ts)) / fps))


def music_beats(wav: Path) -> tuple[np.ndarray, float]:
    """Beat times of the recorded music, as a listener's beat tracker hears them.

    librosa's beat tracker with a time-varying tempo (its default assumes one
    tempo for the whole file, which wanders on a ramp), then each beat moved
    onto the onset it belongs to (d2m.evaluation's refinement: librosa's beats
    otherwise sit ~25 ms after the attack).
    """
    import librosa

    from d2m.evaluation.audio import refine_beats

    y, sr = librosa.load(str(wav), sr=22050, mono=True)
    hop = 256
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    local_bpm = librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=hop, aggregate=None,
                                      ac_size=4.0, max_tempo=200.0)
    tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop,
                                           bpm=local_bpm, units="frames", trim=False)
    beats = refine_beats(y, sr, librosa.frames_to_time(frames, sr=sr, hop_length=hop))
    return beats, float(np.median(np.atleast_1d(tempo)))


def offsets_to_grid(beats: np.ndarray, grid: np.ndarray) -> np.ndarray:
    idx = np.clip(np.searchsorted(grid, beats), 1, len(grid) - 1)
    left, right = grid[idx - 1], grid[idx]
    return np.where(np.abs(beats - left) < np.abs(beats - right), beats - left, beats - right)
