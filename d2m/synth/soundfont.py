"""Real instruments (optional extra ``soundfont``): the band's notes from a General MIDI SoundFont.

``--voices soundfont`` swaps the numpy band's bass, chords, lead and (for the
genres that suit it) drums for sampled instruments of a GM SoundFont, chosen
per genre in :data:`GENRE_VOICES` (an acoustic piano and upright bass for
ballet jazz, an electric piano and finger bass for LA hip-hop, ...). Parts a
genre does not map keep the numpy voices; arrangement, timing and mixing are
the synth's own (:class:`SoundFontGenerator` is a
:class:`~d2m.synth.generator.SynthGenerator`).

Notes are rendered by TinySoundFont (``pip install tinysoundfont``, MIT) from
Debian's ``fluid-soundfont-gm`` (FluidR3_GM.sf2, MIT) or any ``.sf2`` given by
``--soundfont`` / :data:`SOUNDFONT_ENV`, each once per (instrument, pitch,
velocity level, held length rounded to :data:`LENGTH_STEP_S`) into a bounded
cache of sampled notes, so a bar costs additions, like the numpy band.
Every note is rendered from a silent synth, so its samples do not depend on
what was rendered before: ``d2m render`` gives the live run's samples.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..plan import SegmentPlan
from .generator import DRUM_BUS_GAIN, SynthGenerator
from .presets import preset_for

#: Environment variable naming the SoundFont file (``--soundfont`` wins).
SOUNDFONT_ENV = "D2M_SOUNDFONT"
#: Where Debian's fluid-soundfont-gm puts its SoundFont (first that exists is used).
DEFAULT_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
#: Held note lengths are rounded to this step (s) so sampled notes can be reused.
LENGTH_STEP_S = 0.02
#: Velocities are rounded to this many levels.
VELOCITY_LEVELS = 8
#: Longest release rendered after the note-off (s); quieter than SILENCE it is cut with a fade.
MAX_RELEASE_S = 1.5
SILENCE = 1e-4
#: Voices stopped before each note are flushed in blocks of this many frames (at most FLUSH_BLOCKS).
FLUSH_BLOCK = 480
FLUSH_BLOCKS = 20
#: Fade at the end of every sampled note (s), so it ends in an exact zero.
END_FADE_S = 0.004
#: Most float samples the note cache holds (LRU beyond): 12 M = 48 MB.
MAX_CACHE_SAMPLES = 12_000_000
#: Level of SoundFont notes relative to the numpy voices (FluidR3 notes peak near 0.2-0.3).
PART_LEVEL = {"bass": 2.6, "chord": 1.6, "lead": 2.2, "drums": 2.0}
#: GM drum keys for the synth's drum sounds (by prefix); sounds not listed stay numpy.
GM_DRUMS = (("kick", 36), ("snare", 38), ("krump_snare", 40), ("clap", 39), ("snap", 37), ("rim", 37),
            ("open_hat", 46), ("hat", 42), ("ride", 51), ("crash", 49), ("tom_low", 45), ("tom_mid", 47),
            ("shaker", 70), ("tambourine", 54), ("cowbell", 56), ("conga", 63), ("brush", 40))
DRUM_BANK = 128

#: Per genre: (bank, GM program) for "bass", "chord", "lead"; "drums": the GM kit (preset in bank
#: 128: 0 standard, 8 room, 16 power, 24 electronic, 25 TR-808, 32 jazz, 40 brush) or absent to
#: keep the numpy drums (electronic genres sound right with them).
GENRE_VOICES: dict[str, dict[str, object]] = {
    "ballet_jazz": {"bass": (0, 32), "chord": (0, 0), "lead": (0, 73), "drums": 40},    # upright, piano, flute, brushes
    "street_jazz": {"bass": (0, 33), "chord": (0, 4), "lead": (0, 65), "drums": 32},    # finger bass, e.piano, alto sax
    "la_hiphop": {"bass": (0, 33), "chord": (0, 4), "lead": (0, 11)},                   # finger bass, e.piano, vibes
    "middle_hiphop": {"bass": (0, 34), "chord": (0, 0), "lead": (0, 48)},               # picked bass, piano, strings
    "lock": {"bass": (0, 33), "chord": (0, 17), "lead": (0, 61), "drums": 0},           # funk: organ, brass
    "waack": {"bass": (0, 36), "chord": (0, 48), "lead": (0, 61), "drums": 0},          # disco: slap, strings, brass
    "pop": {"bass": (0, 38), "chord": (0, 4), "lead": (0, 81)},                         # synth bass, e.piano, saw lead
    "break": {"bass": (0, 33), "chord": (0, 0), "lead": (0, 61), "drums": 0},           # breakbeat kit
    "house": {"bass": (0, 38), "chord": (0, 0), "lead": (0, 80)},                       # house piano
    "krump": {"bass": (0, 39), "chord": (0, 48), "lead": (0, 55)},                      # strings, orchestra hit
}


class SoundFontUnavailable(RuntimeError):
    """The soundfont voices cannot be used; the message is one line saying what to install."""


def find_soundfont(path: str | None = None) -> Path:
    """The SoundFont to use: ``path``, else :data:`SOUNDFONT_ENV`, else Debian's; or raise."""
    given = path or os.environ.get(SOUNDFONT_ENV)
    if given:
        p = Path(given).expanduser()
        if not p.is_file():
            raise SoundFontUnavailable(f"SoundFont {given!r} not found; give an existing .sf2 file")
        return p
    for candidate in DEFAULT_SOUNDFONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SoundFontUnavailable("no General MIDI SoundFont found: install one with `apt-get install "
                               "fluid-soundfont-gm` (MIT) or give --soundfont FILE.sf2")


