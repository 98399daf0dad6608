"""The arranger's form and the presets' grooves (scores, no audio)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from d2m.genres import GENRES
from d2m.synth import DEFAULT_GENRE, PRESETS, preset_for
from d2m.synth.arranger import PHRASE_BARS, Arranger, step_grid
from d2m.synth.presets import HIT_VELOCITY, DrumPart, GenrePreset

SR = 48000
BEATS = (0, 4, 8, 12)
PULSE_SOUNDS = ("kick", "snare", "clap", "brush")


def _bar(builder, genre, bar, energy=0.6, bpm=120.0):
    b = builder(genre, energy=energy)
    b.bar = bar
    return b.bars(1, bpm).plans[0]


def test_every_genre_has_its_own_preset():
    assert set(PRESETS) == set(GENRES)
    assert preset_for("breakdance").name == "break"
    assert preset_for("gHO").name == "house"
    assert preset_for("not a dance").name == DEFAULT_GENRE
    assert preset_for("").name == DEFAULT_GENRE


@pytest.mark.parametrize("genre", GENRES)
def test_base_patterns_put_a_kick_or_snare_on_every_beat(genre):
    """The clear beat-level pulse beat trackers (and dancers) lock on to, from energy 0.3 up."""
    preset = PRESETS[genre]
    for beat in BEATS:
        strongest = 0.0
        for part in preset.drums:
            if not part.sound.startswith(PULSE_SOUNDS) and part.sound != "krump_snare":
                continue
            for threshold, pattern in part.layers:
                if threshold <= 0.3:
                    for half in range(len(pattern) // 16):
                        strongest = max(strongest, HIT_VELOCITY.get(pattern[16 * half + beat], 0.0))
        assert strongest >= HIT_VELOCITY["x"], f"{genre}: beat at step {beat} has no kick/snare"


def test_malformed_patterns_are_refused_with_the_reason():
    base = PRESETS["house"]
    with pytest.raises(ValueError, match="16 or 32 steps"):
        dataclasses.replace(base, drums=(DrumPart("hat", ((0.0, "x.x."),)),))
    with pytest.raises(ValueError, match="characters"):
        dataclasses.replace(base, bass_patterns=((0.0, "R..Q............"),))
    with pytest.raises(ValueError, match="scale"):
        dataclasses.replace(base, scale="lydian dominant")
    assert isinstance(base, GenrePreset)


def test_step_grid_follows_uneven_beats_and_swing():
    grid = step_grid((0, 1000, 2200, 3000), 4400)
    assert list(grid[::4]) == [0, 1000, 2200, 3000, 4400]
    assert grid[1] == 250 and grid[2] == 500
    swung = step_grid((0, 1000, 2000, 3000), 4000, swing=0.6)
    assert swung[1] == 300 and swung[2] == 500 and swung[3] == 800
    eighths = step_grid((0, 1000, 2000, 3000), 4000, swing=2 / 3, swing_unit=8)
    assert eighths[2] == 667


def test_hits_land_exactly_on_the_plan_beats(builder):
    plan = _bar(builder, "house", 3)
    kicks = sorted(h.offset for h in Arranger().music(plan, PRESETS["house"]).hits if h.sound == "kick_house")
    assert kicks == list(plan.beat_offsets)


def test_energy_densifies_hats_and_adds_layers(builder):
    arr = Arranger()
    calm = arr.music(_bar(builder, "house", 1, energy=0.5), PRESETS["house"])
    wild = arr.music(_bar(builder, "house", 1, energy=0.9), PRESETS["house"])
    hats = lambda s: sum(h.sound == "hat" for h in s.hits)  # noqa: E731
    assert hats(wild) >= 2 * hats(calm) > 0
    assert len({h.sound for h in wild.hits}) > len({h.sound for h in calm.hits})
    assert np.mean([h.velocity for h in wild.hits if h.sound == "kick_house"]) > \
        np.mean([h.velocity for h in calm.hits if h.sound == "kick_house"])


def test_phrases_end_in_a_fill_and_open_with_a_crash(builder):
    arr, preset = Arranger(), PRESETS["break"]
    fill_bar = arr.music(_bar(builder, "break", PHRASE_BARS - 1), preset)
    plain_bar = arr.music(_bar(builder, "break", 2), preset)
    plan = _bar(builder, "break", PHRASE_BARS - 1)
    last_beat = plan.beat_offsets[-1]
    in_last_beat = lambda score: [h for h in score.hits  # noqa: E731
                                  if h.sound == preset.fill_sound and h.offset > last_beat]
    assert len(in_last_beat(fill_bar)) >= 3 > len(in_last_beat(plain_bar))
    crash = lambda bar, **kw: any(  # noqa: E731
        h.sound == "crash" for h in arr.music(_bar(builder, "break", bar), preset, **kw).hits)
    assert crash(PHRASE_BARS) and not crash(PHRASE_BARS + 1)
    assert crash(5, after_break=True)  # coming back after idle/silence


def test_lead_plays_in_alternate_phrases_with_repeating_motifs(builder):
    arr, preset = Arranger(), PRESETS["street_jazz"]
    leads = {bar: [(n.offset, n.midi) for n in arr.music(_bar(builder, "street_jazz", bar), preset).notes
                   if n.part == "lead"] for bar in range(16)}
    assert not any(leads[b] for b in range(8))
    assert all(leads[b] for b in (8, 10, 12, 14))
    rhythm = lambda bar: [o for o, _ in leads[bar]]  # noqa: E731
    assert rhythm(8) == rhythm(10)   # A A' share the motif's rhythm (bars at the same tempo)
    all_notes = [m for b in range(8, 16) for _, m in leads[b]]
    assert max(all_notes) - min(all_notes) <= 24


def test_bass_and_chords_follow_the_progression(builder):
    arr, preset = Arranger(), PRESETS["ballet_jazz"]
    roots = []
    for bar in range(4):
        notes = arr.music(_bar(builder, "ballet_jazz", bar), preset).notes
        first_bass = min((n for n in notes if n.part == "bass"), key=lambda n: n.offset)
        roots.append(first_bass.midi % 12)
        chord = next(n for n in notes if n.part == "chord")
        assert (preset.key + preset.progression[bar].root) % 12 in {m % 12 for m in chord.midi}
    assert roots == [(preset.key + c.root) % 12 for c in preset.progression]


def test_sharpness_shortens_notes(builder):
    arr, preset = Arranger(), PRESETS["lock"]
    b = builder("lock", sharpness=0.0)
    legato = arr.music(b.bars(1, 110.0).plans[0], preset)
    b = builder("lock", sharpness=1.0)
    staccato = arr.music(b.bars(1, 110.0).plans[0], preset)
    mean_len = lambda s: np.mean([n.length for n in s.notes if n.part == "bass"])  # noqa: E731
    assert mean_len(staccato) < 0.6 * mean_len(legato)
