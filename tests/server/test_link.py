"""Ableton Link with two real peers (d2m and an aalink peer), each run in its own network namespace.

Link discovers peers by multicast on every network interface, so these runs
happen only inside ``unshare -rn`` namespaces whose only interface is the
loopback (brought up first); never on the machine's real interfaces. Where
user namespaces are not available the tests skip with a message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aalink", reason="Ableton Link needs the GPL link extra: pip install -e '.[link]'")

HELPER = Path(__file__).with_name("link_peers.py")


def _namespaces_work() -> str | None:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip (util-linux, iproute2) are not installed"
    r = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"user network namespaces are not available here ({r.stderr.strip() or r.returncode})"
    return None


@pytest.fixture(scope="module")
def runs():
    why = _namespaces_work()
    if why:
        pytest.skip(f"Link peers run only in an isolated network namespace: {why}")
    procs = {mode: subprocess.Popen(["unshare", "-rn", "sh", "-c",
                                     f"ip link set lo up && exec {sys.executable} {HELPER} {mode}"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for mode in ("lead", "follow")}          # two namespaces: the runs cannot see each other
    out = {}
    for mode, p in procs.items():
        stdout, stderr = p.communicate(timeout=150)
        assert p.returncode == 0, stderr[-2000:]
        out[mode] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_link_peer_gets_d2m_tempo_and_bar_phase(runs):
    r = runs["lead"]
    beats = r["beats"]
    assert len(beats) >= 8, r["d2m_log_tail"]
    assert all(b["peers"] >= 1 for b in beats)
    # tempo: the peer holds the tempo of the bar being played (read 50 ms after each beat)
    tempo_err = [abs(b["peer_tempo"] / b["bpm"] - 1) for b in beats if b["beat"] != 1]
    assert max(tempo_err) < 0.03
    # bar phase (quantum 4): at d2m's beat n of the bar the peer is at phase n - 1. The beat is
    # announced over OSC within a few ms after it plays, so the phase is at most a little past.
    err = np.array([(b["peer_phase"] - (b["beat"] - 1) + 2) % 4 - 2 for b in beats])
    # (bounds for correctness on a busy machine: an unaligned phase would be anywhere in -2..2)
    assert np.median(np.abs(err)) < 0.05 and np.max(np.abs(err)) < 0.25, err


def test_link_follow_locks_d2m_to_the_session_tempo(runs):
    r = runs["follow"]
    beats = r["beats"]
    assert len(beats) >= 8, r["d2m_log_tail"]
    assert all(abs(b["bpm"] - 100.0) < 0.01 for b in beats), [b["bpm"] for b in beats]
    assert "following the Link session's tempo: 100.00 BPM" in r["d2m_log_tail"]
