"""Hostile OSC: random and mutated packets through a live session's receiver.

* 100,000 packets (``D2M_FUZZ_PACKETS`` for more) through
  ``OscReceiver.handle_datagram`` of a running LiveSession: nothing escapes,
  nothing reaches the session's callback as an error, no packet takes more
  than 5 ms (a packet over 5 ms of wall time is re-timed three times in CPU
  time, so a preemption by another process is not blamed on the packet), and
  the session keeps playing.
* The permanent corpus (``corpus/*.bin``: packets that once broke something)
  and the hand-made worst cases go through the same path.
* A second process sends fuzz packets over real UDP into the running receiver
  while a 2 ms ticker measures the event loop's lag: the loop thread's CPU
  time per tick stays under 5 ms at p99 always, and the wall-clock lag too
  whenever the machine is not overloaded by other processes (load average
  below the core count and an idle-loop baseline under 2.5 ms).

A packet that fails is written under pytest's tmp_path; copy it into
``tests/hardening/corpus/`` so it stays a regression case.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from .osc_fuzz import packets, pathological
from .support import live_session

#: Packets through handle_datagram (CI default; raise it for a soak).
FUZZ_PACKETS = int(os.environ.get("D2M_FUZZ_PACKETS", "100000"))
#: Packets sent over real UDP while the loop's lag is measured.
UDP_PACKETS = int(os.environ.get("D2M_FUZZ_UDP_PACKETS", "15000"))
UDP_RATE = 5000.0
#: No packet may hold the event loop longer than this (s) ...
PACKET_LIMIT_S = 0.005
#: ... and the loop's lag must stay under this at the 99th percentile (s).
LAG_P99_LIMIT_S = 0.005
SEED = 20240601
CORPUS = Path(__file__).parent / "corpus"
REPO = Path(__file__).resolve().parents[2]
DISCARD = ("127.0.0.1", 9)     # status replies go nowhere


def best_of(receiver, data: bytes, times: int = 3) -> float:
    """Least CPU time (s) of the calling thread over ``times`` runs of one datagram: what the
    packet costs the event loop, without the time other processes held the CPU."""
    best = float("inf")
    for _ in range(times):
        t0 = time.thread_time()
        receiver.handle_datagram(data, DISCARD)
        best = min(best, time.thread_time() - t0)
    return best


def keep(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    return path


def assert_counted_cleanly(receiver) -> None:
    counts = receiver.stats.counts
    assert counts["internal_error"] == 0, receiver.stats.snapshot()
    assert counts["callback_error"] == 0, receiver.stats.snapshot()


def assert_still_playing(session) -> None:
    assert all(not t.done() for t in session._tasks), [t for t in session._tasks if t.done()]
    st = session.status()
    assert st["audio"]["position"] > 0
    assert st["telemetry"]["dropped_packets"] > 0


def test_corpus_and_worst_cases_are_handled_fast(run, tmp_path):
    cases = [(p.stem, p.read_bytes()) for p in sorted(CORPUS.glob("*.bin"))] + pathological()
    assert len(cases) >= 20

    async def main():
        async with live_session() as session:
            rec = session.osc_in
            slow = {}
            for name, data in cases:
                try:
                    spent = best_of(rec, data)
                except Exception as exc:  # pragma: no cover - the failure message
                    raise AssertionError(f"{name}: {exc!r} (kept at {keep(tmp_path, name, data)})")
                if spent > PACKET_LIMIT_S:
                    slow[name] = round(spent * 1000, 2)
                await asyncio.sleep(0)
            assert not slow, f"packets slower than {PACKET_LIMIT_S * 1000:g} ms: {slow}"
            assert_counted_cleanly(rec)
            by_reason = rec.stats.counts
            for reason in ("too_large", "too_deep", "too_many_tags", "too_many_messages", "truncated",
                           "rate_limited", "over_budget"):
                assert by_reason[reason] > 0, reason
            assert rec.frames_superseded > 0, rec.stats.snapshot()   # frames of one person in one datagram
            assert_still_playing(session)

    run(main())


def test_fuzzed_packets_never_escape_or_stall_the_receiver(run, tmp_path):
    async def main():
        async with live_session() as session:
            rec = session.osc_in
            suspects: list[tuple[int, bytes]] = []
            perf = time.perf_counter
            for k, data in enumerate(packets(SEED, FUZZ_PACKETS)):
                t0 = perf()
                try:
                    rec.handle_datagram(data, DISCARD)
                except Exception as exc:
                    raise AssertionError(f"packet {k} raised {exc!r} "
                                         f"(kept at {keep(tmp_path, f'escaped_{k}', data)})")
                if perf() - t0 > PACKET_LIMIT_S:
                    suspects.append((k, data))
                if k % 256 == 0:
                    await asyncio.sleep(0)      # let the session play meanwhile
            slow = {}
            for k, data in suspects:
                spent = best_of(rec, data)
                if spent > PACKET_LIMIT_S:
                    slow[k] = (round(spent * 1000, 2), str(keep(tmp_path, f"slow_{k}", data)))
            assert not slow, f"packets slower than {PACKET_LIMIT_S * 1000:g} ms every time: {slow}"
            assert rec.datagrams >= FUZZ_PACKETS
            assert_counted_cleanly(rec)
            snap = rec.stats.snapshot()
            assert snap["accepted"] > FUZZ_PACKETS // 20, snap       # valid input still gets through
            assert snap["rejected"] > FUZZ_PACKETS // 2, snap        # and junk is counted
            assert session.frame_stats.accepted > 0
            assert_still_playing(session)

    run(main(), timeout=600)


class LagMeter:
    """Event-loop lag: how late a 2 ms ticker wakes (wall clock), and the loop thread's CPU
    time between two wakes (what our own callbacks cost, whatever other processes do)."""

    def __init__(self, period: float = 0.002):
        self.period = period
        self.lags: list[float] = []
        self.cpu: list[float] = []

    async def run(self, done) -> "LagMeter":
        loop = asyncio.get_running_loop()
        expected = loop.time() + self.period
        cpu = time.thread_time()
        while not done():
            await asyncio.sleep(self.period)
            now, now_cpu = loop.time(), time.thread_time()
            self.lags.append(max(0.0, now - expected))
            self.cpu.append(now_cpu - cpu)
            expected, cpu = now + self.period, now_cpu
        return self


def machine_is_busy() -> bool:
    """More runnable processes than cores: wall-clock lag then measures the OS, not us."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[int(0.99 * (len(values) - 1))]


