"""One arrangement preset per AIST++ genre.

Patterns are strings with one character per 16th-note step (16 = one 4/4
bar, 32 = two bars alternating):

* drums and chords: ``X`` accent, ``x`` normal, ``o`` ghost, ``.`` rest
  (chords: ``-`` holds the previous hit);
* bass: ``R`` root, ``O`` octave, ``5`` fifth, ``3`` third, ``7`` seventh,
  ``b`` flat seventh, ``n`` chromatic approach to the next chord's root,
  lower-case ``r``/``o`` softer, ``-`` hold, ``.`` rest;
* lead rhythms: ``x`` note, ``-`` hold, ``.`` rest (pitches are composed).

Drum parts stack every layer whose ``min_energy`` the bar's energy reaches
(density rises with energy); bass and chords pick the single densest
pattern the energy allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..genres import GENRES, UnknownGenre, parse_genre
from .theory import SCALES, Chord

#: Genre used for unknown or empty genre names (the clearest four-on-the-floor pulse).
DEFAULT_GENRE = "house"

#: Velocity of each drum/chord pattern character.
HIT_VELOCITY = {"X": 1.0, "x": 0.75, "o": 0.45}

Layers = tuple[tuple[float, str], ...]


@dataclass(frozen=True)
class DrumPart:
    """One drum voice: a sound of :data:`d2m.synth.drums.SOUNDS` and its pattern layers.

    Ghost hits (``o``) of a sound that has a ``<sound>_ghost`` variant (kicks)
    use that variant, which has no beater click: soft and felt rather than
    heard as a beat.
    """

    sound: str
    layers: Layers
    gain: float = 1.0
    pan: float = 0.0


@dataclass(frozen=True)
class GenrePreset:
    """Everything the arranger needs to play one genre."""

    name: str
    tempo_hint: tuple[float, float]          #: typical BPM range (documentation only)
    key: int                                 #: tonic as a MIDI note
    scale: str                               #: a key of :data:`~d2m.synth.theory.SCALES`
    progression: tuple[Chord, ...]           #: one chord per bar, cycled (the song's main progression)
    drums: tuple[DrumPart, ...]
    bass_kind: str
    bass_low: int                            #: lowest MIDI note of the bass octave
    bass_patterns: Layers
    chord_kind: str
    chord_center: int                        #: MIDI centre of chord voicings
    chord_patterns: Layers
    lead_kind: str
    lead_low: int                            #: lowest MIDI note of the lead range
    lead_rhythms: tuple[str, ...]            #: 32-step (two-bar) rhythms for lead motifs
    swing: float = 0.5                       #: off-step position in its pair (0.5 straight, 0.67 triplet)
    swing_unit: int = 16                     #: 16: swing 16ths; 8: swing 8ths
    pad_level: float = 0.25                  #: pad loudness (0..1) under the band
    pad_center: int = 57                     #: MIDI centre of pad voicings
    mix_gain: float = 1.0                    #: trim of the whole genre so every preset is about equally loud
    bass_gain: float = 0.55
    chord_gain: float = 0.3
    lead_gain: float = 0.22
    pad_gain: float = 0.5
    fill_sound: str = "snare_tight"
    crash_sound: str = "crash"
    echo_steps: int = 3                      #: lead echo delay in 16ths (3 = dotted eighth)
    echo_gains: tuple[float, ...] = (0.3, 0.12)
    lead_min_energy: float = 0.4             #: the lead only plays at or above this energy
    #: Alternate progressions (4-8 bars) the song form moves through: the first is the long
    #: (8-bar) one grooves and peaks alternate with the main one, the last the breakdown's.
    alt_progressions: tuple[tuple[Chord, ...], ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"preset {self.name}: unknown scale {self.scale!r}")
        if not self.progression:
            raise ValueError(f"preset {self.name}: empty chord progression")
        for alt in self.alt_progressions:
            if not 4 <= len(alt) <= 8:
                raise ValueError(f"preset {self.name}: alternate progressions have 4-8 chords, got {len(alt)}")
        for part in self.drums:
            for _, pat in part.layers:
                _check_pattern(self.name, part.sound, pat, "Xxo.")
        for _, pat in self.bass_patterns:
            _check_pattern(self.name, "bass", pat, "RrOo5374bn-.")
        for _, pat in self.chord_patterns:
            _check_pattern(self.name, "chords", pat, "Xxo-.")
        for pat in self.lead_rhythms:
            _check_pattern(self.name, "lead", pat, "x-.")


def _check_pattern(preset: str, part: str, pattern: str, allowed: str) -> None:
    if len(pattern) not in (16, 32):
        raise ValueError(f"preset {preset}, {part}: pattern {pattern!r} must have 16 or 32 steps")
    bad = set(pattern) - set(allowed)
    if bad:
        raise ValueError(f"preset {preset}, {part}: pattern {pattern!r} has characters {sorted(bad)}; "
                         f"allowed: {allowed!r}")


C = Chord

PRESETS: dict[str, GenrePreset] = {}


def _add(p: GenrePreset) -> None:
    PRESETS[p.name] = p


_add(GenrePreset(
    name="house", tempo_hint=(118, 128), key=57, scale="minor",
    progression=(C(0, "m9"), C(8, "maj7"), C(5, "m9"), C(7, "m7")),   # Am9 Fmaj7 Dm9 Em7
    drums=(
        DrumPart("kick_house", ((0.0, "X...X...X...X..."),), 1.0),
        DrumPart("clap", ((0.0, "....X.......X..."),), 0.55, 0.05),
        DrumPart("open_hat", ((0.25, "..x...x...x...x."),), 0.58, 0.25),
        DrumPart("hat", ((0.45, "o...o...o...o..."), (0.65, ".o.o.o.o.o.o.o.o")), 0.54, -0.25),
        DrumPart("rim", ((0.72, "...x..x....x..x."),), 0.18, 0.45),
        DrumPart("shaker", ((0.8, "oxoooxoooxoooxoo"),), 0.29, -0.5),
    ),
    bass_kind="saw", bass_low=33, bass_patterns=((0.0, "..R-..R-..R-..R-"), (0.6, "..R-..R-..R-.5O-")),
    chord_kind="piano", chord_center=65,
    chord_patterns=((0.0, "X--.......x-...."), (0.45, "X-.x-.x-..x-.x-.")),
    lead_kind="pluck", lead_low=69,
    lead_rhythms=("x.x.x..x.x..x...x.x.x..x..x-x-..", "..x.x.x...x.x.x...x.x.x...x-x-..",
                  "x..x..x.x-..x...x..x..x.x--....."),
    swing=0.54, pad_level=0.3, fill_sound="snare_clap",
    bass_gain=1.3, chord_gain=0.37, pad_gain=0.7, lead_gain=0.65, mix_gain=0.75,
))

_add(GenrePreset(
    name="waack", tempo_hint=(112, 128), key=62, scale="dorian",
    progression=(C(0, "m7"), C(5, "9"), C(8, "maj7"), C(7, "7")),       # Dm7 G9 Bbmaj7 A7
    drums=(
        DrumPart("kick_disco", ((0.0, "X...X...X...X..."),), 1.0),
        DrumPart("snare_disco", ((0.0, "....X.......X..."),), 0.65),
        DrumPart("clap", ((0.5, "....X.......X..."),), 0.35, 0.1),
        DrumPart("open_hat", ((0.3, "..x...x...x...x."),), 0.61, 0.25),
        DrumPart("hat", ((0.5, "o...o...o...o..."), (0.68, ".o.o.o.o.o.o.o.o")), 0.5, -0.25),
        DrumPart("tambourine", ((0.6, "....x.......x..."), (0.8, "..o...o...o...o.")), 0.36, 0.4),
        DrumPart("conga", ((0.75, "...x..x....x.x.."),), 0.22, -0.45),
    ),
    bass_kind="finger", bass_low=38, bass_patterns=((0.0, "R.O.R.O.R.O.R.O."), (0.6, "R.OrR.O.R.OrR.On")),
    chord_kind="strings", chord_center=67,
    chord_patterns=((0.0, "X---------x-x---"), (0.55, "..x-..x-..x-x-x-")),
    lead_kind="saw", lead_low=74,
    lead_rhythms=("x-x-x---x-x-x-..x-x-x---x---x---", "....x-x-x-x-x---....x-x-x-x-x---",
                  "x---x---x-x-x---x---x---x-------"),
    swing=0.5, pad_level=0.3, fill_sound="snare_disco",
    bass_gain=0.57, chord_gain=0.42, pad_gain=0.46, lead_gain=0.22, mix_gain=1.0,
))

_add(GenrePreset(
    name="lock", tempo_hint=(100, 124), key=64, scale="mixolydian",
    progression=(C(0, "9"), C(0, "9"), C(5, "9"), C(7, "9")),          # E9 E9 A9 B9
    drums=(
        DrumPart("kick_break", ((0.0, "X.....o.X.o....."), (0.6, ".............o..")), 1.0),
        DrumPart("snare_tight", ((0.0, "....X.......X..."), (0.45, ".......o.o.....o")), 0.75),
        DrumPart("hat", ((0.0, "x.x.x.x.x.x.x.x."), (0.6, ".o.o.o.o.o.o.o.o")), 0.54, -0.2),
        DrumPart("tambourine", ((0.5, "....x.......x..."),), 0.4, 0.35),
        DrumPart("open_hat", ((0.7, "..............x."),), 0.45, 0.25),
        DrumPart("cowbell", ((0.8, "x.....x...x....."),), 0.12, 0.5),
    ),
    bass_kind="finger", bass_low=40, bass_patterns=((0.0, "R..R..O.R.5.7.O."), (0.6, "R.rR..O.R.5.7rOn")),
    chord_kind="brass", chord_center=68,
    chord_patterns=((0.0, "......X-......X-"), (0.55, "..x...X-..x...X-")),
    lead_kind="brass", lead_low=71,
    lead_rhythms=("x-.x-.x-....x-..x-.x-.x-..x-x-..", "..x-x-..x-.x....x-x-..x-x-.x-...",
                  "x.x.x-..x.x.x-..x.x.x-..x---...."),
    swing=0.56, pad_level=0.12, fill_sound="snare_tight",
    bass_gain=0.48, chord_gain=0.35, pad_gain=0.45, lead_gain=0.23, mix_gain=1.25,
))

_add(GenrePreset(
    name="break", tempo_hint=(108, 135), key=64, scale="dorian",
    progression=(C(0, "m7"), C(0, "m7"), C(5, "9"), C(7, "m7")),       # Em7 Em7 A9 Bm7
    drums=(
        DrumPart("kick_break", ((0.0, "X.o.....X.o.....X.o.....X.o..o.."), (0.6, "......o.......o.")), 1.0),
        DrumPart("snare_break", ((0.0, "....X.......X..."), (0.4, ".......o.o.....o")), 0.55),
        DrumPart("hat", ((0.0, "x.o.x.o.x.o.x.o."), (0.7, ".o.o...o.o.o...o")), 0.58, -0.2),
        DrumPart("open_hat", ((0.6, "......o.......o."),), 0.4, 0.25),
        DrumPart("conga", ((0.75, "...x..x...x..x.."),), 0.2, 0.45),
    ),
    bass_kind="finger", bass_low=40, bass_patterns=((0.0, "R-r.....R-r....."), (0.6, "R-r...b.R-r...7.")),
    chord_kind="stab", chord_center=64,
    chord_patterns=((0.0, "X-.....x-......."), (0.55, "X-.....x-...x-..")),
    lead_kind="brass", lead_low=71,
    lead_rhythms=("x-x-..x-..x-x...x-x-..x-x-x-....", "....x-x-x-..x-..x.x.x-..x-......",
                  "x-..x-..x-x-x-..x-..x-..x-------"),
    swing=0.55, pad_level=0.18, fill_sound="snare_break",
    bass_gain=0.56, chord_gain=0.4, pad_gain=0.38, lead_gain=0.23, mix_gain=1.2,
))

_add(GenrePreset(
    name="pop", tempo_hint=(98, 118), key=65, scale="minor",
    progression=(C(0, "m7"), C(8, "maj7"), C(10, ""), C(7, "m7")),     # Fm7 Dbmaj7 Eb Cm7
    drums=(
        DrumPart("kick_electro", ((0.0, "X......oX......."), (0.6, "..........o.....")), 1.0),
        DrumPart("clap", ((0.0, "....X.......X..."),), 0.7, 0.05),
        DrumPart("hat_bright", ((0.0, "x.x.x.x.x.x.x.x."), (0.6, ".o.o.o.o.o.o.o.o")), 0.47, -0.25),
        DrumPart("cowbell", ((0.7, "x..x..x...x.x..."),), 0.12, 0.45),
        DrumPart("rim", ((0.8, ".......x.......x"),), 0.2, -0.4),
    ),
    bass_kind="square", bass_low=41, bass_patterns=((0.0, "R..R..O.R..R.5.."), (0.6, "R.rR..O.R.rR.5O.")),
    chord_kind="stab", chord_center=65,
    chord_patterns=((0.0, "....x-......x-.."), (0.55, "....x-.x....x-.x")),
    lead_kind="pulse", lead_low=72,
    lead_rhythms=("x.x.x...x.x.x...x.x.x...x---....", "x..x..x.x..x..x.x..x..x.x-------",
                  "..x.x.x...x.x.x...x.x.x.x-x-x-.."),
    swing=0.5, pad_level=0.15, fill_sound="clap",
    bass_gain=0.32, chord_gain=0.8, pad_gain=0.6, lead_gain=0.32, mix_gain=1.05,
))

_add(GenrePreset(
    name="middle_hiphop", tempo_hint=(86, 100), key=60, scale="minor",
    progression=(C(0, "m9"), C(8, "maj7"), C(5, "m9"), C(7, "7")),     # Cm9 Abmaj7 Fm9 G7
    drums=(
        DrumPart("kick_boom", ((0.0, "X.......X.o....."), (0.45, "..o....o........")), 1.0),
        DrumPart("snare_boom", ((0.0, "....X.......X..."),), 0.72),
        DrumPart("hat_soft", ((0.0, "x.o.x.o.x.o.x.o."), (0.7, "...o.......o....")), 0.61, -0.2),
        DrumPart("rim", ((0.6, "..............x."),), 0.2, 0.4),
        DrumPart("shaker", ((0.78, "..o...o...o...o."),), 0.27, 0.5),
    ),
    bass_kind="moog", bass_low=36, bass_patterns=((0.0, "R--.....R-r....."), (0.55, "R--....rR--r....")),
    chord_kind="epiano", chord_center=63,
    chord_patterns=((0.0, "X---------------"), (0.5, "X-----....x-----")),
    lead_kind="bell", lead_low=72,
    lead_rhythms=("x-..x-....x-....x-..x-..x-......", "....x-x-........x-..x-x-x-......",
                  "x-x-....x-x-....x-x-....x-------"),
    swing=0.6, pad_level=0.2, fill_sound="snare_boom",
    bass_gain=1.0, chord_gain=0.4, pad_gain=0.5, lead_gain=0.29, mix_gain=0.85,
))

_add(GenrePreset(
    name="la_hiphop", tempo_hint=(90, 110), key=55, scale="minor",
    progression=(C(0, "m9"), C(5, "m9"), C(8, "maj7"), C(7, "7")),     # Gm9 Cm9 Ebmaj7 D7
    drums=(
        DrumPart("kick_808", ((0.0, "X.....o.X.o....."), (0.55, ".............o..")), 1.0),
        DrumPart("snare_clap", ((0.0, "....X.......X..."),), 0.8),
        DrumPart("hat", ((0.0, "x.x.x.x.x.x.x.x."), (0.55, ".o.o.o.o.o.o.o.o")), 0.47, -0.25),
        DrumPart("shaker", ((0.7, "..o...o...o...o."),), 0.27, 0.45),
        DrumPart("snap", ((0.8, "...........x...."),), 0.3, 0.3),
    ),
    bass_kind="moog", bass_low=36, bass_patterns=((0.0, "R-....R-..R-...."), (0.55, "R-...rR-..R-.5O.")),
    chord_kind="organ", chord_center=62,
    chord_patterns=((0.0, "X-------..x-----"), (0.6, "X-----x-..x---x-")),
    lead_kind="whistle", lead_low=74,
    lead_rhythms=("x-----x-x-------x-----x-x-x-----", "x---x---x-------....x-x-x-------",
                  "..x-x-x-----....x-x-----x-------"),
    swing=0.57, pad_level=0.35, fill_sound="snare_clap",
    bass_gain=1.2, chord_gain=0.26, pad_gain=0.6, lead_gain=0.22, mix_gain=0.8,
))

_add(GenrePreset(
    name="krump", tempo_hint=(96, 140), key=61, scale="phrygian",
    progression=(C(0, "m"), C(0, "m"), C(1, ""), C(10, "")),           # C#m C#m D B
    drums=(
        DrumPart("kick_808_hard", ((0.0, "X...x...X...x..."), (0.45, "..........o....."), (0.7, "...o.........o..")),
                 1.0),
        DrumPart("krump_snare", ((0.0, "....X.......X..."),), 0.75),
        DrumPart("hat", ((0.3, "x.o.x.o.x.o.x.o."), (0.75, "...........ox.oo")), 0.54, -0.2),
        DrumPart("tom_low", ((0.6, "..............x."),), 0.35, 0.3),
    ),
    bass_kind="sub808", bass_low=37, bass_patterns=((0.0, "R-------R-------"), (0.45, "R-------R-R-----"),
                                                     (0.7, "R--O----R-R--n--")),
    chord_kind="brass", chord_center=61,
    chord_patterns=((0.0, "X--.......X--..."), (0.6, "X--...X--.X--...")),
    lead_kind="saw", lead_low=68,
    lead_rhythms=("x.x.x...x.x.x...x.x.x...x-x-x-..", "x-..x-..x-x-x-..x-..x-..x-x-x-x-",
                  "x.x.x.x.x---....x.x.x.x.x---...."),
    swing=0.5, pad_level=0.3, pad_center=52, fill_sound="krump_snare",
    bass_gain=0.57, chord_gain=0.8, pad_gain=0.9, lead_gain=0.5, mix_gain=0.55,
))

_add(GenrePreset(
    name="street_jazz", tempo_hint=(104, 124), key=58, scale="minor",
    progression=(C(0, "m9"), C(5, "m9"), C(8, "maj7"), C(7, "7")),     # Bbm9 Ebm9 Gbmaj7 F7
    drums=(
        DrumPart("kick_boom", ((0.0, "X.....o.X......."), (0.5, "..........o..o..")), 1.0),
        DrumPart("clap", ((0.0, "....X.......X..."),), 0.65, 0.05),
        DrumPart("snap", ((0.4, "....x.......x..."),), 0.3, 0.3),
        DrumPart("hat_bright", ((0.0, "x.x.x.x.x.x.x.x."), (0.55, ".o.o.o.o.o.o.o.o")), 0.43, -0.25),
        DrumPart("open_hat", ((0.5, "..............x."),), 0.4, 0.25),
        DrumPart("rim", ((0.7, "..x..x....x..x.."),), 0.15, 0.45),
    ),
    bass_kind="finger", bass_low=34, bass_patterns=((0.0, "R-.R..O.R-..5.7."), (0.6, "R-.R.rO.R-.r5.7n")),
    chord_kind="epiano", chord_center=65,
    chord_patterns=((0.0, "..x-..x-....x-.."), (0.55, "x-.x-.x-..x-.x-.")),
    lead_kind="pluck", lead_low=70,
    lead_rhythms=("x.x.x-..x.x.x-..x.x.x-..x.x-x-..", "..x-x-x-..x-x-..x-x-..x-x-......",
                  "x-x-x-x-x-..x-..x-..x-x-x-------"),
    swing=0.55, pad_level=0.25, fill_sound="clap",
    bass_gain=0.66, chord_gain=0.5, pad_gain=0.75, lead_gain=0.6, mix_gain=0.85,
))

_add(GenrePreset(
    name="ballet_jazz", tempo_hint=(90, 130), key=65, scale="major",
    progression=(C(0, "maj7"), C(9, "m7"), C(2, "m7"), C(7, "7")),     # Fmaj7 Dm7 Gm7 C7
    drums=(
        DrumPart("kick_soft", ((0.0, "x...x...x...x..."),), 0.9),
        DrumPart("brush", ((0.0, "....X.......X..."),), 0.7, 0.1),
        DrumPart("ride", ((0.0, "x...x.o.x...x.o."),), 0.4, 0.35),
        DrumPart("hat_soft", ((0.4, "....o.......o..."),), 0.45, -0.3),
        DrumPart("rim", ((0.75, "......o.......o."),), 0.12, -0.4),
    ),
    bass_kind="upright", bass_low=36, bass_patterns=((0.0, "R...3...5...n..."), (0.6, "R...5...O...n.5.")),
    chord_kind="piano", chord_center=64,
    chord_patterns=((0.0, "X-....x-........"), (0.55, "X-....x-..x-....")),
    lead_kind="bell", lead_low=72,
    lead_rhythms=("x---x---x---x-------x---x---x---", "x-x-x---x-------x-x-x---x-------",
                  "....x-x-x-x-x-------x-x-x-------"),
    swing=0.64, swing_unit=8, pad_level=0.45, fill_sound="brush",
    bass_gain=0.37, chord_gain=0.28, pad_gain=0.34, lead_gain=0.18, mix_gain=1.4,
))


def _alts(*progressions: str) -> tuple[tuple[Chord, ...], ...]:
    """Progressions written as ``"0:m9 8:maj7 ..."`` (root semitones above the key : quality)."""
    out = []
    for text in progressions:
        chords = []
        for item in text.split():
            root, _, quality = item.partition(":")
            chords.append(C(int(root), quality))
        out.append(tuple(chords))
    return tuple(out)


#: Per genre: an 8-bar progression and a 4-bar breakdown progression, in the preset's key.
ALT_PROGRESSIONS: dict[str, tuple[tuple[Chord, ...], ...]] = {
    "house": _alts("0:m9 8:maj7 5:m9 7:m7 8:maj7 10: 0:m9 7:7", "5:m9 8:maj7 0:m9 10:"),
    "waack": _alts("0:m7 5:9 0:m7 5:9 8:maj7 10: 7:7 7:7", "8:maj7 10: 0:m7 5:9"),
    "lock": _alts("0:9 0:9 5:9 5:9 0:9 10: 5:9 7:9", "5:9 10: 0:9 7:9"),
    "break": _alts("0:m7 0:m7 5:9 5:9 3:maj7 10: 5:9 7:m7", "3:maj7 10: 0:m7 5:9"),
    "pop": _alts("0:m7 8:maj7 10: 7:m7 8:maj7 10: 0:m7 7:7", "8:maj7 3: 10: 0:m7"),
    "middle_hiphop": _alts("0:m9 0:m9 8:maj7 8:maj7 5:m9 10: 3:maj7 7:7", "8:maj7 3:maj7 5:m9 7:7"),
    "la_hiphop": _alts("0:m9 5:m9 0:m9 5:m9 8:maj7 10: 3:maj7 7:7", "8:maj7 3:maj7 5:m9 7:7"),
    "krump": _alts("0:m 0:m 1: 1: 8: 10: 1: 0:m", "1: 10: 8: 0:m"),
    "street_jazz": _alts("0:m9 5:m9 0:m9 5:m9 8:maj7 3:maj7 2:m7b5 7:7", "8:maj7 3:maj7 5:m9 7:7"),
    "ballet_jazz": _alts("0:maj7 4:m7 9:m7 2:m7 5:maj7 7:7 0:maj7 7:7", "5:maj7 4:m7 2:m7 7:7"),
}
for _name, _prog in ALT_PROGRESSIONS.items():
    PRESETS[_name] = replace(PRESETS[_name], alt_progressions=_prog)

missing = set(GENRES) - set(PRESETS)
if missing:  # pragma: no cover - guarded at import
    raise RuntimeError(f"synth presets missing for genres: {sorted(missing)}")


def preset_for(genre: str) -> GenrePreset:
    """The preset for ``genre`` (key, alias or AIST++ code); unknown genres get :data:`DEFAULT_GENRE`'s."""
    try:
        return PRESETS[parse_genre(genre)]
    except UnknownGenre:
        return PRESETS[DEFAULT_GENRE]
