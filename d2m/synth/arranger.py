"""The arranger: turns a :class:`~d2m.plan.SegmentPlan` and a genre preset into a score.

A score is a list of drum hits and notes at sample offsets inside the
segment, plus what the pad should play. Everything random is drawn from
``np.random.default_rng([seed, bar, ...])``, so a bar always arranges the same.

Form: 8-bar phrases. The last bar of a phrase ends in a drum fill, the
first bar of the next (and the first bar after a pause) opens with a crash;
the lead plays 2-bar motifs in an A A' B A'' shape in every other phrase
(every phrase at high energy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..genres import GENRES
from ..plan import SegmentPlan
from .drums import GHOST_SUFFIX, SOUNDS
from .presets import HIT_VELOCITY, GenrePreset
from .theory import Chord, bass_root, chord_tone_set, scale_notes, spread_voicing, voice_chord

#: 16th-note steps per beat.
STEPS_PER_BEAT = 4
#: Bars per phrase (fills at the end, crash at the start).
PHRASE_BARS = 8
#: Minimum energy for fills and crashes.
FILL_MIN_ENERGY = 0.3
#: Energy above which the lead plays in every phrase, not only every other one.
LEAD_ALWAYS_ENERGY = 0.75
#: Lead range in semitones above the preset's ``lead_low``.
LEAD_RANGE = 19
#: Random velocity spread of drum hits (fraction) for a human feel.
VELOCITY_JITTER = 0.07
#: Gate (held fraction of a note's written length) at sharpness 0 and 1.
GATE_RANGE = (0.96, 0.45)
#: Velocity factor of bass notes that start between beats.
OFFBEAT_BASS = 0.8
#: Loudness of the pad while waiting for the dancer (idle segments), after the preset's
#: pad and mix gains: about -28 dBFS RMS, whatever the genre.
IDLE_PAD_LEVEL = 0.2


@dataclass(frozen=True)
class Hit:
    """A drum one-shot at ``offset`` samples into the segment."""

    sound: str
    offset: int
    velocity: float
    pan: float = 0.0


@dataclass(frozen=True)
class Note:
    """A pitched note; ``midi`` is a tuple for chords."""

    part: str                 # "bass", "chord" or "lead"
    offset: int
    length: int               # held samples (before release)
    midi: int | tuple[int, ...]
    velocity: float
    glide_from: int | None = None


@dataclass
class Score:
    """What one segment plays."""

    hits: list[Hit] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    pad_midis: tuple[int, ...] = ()
    pad_level: float = 0.0
    bright: float = 0.5
    sharp: float = 0.5
    echo_delay: int = 0       # samples between lead echoes (0: no echo)


def step_grid(beat_offsets, n_samples: int, swing: float = 0.5, swing_unit: int = 16) -> np.ndarray:
    """Sample offset of every 16th step of the segment, plus the segment end.

    Steps are interpolated between consecutive beats (the last beat runs to
    ``n_samples``), so bars of any length and uneven beats stay on the grid.
    Swing delays the off-step of each pair of 16ths (``swing_unit=16``) or of
    eighths (``swing_unit=8``); 0.5 is straight, 2/3 a triplet feel.
    """
    s = float(np.clip(swing, 0.3, 0.75))
    if swing_unit == 8:
        fracs = np.array([0.0, s / 2.0, s, s + (1.0 - s) / 2.0])
    else:
        fracs = np.array([0.0, s / 2.0, 0.5, 0.5 + s / 2.0])
    beats = np.asarray(beat_offsets, dtype=np.float64)
    ends = np.append(beats[1:], float(n_samples))
    lengths = ends - beats
    pos = beats[:, None] + lengths[:, None] * fracs[None, :]
    grid = np.append(np.round(pos.ravel()), float(n_samples)).astype(np.int64)
    return np.clip(grid, 0, n_samples)


def _vel(ch: str) -> float:
    return HIT_VELOCITY.get(ch, 0.0)


def _pattern_step(pattern: str, step: int, bar: int) -> str:
    if len(pattern) == 32:
        return pattern[(bar % 2) * 16 + step % 16]
    return pattern[step % 16]


def _pick(layers, energy: float) -> str:
    """The densest pattern whose threshold ``energy`` reaches (the first one otherwise)."""
    chosen = layers[0][1]
    for threshold, pattern in layers:
        if energy >= threshold:
            chosen = pattern
    return chosen


def _spans(pattern: str, bar: int, n_steps: int, starts: str) -> list[tuple[int, int, str]]:
    """``(step, length_in_steps, char)`` of each note; ``-`` extends the previous note."""
    out: list[list] = []
    for s in range(n_steps):
        ch = _pattern_step(pattern, s, bar)
        if ch in starts:
            out.append([s, 1, ch])
        elif ch == "-" and out and out[-1][0] + out[-1][1] == s:
            out[-1][1] += 1
    return [tuple(x) for x in out]


def _reflect(i: int, n: int) -> int:
    """Fold an index that walked off either end of ``range(n)`` back inside (a melody turning round)."""
    if n <= 1:
        return 0
    period = 2 * (n - 1)
    i %= period
    return i if i < n else period - i


def chord_of(preset: GenrePreset, bar: int) -> Chord:
    return preset.progression[bar % len(preset.progression)]


def _genre_salt(preset: GenrePreset) -> int:
    return GENRES.index(preset.name) if preset.name in GENRES else len(GENRES)


def _seed(plan: SegmentPlan) -> int:
    return int(plan.seed) & 0xFFFFFFFF


class Arranger:
    """Arranges segments for one preset at a time (stateless; the generator carries state)."""

    def idle(self, plan: SegmentPlan, preset: GenrePreset) -> Score:
        """Waiting for the dancer: only the pad, on the chord of the bar to come."""
        level = IDLE_PAD_LEVEL / max(1e-3, preset.pad_gain * preset.mix_gain)  # same loudness in every genre
        return Score(pad_midis=spread_voicing(preset.key, chord_of(preset, plan.bar), preset.pad_center),
                     pad_level=level, bright=0.2, sharp=0.0)

    def music(self, plan: SegmentPlan, preset: GenrePreset, *, after_break: bool = False) -> Score:
        """A full bar: drums, bass, chords, pad and (in some phrases) the lead."""
        energy = float(np.clip(plan.energy, 0.0, 1.0))
        sharp = float(np.clip(plan.sharpness, 0.0, 1.0))
        bar = int(plan.bar)
        grid = step_grid(plan.beat_offsets, plan.n_samples, preset.swing, preset.swing_unit)
        n_steps = len(grid) - 1
        chord = chord_of(preset, bar)
        next_chord = chord_of(preset, bar + 1)
        rng = np.random.default_rng([_seed(plan), bar & 0xFFFFFFFF, _genre_salt(preset), 1])
        score = Score(
            pad_midis=spread_voicing(preset.key, chord, preset.pad_center),
            pad_level=preset.pad_level * (1.0 - 0.5 * sharp) * (0.7 + 0.3 * energy),
            bright=0.25 + 0.7 * energy,
            sharp=sharp,
        )
        self._drums(score, preset, grid, n_steps, bar, energy, rng, after_break)
        gate = GATE_RANGE[0] + (GATE_RANGE[1] - GATE_RANGE[0]) * sharp
        self._bass(score, preset, grid, n_steps, bar, energy, chord, next_chord, gate)
        self._chords(score, preset, grid, n_steps, bar, energy, chord, gate)
        if self._lead_on(bar, energy, preset):
            self._lead(score, plan, preset, grid, n_steps, bar, energy, gate)
            beat_len = plan.n_samples / max(1, plan.beats)
            score.echo_delay = int(round(beat_len * preset.echo_steps / STEPS_PER_BEAT))
        return score

    # -- parts ---------------------------------------------------------------

    def _drums(self, score, preset, grid, n_steps, bar, energy, rng, after_break):
        drive = 0.6 + 0.4 * energy
        phrase_end = bar % PHRASE_BARS == PHRASE_BARS - 1 and energy >= FILL_MIN_ENERGY
        fill_from = n_steps - STEPS_PER_BEAT  # the last beat
        for part in preset.drums:
            vels = np.zeros(n_steps)
            for threshold, pattern in part.layers:
                if energy >= threshold:
                    for s in range(n_steps):
                        vels[s] = max(vels[s], _vel(_pattern_step(pattern, s, bar)))
            hat_like = "hat" in part.sound or part.sound in ("ride", "shaker", "tambourine")
            for s in np.nonzero(vels)[0]:
                if phrase_end and s >= fill_from and not part.sound.startswith("kick") and not hat_like:
                    continue  # the fill replaces snares/percussion in the last beat
                v = vels[s] * part.gain * drive * (1.0 + VELOCITY_JITTER * rng.standard_normal())
                if hat_like:
                    v *= 0.75 + 0.25 * energy
                sound = part.sound
                if vels[s] <= HIT_VELOCITY["o"] and sound + GHOST_SUFFIX in SOUNDS:
                    sound += GHOST_SUFFIX
                score.hits.append(Hit(sound, int(grid[s]), float(max(v, 0.0)), part.pan))
        if phrase_end:
            fill = (0.55, 0.5, 0.65, 0.8) if energy < 0.6 else (0.7, 0.55, 0.75, 0.95)
            for k, v in enumerate(fill):
                score.hits.append(Hit(preset.fill_sound, int(grid[fill_from + k]), v * drive * 0.9, 0.0))
            if energy >= 0.6:
                for k, sound in ((fill_from - 3, "tom_mid"), (fill_from - 1, "tom_low")):
                    score.hits.append(Hit(sound, int(grid[k]), 0.55 * drive, -0.3 if "mid" in sound else 0.3))
        if energy >= FILL_MIN_ENERGY and (after_break or (bar > 0 and bar % PHRASE_BARS == 0)):
            score.hits.append(Hit(preset.crash_sound, int(grid[0]), 0.25 + 0.3 * energy, 0.3))

    def _bass(self, score, preset, grid, n_steps, bar, energy, chord, next_chord, gate):
        root = bass_root(preset.key, chord, preset.bass_low)
        tones = chord.intervals()
        third = next((t for t in tones if t in (3, 4)), 4)
        seventh = next((t for t in tones if t in (10, 11)), 10)
        nxt = bass_root(preset.key, next_chord, preset.bass_low)
        approach = nxt - 1 if nxt <= root else nxt + 1
        if nxt == root:
            approach = root + 7 - 1
        offsets = {"R": 0, "r": 0, "O": 12, "o": 12, "5": 7, "3": third, "7": seventh, "b": 10}
        pattern = _pick(preset.bass_patterns, energy)
        vel_scale = 0.75 + 0.25 * energy
        for s, length, ch in _spans(pattern, bar, n_steps, "RrOo5374bn"):
            midi = approach if ch == "n" else root + offsets[ch]
            v = (0.6 if ch in "ro" else 0.9) * vel_scale
            if s % STEPS_PER_BEAT:
                v *= OFFBEAT_BASS  # accents on the beat keep the pulse clear
            n_len = int((grid[min(s + length, n_steps)] - grid[s]) * gate)
            score.notes.append(Note("bass", int(grid[s]), max(n_len, 1), midi, v))

    def _chords(self, score, preset, grid, n_steps, bar, energy, chord, gate):
        voicing = voice_chord(preset.key, chord, preset.chord_center)
        pattern = _pick(preset.chord_patterns, energy)
        vel_scale = 0.7 + 0.3 * energy
        for s, length, ch in _spans(pattern, bar, n_steps, "Xxo"):
            n_len = int((grid[min(s + length, n_steps)] - grid[s]) * gate)
            score.notes.append(Note("chord", int(grid[s]), max(n_len, 1), voicing, _vel(ch) * vel_scale))

    @staticmethod
    def _lead_on(bar: int, energy: float, preset: GenrePreset) -> bool:
        if energy < preset.lead_min_energy:
            return False
        return (bar // PHRASE_BARS) % 2 == 1 or energy >= LEAD_ALWAYS_ENERGY

    def _lead(self, score, plan, preset, grid, n_steps, bar, energy, gate):
        """Two-bar motifs: A A' B A'' over an 8-bar phrase; pitches follow the chords."""
        pos = bar % PHRASE_BARS
        motif_id = (0, 0, 1, 0)[pos // 2]
        variant = pos // 2                # the repeats differ in their ending
        theme = bar // (2 * PHRASE_BARS)  # new themes every 16 bars
        rng = np.random.default_rng([_seed(plan), theme & 0xFFFFFFFF, _genre_salt(preset), 2, motif_id])
        rhythm = preset.lead_rhythms[int(rng.integers(len(preset.lead_rhythms)))]
        contour = rng.choice(np.array([-2, -1, -1, 0, 1, 1, 2, 3, -3]), size=32)
        start_bias = int(rng.integers(0, 3))
        half = bar % 2
        first_bar = bar - half
        vrng = np.random.default_rng([_seed(plan), first_bar & 0xFFFFFFFF, _genre_salt(preset), 3, variant])
        if variant in (1, 3):  # vary the last few notes of the repeat
            contour[-6:] = vrng.choice(np.array([-2, -1, 1, 2]), size=6)
        scale = scale_notes(preset.key, preset.scale, preset.lead_low, preset.lead_low + LEAD_RANGE)
        idx = None
        prev_midi = None
        notes = []
        for b in (0, 1):
            chord = chord_of(preset, first_bar + b)
            tones = chord_tone_set(preset.key, chord)
            chord_idx = [i for i, m in enumerate(scale) if m % 12 in tones]
            steps = _spans(rhythm[16 * b:16 * b + 16] if len(rhythm) == 32 else rhythm, 0, 16, "x")
            for k, (s, length, _) in enumerate(steps):
                if idx is None:
                    idx = chord_idx[min(len(chord_idx) - 1, len(chord_idx) // 3 + start_bias)]
                else:
                    idx = _reflect(int(idx + contour[(k + 16 * b) % len(contour)]), len(scale))
                if s % STEPS_PER_BEAT == 0 and chord_idx:
                    idx = min(chord_idx, key=lambda c: (abs(c - idx), c))
                midi = int(scale[idx])
                if b == half:
                    notes.append((s, length, midi, prev_midi))
                prev_midi = midi
        vel_scale = 0.65 + 0.3 * energy
        for s, length, midi, glide in notes:
            if s >= n_steps:
                continue
            n_len = int((grid[min(s + length, n_steps)] - grid[s]) * gate)
            v = (1.0 if s % STEPS_PER_BEAT == 0 else 0.8) * vel_scale
            score.notes.append(Note("lead", int(grid[s]), max(n_len, 1), midi, v, glide))
