"""The band's score as a Standard MIDI File, with a tempo map that follows the dancer.

Sans-I/O: :class:`MidiScoreWriter` takes each segment's plan and score (the
synth's :class:`~d2m.synth.arranger.Score`; ``None`` for a backend without
one) in playing order and returns the bytes of a complete, valid SMF (format
1) at any moment, so the live recorder can rewrite its file while the show
goes on and ``d2m render --midi`` writes the same file offline. The bytes are
encoded here (a few lines of the SMF 1.0 spec); no MIDI library is needed to
write, and any one (mido, pretty_midi, a DAW) reads the file.

* **Tempo map** (track 0): every beat of every plan is one quarter note, tick
  ``k * PPQ`` for the k-th beat of the show, and each quarter's tempo is that
  beat's length, so every planned beat sits exactly on a quarter-note tick.
  Tempi are rounded to whole microseconds with the error carried to the next
  beat, so beat k of the file is within 1 us of the plan however long the
  show. Music bars are bars of ``beats/4``; a segment that is not music
  (waiting for the dancer, stopped) is whole quarter notes of its own tempo
  (about the plan's BPM, stretched to fit), in bars of 1/4, so every music bar
  starts on a bar line in a DAW. Markers name the genre where it changes.
* **Tracks**: drums on channel 10 with the General MIDI drum map
  (:data:`GM_DRUMS`), bass, chords, lead, pad, and accents (helper items
  ``(sample, note, velocity)`` from the dancer's hits), one track each, with
  General MIDI programs (:data:`PROGRAMS`). Notes are at their sample
  positions converted to ticks (resolution :data:`PPQ` per beat: 0.5 ms at
  120 BPM).

Incremental: events are encoded once, when no later input can precede them
(the end of the last segment added, or ``encode_until``), so a long show costs
a few bytes per note, and rebuilding the file is a join of byte strings.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import struct
from dataclasses import dataclass

from .plan import MUSIC, SegmentPlan

#: Ticks per quarter note (= per planned beat).
PPQ = 960
#: Microseconds per quarter-note limits of a MIDI tempo event (24 bits).
MAX_TEMPO_US = 0xFFFFFF
MIN_TEMPO_US = 1
#: Length of a drum note (s): GM drums are one-shots; players ignore the note-off.
DRUM_NOTE_S = 0.06
#: Length of an accent note (s) when the caller gives none.
ACCENT_NOTE_S = 0.12
#: Pad level giving MIDI velocity 127 (the synth's pad levels are about 0.1-0.5).
PAD_FULL_LEVEL = 0.5
#: MIDI channels (0-based; 9 is General MIDI's drum channel "10").
DRUM_CHANNEL = 9
CHANNELS = {"bass": 0, "chord": 1, "lead": 2, "pad": 3, "drums": DRUM_CHANNEL, "accents": DRUM_CHANNEL}
#: General MIDI programs (0-based) of the pitched parts.
PROGRAMS = {"bass": 38, "chord": 4, "lead": 80, "pad": 89}
#: Track order after the tempo track; the accents track is written only when accents exist.
PARTS = ("drums", "bass", "chord", "lead", "pad", "accents")
TRACK_NAMES = {"drums": "drums", "bass": "bass", "chord": "chords", "lead": "lead", "pad": "pad",
               "accents": "accents"}

#: General MIDI drum notes of the synth's drum sounds (a tuple: layered sounds play both).
GM_DRUMS: dict[str, tuple[int, ...]] = {
    "kick": (36,),            # Bass Drum 1
    "snare": (38,),           # Acoustic Snare
    "snare_tight": (40,),     # Electric Snare
    "snare_disco": (40,),
    "snare_clap": (38, 39),
    "krump_snare": (38, 39),
    "brush": (38,),
    "clap": (39,),            # Hand Clap
    "clap_big": (39,),
    "snap": (37,),            # Side Stick (GM has no finger snap)
    "rim": (37,),
    "hat": (42,),             # Closed Hi-Hat
    "hat_bright": (42,),
    "hat_soft": (44,),        # Pedal Hi-Hat
    "open_hat": (46,),        # Open Hi-Hat
    "ride": (51,),            # Ride Cymbal 1
    "crash": (49,),           # Crash Cymbal 1
    "tom_low": (45,),         # Low Tom
    "tom_mid": (47,),         # Low-Mid Tom
    "tom": (45,),
    "shaker": (70,),          # Maracas
    "tambourine": (54,),
    "cowbell": (56,),
    "conga": (63,),           # Open High Conga
}
#: A sound the map does not know (a new preset sound) plays this (Claves), counted.
UNKNOWN_DRUM_NOTE = 75
#: GM drum note of a dancer's hit accent (Crash Cymbal 2), and its velocity at hit strength 1
#: (just over the threshold) rising to 1.0 at :data:`ACCENT_FULL_STRENGTH`.
ACCENT_NOTE = 57
ACCENT_BASE_VELOCITY = 0.6
ACCENT_FULL_STRENGTH = 3.0


def hit_accent(hit) -> tuple[int, int, float] | None:
    """``(sample, note, velocity)`` of a :class:`d2m.hits.Hit`'s accent (None: it has no accent)."""
    sample = getattr(hit, "accent_sample", None)
    if sample is None:
        return None
    strength = float(getattr(hit, "strength", 1.0))
    frac = min(1.0, max(0.0, (strength - 1.0) / (ACCENT_FULL_STRENGTH - 1.0)))
    return int(sample), ACCENT_NOTE, ACCENT_BASE_VELOCITY + (1.0 - ACCENT_BASE_VELOCITY) * frac


