"""Rendering planned segments off the event loop, with a fallback that keeps the music going.

:class:`GenerationWorker` renders each plan on its own worker thread with
the primary generator. If the primary is still busy with an earlier segment,
or does not finish before the segment's deadline, the segment is rendered by
the fallback generator (the built-in synth) instead, the switch is counted
and reported, and the primary is used again as soon as it has caught up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from dataclasses import dataclass

import numpy as np

from d2m.generator import SegmentStream, join_with_tail
from d2m.plan import SegmentPlan

log = logging.getLogger("d2m.generation")

#: A segment must be ready this long before it starts playing (s).
DEADLINE_MARGIN_S = 0.05


@dataclass
class RenderedSegment:
    plan: SegmentPlan
    audio: np.ndarray
    backend: str                 #: which generator made it
    render_s: float              #: wall time spent rendering


class GenerationWorker:
    """Plans in, audio out, in order; generation never runs on the event loop."""

    def __init__(self, primary: SegmentStream, fallback: SegmentStream | None = None, *,
                 clock=None, deadline_margin_s: float = DEADLINE_MARGIN_S):
        self.primary = primary
        self.fallback = fallback
        self.clock = clock            # session clock (callable) for deadlines; None = no deadline
        self.deadline_margin_s = deadline_margin_s
        self._primary_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="d2m-gen")
        self._fallback_pool = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="d2m-fallback")
                               if fallback is not None else None)
        self._primary_busy: concurrent.futures.Future | None = None
        self.segments = 0
        self.fallback_segments = 0
        self.in_fallback = False
        self.errors = 0
        self.last_render_s = 0.0
        self.render_s_total = 0.0
        self.audio_s_total = 0.0

    async def render(self, plan: SegmentPlan) -> RenderedSegment:
        loop = asyncio.get_running_loop()
        self.segments += 1
        use_primary = self.fallback is None or self._primary_busy is None or self._primary_busy.done()
        if use_primary:
            fut = self._primary_pool.submit(_timed, self.primary.render, plan)
            self._primary_busy = fut
            try:
                if self.fallback is None or self.clock is None:
                    audio, dt = await asyncio.wrap_future(fut)
                else:
                    timeout = plan.start_time - self.deadline_margin_s - self.clock()
                    audio, dt = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(fut)),
                                                       timeout=max(timeout, 0.0))
                self._account(dt, plan)
                if self.in_fallback:
                    log.info("generator %r caught up; leaving the fallback", self.primary.generator.name)
                self.in_fallback = False
                return RenderedSegment(plan, audio, self.primary.generator.name, dt)
            except (asyncio.TimeoutError, TimeoutError):
                pass
            except Exception:
                self.errors += 1
                log.exception("generator %r failed on segment %d", self.primary.generator.name, plan.index)
                if self.fallback is None:
                    return RenderedSegment(plan, np.zeros((plan.n_samples, 2), np.float32), "silence", 0.0)
        # fallback: the primary is behind or failed
        if not self.in_fallback:
            log.warning("generator %r is behind real time; the synth covers until it catches up",
                        self.primary.generator.name)
        self.in_fallback = True
        self.fallback_segments += 1
        assert self.fallback is not None and self._fallback_pool is not None
        audio, dt = await loop.run_in_executor(self._fallback_pool, _timed, self._fallback_render, plan)
        self._account(dt, plan)
        return RenderedSegment(plan, audio, self.fallback.generator.name, dt)

    def _fallback_render(self, plan: SegmentPlan) -> np.ndarray:
        """The fallback stream must stay contiguous although it skips the primary's segments."""
        fb = self.fallback
        if fb._next_sample is not None and fb._next_sample != plan.start_sample:
            fb._next_sample = plan.start_sample      # it simply resumes at this bar
        audio = fb.render(plan)
        tail = self.primary._tail
        return join_with_tail(tail, audio) if tail is not None else audio

    def _account(self, dt: float, plan: SegmentPlan) -> None:
        self.last_render_s = dt
        self.render_s_total += dt
        self.audio_s_total += plan.duration

    def status(self) -> dict:
        return {
            "backend": self.primary.generator.name,
            "segments": self.segments,
            "fallback_active": self.in_fallback,
            "fallback_segments": self.fallback_segments,
            "errors": self.errors,
            "last_render_ms": round(self.last_render_s * 1000, 2),
            "realtime_factor": round(self.audio_s_total / self.render_s_total, 2) if self.render_s_total else None,
        }

    def close(self) -> None:
        self._primary_pool.shutdown(wait=False, cancel_futures=True)
        if self._fallback_pool is not None:
            self._fallback_pool.shutdown(wait=False, cancel_futures=True)


def _timed(fn, plan):
    t0 = time.perf_counter()
    out = fn(plan)
    return out, time.perf_counter() - t0
