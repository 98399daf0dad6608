"""``d2m send`` (replay a recording over OSC) and ``d2m listen`` (print d2m's OSC events).

Datagrams ``d2m send`` puts on the wire are decoded with d2m's own decoder and routed with
the server's router, so every layout is checked against what the server would make of it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from pythonosc.udp_client import SimpleUDPClient

from d2m.control import Control
from d2m.dancer import SyntheticDancer
from d2m.recording import encode_control, encode_header
from d2m.skeleton import Layout
from d2m_server.commands.send import LAYOUTS, encode_frames, schedule
from d2m_server.osc_codec import decode_packet
from d2m_server.osc_route import route

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
FPS = 60.0


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "d2m_server.cli", *args]


def dancer_frames(seconds: float, layout=Layout.COCO17, person: int = 0, missing: float = 0.1):
    dancer = SyntheticDancer(tempo=120.0, seed=1, layout=layout, person=person, missing=missing)
    return dancer.frames(seconds, fps=FPS)


def write_recording(path, frames, controls=()):
    lines = [encode_header(source="test")]
    items = [(f.t, f.to_json()) for f in frames] + [(t, encode_control(t, c)) for t, c in controls]
    lines += [text for _, text in sorted(items, key=lambda x: x[0])]
    path.write_text("\n".join(lines) + "\n")


def routed_frames(datagrams):
    out = []
    for data in datagrams:
        for message in decode_packet(data):
            r = route(message, 0.0)
            assert r.error is None, r.detail
            out.extend(r.frames)
    return out


def same_pose(a, b, atol=1e-5):
    """Same joints present, same coordinates (float32 on the wire)."""
    ja, jb = a.to_coco17().joints, b.to_coco17().joints
    va, vb = a.to_coco17().valid, b.to_coco17().valid
    assert np.array_equal(va, vb)
    assert np.allclose(ja[va, :2], jb[vb, :2], atol=atol)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_reaches_the_router_as_the_same_pose(layout):
    frames = [dancer_frames(0.1, person=p)[3] for p in (0, 1)]   # two people at one instant
    datagrams = encode_frames(frames, layout)
    assert len(datagrams) == (2 if layout == "d2m" else 1)
    got = routed_frames(datagrams)
    assert [f.person for f in got] == [0, 1]
    for sent, received in zip(frames, got):
        same_pose(sent, received, atol=1e-4 if layout == "poseosc" else 1e-6)
    if layout == "mediapipe":
        assert got[0].layout is Layout.MEDIAPIPE33
    if layout == "poseosc":
        assert got[0].layout is Layout.COCO17


def test_mediapipe_frames_keep_all_33_landmarks():
    (frame,) = dancer_frames(1 / FPS, layout=Layout.MEDIAPIPE33, missing=0.0)
    (got,) = routed_frames(encode_frames([frame], "mediapipe"))
    assert got.layout is Layout.MEDIAPIPE33
    assert np.allclose(got.joints[:, :2], frame.joints[:, :2], atol=1e-6)


def test_schedule_groups_by_time_and_encodes_controls(tmp_path):
    frames = dancer_frames(0.5)
    items = list(frames)
    from d2m.recording import ControlEntry
    items.append(ControlEntry(0.25, Control(genre="house", tempo_lock=True, bpm=124.0)))
    items.append(ControlEntry(0.3051, Control(playing=False, volume=0.5)))
    plan = schedule(items, "d2m")
    # the control at 0.25 s shares a frame's time and goes with it; the one at 0.3051 s does not
    assert len(plan) == len(frames) + 1
    assert [(n_frames, n_controls) for t, _, n_frames, n_controls in plan if n_controls] == [(1, 1), (0, 1)]
    assert plan[0][0] == 0.0 and plan[-1][0] == pytest.approx(frames[-1].t - frames[0].t)
    addresses = [m.address for _, packets, _, _ in plan for p in packets for m in decode_packet(p)]
    assert addresses.count("/d2m/pose") == len(frames)
    controls = [route(m, 0.0).control for _, packets, _, n in plan if n
                for p in packets for m in decode_packet(p) if m.address != "/d2m/pose"]
    assert Control(genre="house") in controls and Control(tempo_lock=True, bpm=124.0) in controls
    assert Control(playing=False) in controls and Control(volume=0.5) in controls
    assert len(schedule(items, "d2m", controls=False)) == len(frames)


def udp_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    return s


def receive_until(sock, proc, timeout=30.0):
    """(arrival time, datagram) until ``proc`` exits and the socket is quiet."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65535)
            got.append((time.monotonic(), data))
        except socket.timeout:
            if proc.poll() is not None:
                break
    return got


