"""Ableton Link: d2m leads a Link session's tempo and bar phase, or follows its tempo.

**Licence.** Ableton Link is GPL-2.0-or-later (or licensed commercially from
Ableton), and the Python binding used here, ``aalink``, is GPL-3.0. They are
an optional extra (``pip install -e '.[link]'``) that d2m's MIT code never
imports except here, when ``--link`` or ``--link-follow`` is given; a d2m
installed and distributed without the extra contains no GPL code. Whoever
distributes d2m *together with* the link extra distributes a GPL work.

* ``--link`` (**leader**): d2m joins the session on every network interface
  (Link discovers peers by multicast) and, every :data:`UPDATE_S`, sets the
  session tempo to the tempo of the music beat being heard and, in a music
  bar, forces the session's beat to d2m's (beat ``4 n`` = the downbeat of
  bar ``n``; quantum 4) where they differ by more than
  :data:`PHASE_TOLERANCE_BEATS`, so every peer's bar phase is d2m's bar.
* ``--link-follow`` (**follower**): when a peer changes the session tempo,
  d2m holds that tempo (the operator tempo lock, as ``/d2m/tempo/lock``):
  the dancer no longer sets the tempo until ``/d2m/tempo/unlock``. d2m keeps
  its own bar line (its bars are not shifted onto the session's phase).

The beat positions come from :class:`d2m.midi_clock.BeatTimeline` (the plans
the audio plays); the bridge runs on the event loop (a few microseconds per
update) and reads the session clock and Link's clock at the same moment, so
event-loop lateness delays a correction but does not make it wrong.
"""

from __future__ import annotations

import asyncio
import logging

from d2m.control import MAX_BPM, MIN_BPM
from d2m.midi_clock import BeatTimeline

log = logging.getLogger("d2m.link")

#: How often the bridge updates the Link session (s).
UPDATE_S = 0.02
#: Link quantum: beats per bar shared with the session.
QUANTUM = 4
#: A beat error larger than this (beats) is corrected with a forced beat (2 ms at 120 BPM).
PHASE_TOLERANCE_BEATS = 0.004
#: A tempo change smaller than this (BPM) is not sent (Link rounds tempo far finer).
TEMPO_STEP_BPM = 0.001
#: Follower: a session tempo that moved by at least this (BPM) from what d2m holds is followed.
FOLLOW_MIN_CHANGE_BPM = 0.05

INSTALL = ("Ableton Link needs the link extra (GPL-3.0 aalink + GPL Link): pip install -e '.[link]'")


class LinkUnavailable(RuntimeError):
    """aalink is not installed; the message says what to install."""


def _aalink():
    try:
        import aalink  # noqa: PLC0415 - optional GPL extra, imported only for --link
    except ImportError:
        raise LinkUnavailable(INSTALL) from None
    return aalink


def wrap(x: float, period: float = QUANTUM) -> float:
    """``x`` folded into ``[-period/2, period/2)``."""
    return (x + period / 2) % period - period / 2


class LinkBridge:
    """Joins a Link session; leads it (``follow=False``) or follows its tempo (``follow=True``).

    ``now()`` is the session clock (s), ``latency_s()`` the time from a
    sample's session time to hearing it; ``on_follow(bpm)`` applies a
    followed tempo (the server sends a tempo-lock control).
    """

    def __init__(self, now, sample_rate: int, *, follow: bool = False, latency_s=lambda: 0.0,
                 on_follow=None, initial_bpm: float = 120.0):
        self.now = now
        self.sample_rate = int(sample_rate)
        self.follow = follow
        self.latency_s = latency_s
        self.on_follow = on_follow
        self.initial_bpm = float(initial_bpm)
        self.timeline = BeatTimeline()
        self.link = None
        self._task: asyncio.Task | None = None
        self.tempo_updates = 0
        self.phase_corrections = 0
        self.followed = 0
        self.ignored_tempi = 0
        self.held_bpm: float | None = None
        self.last_error_beats = 0.0
        self._boundary: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        aalink = _aalink()
        self.link = aalink.Link(self.initial_bpm)     # on the running event loop
        self.link.quantum = QUANTUM
        self.link.enabled = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="d2m-link")

    def add_plan(self, plan) -> None:
        self.timeline.add(plan)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(UPDATE_S)
            try:
                self.update()
            except Exception:  # noqa: BLE001 - Link trouble never stops the music
                log.exception("Link update failed")

    def heard_sample(self) -> float:
        return (self.now() - self.latency_s()) * self.sample_rate

    def update(self) -> None:
        link = self.link
        if link is None:
            return
        if self.follow:
            self._follow(link)
            return
        s = self.heard_sample()
        tempo = self.timeline.tempo_at(s, self.sample_rate)
        if tempo is None:
            return
        tempo = min(max(tempo, 20.0), 999.0)        # Link's tempo range
        if abs(link.tempo - tempo) > TEMPO_STEP_BPM:
            link.tempo = tempo
            self.tempo_updates += 1
        if self.timeline.in_music(s):
            s = self.heard_sample()                  # read both clocks as close together as we can
            beat = self.timeline.beat_at(s)
            err = wrap(link.beat - beat)
            self.last_error_beats = err
            if abs(err) > PHASE_TOLERANCE_BEATS:
                link.force_beat(beat)
                self.phase_corrections += 1
        # the tempo changes at the next beat: update right then, not up to UPDATE_S later
        nxt = self.timeline.next_boundary(s)
        if nxt is not None and self._boundary is None:
            delay = (nxt - s) / self.sample_rate
            if delay < UPDATE_S:
                self._boundary = asyncio.get_running_loop().call_later(delay + 1e-4, self._at_boundary)

    def _at_boundary(self) -> None:
        self._boundary = None
        try:
            self.update()
        except Exception:  # noqa: BLE001
            log.exception("Link update failed")

    def _follow(self, link) -> None:
        if link.num_peers == 0:
            return
        bpm = float(link.tempo)
        if self.held_bpm is not None and abs(bpm - self.held_bpm) < FOLLOW_MIN_CHANGE_BPM:
            return
        if not MIN_BPM <= bpm <= MAX_BPM:
            if self.ignored_tempi == 0:
                log.warning("Link session tempo %.2f BPM is outside d2m's %g-%g; not followed", bpm,
                            MIN_BPM, MAX_BPM)
            self.ignored_tempi += 1
            self.held_bpm = bpm
            return
        self.held_bpm = bpm
        self.followed += 1
        log.info("following the Link session's tempo: %.2f BPM", bpm)
        if self.on_follow is not None:
            self.on_follow(bpm)

    async def close(self) -> None:
        if self._boundary is not None:
            self._boundary.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self.link is not None:
            self.link.enabled = False

    def status(self) -> dict:
        link = self.link
        return {"mode": "follow" if self.follow else "lead", "peers": int(link.num_peers) if link else 0,
                "tempo": round(float(link.tempo), 3) if link else None,
                "beat": round(float(link.beat), 3) if link else None, "quantum": QUANTUM,
                "tempo_updates": self.tempo_updates, "phase_corrections": self.phase_corrections,
                "last_error_beats": round(self.last_error_beats, 4), "followed": self.followed,
                "held_bpm": self.held_bpm, "ignored_tempi": self.ignored_tempi}
