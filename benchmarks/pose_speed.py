"""Pose speed at 640x480 and capture-to-motion-event latency; prints JSON.

1. Throughput: the test clip (640x480, 30 fps) decoded into memory and fed
   back-to-back, looping, to MediaPipe Pose; frames per second in windows of
   ``--window`` s, median over windows (target: >= 25 sustained).
2. Latency: the same clip played live through :class:`PoseSource` (paced at
   30 fps, newest frame only, frames delivered to a callback on an asyncio
   loop); latency = session time at delivery minus the frame's capture time.
   A real webcam adds its driver/exposure delay (typically 30-60 ms), which a
   file cannot show.

Usage: python benchmarks/pose_speed.py [--complexity 0 1] [--seconds 15] [--live-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from d2m_server.camera import PoseSource
from d2m_server.pose import PoseEstimator, PoseModelMissing
from d2m_server.video import VideoReader

CLIP = Path(__file__).resolve().parents[1] / "tests" / "data" / "dance_clip.mp4"
#: Pose rate the live loop needs (frames per second).
TARGET_FPS = 25.0
#: Size frames are brought to before pose (the common webcam size).
WIDTH, HEIGHT = 640, 480


def load_frames(path: Path) -> list[np.ndarray]:
    import cv2
    frames = []
    for _, _, img in VideoReader(path).frames():
        if img.shape[:2] != (HEIGHT, WIDTH):
            img = cv2.resize(img, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR)
        frames.append(img)
    return frames


def pct(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else float("nan")


def throughput(frames: list[np.ndarray], complexity: int, seconds: float, window: float) -> dict:
    est = PoseEstimator(model_complexity=complexity)
    for img in frames[:5]:  # warm up: graph build, first detections
        est.detect(img)
    detect_ms, windows, found = [], [], 0
    start = win_start = time.perf_counter()
    win_n, i = 0, 0
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        joints = est.detect(frames[i % len(frames)])
        t1 = time.perf_counter()
        detect_ms.append((t1 - t0) * 1000)
        found += joints is not None
        i += 1
        win_n += 1
        if t1 - win_start >= window:
            windows.append(win_n / (t1 - win_start))
            win_start, win_n = t1, 0
    est.close()
    median_fps = statistics.median(windows) if windows else i / (time.perf_counter() - start)
    return {
        "model_complexity": complexity,
        "frames": i,
        "person_found_fraction": round(found / max(i, 1), 3),
        "pose_fps_median": round(median_fps, 1),
        "pose_fps_min_window": round(min(windows), 1) if windows else None,
        "pose_fps_windows": [round(w, 1) for w in windows],
        "detect_ms_median": round(statistics.median(detect_ms), 1),
        "detect_ms_p90": round(pct(detect_ms, 90), 1),
        "meets_target": median_fps >= TARGET_FPS,
    }


async def live_latency(complexity: int, seconds: float) -> dict:
    clock = time.monotonic
    latencies: list[float] = []

    def on_frame(frame) -> None:
        latencies.append((clock() - frame.t) * 1000)

    src = PoseSource.open(f"video:{CLIP}", loop=True, clock=clock, on_frame=on_frame,
                          model_complexity=complexity)
    await src.start()
    await asyncio.sleep(seconds)
    status = src.status()
    await src.stop()
    cap = status["frames_captured"]
    return {
        "model_complexity": complexity,
        "frames_delivered": len(latencies),
        "latency_ms_median": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_p90": round(pct(latencies, 90), 1) if latencies else None,
        "frames_captured": cap,
        "frames_dropped": status["frames_dropped"],
        "dropped_fraction": round(status["frames_dropped"] / max(cap, 1), 3),
        "pose_fps_end": status["pose_fps"],
        "keeping_up_end": status["keeping_up"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--complexity", type=int, nargs="+", default=[0, 1], choices=[0, 1, 2],
                    help="MediaPipe models to measure (0 and 2 only if their files are installed)")
    ap.add_argument("--seconds", type=float, default=15.0, help="throughput run per model (s)")
    ap.add_argument("--window", type=float, default=2.0, help="throughput window (s)")
    ap.add_argument("--live-seconds", type=float, default=10.0, help="live latency run per model (s)")
    args = ap.parse_args(argv)

    frames = load_frames(CLIP)
    load_before = os.getloadavg()
    results, latency = [], []
    for c in args.complexity:
        try:
            results.append(throughput(frames, c, args.seconds, args.window))
        except PoseModelMissing as exc:  # lite/heavy models are not in the mediapipe wheel
            results.append({"model_complexity": c, "error": str(exc)})
            continue
        latency.append(asyncio.run(live_latency(c, args.live_seconds)))
    report = {
        "benchmark": "pose_speed",
        "resolution": f"{WIDTH}x{HEIGHT}",
        "clip": CLIP.name,
        "target_fps": TARGET_FPS,
        "cpus": os.cpu_count(),
        "load_avg_1min": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "throughput": results,
        "live_latency": latency,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