def gm_drum_notes(sound: str) -> tuple[int, ...] | None:
    """GM notes of a drum sound: exact name, then without ``_ghost``, then its family (``kick_808`` -> kick)."""
    name = sound
    while name:
        if name in GM_DRUMS:
            return GM_DRUMS[name]
        if name.endswith("_ghost"):
            name = name[: -len("_ghost")]
            continue
        if "_" not in name:
            return None
        name = name.rsplit("_", 1)[0]
    return None


def velocity_127(v: float) -> int:
    """A d2m velocity (0..1, louder values clipped) as MIDI velocity 1..127."""
    if not math.isfinite(v):
        return 1
    return int(min(127, max(1, round(127 * v))))


@dataclass(frozen=True, order=True)
class NoteEvent:
    """One note on the session's sample timeline (end exclusive)."""

    start: int        #: sample of the note-on
    end: int          #: sample of the note-off (> start)
    part: str         #: a key of :data:`CHANNELS`
    note: int         #: MIDI note 0..127
    velocity: int     #: MIDI velocity 1..127


def score_events(plan: SegmentPlan, score, *, unknown: list | None = None) -> list[NoteEvent]:
    """The notes of one segment's score (hits, bass/chord/lead notes), absolute samples.

    ``score`` has ``hits`` (``sound, offset, velocity``) and ``notes``
    (``part, offset, length, midi, velocity``) as :class:`d2m.synth.arranger.Score`.
    Unknown drum sounds are appended to ``unknown`` (if given). The pad is not
    here (it is held across segments: :class:`MidiScoreWriter`).
    """
    out: list[NoteEvent] = []
    s0 = plan.start_sample
    drum_len = max(1, int(round(DRUM_NOTE_S * plan.sample_rate)))
    for hit in getattr(score, "hits", ()) or ():
        notes = gm_drum_notes(hit.sound)
        if notes is None:
            if unknown is not None:
                unknown.append(hit.sound)
            notes = (UNKNOWN_DRUM_NOTE,)
        at = s0 + int(hit.offset)
        for n in notes:
            out.append(NoteEvent(at, at + drum_len, "drums", n, velocity_127(hit.velocity)))
    for note in getattr(score, "notes", ()) or ():
        part = note.part if note.part in CHANNELS else "lead"
        midis = note.midi if isinstance(note.midi, tuple) else (note.midi,)
        at = s0 + int(note.offset)
        end = at + max(1, int(note.length))
        for m in midis:
            if 0 <= int(m) <= 127:
                out.append(NoteEvent(at, end, part, int(m), velocity_127(note.velocity)))
    return out


