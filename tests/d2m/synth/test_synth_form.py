"""The arranger plays the song form: builds, peaks, breakdowns, outros, and variation between phrases."""

from __future__ import annotations

import numpy as np
import pytest

from d2m import form as F
from d2m.genres import GENRES
from d2m.synth import PRESETS
from d2m.synth.arranger import Arranger

SR = 48000


def _section(builder, genre, section, bars, *, start_bar=0, index=1, energy=0.6, next_section=F.GROOVE):
    b = builder(genre, energy=energy)
    b.bar = start_bar
    for k in range(bars):
        b.bars(1, 120.0, section=section, section_bar=k, section_bars=bars, bars_to_next_section=bars - k,
               next_section=next_section, section_index=index)
    return b.plans


def _rms_db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


@pytest.mark.parametrize("genre", GENRES)
def test_a_breakdown_is_at_least_6_db_below_the_peak_and_thinner(builder, render, genre):
    peak = _section(builder, genre, F.PEAK, 8, start_bar=32, index=3)
    down = _section(builder, genre, F.BREAKDOWN, 8, start_bar=48, index=4)
    loud, _ = render(peak)
    quiet, _ = render(down)
    assert _rms_db(loud) - _rms_db(quiet) >= 6.0
    arr, preset = Arranger(), PRESETS[genre]
    sounds = {h.sound for p in down[:-1] for h in arr.music(p, preset).hits}   # the last bar may fill
    assert not any(s.startswith(("kick", "snare", "clap", "krump_snare", "brush")) for s in sounds)


def test_a_build_rises_into_the_peak_with_a_riser_a_snare_roll_and_an_opening_filter(builder):
    arr, preset = Arranger(), PRESETS["house"]
    plans = _section(builder, "house", F.BUILD, 8, start_bar=24, index=2, next_section=F.PEAK)
    scores = [arr.music(p, preset) for p in plans]
    assert all(s.riser is not None for s in scores)
    assert [s.riser[1] for s in scores] == sorted(s.riser[1] for s in scores)
    brights = [s.bright for s in scores]
    assert brights == sorted(brights) and brights[-1] - brights[0] > 0.5
    roll = lambda s: sum(h.sound == preset.fill_sound for h in s.hits)  # noqa: E731
    assert roll(scores[-1]) >= 16 > roll(scores[-2]) >= 8 > roll(scores[0])
    peak = arr.music(_section(builder, "house", F.PEAK, 16, start_bar=32, index=3)[0], preset)
    assert any(h.sound == preset.crash_sound for h in peak.hits)
    assert any(n.part == "lead" for n in peak.notes)


def test_the_riser_is_heard_in_the_build(builder, render):
    from d2m.synth.fx import render_riser
    x = render_riser(SR, SR, 0.5, 0.625, 0.5, 3)
    assert x.dtype == np.float32 and np.isfinite(x).all() and 0.01 < np.abs(x).max() < 1.0
    np.testing.assert_array_equal(x, render_riser(SR, SR, 0.5, 0.625, 0.5, 3))
    # the build's last bar is louder above 4 kHz than the same bar without the form
    plan = _section(builder, "house", F.BUILD, 8, start_bar=24, index=2)[-1]
    plain = builder("house", energy=0.6)
    plain.bar = 31
    with_riser, _ = render([plan])
    without, _ = render(plain.bars(1, 120.0).plans)
    hf = lambda a: np.abs(np.fft.rfft(a.mean(axis=1)))[4000 * len(a) // SR:].sum()  # noqa: E731
    assert hf(with_riser) > 1.2 * hf(without)


@pytest.mark.parametrize("genre", GENRES)
def test_no_two_consecutive_phrases_arrange_the_same(builder, genre):
    arr, preset = Arranger(), PRESETS[genre]
    plans = _section(builder, genre, F.GROOVE, 32, start_bar=8, index=1)
    def phrase(k):
        out = []
        for p in plans[8 * k:8 * k + 8]:
            s = arr.music(p, preset)
            out.append((sorted((h.sound, h.offset) for h in s.hits),
                        sorted((n.part, n.offset, n.midi if isinstance(n.midi, int) else tuple(n.midi))
                               for n in s.notes)))
        return out
    phrases = [phrase(k) for k in range(4)]
    for a, b in zip(phrases, phrases[1:]):
        assert a != b
        assert sum(x != y for x, y in zip(a, b)) >= 2     # more than a single bar differs


@pytest.mark.parametrize("genre", GENRES)
def test_grooves_move_through_the_alternate_progressions(builder, genre):
    arr, preset = Arranger(), PRESETS[genre]
    assert preset.alt_progressions and all(4 <= len(p) <= 8 for p in preset.alt_progressions)
    assert max(len(p) for p in preset.alt_progressions) == 8
    plans = _section(builder, genre, F.GROOVE, 16, start_bar=8, index=1)
    chords = [next(n.midi for n in arr.music(p, preset).notes if n.part == "chord") for p in plans]
    from d2m.synth.theory import voice_chord
    loop = [voice_chord(preset.key, preset.progression[k % 4], preset.chord_center) for k in range(8, 24)]
    assert chords != loop                                   # not the 4-bar loop over and over
    assert len(set(chords)) >= len(set(preset.progression))


def test_the_outro_ends_on_the_tonic_and_the_end_is_only_the_pad(builder):
    arr, preset = Arranger(), PRESETS["pop"]
    plans = _section(builder, "pop", F.OUTRO, 8, start_bar=64, index=6, next_section=F.END)
    last = arr.music(plans[-1], preset)
    bass = [n for n in last.notes if n.part == "bass"]
    assert len(bass) == 1 and (bass[0].midi - preset.key) % 12 == preset.progression[0].root % 12
    first_hits = len(arr.music(plans[0], preset).hits)
    assert len(last.hits) < first_hits
    end = _section(builder, "pop", F.END, 1, start_bar=72, index=7)[0]
    score = arr.music(end, preset)
    assert not score.hits and not score.notes and score.pad_level > 0
