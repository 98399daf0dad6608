"""Rendering planned segments off the event loop, with a cover that keeps the music going.

:class:`GenerationWorker` renders each plan on a worker thread with the
primary generator. A segment the primary cannot deliver is rendered by the
*cover* generator instead (the ``fallback`` given, else a built-in synth), the
switch is counted and reported, and the primary is used again for the next
segment it can take:

* **busy** -- a primary still rendering an earlier segment: the cover
  renders this one.
* **late** -- a primary not done by the segment's deadline
  (``plan.start_time - deadline_margin_s``): the cover starts too and
  whichever finishes first is played (a primary that was only a little late
  still wins; a hung one does not hold the music up).
* **errors** -- an exception in the generator (any exception, ``SystemExit``
  included) is counted (:attr:`GenerationWorker.errors`) and the segment
  covered; after ``max_consecutive_errors`` failures in a row the primary is
  restarted with fresh state.
* **hangs and dead threads** -- a primary render running longer than
  ``hang_timeout_s``, or a worker thread that died, is abandoned and a fresh
  worker thread and stream are started (:attr:`GenerationWorker.restarts`).
  Worker threads are daemons, so a hung generator never blocks shutdown.
* **bad audio** -- non-finite samples are replaced (counted in
  ``nonfinite_segments``); if even the cover fails, the segment is silence
  (``silent_segments``). :meth:`GenerationWorker.render` itself never raises
  (except :class:`asyncio.CancelledError`), so the renderer never dies.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from d2m.generator import CHANNELS, SegmentStream, join_with_tail
from d2m.plan import SegmentPlan

log = logging.getLogger("d2m.generation")

#: A segment must be ready this long before it starts playing (s).
DEADLINE_MARGIN_S = 0.05
#: Before playback starts (session clock still at 0) the first segment may take this long (s).
PREROLL_TIMEOUT_S = 10.0
#: A primary render still running after this long (s) is declared hung: its worker
#: thread is abandoned and a fresh worker with fresh generator state takes over.
HANG_TIMEOUT_S = 60.0
#: After this many failed segments in a row the primary is restarted with fresh state.
MAX_CONSECUTIVE_ERRORS = 3
#: Longest error text kept in status.
MAX_ERROR_CHARS = 200
#: Tone cache of the built-in cover synth (samples; the primary synth keeps
#: ``d2m.synth.voices.MAX_CACHE_SAMPLES``). It only plays now and then, so a cache
#: as big as the primary's would keep filling for hours: this one is full within minutes.
COVER_TONE_CACHE_SAMPLES = 1_000_000

#: Why a segment was covered: counted under these names in ``status()["cover_reasons"]``.
COVER_REASONS = ("busy", "late", "error")


class GeneratorCrashed(RuntimeError):
    """A generator raised something that is not an ``Exception`` (e.g. ``SystemExit``)."""


@dataclass
class RenderedSegment:
    plan: SegmentPlan
    audio: np.ndarray
    backend: str                 #: which generator made it ("silence" if none could)
    render_s: float              #: wall time spent rendering
    score: object = None         #: the generator's score of it (synth), for MIDI out; None if none


class _Worker:
    """One daemon thread running jobs in order; abandoned, not joined, when it hangs."""

    def __init__(self, name: str):
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, fn, *args) -> concurrent.futures.Future:
        if not self._thread.is_alive():
            raise RuntimeError(f"worker thread {self.name} is not running")
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((fut, fn, args))
        return fut

    def close(self) -> None:
        """Ask the thread to exit after its current job (it is never waited for)."""
        self._jobs.put(None)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fut, fn, args = job
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except Exception as exc:
                fut.set_exception(exc)
            except BaseException as exc:  # noqa: BLE001 - SystemExit etc. must not escape to asyncio
                fut.set_exception(GeneratorCrashed(f"{type(exc).__name__}: {exc}"))
            else:
                fut.set_result(result)


def _silence(plan: SegmentPlan) -> np.ndarray:
    return np.zeros((plan.n_samples, CHANNELS), np.float32)


def default_cover(sample_rate: int, seed: int = 0) -> SegmentStream:
    """The built-in synth as the cover generator (with a smaller tone cache: it rarely plays)."""
    from d2m.synth import SynthGenerator
    from d2m.synth.voices import ToneCache

    synth = SynthGenerator(sample_rate=sample_rate, seed=seed)
    synth.tones = ToneCache(COVER_TONE_CACHE_SAMPLES)    # the cache never changes the audio
    return SegmentStream(synth)


class GenerationWorker:
    """Plans in, audio out, in order; generation never runs on the event loop.

    ``primary`` and ``fallback`` are :class:`SegmentStream` s. ``fallback``
    (optional) is the cover for a primary that may be slower than real time
    (MusicGen): the first segment is then not waited for. Without it the
    primary is expected to keep up, the first segment may take up to
    ``preroll_timeout_s`` (playback has not started), and ``cover`` (default:
    the built-in synth at the primary's sample rate) covers failures.
    ``clock()`` is the session clock used for deadlines (None: no deadlines,
    only hang detection).
    """

    def __init__(self, primary: SegmentStream, fallback: SegmentStream | None = None, *,
                 clock=None, deadline_margin_s: float = DEADLINE_MARGIN_S,
                 cover: SegmentStream | None = None,
                 preroll_timeout_s: float = PREROLL_TIMEOUT_S,
                 hang_timeout_s: float = HANG_TIMEOUT_S,
                 max_consecutive_errors: int = MAX_CONSECUTIVE_ERRORS):
        self.primary = primary
        self.fallback = fallback
        self._primary_worker = _Worker("d2m-gen")
        self._cover_worker = _Worker("d2m-cover")
        #: The stream that covers; the default synth is built on the cover thread (it takes
        #: ~0.5 s), so it is ready soon after start without holding up the event loop.
        self.cover: SegmentStream | None = fallback if fallback is not None else cover
        self._cover_building: concurrent.futures.Future | None = None
        if self.cover is None:
            self._cover_building = self._cover_worker.submit(
                default_cover, primary.generator.sample_rate,
                int(getattr(primary.generator, "seed", 0) or 0))
        self.clock = clock            # session clock (callable) for deadlines; None = no deadline
        self.deadline_margin_s = deadline_margin_s
        self.preroll_timeout_s = preroll_timeout_s
        self.hang_timeout_s = hang_timeout_s
        self.max_consecutive_errors = max(1, int(max_consecutive_errors))
        self._primary_job: concurrent.futures.Future | None = None
        self._primary_job_started = 0.0
        self._last_source: str | None = None        # "primary" / "cover" / "silence"
        self._last_tail: np.ndarray | None = None   # tail of the last delivered segment
        self._consecutive_errors = 0
        self.segments = 0
        self.fallback_segments = 0     #: segments rendered by the cover
        self.in_fallback = False       #: the last segment came from the cover (or is silence)
        self.errors = 0                #: primary renders that raised
        self.cover_errors = 0          #: cover renders that raised or hung
        self.restarts = 0              #: primary workers restarted (hung, dead, failing)
        self.resyncs = 0               #: times a stream resumed at a later segment
        self.late_segments = 0         #: primary renders that missed their deadline
        self.silent_segments = 0       #: segments no generator could render (silence played)
        self.nonfinite_segments = 0    #: segments whose NaN/inf samples were replaced
        self.cover_reasons: collections.Counter[str] = collections.Counter()
        self.last_error = ""
        self.last_render_s = 0.0
        self.render_s_total = 0.0
        self.audio_s_total = 0.0

    # -- rendering ------------------------------------------------------------------
    async def render(self, plan: SegmentPlan) -> RenderedSegment:
        """The audio of ``plan``: from the primary if it can, else from the cover. Never raises."""
        self.segments += 1
        self._check_primary()
        if self._primary_job is not None and not self._primary_job.done():
            return await self._finish_cover(plan, "busy", self._start_cover(plan))
        waiter = self._submit_primary(plan)
        try:
            result = await asyncio.wait_for(asyncio.shield(waiter), self._timeout(plan))
        except (asyncio.TimeoutError, TimeoutError):
            self.late_segments += 1
            return await self._race(plan, waiter)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any generator failure is covered
            self._failed(plan, exc)
            return await self._finish_cover(plan, "error", self._start_cover(plan))
        return self._primary_done(plan, result)

    def _submit_primary(self, plan: SegmentPlan) -> asyncio.Future:
        switched = self._last_source != "primary"
        args = (plan, switched, self._last_tail if switched else None)
        try:
            job = self._primary_worker.submit(self._render_on, self.primary, *args)
        except RuntimeError:
            self._restart("its worker thread is not running")
            switched = True
            job = self._primary_worker.submit(self._render_on, self.primary, plan, True, self._last_tail)
        self._primary_job, self._primary_job_started = job, time.monotonic()
        waiter = asyncio.wrap_future(job)
        waiter.add_done_callback(_consume)
        return waiter

    async def _race(self, plan: SegmentPlan, primary: asyncio.Future) -> RenderedSegment:
        """The primary missed the deadline: start the cover too and play whichever is first."""
        cover = self._start_cover(plan)
        done, _ = await asyncio.wait({primary, cover}, timeout=self.hang_timeout_s,
                                     return_when=asyncio.FIRST_COMPLETED)
        if primary in done:
            exc = primary.exception()
            if exc is None:
                return self._primary_done(plan, primary.result())
            self._failed(plan, exc)
        return await self._finish_cover(plan, "late", cover)

    def _primary_done(self, plan: SegmentPlan, result) -> RenderedSegment:
        audio, tail, dt, score = result
        self._consecutive_errors = 0
        if self.in_fallback:
            log.info("generator %r is back; leaving the cover", self.primary.generator.name)
        self.in_fallback = False
        return self._deliver(plan, audio, tail, dt, "primary", self.primary.generator.name, score)

    def _failed(self, plan: SegmentPlan, exc: BaseException) -> None:
        self.errors += 1
        self._consecutive_errors += 1
        self.last_error = f"segment {plan.index}: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        log.error("generator %r failed on segment %d (%s); the cover plays it",
                  self.primary.generator.name, plan.index, self.last_error,
                  exc_info=exc if not isinstance(exc, GeneratorCrashed) else None)
        if self._consecutive_errors >= self.max_consecutive_errors:
            self._restart(f"{self._consecutive_errors} failed segments in a row")

    def _start_cover(self, plan: SegmentPlan) -> asyncio.Future:
        """Start rendering ``plan`` with the cover; the result is ``((audio, tail, dt), name)``."""
        switched = self._last_source != "cover"
        handover = self._last_tail if switched else None

        async def job():
            if self.cover is None:
                assert self._cover_building is not None
                self.cover = await asyncio.wait_for(
                    asyncio.shield(asyncio.wrap_future(self._cover_building)), self.hang_timeout_s)
            stream = self.cover
            fut = self._cover_worker.submit(self._render_on, stream, plan, switched, handover)
            return await asyncio.wrap_future(fut), stream.generator.name

        task = asyncio.ensure_future(job())
        task.add_done_callback(_consume)
        return task

    async def _finish_cover(self, plan: SegmentPlan, reason: str, cover: asyncio.Future) -> RenderedSegment:
        if not self.in_fallback:
            log.warning("generator %r %s; the %s covers until it is back", self.primary.generator.name,
                        {"busy": "is behind real time", "late": "missed a segment's deadline",
                         "error": "failed"}.get(reason, reason), self.cover_name)
        self.in_fallback = True
        self.fallback_segments += 1
        self.cover_reasons[reason] += 1
        try:
            (audio, tail, dt, score), name = await asyncio.wait_for(asyncio.shield(cover), self.hang_timeout_s)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the music must go on: play silence
            self.cover_errors += 1
            self.silent_segments += 1
            self.last_error = f"cover, segment {plan.index}: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            log.error("the cover generator failed too (%s); segment %d is silence", self.last_error,
                      plan.index)
            self._cover_worker.close()
            self._cover_worker = _Worker("d2m-cover")
            if self.cover is not None:
                try:
                    self.cover = SegmentStream(self.cover.generator)
                except Exception:  # noqa: BLE001 - its stream resyncs itself
                    pass
            self._last_source, self._last_tail = "silence", None
            return RenderedSegment(plan, _silence(plan), "silence", 0.0)
        return self._deliver(plan, audio, tail, dt, "cover", name, score)

    @property
    def cover_name(self) -> str:
        """Name of the cover generator (``synth`` while the default one is being built)."""
        return self.cover.generator.name if self.cover is not None else "synth"

    def _render_on(self, stream: SegmentStream, plan: SegmentPlan, switched: bool,
                   handover: np.ndarray | None):
        """Worker thread: render ``plan`` with ``stream``, joined to what was played before it."""
        t0 = time.perf_counter()
        if stream._next_sample is not None and stream._next_sample != plan.start_sample:
            stream._next_sample = plan.start_sample          # it resumes at this segment
            self.resyncs += 1
        if switched:
            stream._tail = None          # its own tail belongs to a segment that was not played
        audio = stream.render(plan)
        if switched and handover is not None:
            audio = join_with_tail(handover, audio)
        if not np.isfinite(audio).all():
            self.nonfinite_segments += 1
            audio = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
        return audio, stream._tail, time.perf_counter() - t0, stream.last_score

    def _deliver(self, plan, audio, tail, dt, source: str, backend: str, score=None) -> RenderedSegment:
        self._last_source, self._last_tail = source, tail
        self.last_render_s = dt
        self.render_s_total += dt
        self.audio_s_total += plan.duration
        return RenderedSegment(plan, audio, backend, dt, score)

    def _timeout(self, plan: SegmentPlan) -> float:
        """How long to wait for the primary before the cover starts too."""
        if self.clock is None:
            return self.hang_timeout_s
        now = self.clock()
        if now <= 0.0 and self.fallback is None:   # playback has not started: no deadline yet
            return self.preroll_timeout_s
        return max(plan.start_time - self.deadline_margin_s - now, 0.0)

    # -- supervision ----------------------------------------------------------------
    def _check_primary(self) -> None:
        job = self._primary_job
        if not self._primary_worker.alive:
            self._restart("its worker thread died")
        elif (job is not None and not job.done()
              and time.monotonic() - self._primary_job_started > self.hang_timeout_s):
            self._restart(f"a segment has been rendering for more than {self.hang_timeout_s:g} s")

    def _restart(self, why: str) -> None:
        """Abandon the primary's worker and state; start a fresh worker thread and stream."""
        self.restarts += 1
        log.error("restarting generator %r: %s", self.primary.generator.name, why)
        self._primary_worker.close()
        self._primary_worker = _Worker("d2m-gen")
        try:
            self.primary = SegmentStream(self.primary.generator)
        except Exception as exc:  # noqa: BLE001 - keep the old stream; it resyncs itself
            self.last_error = f"restart: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            log.exception("generator %r: fresh state failed; keeping the old one",
                          self.primary.generator.name)
        self._primary_job = None
        self._consecutive_errors = 0
        self._last_source = "restart"       # the next primary segment starts afresh

    # -- status ---------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "backend": self.primary.generator.name,
            "cover": self.cover_name,
            "segments": self.segments,
            "fallback_active": self.in_fallback,
            "fallback_segments": self.fallback_segments,
            "cover_reasons": dict(self.cover_reasons),
            "errors": self.errors,
            "cover_errors": self.cover_errors,
            "restarts": self.restarts,
            "late_segments": self.late_segments,
            "silent_segments": self.silent_segments,
            "nonfinite_segments": self.nonfinite_segments,
            "resyncs": self.resyncs,
            "last_error": self.last_error,
            "last_render_ms": round(self.last_render_s * 1000, 2),
            "realtime_factor": round(self.audio_s_total / self.render_s_total, 2) if self.render_s_total else None,
        }

    def close(self) -> None:
        self._primary_worker.close()
        self._cover_worker.close()


def _consume(fut: asyncio.Future) -> None:
    """Retrieve an abandoned job's exception so asyncio does not log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()
