"""What the server process holds: memory, file descriptors, threads, tasks, and a leak probe.

:func:`process_usage` reads the process's resident memory, open file
descriptors and threads (Linux ``/proc``; elsewhere the fields are ``None``)
and the event loop's tasks; the live session reports it with the sizes of
every buffer, queue and history that could grow under ``status["memory"]``
(docs/protocol.md, *Memory*).

:class:`MemoryProbe` is a debugging aid, off unless the environment variable
:data:`PROBE_ENV` names a file: it then traces Python allocations
(``tracemalloc``) and, every :data:`PROBE_INTERVAL_S`, appends one JSON line
with the allocation sites and object types that grew most since the first
sample after :data:`PROBE_WARMUP_S`. Tracing slows the server down (about
2x on allocations) and a snapshot blocks the loop for a moment: use it to
find a leak, never in a show::

    D2M_MEMORY_PROBE=/tmp/probe.jsonl d2m serve ...

:func:`configure_malloc` fixes glibc's mmap threshold at
:data:`MMAP_THRESHOLD_BYTES`. By default glibc raises that threshold each
time a large block is freed, after which every segment's audio buffer
(~1 MB, rendered on the generator thread and freed on the event loop) comes
from the heap arenas instead of its own mapping; interleaved with long-lived
allocations (the synth's tone cache) the arenas fragment and RSS creeps up
although nothing leaks. (Measured in the soak: traced Python memory grew
~4 MB while RSS grew ~19 MB, all of it in one generator-thread arena; with
the threshold fixed the five-minute growth halved.) With the threshold
fixed, large buffers are mapped and unmapped whole. :class:`MallocTrimmer` also returns
freed arena pages to the operating system every :data:`TRIM_INTERVAL_S`
(``malloc_trim``, on a worker thread), and at most :data:`ARENA_MAX` arenas
hold it.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import threading
import time
import tracemalloc

log = logging.getLogger("d2m.memory")

#: Environment variable naming the JSONL file the leak probe appends to (unset: no probe).
PROBE_ENV = "D2M_MEMORY_PROBE"
#: Seconds between two probe samples.
PROBE_INTERVAL_S = 30.0
#: The probe's baseline is the first sample taken this long after start (s): imports,
#: JIT compilation and caches filling up are warm-up, not leaks.
PROBE_WARMUP_S = 60.0
#: Frames of traceback kept per traced allocation.
PROBE_FRAMES = 8
#: Allocation sites and object types listed per sample.
PROBE_TOP = 25
#: Seconds between two ``malloc_trim`` calls (0 disables them).
TRIM_INTERVAL_S = 30.0
#: Allocations at least this large get their own mapping, returned to the OS when freed
#: (glibc's default, 128 KiB, but fixed: see :func:`configure_malloc`).
MMAP_THRESHOLD_BYTES = 128 * 1024
#: Heap arenas at most (glibc's default is 8 per core): fewer arenas, less memory held
#: free in each; the server's few threads rarely allocate at the same time.
ARENA_MAX = 2
#: glibc mallopt parameter numbers (malloc.h).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int | None:
    """Resident memory of this process (bytes), or None where ``/proc`` is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def open_fds() -> int | None:
    """Open file descriptors of this process, or None where ``/proc`` is missing."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def os_threads() -> int | None:
    """Threads of this process as the OS counts them (native ones included), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def process_usage() -> dict:
    """RSS (MB), open fds, threads (Python and OS) and asyncio tasks of this process, now."""
    rss = rss_bytes()
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:          # no running loop
        tasks = None
    return {"rss_mb": round(rss / 2**20, 1) if rss is not None else None,
            "fds": open_fds(), "threads": threading.active_count(), "os_threads": os_threads(),
            "tasks": tasks}


# ---------------------------------------------------------------------------
# malloc_trim

def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def configure_malloc(mmap_threshold: int = MMAP_THRESHOLD_BYTES, arena_max: int = ARENA_MAX) -> bool:
    """Fix glibc's mmap threshold and cap its arenas (see the module doc); False where that is
    not glibc. Call it before the worker threads start (arenas already made stay).

    ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_ARENA_MAX`` in the environment win (glibc reads them at start).
    """
    libc = _libc()
    fn = getattr(libc, "mallopt", None) if libc is not None else None
    if fn is None:
        return False
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = True
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        ok = bool(fn(_M_MMAP_THRESHOLD, int(mmap_threshold))) and ok
    if "MALLOC_ARENA_MAX" not in os.environ:
        ok = bool(fn(_M_ARENA_MAX, int(arena_max))) and ok
    return ok


