"""What a long show keeps in memory is bounded, reported, and safe from hostile timestamps.

A real in-process LiveSession with real WebSocket clients: the status carries a
``memory`` section (RSS, fds, threads, tasks, and every queue/cache/history
with its limit); a pose stamped an hour ahead is refused and counted instead
of making the conductor plan an hour of music; the leak probe writes what grew;
a restarted run's recordings never overwrite the last run's.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from d2m.control import Control
from d2m_server import memory
from d2m_server.app import FRAME_AHEAD_LIMIT_S
from d2m_server.recorder import MotionRecorder, next_run_paths

from .support import live_session, recv_reply, ws_client, ws_url

class Held:
    """An object the garbage collector tracks (counted by type in the probe)."""


JOINTS = [[0.5, 0.1 + 0.04 * i, 0.0, 0.9] for i in range(17)]


def test_status_reports_memory_sizes_with_their_limits(run):
    async def main():
        async with live_session() as session:
            async with ws_client(ws_url(session)) as ws:
                await ws.send(json.dumps({"type": "subscribe", "audio": True}))
                await asyncio.sleep(0.3)
                await ws.send(json.dumps({"type": "status", "id": 1}))
                st = await recv_reply(ws, kinds=("status",))
        return st["memory"]

    mem = run(main())
    assert mem["rss_mb"] > 10 and mem["fds"] > 3 and mem["threads"] >= 2 and mem["tasks"] >= 3
    assert 0 < mem["loop_lag_samples"] <= mem["loop_lag_limit"]
    assert 0 <= mem["ring_frames"] <= mem["ring_limit"]
    assert mem["plans_queued"] <= 2 and mem["beats_queued"] <= 16
    ws = mem["websocket"]
    assert ws["clients"] == 1 and ws["events_queued_max"] <= ws["event_queue_limit"]
    assert ws["audio_frames_queued_max"] <= ws["audio_queue_limit_frames"]
    tones = mem["tone_cache"]["primary"]
    assert 0 <= tones["samples"] <= tones["limit"] and tones["limit"] > 0


def test_a_pose_from_the_future_is_refused_not_planned_for(run):
    async def main():
        async with live_session() as session:
            async with ws_client(ws_url(session)) as ws:
                await ws.send(json.dumps({"type": "pose", "t": 3600.0, "joints": JOINTS}))
                await ws.send(json.dumps({"type": "pose", "joints": JOINTS}))     # stamped now: fine
                await ws.send(json.dumps({"type": "status", "id": 2}))
                st = await recv_reply(ws, kinds=("status",))
                return st, session.conductor.index, session.now()

    st, segments, now = run(main())
    motion = st["inputs"]["motion"]
    assert motion["by_reason"].get("from the future") == 1 and motion["accepted"] >= 1
    assert segments <= 2 + now / 0.25, "nothing planned an hour ahead"
    assert st["memory"]["plans_queued"] <= 2
    assert FRAME_AHEAD_LIMIT_S < 1.0


def test_motion_recording_writes_whole_lines_on_tick(tmp_path):
    now = [0.0]
    rec = MotionRecorder(tmp_path / "m.jsonl", flush_interval_s=1.0, clock=lambda: now[0])
    rec.write_control(0.5, Control(volume=0.5))
    rec.tick()
    assert (tmp_path / "m.jsonl").read_text() == "", "held until the interval"
    now[0] = 1.2
    rec.tick()                                   # no new line came, the pending one is written
    assert (tmp_path / "m.jsonl").read_text() == '{"t":0.5,"control":{"volume":0.5}}\n'
    rec.close()


def test_a_restarted_run_records_next_to_the_last_one(tmp_path):
    wav, motion = tmp_path / "show.wav", tmp_path / "show.jsonl"
    assert next_run_paths(wav, motion, None) == [wav, motion, None]
    wav.write_bytes(b"RIFF")
    assert next_run_paths(wav, motion, None) == [tmp_path / "show-run2.wav", tmp_path / "show-run2.jsonl", None]
    (tmp_path / "show-run2.jsonl").write_text("")
    assert next_run_paths(wav, motion) == [tmp_path / "show-run3.wav", tmp_path / "show-run3.jsonl"]


def test_memory_probe_writes_what_grew(tmp_path, run):
    path = tmp_path / "probe.jsonl"

    async def main():
        probe = memory.MemoryProbe(str(path), interval_s=3600, warmup_s=0.0, sizes=lambda: {"x": 1})
        await probe.start()
        try:
            probe.sample()                       # the baseline
            keep = [bytearray(4096) for _ in range(500)]       # ~2 MB that stays alive
            keep += [Held() for _ in range(500)]
            second = probe.sample()
        finally:
            await probe.stop()
        return keep, second

    keep, second = run(main())
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0]["baseline"] and lines[1] == second and second["sizes"] == {"x": 1}
    top = second["sites"][0]
    assert top["kb"] >= 1900 and any("test_memory_bounds.py" in w for w in top["where"])
    assert second["types"].get("Held", 0) >= 500
    del keep


@pytest.mark.skipif(memory._libc() is None or not hasattr(memory._libc(), "malloc_trim"),
                    reason="not glibc: malloc_trim/mallopt do not exist here")
def test_malloc_is_configured_and_trimmed_on_glibc(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert memory.configure_malloc() is True
    trimmer = memory.MallocTrimmer(interval_s=30.0)
    assert trimmer.available and trimmer.trim_now() >= 0.0 and trimmer.status()["trims"] == 1