def _import_tinysoundfont():
    try:
        import tinysoundfont
    except ImportError:
        raise SoundFontUnavailable("--voices soundfont needs TinySoundFont: pip install -e '.[soundfont]' "
                                   "(or pip install --no-deps tinysoundfont)") from None
    return tinysoundfont


class SampledNotes:
    """Sampled notes of one SoundFont, ``(2, n)`` float32 each, cached (LRU, bounded)."""

    def __init__(self, path: str | None = None, sample_rate: int = 48000):
        tsf = _import_tinysoundfont()
        self.path = find_soundfont(path)
        self.sample_rate = int(sample_rate)
        self._synth = tsf.Synth(samplerate=self.sample_rate)
        try:
            self._sfid = self._synth.sfload(str(self.path))
        except Exception as exc:
            raise SoundFontUnavailable(f"cannot load SoundFont {str(self.path)!r}: {exc}") from None
        self._step = max(1, int(round(LENGTH_STEP_S * self.sample_rate)))
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self.samples = 0
        self.rendered = 0

    def note(self, bank: int, program: int, midi, velocity: float, gate: int) -> np.ndarray:
        """A note (or chord: ``midi`` a tuple) held ``gate`` samples (rounded), with its release."""
        midis = tuple(midi) if isinstance(midi, (tuple, list)) else (int(midi),)
        key = ("n", bank, program, midis, _vel_level(velocity), max(1, int(round(gate / self._step))))
        return self._get(key)

    def drum(self, kit: int, gm_key: int, velocity: float) -> np.ndarray:
        return self._get(("d", DRUM_BANK, kit, (gm_key,), _vel_level(velocity), 1))

    def _get(self, key: tuple) -> np.ndarray:
        audio = self._cache.get(key)
        if audio is not None:
            self._cache.move_to_end(key)
            return audio
        audio = self._render(key)
        audio.setflags(write=False)
        self._cache[key] = audio
        self.samples += audio.size
        self.rendered += 1
        while self.samples > MAX_CACHE_SAMPLES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self.samples -= old.size
        return audio

    def _silence(self) -> None:
        """Stop every voice; TinySoundFont ends them during the next block, which is discarded."""
        s = self._synth
        s.sounds_off()
        for _ in range(FLUSH_BLOCKS):
            if not np.frombuffer(s.generate(FLUSH_BLOCK), np.float32).any():
                return
        raise RuntimeError("the SoundFont synth did not fall silent")   # pragma: no cover

    def _render(self, key: tuple) -> np.ndarray:
        kind, bank, program, midis, level, steps = key
        s = self._synth
        self._silence()
        drums = kind == "d"
        chan = 9 if drums else 0
        s.program_select(chan, self._sfid, bank, program, drums)
        vel = int(round(20 + 107 * level / (VELOCITY_LEVELS - 1)))
        for m in midis:
            s.noteon(chan, int(m), vel)
        gate = steps * self._step
        parts = [np.frombuffer(s.generate(gate), np.float32).reshape(-1, 2).copy()]
        if not drums:
            for m in midis:
                s.noteoff(chan, int(m))
        block = int(0.1 * self.sample_rate)
        for _ in range(int(MAX_RELEASE_S / 0.1)):
            x = np.frombuffer(s.generate(block), np.float32).reshape(-1, 2).copy()
            parts.append(x)
            if np.abs(x).max() < SILENCE:
                break
        self._silence()
        audio = np.concatenate(parts)
        nz = np.flatnonzero(np.abs(audio).max(axis=1) >= SILENCE)
        audio = audio[: (nz[-1] + 1 if nz.size else 0)]
        fade = min(len(audio), max(1, int(END_FADE_S * self.sample_rate)))
        if fade:
            audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)[:, None]
        return np.ascontiguousarray(audio.T, dtype=np.float32)     # (2, n): channels contiguous