def test_fuzz_over_udp_keeps_the_event_loop_responsive(run):
    async def main():
        async with live_session() as session:
            rec = session.osc_in
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.0
            baseline = p99((await LagMeter().run(lambda: loop.time() > until)).lags)
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.hardening.osc_fuzz", "--port", str(rec.port),
                 "--count", str(UDP_PACKETS), "--rate", str(UDP_RATE), "--seed", str(SEED + 1)],
                cwd=REPO, stdout=subprocess.PIPE, text=True)
            try:
                meter = await LagMeter().run(lambda: proc.poll() is not None)
                out, _ = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            sent = int(out.strip().splitlines()[-1])
            assert sent >= UDP_PACKETS * 0.99
            await asyncio.sleep(0.2)                      # the last datagrams
            # the kernel may drop datagrams when the socket buffer is full: that is UDP under a
            # flood; the loop must still have handled a good share of them
            assert rec.datagrams >= 0.5 * sent, (rec.datagrams, sent)
            assert_counted_cleanly(rec)
            lag99, cpu99 = p99(meter.lags), p99(meter.cpu)
            busy = machine_is_busy()
            print(f"loop lag p99 {lag99 * 1000:.2f} ms, loop CPU per 2 ms tick p99 {cpu99 * 1000:.2f} ms, "
                  f"under {rec.datagrams} fuzz datagrams (idle baseline lag p99 {baseline * 1000:.2f} ms, "
                  f"load average {os.getloadavg()[0]:.1f}); slowest datagram "
                  f"{rec.slowest_datagram_s * 1000:.2f} ms")
            # what the datagrams cost the loop: always under the limit
            assert cpu99 < LAG_P99_LIMIT_S, f"loop CPU per tick p99 {cpu99 * 1000:.2f} ms"
            # wall-clock lag: judged when the machine is not overloaded by other processes
            if not busy and baseline < LAG_P99_LIMIT_S / 2:
                assert lag99 < LAG_P99_LIMIT_S, (f"p99 lag {lag99 * 1000:.2f} ms "
                                                 f"(baseline {baseline * 1000:.2f} ms)")
            assert_still_playing(session)

    run(main())
