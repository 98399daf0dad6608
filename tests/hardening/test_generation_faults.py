"""Generator faults: exceptions, hangs, dead worker threads and bad audio are covered.

The worker renders with a scripted generator that fails on purpose; a
constant-level cover generator makes it visible which one played each
segment. Every render must return a full segment; the music never stops.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from d2m.generator import Rendered, SegmentStream
from d2m.plan import MUSIC, SegmentPlan
from d2m_server.generation import GenerationWorker

SR = 48000
SEG = 4800          # 0.1 s segments
PRIMARY_LEVEL = 0.25
COVER_LEVEL = -0.5


def plan(index: int) -> SegmentPlan:
    return SegmentPlan(index=index, kind=MUSIC, start_sample=index * SEG, n_samples=SEG, sample_rate=SR,
                       bar=index, beat_offsets=(0,), bpm=120.0, genre="house")


class Scripted:
    """A generator doing what ``script[plan.index]`` says: raise, exit, hang, nan; else a level."""

    sample_rate = SR

    def __init__(self, script: dict | None = None, level: float = PRIMARY_LEVEL, name: str = "scripted"):
        self.script = script or {}
        self.level = level
        self.name = name
        self.release = threading.Event()     # ends a "hang"
        self.initial_states = 0
        self.rendered: list[int] = []

    def initial_state(self):
        self.initial_states += 1
        return 0

    def render(self, p: SegmentPlan, state):
        action = self.script.get(p.index)
        if action == "raise":
            raise RuntimeError(f"generator failed on purpose at {p.index}")
        if action == "exit":
            raise SystemExit(3)
        if action == "hang":
            self.release.wait(30)
        if isinstance(action, float):
            time.sleep(action)
        audio = np.full((p.n_samples, 2), self.level, np.float32)
        if action == "nan":
            audio[::7] = np.nan
            audio[1] = np.inf
        self.rendered.append(p.index)
        return Rendered(audio, continues=True), state + 1


def worker(primary: Scripted, cover: Scripted | None = None, **kw) -> GenerationWorker:
    return GenerationWorker(SegmentStream(primary),
                            cover=SegmentStream(cover or Scripted(level=COVER_LEVEL, name="cover")), **kw)


def source(seg) -> str:
    assert seg.audio.shape == (SEG, 2) and seg.audio.dtype == np.float32
    assert np.isfinite(seg.audio).all()
    level = float(np.median(seg.audio))
    return {PRIMARY_LEVEL: "primary", COVER_LEVEL: "cover", 0.0: "silence"}[round(level, 3)]


def render_all(w: GenerationWorker, indices, between: float = 0.0) -> list[str]:
    async def main():
        out = []
        for i in indices:
            out.append(source(await w.render(plan(i))))
            if between:
                await asyncio.sleep(between)
        return out
    try:
        return asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        w.close()


def test_an_exception_is_counted_and_the_cover_plays_that_segment():
    gen = Scripted({2: "raise"})
    w = worker(gen)
    assert render_all(w, range(6)) == ["primary", "primary", "cover", "primary", "primary", "primary"]
    st = w.status()
    assert st["errors"] == 1 and st["fallback_segments"] == 1 and st["cover_reasons"] == {"error": 1}
    assert "failed on purpose at 2" in st["last_error"]
    assert st["fallback_active"] is False and st["restarts"] == 0
    assert gen.rendered == [0, 1, 3, 4, 5]       # the primary resumed after the failed segment


def test_repeated_failures_restart_the_generator_with_fresh_state():
    gen = Scripted({1: "raise", 2: "raise", 3: "raise"})
    w = worker(gen, max_consecutive_errors=3)
    assert render_all(w, range(6)) == ["primary", "cover", "cover", "cover", "primary", "primary"]
    st = w.status()
    assert st["errors"] == 3 and st["restarts"] == 1
    assert gen.initial_states == 2                # the restart began from initial_state() again


def test_system_exit_in_the_generator_does_not_escape():
    gen = Scripted({1: "exit"})
    w = worker(gen)
    assert render_all(w, range(4)) == ["primary", "cover", "primary", "primary"]
    assert w.status()["errors"] == 1 and "SystemExit" in w.status()["last_error"]


def test_non_finite_audio_is_replaced():
    w = worker(Scripted({1: "nan"}))
    assert render_all(w, range(3)) == ["primary", "primary", "primary"]
    assert w.status()["nonfinite_segments"] == 1


def test_a_hung_generator_is_covered_then_abandoned_and_restarted():
    gen = Scripted({1: "hang"})
    now = [0.0]
    # a running session: every segment is due 0.06 s after it is asked for
    w = worker(gen, clock=lambda: now[0], hang_timeout_s=0.5)

    async def main():
        out = []
        for i in range(6):
            now[0] = plan(i).start_time - 0.06
            t0 = time.monotonic()
            out.append(source(await w.render(plan(i))))
            assert time.monotonic() - t0 < 0.4, f"segment {i} held the music up"
            if i == 2:
                await asyncio.sleep(0.6)           # past the hang timeout
        return out

    try:
        got = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        gen.release.set()
        w.close()
    # 1: late (hung) -> cover; 2: still busy -> cover; 3: restarted -> primary again
    assert got == ["primary", "cover", "cover", "primary", "primary", "primary"]
    st = w.status()
    assert st["cover_reasons"] == {"late": 1, "busy": 1}
    assert st["restarts"] == 1 and st["late_segments"] == 1
    assert gen.initial_states == 2


def test_a_slightly_late_primary_still_plays_when_it_beats_the_cover():
    gen = Scripted({1: 0.05})
    slow_cover = Scripted({1: 1.0}, level=COVER_LEVEL, name="cover")
    now = [0.0]
    w = worker(gen, slow_cover, clock=lambda: now[0])

    async def main():
        out = []
        for i in range(3):
            now[0] = plan(i).start_time       # already past the deadline: the race starts at once
            out.append(source(await w.render(plan(i))))
        return out

    try:
        got = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        w.close()
    assert got == ["primary", "primary", "primary"]
    # segment 0 is the pre-roll (session clock at 0): no deadline yet
    assert w.status()["late_segments"] == 2 and w.status()["fallback_segments"] == 0


def test_a_dead_worker_thread_is_replaced():
    gen = Scripted()
    w = worker(gen)

    async def main():
        out = [source(await w.render(plan(0)))]
        w._primary_worker.close()                  # the thread exits: as if it had died
        w._primary_worker._thread.join(5)
        assert not w._primary_worker.alive
        out += [source(await w.render(plan(i))) for i in (1, 2)]
        return out

    try:
        assert asyncio.run(asyncio.wait_for(main(), 60)) == ["primary"] * 3
    finally:
        w.close()
    assert w.status()["restarts"] == 1


def test_when_the_cover_fails_too_the_segment_is_silence_and_the_worker_goes_on():
    w = worker(Scripted({1: "raise"}), Scripted({1: "raise"}, level=COVER_LEVEL, name="cover"))
    assert render_all(w, range(4)) == ["primary", "silence", "primary", "primary"]
    st = w.status()
    assert st["silent_segments"] == 1 and st["cover_errors"] == 1 and st["errors"] == 1


def test_the_default_cover_is_the_built_in_synth():
    w = GenerationWorker(SegmentStream(Scripted({0: "raise"})))

    async def main():
        return await w.render(plan(0))

    try:
        seg = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        w.close()
    assert seg.backend == "synth" and seg.audio.shape == (SEG, 2)
    assert w.status()["cover"] == "synth"


def test_a_slow_primary_with_a_fallback_is_covered_while_busy():
    gen = Scripted({0: 0.4})
    now = [0.0]
    w = GenerationWorker(SegmentStream(gen), SegmentStream(Scripted(level=COVER_LEVEL, name="cover")),
                         clock=lambda: now[0])

    async def main():
        out = []
        for i in range(3):
            now[0] = plan(i).start_time - 0.06
            out.append(source(await w.render(plan(i))))
        await asyncio.sleep(0.5)
        out.append(source(await w.render(plan(3))))
        return out

    try:
        got = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        w.close()
    assert got == ["cover", "cover", "cover", "primary"]
    assert w.status()["cover_reasons"] == {"late": 1, "busy": 2}
