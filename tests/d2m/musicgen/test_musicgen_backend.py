"""MusicGenGenerator renders plans into exact-length, continuing, beat-locked audio."""

from __future__ import annotations

import numpy as np
import pytest

from d2m.generator import Generator, SegmentStream

SR = 48000


@pytest.fixture(scope="module")
def generator(tiny, encoders_path):
    from d2m.musicgen.backend import MusicGenGenerator

    model, tok = tiny
    return MusicGenGenerator(model=model, tokenizer=tok, device="cpu", encoders=encoders_path)


@pytest.fixture(scope="module")
def text_generator(tiny):
    from d2m.musicgen.backend import MusicGenGenerator

    model, tok = tiny
    return MusicGenGenerator(model=model, tokenizer=tok, device="cpu", beat_lock=False)


def test_is_a_generator(generator):
    assert isinstance(generator, Generator)
    assert generator.name == "musicgen" and generator.sample_rate == SR


@pytest.mark.parametrize("n_samples", [SR // 2, 24_011])
def test_render_gives_exactly_the_segment_length(generator, make_plan, n_samples):
    plan = make_plan(n_samples=n_samples)
    rendered, state = generator.render(plan, generator.initial_state())
    assert rendered.audio.shape == (n_samples, 2) and rendered.audio.dtype == np.float32
    assert rendered.tail is not None and rendered.tail.shape == (int(0.02 * SR), 2)
    assert rendered.continues is False
    assert np.all(np.isfinite(rendered.audio)) and np.abs(rendered.audio).max() <= 1.0
    assert np.any(rendered.audio != 0)
    t = generator.last_timing
    assert t.model_called and t.guided and t.decoder_calls > 0 and t.seconds > 0
    assert t.prompt == "a @ music with * as the rhythm"
    assert state.segments == 1 and state.history is not None


def test_idle_and_silence_are_silent_and_skip_the_model(generator, make_plan):
    state = generator.initial_state()
    _, state = generator.render(make_plan(0), state)
    for i, kind in enumerate(("idle", "silence"), start=1):
        rendered, state = generator.render(make_plan(i, kind=kind, n_samples=SR // 4), state)
        assert rendered.audio.shape == (SR // 4, 2)
        assert not np.any(rendered.audio)
        assert generator.last_timing.model_called is False
        assert generator.last_timing.decoder_calls == 0
        assert state.history is None          # the next music starts afresh


def test_four_bar_sequence_is_contiguous_and_continues_the_audio(generator, make_plan):
    stream = SegmentStream(generator)
    bars, prompts = [], []
    for i in range(4):
        bars.append(stream.render(make_plan(i, bar_s=0.75)))
        prompts.append(generator.last_timing.prompt_frames)
    audio = np.concatenate(bars)
    assert audio.shape == (4 * int(0.75 * SR), 2)
    assert prompts == [0, 37, 50, 50]      # the audio prompt grows to 1 s (50 code frames)
    # joins are no rougher than the segments themselves (crossfaded continuation)
    step = np.abs(np.diff(audio[:, 0]))
    joins = [int(0.75 * SR) * i for i in (1, 2, 3)]
    inner = np.delete(step, [j - 1 for j in joins])
    assert max(step[j - 1] for j in joins) <= inner.max()


def test_same_plans_give_the_same_audio(generator, make_plan):
    a, _ = generator.render(make_plan(2, seed=9), generator.initial_state())
    b, _ = generator.render(make_plan(2, seed=9), generator.initial_state())
    c, _ = generator.render(make_plan(2, seed=10), generator.initial_state())
    assert np.array_equal(a.audio, b.audio)
    assert not np.array_equal(a.audio, c.audio)


def test_motion_and_genre_change_the_music(generator, make_plan):
    base, _ = generator.render(make_plan(1), generator.initial_state())
    still, _ = generator.render(make_plan(1, motion=False), generator.initial_state())
    krump, _ = generator.render(make_plan(1, genre="krump"), generator.initial_state())
    assert not np.array_equal(base.audio, still.audio)
    assert not np.array_equal(base.audio, krump.audio)


def test_genre_probabilities_come_from_the_plan_first(generator, make_plan):
    probs = [0.0] * 10
    probs[7] = 1.0
    generator.render(make_plan(0, genre_probs=probs), generator.initial_state())
    assert generator.last_timing.genre_source == "plan"
    generator.render(make_plan(0), generator.initial_state())
    assert generator.last_timing.genre_source == "onehot"   # untrained classifier is not used


def test_operator_prompt_surrounds_the_pseudo_words(generator, make_plan):
    generator.render(make_plan(0, prompt="laid-back piano"), generator.initial_state())
    assert generator.last_timing.prompt == \
        "laid-back piano, in the style of @ music, with * as the rhythm"


def test_without_encoders_the_pseudo_words_become_words(text_generator, make_plan):
    rendered, _ = text_generator.render(make_plan(0, bpm=240.0, genre="house"),
                                        text_generator.initial_state())
    assert text_generator.last_timing.prompt == "a house music with a 240 bpm beat as the rhythm"
    assert rendered.audio.shape == (SR, 2)


def test_beat_lock_warps_onto_the_plan_grid(generator, make_plan):
    generator.render(make_plan(0, bar_s=1.0), generator.initial_state())
    assert generator.last_timing.beats_matched >= 1


def test_encoders_for_another_width_are_rejected(tiny, tmp_path):
    from d2m.musicgen.backend import MusicGenGenerator
    from d2m.musicgen.encoders import EncoderCheckpointError, EncoderConfig, PseudoWordEncoders

    wrong = PseudoWordEncoders(EncoderConfig(width=48)).save(tmp_path)
    with pytest.raises(EncoderCheckpointError, match="width"):
        MusicGenGenerator(model=tiny[0], tokenizer=tiny[1], device="cpu", encoders=wrong)
    with pytest.raises(EncoderCheckpointError, match="d2m train"):
        MusicGenGenerator(model=tiny[0], tokenizer=tiny[1], device="cpu", encoders=tmp_path / "none")


def test_factory_loads_from_a_directory(tiny_dir, encoders_path, make_plan):
    from d2m.musicgen import load_generator

    gen = load_generator("musicgen", model=str(tiny_dir), device="cpu", encoders=str(encoders_path))
    rendered, _ = gen.render(make_plan(0, n_samples=SR // 4), gen.initial_state())
    assert rendered.audio.shape == (SR // 4, 2)
    with pytest.raises(ValueError):
        load_generator("synth")
