"""The ``pose`` event: the lead dancer's skeleton for the page, at most 15 a second."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import numpy as np
import pytest
from websockets.asyncio.client import connect

from d2m.dancer import SyntheticDancer
from d2m_server.pose_feed import POSE_EVENT_HZ, PoseFeed
from tests.ports import free_port


def test_the_lead_persons_frames_are_thinned_to_the_event_rate():
    lead = SyntheticDancer(tempo=120, seed=1, person=0)
    other = SyntheticDancer(tempo=100, seed=2, person=1)
    feed = PoseFeed()
    sent = []
    for i in range(600):                          # 10 s at 60 frames a second, two people
        t = i / 60 + np.random.default_rng(i).normal(0, 0.002)     # arrival jitter
        for frame in (lead.frame(t), other.frame(t)):
            msg = feed.message(frame, lead=0)
            if msg is not None:
                sent.append(msg)
    assert {m["person"] for m in sent} == {0}
    assert 10 * POSE_EVENT_HZ - 2 <= len(sent) <= 10 * POSE_EVENT_HZ + 1
    gaps = np.diff([m["t"] for m in sent])
    assert gaps.min() >= 1 / POSE_EVENT_HZ - 1 / 60 - 0.01      # never two frames in a row
    m = sent[-1]
    assert m["type"] == "pose" and m["layout"] == "coco17" and len(m["joints"]) == 17
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and 0 < c <= 1 for x, y, c in m["joints"])
    json.dumps(m, allow_nan=False)                # plain JSON, as the hub sends it


def test_missing_joints_are_null_and_nobody_followed_sends_nothing():
    frame = SyntheticDancer(tempo=120, seed=3, missing=0.5, person=2).frame(1.0)
    assert PoseFeed().message(frame, lead=None) is None
    msg = PoseFeed().message(frame, lead=2)
    missing = int((frame.joints[:, 3] < 0.1).sum())
    assert missing > 0 and sum(j is None for j in msg["joints"]) == missing
    with pytest.raises(ValueError):
        PoseFeed(rate_hz=0)


def test_a_websocket_client_of_the_demo_gets_pose_events():
    """The real server: `d2m demo` streams its dancer's skeleton to a WebSocket client."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "d2m_server.cli", "demo", "--audio-out", "none",
                             "--no-osc", "--ws", f"127.0.0.1:{port}", "--duration", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "d2m is live" in line:
                break
        else:
            pytest.fail("the demo did not go live")

        async def listen(seconds: float) -> list[dict]:
            poses = []
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if msg["type"] == "pose":
                        poses.append(msg)
            return poses

        poses = asyncio.run(listen(3.0))
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert 3 * POSE_EVENT_HZ * 0.7 <= len(poses) <= 3 * POSE_EVENT_HZ + 2, len(poses)
    assert all(p["layout"] == "coco17" and len(p["joints"]) == 17 for p in poses)
    assert np.all(np.diff([p["t"] for p in poses]) > 0)
