"""Just enough music theory for the arranger: scales, chords, voicings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Scales as semitone offsets from the tonic.
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "minor_pentatonic": (0, 3, 5, 7, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
}

#: Chord qualities as semitone offsets from the chord root.
CHORD_QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7),
    "m": (0, 3, 7),
    "5": (0, 7),
    "sus4": (0, 5, 7),
    "6": (0, 4, 7, 9),
    "7": (0, 4, 7, 10),
    "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11),
    "9": (0, 4, 7, 10, 14),
    "m9": (0, 3, 7, 10, 14),
    "m7b5": (0, 3, 6, 10),
}

#: Notes in every chord voicing (pads always have this many oscillators pairs).
VOICES_PER_CHORD = 4


@dataclass(frozen=True)
class Chord:
    """A chord of a progression: ``root`` semitones above the key's tonic and a quality."""

    root: int
    quality: str = ""

    def __post_init__(self):
        if self.quality not in CHORD_QUALITIES:
            raise ValueError(
                f"unknown chord quality {self.quality!r}; use one of {sorted(CHORD_QUALITIES)}"
            )

    def intervals(self) -> tuple[int, ...]:
        return CHORD_QUALITIES[self.quality]


def midi_to_hz(midi: float | np.ndarray) -> float | np.ndarray:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def nearest_in_range(pitch_class: int, low: int) -> int:
    """The MIDI note of ``pitch_class`` in ``[low, low + 12)``."""
    return low + (pitch_class - low) % 12


def voice_chord(key: int, chord: Chord, center: int = 60, n: int = VOICES_PER_CHORD) -> tuple[int, ...]:
    """Close voicing of ``chord`` (in key ``key``, a MIDI note) around ``center``.

    Exactly ``n`` notes: five-note chords drop the fifth, two- and three-note
    chords double the root an octave up. Each tone is placed within half an
    octave of ``center``, which keeps voice leading smooth between chords.
    """
    tones = list(chord.intervals())
    if len(tones) > n and 7 in tones:
        tones.remove(7)
    tones = tones[:n]
    root_pc = (key + chord.root) % 12
    low = center - 6
    notes = sorted(nearest_in_range((root_pc + t) % 12, low) for t in tones)
    while len(notes) < n:
        notes.append(notes[len(notes) % max(1, len(tones))] + 12)
        notes.sort()
    return tuple(notes)


def spread_voicing(key: int, chord: Chord, center: int = 57) -> tuple[int, ...]:
    """Open (spread) voicing for pads: root, fifth, then third and seventh (or sixth, or
    the root two octaves up) an octave higher.

    Wide intervals keep neighbouring notes out of each other's critical band,
    so a sustained pad does not beat or roughen.
    """
    tones = chord.intervals()
    third = next((t for t in tones if t in (3, 4, 5)), 7)
    top = next((t for t in tones if t in (9, 10, 11, 14)), 12)
    root = nearest_in_range((key + chord.root) % 12, center - 12)
    fifth = 7 if 7 in tones else next((t for t in tones if t in (6, 8)), 7)
    return (root, root + fifth, root + 12 + third, root + 12 + top)


def bass_root(key: int, chord: Chord, low: int) -> int:
    """The chord's root in the bass octave ``[low, low + 12)``."""
    return nearest_in_range((key + chord.root) % 12, low)


def scale_notes(key: int, scale: str, low: int, high: int) -> np.ndarray:
    """All MIDI notes of ``scale`` on ``key`` within ``[low, high]``, ascending."""
    steps = SCALES[scale]
    notes = [m for m in range(low, high + 1) if (m - key) % 12 in steps]
    return np.asarray(notes, dtype=np.int64)


def chord_tone_set(key: int, chord: Chord) -> set[int]:
    """Pitch classes of the chord's tones."""
    return {(key + chord.root + t) % 12 for t in chord.intervals()}
