"""When MIDI clock, transport and notes go out, and where the beat is: pure schedules from the plans.

Sans-I/O. The live server's MIDI sender (``d2m_server.midi_out``) sends what
:class:`ClockSchedule` computes at the moments it names; the Ableton Link
bridge (``d2m_server.link``) reads :class:`BeatTimeline`. Both follow the
music's *planned* beats (what the audio plays), not the raw dance estimate.

MIDI clock (24 pulses per quarter note, one quarter = one planned beat):

* In a music bar, each beat's 24 pulses divide that beat evenly, so pulse 0
  of every beat is on the beat's sample exactly and the pulse rate follows
  every tempo change (and the small phase corrections between beats).
* Outside music (waiting for the dancer, stopped), pulses run at the plan's
  tempo from the segment's start (the transport is stopped; the clock keeps a
  receiver's tempo display alive, as a drum machine's clock does).
* Transport: **Start** (``FA``) just before the first pulse of the first music
  bar; when the music stops (a segment that is not music), **Stop** (``FC``);
  when it comes back, **Song Position Pointer** (``F2``, 16th notes since the
  first bar, modulo 16384) and **Continue** (``FB``) before that bar's first
  pulse. A receiver starts on the first pulse after Start/Continue, so it
  plays its bar 1 on d2m's bar.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass

from .midi import CHANNELS, score_events
from .plan import MUSIC, SegmentPlan

#: MIDI clock pulses per quarter note (the standard).
PPQN = 24
#: System real-time and common messages.
CLOCK, START, CONTINUE, STOP = 0xF8, 0xFA, 0xFB, 0xFC
SONG_POSITION = 0xF2
#: Song Position Pointer counts 16th notes in 14 bits; longer shows wrap.
SPP_MODULO = 1 << 14
#: Plans a :class:`BeatTimeline` keeps (recent ones; older ones are dropped, bounded memory).
TIMELINE_PLANS = 64
#: Order of messages due at the same sample: transport before the clock pulse, note-offs before note-ons.
_ORDER = {STOP: 0, SONG_POSITION: 1, START: 2, CONTINUE: 2, CLOCK: 3}


@dataclass(frozen=True, order=True)
class Timed:
    """A MIDI message due at ``sample`` on the session's sample timeline."""

    sample: int
    order: int
    message: tuple[int, ...]


def song_position(sixteenths: int) -> tuple[int, int, int]:
    v = int(sixteenths) % SPP_MODULO
    return (SONG_POSITION, v & 0x7F, (v >> 7) & 0x7F)


def clock_pulses(plan: SegmentPlan) -> list[int]:
    """Sample of every clock pulse in the segment (see the module docstring)."""
    if plan.n_samples <= 0:
        return []
    if plan.kind == MUSIC and plan.beat_offsets:
        bounds = [int(o) for o in plan.beat_offsets] + [plan.n_samples]
        out = []
        for a, b in zip(bounds, bounds[1:]):
            out.extend(plan.start_sample + a + int(round((b - a) * j / PPQN)) for j in range(PPQN))
        return out
    period = 60.0 / max(plan.bpm, 1e-3) * plan.sample_rate / PPQN
    n = max(1, int(round(plan.n_samples / period)))
    return [plan.start_sample + int(round(plan.n_samples * j / n)) for j in range(n)]


class ClockSchedule:
    """Plans in (playing order), timed clock and transport messages out.

    :meth:`notes` gives a segment's notes (on the channels of
    :data:`d2m.midi.CHANNELS`) for a sender that also plays the band.
    At the same sample, messages go out in the order Stop, Song Position,
    Start/Continue, clock pulse, note-offs, note-ons.
    """

    def __init__(self) -> None:
        self.playing = False
        self.started = False
        self.music_beats = 0           # music beats since the first bar (song position in quarters)
        self.pulses = 0

    def add_plan(self, plan: SegmentPlan) -> list[Timed]:
        pulses = clock_pulses(plan)
        out: list[Timed] = []
        music = plan.kind == MUSIC and bool(plan.beat_offsets)
        at = plan.start_sample
        if music and not self.playing:
            if not self.started:
                out.append(Timed(at, _ORDER[START], (START,)))
                self.started = True
            else:
                out.append(Timed(at, _ORDER[SONG_POSITION], song_position(4 * self.music_beats)))
                out.append(Timed(at, _ORDER[CONTINUE], (CONTINUE,)))
            self.playing = True
        elif not music and self.playing:
            out.append(Timed(at, _ORDER[STOP], (STOP,)))
            self.playing = False
        if music:
            self.music_beats += len(plan.beat_offsets)
        out.extend(Timed(s, _ORDER[CLOCK], (CLOCK,)) for s in pulses)
        self.pulses += len(pulses)
        return out

    @staticmethod
    def notes(plan: SegmentPlan, score) -> list[Timed]:
        """Note-on/off messages of a segment's score (drums on channel 10, GM drum map)."""
        out: list[Timed] = []
        if score is None:
            return out
        for ev in score_events(plan, score):
            ch = CHANNELS[ev.part]
            out.append(Timed(ev.start, 5, (0x90 | ch, ev.note, ev.velocity)))
            out.append(Timed(ev.end, 4, (0x80 | ch, ev.note, 0)))
        return out