# -- SMF encoding -----------------------------------------------------------------------------

def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity."""
    if n < 0:
        raise ValueError("delta time must be >= 0")
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def meta(kind: int, data: bytes) -> bytes:
    return bytes((0xFF, kind)) + vlq(len(data)) + data


def tempo_meta(us_per_quarter: int) -> bytes:
    return meta(0x51, int(us_per_quarter).to_bytes(3, "big"))


def time_signature_meta(numerator: int) -> bytes:
    # n/4, 24 clocks per metronome click, 8 32nds per quarter
    return meta(0x58, bytes((max(1, min(255, numerator)), 2, 24, 8)))


def text_meta(kind: int, text: str) -> bytes:
    return meta(kind, text.encode("utf-8", "replace")[:200])


END_OF_TRACK = meta(0x2F, b"")


class _Track:
    """One track's encoded events so far; ``chunk()`` is a complete MTrk chunk."""

    def __init__(self, name: str):
        self.data = bytearray()
        self.tick = 0
        self.events = 0
        self.add(0, text_meta(0x03, name))

    def add(self, tick: int, msg: bytes) -> None:
        tick = max(tick, self.tick)
        self.data += vlq(tick - self.tick)
        self.data += msg
        self.tick = tick
        self.events += 1

    def chunk(self, end_tick: int | None = None) -> bytes:
        end = max(self.tick, end_tick or 0)
        tail = vlq(end - self.tick) + END_OF_TRACK
        return b"MTrk" + struct.pack(">I", len(self.data) + len(tail)) + bytes(self.data) + tail


class TempoMap:
    """Beat boundaries on the sample timeline and their ticks (one quarter note per beat)."""

    def __init__(self, sample_rate: int, ppq: int = PPQ):
        self.sample_rate = int(sample_rate)
        self.ppq = int(ppq)
        self.samples: list[int] = []    # beat boundaries, strictly increasing
        self._us_total = 0               # microseconds of all tempo events so far (error diffusion)

    @property
    def end_sample(self) -> int | None:
        return self.samples[-1] if self.samples else None

    def extend(self, boundaries: list[int]) -> list[tuple[int, int]]:
        """Add boundaries (after the current end); return ``(tick, us_per_quarter)`` per new beat."""
        out = []
        for b in boundaries:
            b = int(b)
            if self.samples and b <= self.samples[-1]:
                continue
            if not self.samples:
                self.samples.append(0)   # the file starts at session time 0 (a lead-in beat if later)
                if b == 0:
                    continue
            k = len(self.samples) - 1
            target_us = int(round(b / self.sample_rate * 1e6))
            us = min(MAX_TEMPO_US, max(MIN_TEMPO_US, target_us - self._us_total))
            self._us_total += us
            self.samples.append(b)
            out.append((k * self.ppq, us))
        return out

    def tick_of(self, sample: int) -> int:
        """Tick of a sample position; past the end, the last beat's tempo continues."""
        s = self.samples
        if len(s) < 2:
            beat = 60.0 / 120.0 * self.sample_rate   # nothing planned yet: 120 BPM
            return int(round(sample / beat * self.ppq))
        i = min(max(bisect.bisect_right(s, sample) - 1, 0), len(s) - 2)
        a, b = s[i], s[i + 1]
        return int(round((i + (sample - a) / (b - a)) * self.ppq))


