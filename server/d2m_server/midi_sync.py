"""The live server's tempo links to the rest of the show: MIDI file, MIDI out, Ableton Link.

:class:`ShowSync` is what :class:`~d2m_server.app.LiveSession` calls: each
planned segment (``on_plan``), each rendered one with its score
(``on_rendered``), each played block (``on_block``) and the dancer's accents
(``add_accent``). Each part is optional and off by default:

* ``--record-midi FILE.mid``: :class:`~d2m_server.midi_record.MidiRecorder`;
* ``--midi-out NAME`` (``--midi-api``, ``--midi-connect``, ``--midi-notes``):
  :class:`~d2m_server.midi_out.MidiOut` (python-rtmidi, the ``midi`` extra);
* ``--link`` / ``--link-follow``: :class:`~d2m_server.link.LinkBridge`
  (aalink, the GPL ``link`` extra, imported only then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("d2m.midi")


@dataclass
class SyncOptions:
    record_midi: str | None = None     #: write the score as a MIDI file (readable after a kill)
    midi_out: str | None = None        #: MIDI output port name (virtual unless midi_connect)
    midi_api: str = "auto"             #: auto | alsa | jack
    midi_connect: bool = False         #: connect to the existing port whose name contains midi_out
    midi_notes: bool = False           #: also send the band's notes (not only clock + transport)
    link: bool = False                 #: lead an Ableton Link session (tempo, bar phase, quantum 4)
    link_follow: bool = False          #: follow a Link session's tempo (tempo lock)

    @property
    def any(self) -> bool:
        return bool(self.record_midi or self.midi_out or self.link or self.link_follow)


class ShowSync:
    def __init__(self, options: SyncOptions, *, clock, now, sample_rate: int, latency_s, control=None,
                 initial_bpm: float = 120.0):
        self.options = options
        self.sr = int(sample_rate)
        self.recorder = None
        self.midi = None
        self.link = None
        o = options
        if o.record_midi:
            from .midi_record import MidiRecorder
            self.recorder = MidiRecorder(o.record_midi, self.sr)
        if o.midi_out:
            from .midi_out import MidiOut
            self.midi = MidiOut(o.midi_out, clock, self.sr, api=o.midi_api, connect=o.midi_connect,
                                notes=o.midi_notes, offset_s=latency_s)
        if o.link or o.link_follow:
            from .link import LinkBridge

            def follow(bpm: float) -> None:
                if control is not None:
                    from d2m.control import Control
                    control(Control(tempo_lock=True, bpm=round(bpm, 3)))

            self.link = LinkBridge(now, self.sr, follow=o.link_follow, latency_s=latency_s,
                                   on_follow=follow, initial_bpm=initial_bpm)

    async def start(self) -> None:
        if self.link is not None:
            await self.link.start()

    def on_plan(self, plan) -> None:
        if self.midi is not None:
            self.midi.add_plan(plan)
        if self.link is not None:
            self.link.add_plan(plan)

    def on_rendered(self, plan, score) -> None:
        if self.recorder is not None:
            self.recorder.add(plan, score)
        if self.midi is not None:
            self.midi.add_score(plan, score)

    def on_block(self, start_frame: int) -> None:
        """A block starting at ``start_frame`` is playing: accents before it can no longer come."""
        if self.recorder is not None:
            self.recorder.played_to(start_frame)

    def add_accent(self, sample: int, note: int, velocity: float, length: int | None = None) -> None:
        """An accent (GM drum note on channel 10, velocity 0..1) for the MIDI file and the notes out."""
        if self.recorder is not None:
            self.recorder.add_accent(sample, note, velocity, length)
        if self.midi is not None and self.midi.notes:
            from d2m.midi import ACCENT_NOTE_S, CHANNELS, velocity_127
            from d2m.midi_clock import Timed
            ch = CHANNELS["accents"]
            end = int(sample) + (length or int(ACCENT_NOTE_S * self.sr))
            self.midi.sender.schedule([Timed(int(sample), 5, (0x90 | ch, int(note), velocity_127(velocity))),
                                       Timed(end, 4, (0x80 | ch, int(note), 0))])

    def add_hit(self, hit) -> None:
        """A dancer's hit (d2m.hits.Hit): its accent, if it has one, as an accent note."""
        from d2m.midi import hit_accent
        item = hit_accent(hit)
        if item is not None:
            self.add_accent(*item)

    def describe(self) -> list[str]:
        parts = []
        if self.recorder is not None:
            parts.append(f"MIDI recording {self.recorder.path}")
        if self.midi is not None:
            parts.append(f"MIDI out {self.midi.name!r} ({self.midi.api}"
                         f"{', notes' if self.midi.notes else ''})")
        if self.link is not None:
            parts.append("Ableton Link " + ("follower" if self.link.follow else "leader"))
        return parts

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
        if self.midi is not None:
            self.midi.close()
        if self.recorder is not None:
            self.recorder.close()

    def status(self) -> dict:
        return {"record": self.recorder.status() if self.recorder else None,
                "out": self.midi.status() if self.midi else None,
                "link": self.link.status() if self.link else None}