class BeatTimeline:
    """Where the music's beat is at any sample, from the recent plans (for Ableton Link).

    The beat position counts quarter notes so that a music bar ``n`` of four
    beats starts at beat ``4 n`` (Link's bar phase with quantum 4 is then
    d2m's beat in the bar); between beats it moves linearly. Outside music it
    runs on at the plan's tempo from where it was.
    """

    def __init__(self, keep: int = TIMELINE_PLANS):
        # (start sample, end sample, boundary samples, boundary beats)
        self._segs: collections.deque = collections.deque(maxlen=keep)
        self._starts: collections.deque = collections.deque(maxlen=keep)

    def add(self, plan: SegmentPlan) -> None:
        if plan.n_samples <= 0:
            return
        if self._segs and plan.start_sample < self._segs[-1][1]:
            return                      # out of order / a repeat: ignore
        if plan.kind == MUSIC and plan.beat_offsets:
            n = len(plan.beat_offsets)
            bounds = [plan.start_sample + int(o) for o in plan.beat_offsets] + [plan.end_sample]
            beats = [float(plan.bar * plan.beats_per_bar + i) for i in range(n + 1)]
        else:
            b0 = self.beat_at(plan.start_sample) if self._segs else 0.0
            b0 = 0.0 if b0 is None else b0
            bounds = [plan.start_sample, plan.end_sample]
            beats = [b0, b0 + plan.duration * plan.bpm / 60.0]
        self._segs.append((plan.start_sample, plan.end_sample, bounds, beats, plan.kind == MUSIC))
        self._starts.append(plan.start_sample)

    @property
    def end_sample(self) -> int | None:
        return self._segs[-1][1] if self._segs else None

    def _find(self, sample: float):
        if not self._segs:
            return None
        i = bisect.bisect_right(self._starts, sample) - 1
        if i < 0:
            return None
        return self._segs[i]

    def beat_at(self, sample: float) -> float | None:
        """Beat position at ``sample`` (past the last plan: its last tempo continues); None if before all."""
        seg = self._find(sample)
        if seg is None:
            return None
        _, _, bounds, beats, _ = seg
        j = min(max(bisect.bisect_right(bounds, sample) - 1, 0), len(bounds) - 2)
        a, b = bounds[j], bounds[j + 1]
        return beats[j] + (beats[j + 1] - beats[j]) * (sample - a) / (b - a)

    def tempo_at(self, sample: float, sample_rate: int) -> float | None:
        """Tempo (BPM) of the beat interval holding ``sample``."""
        seg = self._find(sample)
        if seg is None:
            return None
        _, _, bounds, beats, _ = seg
        j = min(max(bisect.bisect_right(bounds, sample) - 1, 0), len(bounds) - 2)
        return 60.0 * (beats[j + 1] - beats[j]) * sample_rate / (bounds[j + 1] - bounds[j])

    def next_boundary(self, sample: float) -> int | None:
        """The first beat boundary after ``sample`` (None past the last plan)."""
        seg = self._find(sample)
        if seg is None:
            return None
        bounds = seg[2]
        j = bisect.bisect_right(bounds, sample)
        return bounds[j] if j < len(bounds) else None

    def in_music(self, sample: float) -> bool:
        """Whether ``sample`` falls in a music bar (at or before the last plan's end)."""
        seg = self._find(sample)
        return seg is not None and seg[4] and sample < seg[1]