class MidiScoreWriter:
    """Plans and scores in (playing order), a complete Standard MIDI File out at any time.

    ``add(plan, score)`` once per segment, in order; ``add_accent(sample,
    note, velocity)`` for accent items (the accents track, channel 10 notes
    of the GM drum map by default); ``to_bytes()`` for the file so far
    (events not yet final, such as notes still sounding, are left out until
    they are); ``finish()`` for the final file with everything.
    """

    def __init__(self, sample_rate: int, *, ppq: int = PPQ, accent_note_s: float = ACCENT_NOTE_S):
        self.sample_rate = int(sample_rate)
        self.tempo = TempoMap(sample_rate, ppq)
        self.ppq = int(ppq)
        self.accent_len = max(1, int(round(accent_note_s * sample_rate)))
        self._conductor = _Track("d2m tempo map")
        self._tracks = {p: _Track(TRACK_NAMES[p]) for p in PARTS}
        for part, prog in PROGRAMS.items():
            self._tracks[part].add(0, bytes((0xC0 | CHANNELS[part], prog)))
        self._pending: list[tuple[int, int, int, str, bytes]] = []   # (sample, order, seq, part, msg)
        self._seq = itertools.count()
        self._horizon = 0                # samples before this are final
        self._encoded_to = 0             # events before this sample have been encoded
        self._accent_bound: int | None = None   # live: no accent will come before this sample
        self._meter: int | None = None
        self._genre: str | None = None
        self._pad: tuple[tuple[int, ...], int, int] | None = None   # (midis, velocity, start)
        self._expected: int | None = None
        self.segments = 0
        self.notes = 0
        self.accents = 0
        self.late_accents = 0            #: accents given for samples already written (moved to the horizon)
        self.unknown_sounds: set[str] = set()
        self.gaps = 0                    #: segments that did not start where the previous one ended

    # -- input ------------------------------------------------------------------------------
    def add(self, plan: SegmentPlan, score=None) -> None:
        """One segment (its plan, and its score if the generator made one), in playing order."""
        if plan.sample_rate != self.sample_rate:
            raise ValueError(f"plan at {plan.sample_rate} Hz, writer at {self.sample_rate} Hz")
        if self._expected is not None and plan.start_sample != self._expected:
            if plan.start_sample < self._expected:
                return                   # a segment already written (a resync): ignore
            self.gaps += 1
        self._expected = plan.end_sample
        self.segments += 1
        self._tempo_for(plan)
        unknown: list = []
        for ev in score_events(plan, score, unknown=unknown) if score is not None else ():
            self._note(ev)
        self.unknown_sounds.update(unknown)
        self._pad_for(plan, score)
        self._horizon = max(self._horizon, plan.end_sample)
        self._encode(self._safe())

    def add_accent(self, sample: int, note: int, velocity: float, length: int | None = None) -> None:
        """An accent note (GM drum map note on channel 10) at ``sample``, velocity 0..1."""
        sample = int(sample)
        if sample < self._encoded_to:
            self.late_accents += 1
            sample = self._encoded_to
        n = int(note)
        if not 0 <= n <= 127:
            raise ValueError(f"MIDI note must be 0..127, got {note}")
        self.accents += 1
        self._note(NoteEvent(sample, sample + (length or self.accent_len), "accents", n,
                             velocity_127(float(velocity))))

    def encode_until(self, sample: int) -> None:
        """Live accents: promise that no accent before ``sample`` will come.

        From the first call on, events are final only before the latest such
        sample (the playback position, say) as well as before the end of the
        last segment added; without calls, accents must all be given before
        the segments they fall in (offline).
        """
        self._accent_bound = max(int(sample), self._accent_bound or 0)
        self._encode(self._safe())

    def _safe(self) -> int:
        if self._accent_bound is None:
            return self._horizon
        return min(self._horizon, self._accent_bound)

    # -- output -----------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """A complete SMF with every final event so far (valid at every call)."""
        self._encode(self._safe())
        return self._file()

    def finish(self) -> bytes:
        """Close held notes and encode everything; the final file (no more input after this)."""
        if self._pad is not None:
            self._pad_off(self._horizon)
        self._encode(None)
        return self._file()

    def status(self) -> dict:
        return {"segments": self.segments, "notes": self.notes, "accents": self.accents,
                "late_accents": self.late_accents, "beats": max(0, len(self.tempo.samples) - 1),
                "unknown_sounds": sorted(self.unknown_sounds), "gaps": self.gaps,
                "bytes": sum(len(t.data) for t in self._tracks.values()) + len(self._conductor.data)}

    # -- internals --------------------------------------------------------------------------
    def _tempo_for(self, plan: SegmentPlan) -> None:
        if plan.n_samples <= 0:
            return
        if plan.kind == MUSIC and plan.beat_offsets:
            bounds = [plan.start_sample + int(o) for o in plan.beat_offsets] + [plan.end_sample]
            meter = len(plan.beat_offsets)
        else:   # whole quarter notes of about the plan's tempo, in bars of 1/4
            beat = 60.0 / max(plan.bpm, 1e-3) * self.sample_rate
            q = max(1, int(round(plan.n_samples / beat)))
            bounds = [plan.start_sample + int(round(plan.n_samples * i / q)) for i in range(q + 1)]
            meter = 1
        new = self.tempo.extend(bounds)
        seg_tick = self.tempo.tick_of(plan.start_sample)
        if meter != self._meter:
            self._conductor.add(seg_tick, time_signature_meta(meter))
            self._meter = meter
        label = plan.genre if plan.kind == MUSIC else plan.kind
        if label != self._genre:
            self._conductor.add(seg_tick, text_meta(0x06, label))
            self._genre = label
        for tick, us in new:
            self._conductor.add(tick, tempo_meta(us))

    def _pad_for(self, plan: SegmentPlan, score) -> None:
        midis = tuple(int(m) for m in getattr(score, "pad_midis", ()) or () if 0 <= int(m) <= 127)
        level = float(getattr(score, "pad_level", 0.0) or 0.0) if score is not None else 0.0
        if not midis or level <= 0.0:
            if self._pad is not None:
                self._pad_off(plan.start_sample)
            return
        vel = velocity_127(level / PAD_FULL_LEVEL)
        if self._pad is not None and self._pad[0] == midis:
            return                      # the same chord holds on (a tie)
        if self._pad is not None:
            self._pad_off(plan.start_sample)
        self._pad = (midis, vel, plan.start_sample)

    def _pad_off(self, end: int) -> None:
        midis, vel, start = self._pad
        self._pad = None
        for m in midis:
            self._note(NoteEvent(start, max(end, start + 1), "pad", m, vel))

    def _note(self, ev: NoteEvent) -> None:
        ch = CHANNELS[ev.part]
        self.notes += 1
        # note-offs sort before note-ons at the same sample (order 0 < 1)
        heapq.heappush(self._pending, (ev.start, 1, next(self._seq), ev.part,
                                       bytes((0x90 | ch, ev.note, ev.velocity))))
        heapq.heappush(self._pending, (ev.end, 0, next(self._seq), ev.part, bytes((0x80 | ch, ev.note, 0))))

    def _encode(self, until: int | None) -> None:
        p = self._pending
        while p and (until is None or p[0][0] < until):
            sample, _, _, part, msg = heapq.heappop(p)
            self._tracks[part].add(self.tempo.tick_of(sample), msg)
        if until is not None:
            self._encoded_to = max(self._encoded_to, until)

    def _file(self) -> bytes:
        end_tick = self.tempo.tick_of(self._horizon) if self.tempo.samples else 0
        tracks = [self._conductor] + [self._tracks[p] for p in PARTS
                                      if p != "accents" or self._tracks[p].events > 1]
        header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), self.ppq)
        return header + b"".join(t.chunk(end_tick) for t in tracks)


def write_midi_file(path, plans, scores, sample_rate: int, accents=()) -> dict:
    """Write plans and their scores (``None`` where a segment has none) to ``path``; returns status."""
    w = MidiScoreWriter(sample_rate)
    for item in accents:                 # first: offline, segments are final once added
        w.add_accent(*item)
    for plan, score in zip(plans, scores):
        w.add(plan, score)
    data = w.finish()
    with open(path, "wb") as f:
        f.write(data)
    return w.status()
