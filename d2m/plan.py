"""What the music does next: one :class:`SegmentPlan` per segment.

Segments are planned on bar boundaries (``kind == "music"``) or, while the
tracker has not locked on to the dancer yet, as short one-beat ``"idle"``
segments, so the first full bar can start exactly on a dance beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Segment kinds.
MUSIC = "music"      # a full bar of the arrangement
IDLE = "idle"        # waiting for the dancer: soft pad, no drums
SILENCE = "silence"  # stopped by the operator: ringing notes decay, then silence

KINDS = (MUSIC, IDLE, SILENCE)


@dataclass(frozen=True, eq=False)
class SegmentPlan:
    """A segment of music on the session's sample timeline.

    All positions are integer sample indices at ``sample_rate`` counted from the
    start of the session, so the plan is exact and replayable.
    """

    index: int                      #: sequential number of the segment (0, 1, 2, ...)
    kind: str                       #: MUSIC, IDLE or SILENCE
    start_sample: int               #: first sample of the segment on the session timeline
    n_samples: int                  #: length of the segment in samples
    sample_rate: int                #: samples per second
    bar: int                        #: music bar number (0-based); for IDLE/SILENCE the bar it precedes
    beat_offsets: tuple[int, ...]   #: sample offset of each beat from ``start_sample``
    bpm: float                      #: tempo of this segment (60 * beats / seconds)
    genre: str                      #: genre key from :data:`d2m.genres.GENRES`
    prompt: str = ""                #: operator's text prompt (MusicGen template; synth ignores it)
    energy: float = 0.5             #: 0..1, drives density and intensity
    sharpness: float = 0.5          #: 0..1, staccato/hard hits versus smooth flow
    seed: int = 0                   #: per-session seed; generators derive per-bar randomness from it
    beats_per_bar: int = 4          #: metre (beats in a full bar)
    genre_probs: tuple[float, ...] = ()     #: genre estimate over GENRES (empty if unknown)
    motion_envelope: np.ndarray | None = field(default=None, repr=False)
    """Kinetic onset envelope at the motion rate (60 Hz) over the rhythm window
    ending at the decision time; MusicGen's rhythm encoder reads it."""
    motion_peaks: np.ndarray | None = field(default=None, repr=False)
    """Binary motion-beat vector aligned with ``motion_envelope``."""
    decided_at: float = 0.0         #: session time (s) at which the plan was made
    # song form (d2m.form); empty for plans made without one (the arranger then uses bar % 8)
    section: str = ""               #: section of :data:`d2m.form.SECTIONS` this bar is in ("" = none)
    section_bar: int = 0            #: bar within the section (0-based)
    section_bars: int = 0           #: the section's planned length (bars)
    bars_to_next_section: int = 0   #: bars until the next section starts (1 = last bar of this one)
    next_section: str = ""          #: the section after this one (final within d2m.form.ANNOUNCE_BARS)
    section_index: int = 0          #: sequential number of the section since the music (re)started

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.n_samples

    @property
    def beats(self) -> int:
        return len(self.beat_offsets)

    @property
    def start_time(self) -> float:
        return self.start_sample / self.sample_rate

    @property
    def duration(self) -> float:
        return self.n_samples / self.sample_rate

    def beat_samples(self) -> list[int]:
        """Absolute sample index of every beat in the segment."""
        return [self.start_sample + o for o in self.beat_offsets]

    def beat_times(self) -> list[float]:
        """Session time (s) of every beat in the segment."""
        return [s / self.sample_rate for s in self.beat_samples()]

    def to_dict(self) -> dict:
        """JSON-friendly summary (for status, WebSocket and OSC 'next segment' events)."""
        return {
            "index": self.index,
            "kind": self.kind,
            "start_sample": self.start_sample,
            "n_samples": self.n_samples,
            "start_time": round(self.start_time, 6),
            "duration": round(self.duration, 6),
            "bar": self.bar,
            "beats": self.beats,
            "bpm": round(self.bpm, 3),
            "genre": self.genre,
            "prompt": self.prompt,
            "energy": round(self.energy, 4),
            "sharpness": round(self.sharpness, 4),
            "section": self.section,
            "section_bar": self.section_bar,
            "bars_to_next_section": self.bars_to_next_section,
            "next_section": self.next_section,
        }