def _vel_level(velocity: float) -> int:
    return int(round(float(np.clip(velocity, 0.0, 1.0)) * (VELOCITY_LEVELS - 1)))


def gm_drum_key(sound: str) -> int | None:
    base = sound[: -len("_ghost")] if sound.endswith("_ghost") else sound
    for prefix, key in GM_DRUMS:
        if base == prefix or base.startswith(prefix + "_") or base.startswith(prefix):
            return key
    return None


class SoundFontGenerator(SynthGenerator):
    """The synth band with SoundFont instruments for the parts :data:`GENRE_VOICES` maps."""

    name = "synth+soundfont"

    def __init__(self, sample_rate: int = 48000, seed: int = 0, soundfont: str | None = None):
        super().__init__(sample_rate=sample_rate, seed=seed)
        self.notes = SampledNotes(soundfont, sample_rate)
        self._voices: dict[str, object] = {}

    def render(self, plan: SegmentPlan, state):
        self._voices = GENRE_VOICES.get(preset_for(plan.genre).name, {})
        return super().render(plan, state)

    def _add_stereo(self, buf: np.ndarray, offset: int, x: np.ndarray, gain: float) -> int:
        stop = min(offset + x.shape[1], buf.shape[1])
        k = stop - offset
        if k <= 0:
            return offset
        buf[:, offset:stop] += x[:, :k] * np.float32(gain)
        return stop

    def _play_hits(self, buf: np.ndarray, score) -> int:
        kit = self._voices.get("drums")
        if kit is None:
            return super()._play_hits(buf, score)
        rest, end = [], 0
        for hit in score.hits:
            key = gm_drum_key(hit.sound)
            if key is None:
                rest.append(hit)
                continue
            x = self.notes.drum(int(kit), key, hit.velocity * (0.6 if hit.sound.endswith("_ghost") else 1.0))
            end = max(end, self._add_stereo(buf, hit.offset, x, PART_LEVEL["drums"] * DRUM_BUS_GAIN))
        return max(end, super()._play_hits(buf, replace(score, hits=rest)))

    def _play_notes(self, buf: np.ndarray, score, preset) -> int:
        rest, end = [], 0
        gains = {"bass": preset.bass_gain, "chord": preset.chord_gain, "lead": preset.lead_gain}
        for note in score.notes:
            voice = self._voices.get(note.part)
            if voice is None:
                rest.append(note)
                continue
            bank, program = voice
            x = self.notes.note(bank, program, note.midi, note.velocity, note.length)
            end = max(end, self._add_stereo(buf, note.offset, x, PART_LEVEL[note.part] * gains[note.part]))
        return max(end, super()._play_notes(buf, replace(score, notes=rest), preset))
