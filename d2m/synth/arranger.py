"""The arranger: turns a :class:`~d2m.plan.SegmentPlan` and a genre preset into a score.

A score is a list of drum hits and notes at sample offsets inside the
segment, plus what the pad should play. Everything random is drawn from
``np.random.default_rng([seed, bar, ...])``, so a bar always arranges the same.

Form: 8-bar phrases. The last bar of a phrase ends in a drum fill (one of
several shapes), the fourth a short pickup; the first bar of the next phrase
(and the first bar after a pause) opens with a crash. From the second phrase
on, each phrase picks a drum variation (pickup kicks, ghost snares, open hats,
shifted percussion). The lead plays 2-bar motifs in an A A' B A'' shape; the
song's theme develops from phrase to phrase (as written, sequenced up,
inverted, re-rhythmed, then mutated into the next theme).

With the song form on the plan (``plan.section``, see :mod:`d2m.form`) each
section is arranged for its role: the intro brings the band in, builds add a
riser, a snare roll and an opening filter, peaks play everything with the
lead, breakdowns drop kick and backbeat to pad and chords at least 6 dB under
the peak, and the outro thins out to a last chord. Chords move through the
preset's main and alternate progressions (4-8 bars). Plans without a section
(built directly, as tests and benchmarks do) get the plain phrase form.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import form as F
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
#: Number of drum variations a phrase picks from (0 = the groove as written; the first phrase plays it).
DRUM_VARIATIONS = 6
#: Velocity of the ghost notes a drum variation adds around the backbeat (soft: the beat stays clear).
GHOST_NOTE = 0.2
#: Development stages of the lead's theme (as written, sequenced, inverted, re-rhythmed) before it mutates.
THEME_STAGES = 4
#: Contour steps changed when a theme mutates into the next one.
THEME_MUTATIONS = 10
#: Section energy: (scale, offset) applied to the dancer's energy for the drum/bass/chord density.
SECTION_ENERGY: dict[str, tuple[float, float]] = {
    F.INTRO: (0.6, 0.0), F.GROOVE: (1.0, 0.0), F.BUILD: (0.8, 0.1), F.PEAK: (1.0, 0.25),
    F.BREAKDOWN: (0.5, 0.0), F.OUTRO: (0.7, 0.0),
}
#: Riser level (before the drum bus) at the end of a build.
RISER_LEVEL = 0.5
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
    riser: tuple[float, float, float] | None = None   # (progress at start, at end, level) of a build's riser
    riser_seed: int = 0


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


def chord_of(preset: GenrePreset, bar: int, plan: SegmentPlan | None = None, ahead: int = 0) -> Chord:
    """The chord of ``bar`` (or, with a form plan, of the bar ``ahead`` bars after the plan's)."""
    if plan is None or not plan.section:
        return preset.progression[(bar + ahead) % len(preset.progression)]
    section, section_bar, index = plan.section, plan.section_bar + ahead, plan.section_index
    if ahead and plan.bars_to_next_section <= ahead:
        section, section_bar, index = plan.next_section, ahead - plan.bars_to_next_section, index + 1
    prog = progression_for(preset, section, index, section_bar // PHRASE_BARS)
    return prog[section_bar % len(prog)]


def progression_for(preset: GenrePreset, section: str, section_index: int, phrase: int) -> tuple[Chord, ...]:
    """Which progression a phrase of a section plays: the main one in intros and outros, the
    breakdown's in breakdowns, main and long alternates in turn in grooves, builds and peaks."""
    alts = preset.alt_progressions
    if not alts or section in (F.INTRO, F.OUTRO, F.END):
        return preset.progression
    if section == F.BREAKDOWN:
        return alts[-1]
    cycle = (preset.progression,) + (alts[:-1] if len(alts) > 1 else alts)
    return cycle[(section_index + phrase) % len(cycle)]


def _genre_salt(preset: GenrePreset) -> int:
    return GENRES.index(preset.name) if preset.name in GENRES else len(GENRES)


def _seed(plan: SegmentPlan) -> int:
    return int(plan.seed) & 0xFFFFFFFF


def _phrase_pos(plan: SegmentPlan) -> int:
    """Bar within its 8-bar phrase: from the form when the plan has one, else ``bar % 8``."""
    return plan.section_bar % PHRASE_BARS if plan.section else int(plan.bar) % PHRASE_BARS


def _phrase_no(plan: SegmentPlan) -> int:
    """Phrase counter that drum variations and the theme's development follow."""
    return int(plan.bar) // PHRASE_BARS


class Arranger:
    """Arranges segments for one preset at a time (stateless; the generator carries state)."""

    def idle(self, plan: SegmentPlan, preset: GenrePreset) -> Score:
        """Waiting for the dancer: only the pad, on the chord of the bar to come."""
        level = IDLE_PAD_LEVEL / max(1e-3, preset.pad_gain * preset.mix_gain)  # same loudness in every genre
        return Score(pad_midis=spread_voicing(preset.key, chord_of(preset, plan.bar), preset.pad_center),
                     pad_level=level, bright=0.2, sharp=0.0)

    def music(self, plan: SegmentPlan, preset: GenrePreset, *, after_break: bool = False) -> Score:
        """A full bar: drums, bass, chords, pad and (in some phrases) the lead, arranged for its section."""
        section = plan.section
        if section == F.END:        # the dancer stopped after the outro: only the pad, softly
            score = self.idle(plan, preset)
            score.pad_midis = spread_voicing(preset.key, chord_of(preset, plan.bar, plan), preset.pad_center)
            return score
        dancer = float(np.clip(plan.energy, 0.0, 1.0))
        scale, offset = SECTION_ENERGY.get(section, (1.0, 0.0))
        energy = float(np.clip(dancer * scale + offset, 0.0, 1.0))
        sharp = float(np.clip(plan.sharpness, 0.0, 1.0))
        bar = int(plan.bar)
        pos = _phrase_pos(plan)
        progress = (plan.section_bar + 1) / max(1, plan.section_bars) if section else 0.0
        grid = step_grid(plan.beat_offsets, plan.n_samples, preset.swing, preset.swing_unit)
        n_steps = len(grid) - 1
        chord = chord_of(preset, bar, plan)
        next_chord = chord_of(preset, bar, plan, ahead=1) if section else chord_of(preset, bar + 1)
        rng = np.random.default_rng([_seed(plan), bar & 0xFFFFFFFF, _genre_salt(preset), 1])
        bright = 0.25 + 0.7 * energy
        if section == F.BUILD:      # the filter opens over the build
            bright = 0.2 + 0.8 * progress
        elif section == F.INTRO:
            bright = min(bright, 0.25 + 0.5 * progress)
        elif section == F.BREAKDOWN:
            bright = min(bright, 0.35)
        elif section == F.PEAK:
            bright = min(1.0, bright + 0.15)
        pad = preset.pad_level * (1.0 - 0.5 * sharp) * (0.7 + 0.3 * energy)
        if section == F.BREAKDOWN:
            pad = max(pad, preset.pad_level) * 1.5
        score = Score(pad_midis=spread_voicing(preset.key, chord, preset.pad_center), pad_level=pad,
                      bright=bright, sharp=sharp)
        self._drums(score, preset, grid, n_steps, bar, energy, rng, after_break, plan, pos)
        gate = GATE_RANGE[0] + (GATE_RANGE[1] - GATE_RANGE[0]) * sharp
        if section == F.BREAKDOWN:
            gate = max(gate, 0.9)
        bass_in = not (section == F.INTRO and plan.section_bar < PHRASE_BARS // 2)
        last_chord = section == F.OUTRO and plan.bars_to_next_section == 1
        if last_chord:              # the song ends on a held chord and its root
            voicing = voice_chord(preset.key, preset.progression[0], preset.chord_center)
            root = bass_root(preset.key, preset.progression[0], preset.bass_low)
            score.notes.append(Note("chord", 0, int(grid[n_steps] * 0.9), voicing, 0.8))
            score.notes.append(Note("bass", 0, int(grid[n_steps] * 0.9), root, 0.85))
            score.pad_midis = spread_voicing(preset.key, preset.progression[0], preset.pad_center)
        else:
            if bass_in and section != F.BREAKDOWN:
                self._bass(score, preset, grid, n_steps, bar, energy, chord, next_chord, gate)
            self._chords(score, preset, grid, n_steps, bar, energy, chord, gate,
                         sparse=section in (F.INTRO, F.BREAKDOWN))
        if section == F.BREAKDOWN and plan.section_bar % 2 == 0:   # the bass holds the root under the pad
            root = bass_root(preset.key, chord, preset.bass_low)
            score.notes.append(Note("bass", 0, int(grid[n_steps] * 0.95), root, 0.5))
        if not last_chord and self._lead_on(bar, energy, preset, plan):
            self._lead(score, plan, preset, grid, n_steps, bar, energy, gate, pos)
            beat_len = plan.n_samples / max(1, plan.beats)
            score.echo_delay = int(round(beat_len * preset.echo_steps / STEPS_PER_BEAT))
        if section == F.BUILD:
            p0 = plan.section_bar / max(1, plan.section_bars)
            score.riser = (p0, progress, RISER_LEVEL * (0.6 + 0.4 * dancer))
            score.riser_seed = (_seed(plan) * 31 + bar) & 0xFFFFFFFF
        gain = F.SECTION_GAIN.get(section, 1.0) if section else 1.0
        if section == F.OUTRO:
            gain *= 1.0 - 0.4 * progress
        if gain != 1.0:
            score.hits = [Hit(h.sound, h.offset, h.velocity * gain, h.pan) for h in score.hits]
            score.notes = [Note(n.part, n.offset, n.length, n.midi, n.velocity * gain, n.glide_from)
                           for n in score.notes]
            score.pad_level *= gain
        return score

    # -- parts ---------------------------------------------------------------

    def _drums(self, score, preset, grid, n_steps, bar, energy, rng, after_break, plan=None, pos=None):
        section = plan.section if plan is not None else ""
        pos = bar % PHRASE_BARS if pos is None else pos
        drive = 0.6 + 0.4 * energy
        phrase_end = pos == PHRASE_BARS - 1 and energy >= FILL_MIN_ENERGY and section not in (F.OUTRO,)
        pickup = pos == PHRASE_BARS // 2 - 1 and energy >= FILL_MIN_ENERGY and section != F.BREAKDOWN
        fill_from = n_steps - STEPS_PER_BEAT  # the last beat
        phrase = _phrase_no(plan) if plan is not None else bar // PHRASE_BARS
        salt = _genre_salt(preset)
        seed = _seed(plan) if plan is not None else 0
        variation = 0
        if phrase > 0:      # steps through the variations, so consecutive phrases never share one
            first = int(np.random.default_rng([seed, salt, 4]).integers(DRUM_VARIATIONS - 1))
            variation = 1 + (first + 2 * phrase) % (DRUM_VARIATIONS - 1)
        roll = section == F.BUILD and plan.bars_to_next_section <= 2
        no_backbeat = (section == F.INTRO and plan.section_bar < PHRASE_BARS // 2) or section == F.BREAKDOWN \
            or (section == F.OUTRO and plan.bars_to_next_section <= 2)
        no_kick = section == F.BREAKDOWN or (section == F.OUTRO and plan.bars_to_next_section <= 1)
        for part in preset.drums:
            vels = np.zeros(n_steps)
            for threshold, pattern in part.layers:
                if energy >= threshold:
                    for s in range(n_steps):
                        vels[s] = max(vels[s], _vel(_pattern_step(pattern, s, bar)))
            hat_like = "hat" in part.sound or part.sound in ("ride", "shaker", "tambourine")
            kick = part.sound.startswith("kick")
            backbeat = part.sound.startswith(("snare", "clap", "brush", "krump_snare"))
            if (kick and no_kick) or (backbeat and no_backbeat):
                continue
            if variation and n_steps >= 16:
                role = ("kick" if kick else "snare" if part.sound.startswith("snare") else "backbeat" if backbeat
                        else "hat" if hat_like else "perc")
                _vary(vels, variation, role, pos, n_steps)
            for s in np.nonzero(vels)[0]:
                if (phrase_end or roll) and s >= fill_from and not kick and not hat_like:
                    continue  # the fill replaces snares/percussion in the last beat
                v = vels[s] * part.gain * drive * (1.0 + VELOCITY_JITTER * rng.standard_normal())
                if hat_like:
                    v *= 0.75 + 0.25 * energy
                sound = part.sound
                if vels[s] <= HIT_VELOCITY["o"] and sound + GHOST_SUFFIX in SOUNDS:
                    sound += GHOST_SUFFIX
                score.hits.append(Hit(sound, int(grid[s]), float(max(v, 0.0)), part.pan))
        if roll:        # snare roll into the peak: 8ths, then 16ths in the last bar, rising
            last = plan.bars_to_next_section == 1
            every = 1 if last else 2
            for s in range(0, n_steps, every):
                frac = (s / n_steps + (1 if last else 0)) / 2.0
                score.hits.append(Hit(preset.fill_sound, int(grid[s]), (0.3 + 0.6 * frac) * drive, 0.0))
        elif phrase_end:
            shape = int(np.random.default_rng([seed, phrase & 0xFFFFFFFF, salt, 5]).integers(3)) if phrase else 0
            fill = (0.55, 0.5, 0.65, 0.8) if energy < 0.6 else (0.7, 0.55, 0.75, 0.95)
            if shape == 0:
                for k, v in enumerate(fill):
                    score.hits.append(Hit(preset.fill_sound, int(grid[fill_from + k]), v * drive * 0.9, 0.0))
            elif shape == 1:    # toms down the last beat, snare on the last 16th
                for k, sound in enumerate(("tom_mid", "tom_mid", "tom_low", preset.fill_sound)):
                    score.hits.append(Hit(sound, int(grid[fill_from + k]), fill[k] * drive * 0.9,
                                          -0.3 if sound == "tom_mid" else 0.3))
            else:               # a two-beat fill, snare and toms alternating
                for k in range(8):
                    sound = preset.fill_sound if k % 2 == 0 else ("tom_mid" if k < 4 else "tom_low")
                    score.hits.append(Hit(sound, int(grid[n_steps - 8 + k]), (0.45 + 0.06 * k) * drive, 0.0))
            if energy >= 0.6 and shape == 0:
                for k, sound in ((fill_from - 3, "tom_mid"), (fill_from - 1, "tom_low")):
                    score.hits.append(Hit(sound, int(grid[k]), 0.55 * drive, -0.3 if "mid" in sound else 0.3))
        elif pickup and variation:      # a short pickup halfway through the phrase
            for k in (n_steps - 2, n_steps - 1):
                score.hits.append(Hit(preset.fill_sound, int(grid[k]), 0.5 * drive, 0.0))
        first_of_phrase = pos == 0 and (bar > 0 if not section else section != F.INTRO)
        peak_start = section == F.PEAK and plan.section_bar % PHRASE_BARS == 0
        if (energy >= FILL_MIN_ENERGY or peak_start) and (after_break or first_of_phrase or peak_start):
            if section != F.BREAKDOWN:
                level = 0.25 + 0.3 * max(energy, 0.6 * peak_start)
                score.hits.append(Hit(preset.crash_sound, int(grid[0]), level, 0.3))

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

    def _chords(self, score, preset, grid, n_steps, bar, energy, chord, gate, sparse=False):
        voicing = voice_chord(preset.key, chord, preset.chord_center)
        pattern = preset.chord_patterns[0][1] if sparse else _pick(preset.chord_patterns, energy)
        vel_scale = 0.7 + 0.3 * energy
        for s, length, ch in _spans(pattern, bar, n_steps, "Xxo"):
            n_len = int((grid[min(s + length, n_steps)] - grid[s]) * gate)
            score.notes.append(Note("chord", int(grid[s]), max(n_len, 1), voicing, _vel(ch) * vel_scale))

    @staticmethod
    def _lead_on(bar: int, energy: float, preset: GenrePreset, plan: SegmentPlan | None = None) -> bool:
        section = plan.section if plan is not None else ""
        if section in (F.INTRO, F.BUILD, F.END):
            return False
        if section == F.PEAK:
            return True
        if section == F.BREAKDOWN:
            return plan.section_bar % PHRASE_BARS >= PHRASE_BARS // 2   # a soft answer in its second half
        if section == F.OUTRO:
            return plan.bars_to_next_section > 2
        if section == F.GROOVE:           # the theme answers in a groove's second phrase (softly when calm);
            return plan.section_index > 1 or (plan.section_bar // PHRASE_BARS) % 2 == 1 or \
                energy >= LEAD_ALWAYS_ENERGY  # from the second groove on it is part of the song
        if energy < preset.lead_min_energy:
            return False
        phrase = plan.section_bar // PHRASE_BARS if section else bar // PHRASE_BARS
        return phrase % 2 == 1 or energy >= LEAD_ALWAYS_ENERGY

    def _lead(self, score, plan, preset, grid, n_steps, bar, energy, gate, pos=None):
        """Two-bar motifs: A A' B A'' over an 8-bar phrase; pitches follow the chords.

        The theme develops over phrases: stage 0 as written, 1 sequenced two scale steps up,
        2 inverted, 3 on the next rhythm; then it mutates into the next theme.
        """
        pos = bar % PHRASE_BARS if pos is None else pos
        motif_id = (0, 0, 1, 0)[pos // 2]
        variant = pos // 2                # the repeats differ in their ending
        phrase = _phrase_no(plan)
        stage = phrase % THEME_STAGES
        generation = phrase // THEME_STAGES
        salt = _genre_salt(preset)
        rng = np.random.default_rng([_seed(plan), 0, salt, 2, motif_id])
        rhythm_i = int(rng.integers(len(preset.lead_rhythms)))
        contour = rng.choice(np.array([-2, -1, -1, 0, 1, 1, 2, 3, -3]), size=32)
        start_bias = int(rng.integers(0, 3))
        for g in range(1, generation + 1):   # each generation mutates a few steps of the last
            mrng = np.random.default_rng([_seed(plan), g & 0xFFFFFFFF, salt, 6, motif_id])
            where = mrng.choice(32, size=THEME_MUTATIONS, replace=False)
            contour[where] = mrng.choice(np.array([-2, -1, 1, 2, 3]), size=THEME_MUTATIONS)
            rhythm_i += int(mrng.integers(0, 2))
        if stage == 1:
            start_bias += 2               # the same shape, a third higher
        elif stage == 2:
            contour = -contour            # inverted
        elif stage == 3:
            rhythm_i += 1                 # the shape on another rhythm
        rhythm = preset.lead_rhythms[rhythm_i % len(preset.lead_rhythms)]
        half = bar % 2 if not plan.section else plan.section_bar % 2
        first_bar = bar - half
        vrng = np.random.default_rng([_seed(plan), first_bar & 0xFFFFFFFF, salt, 3, variant])
        if variant in (1, 3):  # vary the last few notes of the repeat
            contour[-6:] = vrng.choice(np.array([-2, -1, 1, 2]), size=6)
        scale = scale_notes(preset.key, preset.scale, preset.lead_low, preset.lead_low + LEAD_RANGE)
        idx = None
        prev_midi = None
        notes = []
        for b in (0, 1):
            chord = chord_of(preset, bar, plan, ahead=b - half) if plan.section else chord_of(preset, first_bar + b)
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
        if plan.section == F.BREAKDOWN:
            vel_scale *= 0.7
        for s, length, midi, glide in notes:
            if s >= n_steps:
                continue
            n_len = int((grid[min(s + length, n_steps)] - grid[s]) * gate)
            v = (1.0 if s % STEPS_PER_BEAT == 0 else 0.8) * vel_scale
            score.notes.append(Note("lead", int(grid[s]), max(n_len, 1), midi, v, glide))


def _vary(vels: np.ndarray, variation: int, role: str, pos: int, n_steps: int) -> None:
    """Apply drum variation ``variation`` (1..DRUM_VARIATIONS-1) to one part's step velocities, in place.

    ``role``: "kick", "snare", "backbeat" (claps, brushes: left as they are), "hat" or "perc".
    Every variation touches the kick or the snare (always playing), and most also the hats
    or percussion (which play from some energy on). Ghost claps confuse beat trackers (a clap
    is a burst of taps), so only snares get ghost notes.
    """
    kick, hat_like = role == "kick", role == "hat"
    if role == "backbeat":
        return
    odd = pos % 2 == 1
    ghost = HIT_VELOCITY["o"]
    ops = {1: ("pickup", "ghosts"), 2: ("ghosts", "hat16"), 3: ("synco", "hatdrop"),
           4: ("pickup", "perc"), 5: ("synco", "ghosts", "hat16")}[variation]
    if kick:
        if "pickup" in ops and odd:                     # pickup kick into the next bar
            vels[n_steps - 2] = max(vels[n_steps - 2], HIT_VELOCITY["x"])
        if "synco" in ops and not odd:                  # a syncopated kick on the "and" of 2
            vels[6] = max(vels[6], ghost + 0.1)
    elif role == "snare":
        if "ghosts" in ops:                             # soft ghost notes around the backbeat
            for s in (7, 15):
                if s < n_steps and vels[s] == 0:
                    vels[s] = GHOST_NOTE
    elif hat_like:
        if "hat16" in ops and odd:                      # 16th hats in the last beat
            vels[n_steps - 4:] = np.maximum(vels[n_steps - 4:], ghost)
        if "hatdrop" in ops:                            # the "and" of 1 left out
            vels[2] = 0.0
    elif role == "perc" and "perc" in ops:              # percussion shifted by an 8th
        vels[:] = np.roll(vels, 2)
