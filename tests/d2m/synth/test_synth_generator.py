"""SynthGenerator honours the Generator contract: shapes, determinism, bounded state, levels."""

from __future__ import annotations

import numpy as np
import pytest

from d2m.generator import CHANNELS, Generator
from d2m.genres import GENRES
from d2m.synth import SynthGenerator
from d2m.synth.generator import MAX_TAIL_S, PEAK_CEILING

SR = 48000


def test_implements_the_generator_protocol():
    gen = SynthGenerator(SR)
    assert isinstance(gen, Generator)
    assert gen.name == "synth" and gen.sample_rate == SR


@pytest.mark.parametrize("genre", GENRES)
def test_every_genre_renders_exact_float32_stereo_blocks(builder, genre):
    plans = builder(genre).bars(2, 117.0).idle(1).silence(0.3).plans
    gen = SynthGenerator(SR)
    state = gen.initial_state()
    for plan in plans:
        rendered, state = gen.render(plan, state)
        assert rendered.audio.shape == (plan.n_samples, CHANNELS)
        assert rendered.audio.dtype == np.float32
        assert rendered.continues is True and rendered.tail is None
        assert np.all(np.isfinite(rendered.audio))


def test_odd_and_tiny_segment_lengths(builder, render):
    b = builder("krump")
    b.segment("music", 12345, (0, 3000, 6100, 9300), 97.0)
    b.segment("idle", 1, (0,), 120.0)
    b.segment("music", 7, (0, 2, 4, 6), 120.0)
    b.segment("silence", 0, (), 120.0)
    b.segment("music", 5000, (), 120.0)  # a music plan without beats just rings out
    _, chunks = render(b.plans)
    assert [len(c) for c in chunks] == [12345, 1, 7, 0, 5000]


def test_same_plans_give_bit_identical_audio(builder, render):
    plans = builder("break", energy=0.8).idle(2).bars(9, 128.0).silence(0.5).plans
    a, _ = render(plans, SynthGenerator(SR))
    b, _ = render(plans, SynthGenerator(SR))
    assert np.array_equal(a, b)


def test_a_warm_tone_cache_does_not_change_the_audio(builder, render):
    """The generator reuses raw tones between notes; that must be invisible in the output."""
    plans = builder("street_jazz", energy=0.9).bars(6, 111.0).plans
    warm = SynthGenerator(SR)
    render(builder("street_jazz", energy=0.2).bars(4, 90.0).plans, warm)  # fills the cache differently
    assert len(warm.tones) > 0
    a, _ = render(plans, warm)
    b, _ = render(plans, SynthGenerator(SR))
    assert np.array_equal(a, b)


def test_the_seed_changes_the_music(builder, render):
    a, _ = render(builder("house", seed=1, energy=0.9).bars(4, 124.0).plans)
    b, _ = render(builder("house", seed=2, energy=0.9).bars(4, 124.0).plans)
    assert not np.array_equal(a, b)


def test_state_stays_bounded_over_a_long_show(builder):
    gen = SynthGenerator(SR)
    state = gen.initial_state()
    plans = builder("la_hiphop", energy=0.9, sharpness=0.0).bars(64, 96.0).plans
    longest = 0
    for plan in plans:
        _, state = gen.render(plan, state)
        longest = max(longest, state.carry.shape[1])
        assert state.pad.phases.shape == (8,)
    assert 0 < longest <= MAX_TAIL_S * SR
    assert gen.tones.samples <= gen.tones.max_samples


def test_render_does_not_mutate_the_input_state(builder):
    gen = SynthGenerator(SR)
    plans = builder("waack").bars(2, 120.0).plans
    _, s1 = gen.render(plans[0], gen.initial_state())
    carry_before = s1.carry.copy()
    a, _ = gen.render(plans[1], s1)
    b, _ = gen.render(plans[1], s1)  # replaying from a saved state gives the same bar
    assert np.array_equal(s1.carry, carry_before)
    assert np.array_equal(a.audio, b.audio)


def test_wrong_sample_rate_is_refused_with_advice(builder):
    plan = builder("pop").bars(1, 120.0).plans[0]
    with pytest.raises(ValueError, match="sample_rate=48000"):
        SynthGenerator(44100).render(plan, None)


def test_unknown_genre_falls_back_to_a_preset(builder, render):
    audio, _ = render(builder("polka").bars(2, 120.0).plans)
    assert np.sqrt(np.mean(audio ** 2)) > 0.05


@pytest.mark.parametrize("genre", GENRES)
def test_levels_peak_below_ceiling_and_rms_in_range(builder, render, genre):
    for energy in (0.3, 1.0):
        audio, chunks = render(builder(genre, energy=energy, sharpness=0.2).bars(4, 122.0).plans)
        assert np.abs(audio).max() <= PEAK_CEILING
        bar_rms = [float(np.sqrt(np.mean(c ** 2))) for c in chunks[1:]]
        assert all(0.07 <= r <= 0.3 for r in bar_rms), (genre, energy, bar_rms)