def test_send_replays_a_recording_in_real_time(tmp_path):
    frames = dancer_frames(1.5)
    rec = tmp_path / "take.jsonl"
    write_recording(rec, frames, controls=[(0.5, Control(genre="house"))])
    sock = udp_socket()
    try:
        port = sock.getsockname()[1]
        proc = subprocess.Popen(cli("send", str(rec), "--to", f"127.0.0.1:{port}", "--layout", "mediapipe"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        got = receive_until(sock, proc)
        out, err = proc.communicate(timeout=10)
    finally:
        sock.close()
    assert proc.returncode == 0, err
    messages = [(t, m) for t, data in got for m in decode_packet(data)]
    poses = [(t, m) for t, m in messages if m.address == "/mediapipe/pose"]
    assert len(poses) == len(frames)
    received = [f for _, m in poses for f in route(m, 0.0).frames]
    for sent, back in zip(frames, received):
        same_pose(sent, back)
    genre = [(t, route(m, 0.0).control) for t, m in messages if m.address == "/d2m/genre"]
    assert [c for _, c in genre] == [Control(genre="house")]
    # real-time pace: the last frame goes out ~1.5 s after the first, the control in between
    span = poses[-1][0] - poses[0][0]
    assert span >= 0.9 * (frames[-1].t - frames[0].t)
    assert poses[0][0] + 0.4 <= genre[0][0] <= poses[-1][0]
    assert f"sent {len(frames)} frames and 1 controls" in out


def test_send_loops_until_the_duration(tmp_path):
    frames = dancer_frames(0.5)
    rec = tmp_path / "short.jsonl"
    write_recording(rec, frames)
    sock = udp_socket()
    try:
        port = sock.getsockname()[1]
        proc = subprocess.Popen(cli("send", str(rec), "--to", f"127.0.0.1:{port}", "--layout", "poseosc",
                                    "--loop", "--duration", "1.2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        got = receive_until(sock, proc)
        out, err = proc.communicate(timeout=10)
    finally:
        sock.close()
    assert proc.returncode == 0, err
    arrs = [m for _, data in got for m in decode_packet(data)]
    assert all(m.address == "/poses/arr" for m in arrs)
    # 1.2 s of a 0.5 s recording: two full passes and part of a third
    assert 2 * len(frames) < len(arrs) <= 3 * len(frames)
    assert "2 full pass(es)" in out


def test_send_explains_a_bad_recording(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "hello": 1}\nnot json\n')
    r = subprocess.run(cli("send", str(bad), "--to", "127.0.0.1:9"), capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.returncode == 2 and "no motion frame" in r.stderr and "JSON lines" in r.stderr
    r = subprocess.run(cli("send", str(tmp_path / "missing.jsonl")), capture_output=True, text=True, env=ENV,
                       timeout=60)
    assert r.returncode == 2 and "cannot read" in r.stderr


def _start_listen(*extra: str):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(cli("listen", "--port", str(port), *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    line = proc.stderr.readline()               # "listening for ..." once the socket is bound
    assert "listening" in line, line
    return proc, port


def test_listen_prints_decoded_events():
    proc, port = _start_listen("--json", "--count", "4")
    try:
        client = SimpleUDPClient("127.0.0.1", port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(b"garbage!", ("127.0.0.1", port))          # reported, not fatal
        sock.close()
        client.send_message("/d2m/beat/full", [3, 1, 120.5])
        client.send_message("/d2m/genre", "house")
        client.send_message("/d2m/telemetry/underruns", 0.0)
        client.send_message("/d2m/next/kind", "music")
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = [json.loads(x) for x in out.splitlines()]
    assert [(m["address"], m["args"]) for m in lines] == [
        ("/d2m/beat/full", [3, 1, 120.5]), ("/d2m/genre", ["house"]),
        ("/d2m/telemetry/underruns", [0.0]), ("/d2m/next/kind", ["music"])]
    assert all(m["from"].startswith("127.0.0.1:") for m in lines)
    assert "undecodable" in err


def test_listen_filters_and_prints_text():
    proc, port = _start_listen("--filter", "/d2m/beat", "--duration", "2")
    try:
        client = SimpleUDPClient("127.0.0.1", port)
        client.send_message("/d2m/energy", 0.5)
        client.send_message("/d2m/beat", 2)
        client.send_message("/d2m/beat/full", [0, 2, 118.0])
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:] == ["/d2m/beat", "2"]
    assert lines[1].split()[1:] == ["/d2m/beat/full", "0", "2", "118"]


@pytest.mark.e2e
def test_send_to_a_live_server_and_listen_to_its_events(tmp_path):
    """The chain a rig-less user runs: d2m send -> d2m serve -> d2m listen."""
    frames = dancer_frames(3.0, missing=0.0)
    rec, recorded = tmp_path / "take.jsonl", tmp_path / "server-motion.jsonl"
    write_recording(rec, frames)
    listen, listen_port = _start_listen("--json", "--duration", "12")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        osc_in = s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        ws_port = s.getsockname()[1]
    serve = subprocess.Popen(cli("serve", "--audio-out", "none", "--osc-in", f"127.0.0.1:{osc_in}",
                                 "--osc-out", f"127.0.0.1:{listen_port}", "--ws", f"127.0.0.1:{ws_port}",
                                 "--record-motion", str(recorded), "--duration", "6"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        for line in serve.stdout:
            if "d2m is live" in line:
                break
        sent = subprocess.run(cli("send", str(rec), "--to", f"127.0.0.1:{osc_in}", "--layout", "mediapipe"),
                              capture_output=True, text=True, env=ENV, timeout=60)
        assert sent.returncode == 0, sent.stderr
        serve.communicate(timeout=60)
        listen.terminate()
        out, _ = listen.communicate(timeout=20)
    finally:
        for proc in (serve, listen):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    got = [json.loads(line) for line in recorded.read_text().splitlines() if '"joints"' in line]
    assert len(got) == len(frames)                        # every frame reached the server
    assert {g["layout"] for g in got} == {"mediapipe33"}
    ts = np.array([g["t"] for g in got])
    assert np.median(np.diff(ts)) == pytest.approx(1 / FPS, abs=0.004)   # at the recording's pace
    events = {json.loads(line)["address"] for line in out.splitlines()}
    assert {"/d2m/tempo", "/d2m/genre", "/d2m/energy", "/d2m/next/bar", "/d2m/telemetry/underruns"} <= events