def _libc_malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):   # not glibc (musl, macOS)
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


class MallocTrimmer:
    """Every ``interval_s``, ``malloc_trim(0)`` on a worker thread (glibc only; else a no-op)."""

    def __init__(self, interval_s: float = TRIM_INTERVAL_S):
        self.interval_s = interval_s
        self._trim = _libc_malloc_trim() if interval_s > 0 else None
        self._task: asyncio.Task | None = None
        self.trims = 0
        self.last_ms = 0.0

    @property
    def available(self) -> bool:
        return self._trim is not None

    def trim_now(self) -> float:
        """One ``malloc_trim(0)``; returns the milliseconds it took (0 when unavailable)."""
        if self._trim is None:
            return 0.0
        t0 = time.perf_counter()
        self._trim(0)
        self.trims += 1
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return self.last_ms

    async def start(self) -> None:
        if self._trim is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="d2m-malloc-trim")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await asyncio.to_thread(self.trim_now)

    def status(self) -> dict:
        return {"available": self.available, "trims": self.trims, "last_ms": round(self.last_ms, 2)}


# ---------------------------------------------------------------------------
# Leak probe

def _type_counts() -> collections.Counter:
    counts = collections.Counter(map(type, gc.get_objects()))
    names: collections.Counter = collections.Counter()
    for kind, n in counts.items():
        names[kind.__name__] += n
    return names


class MemoryProbe:
    """Trace allocations and append what grew to ``path`` every ``interval_s`` (see the module doc).

    ``sizes()`` (optional) returns the session's buffer sizes, written with each sample.
    """

    def __init__(self, path: str, *, interval_s: float = PROBE_INTERVAL_S,
                 warmup_s: float = PROBE_WARMUP_S, sizes=None):
        self.path = path
        self.interval_s = interval_s
        self.warmup_s = warmup_s
        self.sizes = sizes
        self._task: asyncio.Task | None = None
        self._base: tracemalloc.Snapshot | None = None
        self._base_types: collections.Counter | None = None
        self._base_rss: int | None = None
        self._t0 = time.monotonic()

    @classmethod
    def from_environment(cls, sizes=None) -> "MemoryProbe | None":
        path = os.environ.get(PROBE_ENV)
        return cls(path, sizes=sizes) if path else None

    async def start(self) -> None:
        self._started_tracing = not tracemalloc.is_tracing()
        if self._started_tracing:
            tracemalloc.start(PROBE_FRAMES)
        self._t0 = time.monotonic()
        log.warning("memory probe on (%s=%s): allocations are traced, the server is slower",
                    PROBE_ENV, self.path)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="d2m-memory-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        if getattr(self, "_started_tracing", False):
            tracemalloc.stop()
            self._started_tracing = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a debugging aid must not stop the show
                log.exception("memory probe sample failed")

    def _snapshot(self) -> tracemalloc.Snapshot:
        return tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),
             tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
             tracemalloc.Filter(False, "<unknown>")))

    def sample(self) -> dict:
        """Take one sample now and append it to the file; returns it."""
        elapsed = time.monotonic() - self._t0
        snap = self._snapshot()
        types = _type_counts()
        rss = rss_bytes()
        traced, peak = tracemalloc.get_traced_memory()
        record: dict = {"t": round(elapsed, 1), "rss_mb": round((rss or 0) / 2**20, 2),
                        "traced_mb": round(traced / 2**20, 2), "traced_peak_mb": round(peak / 2**20, 2),
                        "objects": sum(types.values()), "usage": process_usage()}
        if self.sizes is not None:
            record["sizes"] = self.sizes()
        if self._base is None:
            if elapsed >= self.warmup_s:
                self._base, self._base_types, self._base_rss = snap, types, rss
                record["baseline"] = True
        else:
            record["rss_growth_mb"] = round(((rss or 0) - (self._base_rss or 0)) / 2**20, 2)
            stats = snap.compare_to(self._base, "traceback")
            record["sites"] = [
                {"kb": round(s.size_diff / 1024, 1), "count": s.count_diff,
                 "where": [f"{fr.filename}:{fr.lineno}" for fr in s.traceback[-4:]]}
                for s in sorted(stats, key=lambda s: -s.size_diff)[:PROBE_TOP] if s.size_diff > 0]
            grown = types.copy()
            grown.subtract(self._base_types)
            record["types"] = {k: v for k, v in grown.most_common(PROBE_TOP) if v > 0}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return record
