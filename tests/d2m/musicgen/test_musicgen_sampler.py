"""The token loop: same result as transformers' generate, guidance active, prompt continuation."""

from __future__ import annotations

import pytest
import torch

from d2m.musicgen.sampler import delay_for_training, delayed_grid, sample_codes, undelay

TEXT = "a house music with drums"


@pytest.fixture(scope="module")
def cond(tiny):
    from d2m.musicgen.conditioning import PromptConditioner

    pc = PromptConditioner(*tiny)
    with torch.no_grad():
        return pc.encode(pc.tokenize([TEXT]))


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_greedy_loop_matches_transformers_generate(tiny, cond, guidance):
    model, tok = tiny
    frames = 12
    ours = sample_codes(model, cond, frames, guidance=guidance, temperature=0)
    ours_audio = model.audio_encoder.decode(ours.codes[None], audio_scales=[None]).audio_values
    with torch.no_grad():
        ref = model.generate(**tok([TEXT], return_tensors="pt"), do_sample=False,
                             guidance_scale=guidance, max_new_tokens=frames + 3)
    assert ours.codes.shape == (1, 4, frames)
    assert ref.shape == ours_audio.shape
    assert torch.allclose(ours_audio, ref, atol=1e-5)


def test_guidance_changes_the_output_and_uses_the_null_branch(tiny, cond):
    model, _ = tiny
    seen = []

    def hook(ids, hidden):
        seen.append((ids.shape[0], hidden.shape[0], float(hidden[1:].abs().sum()) if hidden.shape[0] > 1 else None))

    guided = sample_codes(model, cond, 30, guidance=3.0, generator=torch.Generator().manual_seed(5),
                          step_hook=hook)
    plain = sample_codes(model, cond, 30, guidance=1.0, generator=torch.Generator().manual_seed(5))
    again = sample_codes(model, cond, 30, guidance=3.0, generator=torch.Generator().manual_seed(5))
    assert guided.guided and not plain.guided
    assert torch.equal(guided.codes, again.codes)           # deterministic for a seed
    assert not torch.equal(guided.codes, plain.codes)       # guidance is active
    # every decoder call ran the conditional and the null (all-zero) condition together
    assert seen and all(n_ids == 2 * 4 and n_h == 2 and null == 0.0 for n_ids, n_h, null in seen)
    assert guided.decoder_calls == 30 + 4 - 1


def test_prompt_codes_are_continued(tiny, cond):
    model, _ = tiny
    full = sample_codes(model, cond, 16, guidance=3.0, temperature=0)
    cont = sample_codes(model, cond, 6, prompt_codes=full.codes[..., :10], guidance=3.0, temperature=0)
    assert cont.prompt_frames == 10
    assert torch.equal(cont.codes, full.codes)


def test_delay_pattern_round_trip():
    codes = torch.arange(2 * 4 * 5).reshape(2, 4, 5)
    grid = delayed_grid(codes, 5, pad=99)
    assert grid.shape == (2, 4, 8)
    assert grid[0, 2].tolist() == [99, 99, 10, 11, 12, 13, 14, 99]
    assert torch.equal(undelay(grid, 5), codes)
    inputs, target = delay_for_training(codes, pad=99)
    assert torch.equal(target, grid)
    assert inputs[0, 0].tolist() == [99] + grid[0, 0, :-1].tolist()


def test_static_cache_gives_the_same_codes(tiny, cond):
    model, _ = tiny
    dynamic = sample_codes(model, cond, 10, guidance=3.0, temperature=0)
    static = sample_codes(model, cond, 10, guidance=3.0, temperature=0, use_static_cache=True)
    assert torch.equal(dynamic.codes, static.codes)


@pytest.fixture(scope="module")
def stereo(tiny):
    from d2m.musicgen.loading import quiet_transformers
    from d2m.musicgen.tiny import fit_codebooks, random_model, tiny_config

    tok = tiny[1]
    with quiet_transformers():
        model = random_model(tiny_config(len(tok), stereo=True))
        fit_codebooks(model)
    return model, tok


def test_stereo_layout_matches_transformers_generate(stereo):
    from d2m.musicgen.conditioning import PromptConditioner

    model, tok = stereo
    pc = PromptConditioner(model, tok)
    with torch.no_grad():
        c = pc.encode(pc.tokenize([TEXT]))
    ours = sample_codes(model, c, 10, guidance=3.0, temperature=0)
    assert ours.codes.shape == (1, 8, 10) and ours.decoder_calls == 10 + 3   # pairs share a delay
    left = model.audio_encoder.decode(ours.codes[None, :, ::2], audio_scales=[None]).audio_values
    right = model.audio_encoder.decode(ours.codes[None, :, 1::2], audio_scales=[None]).audio_values
    with torch.no_grad():
        ref = model.generate(**tok([TEXT], return_tensors="pt"), do_sample=False, guidance_scale=3.0,
                             max_new_tokens=10 + 3)
    assert torch.allclose(torch.cat([left, right], dim=1), ref, atol=1e-5)


def test_stereo_model_renders_stereo(stereo, make_plan):
    import numpy as np

    from d2m.musicgen.backend import MusicGenGenerator

    gen = MusicGenGenerator(model=stereo[0], tokenizer=stereo[1], device="cpu", beat_lock=False)
    state = gen.initial_state()
    for i in range(2):
        rendered, state = gen.render(make_plan(i, n_samples=12000), state)
        assert rendered.audio.shape == (12000, 2)
    assert gen.last_timing.prompt_frames == 12                  # stereo audio prompt was encoded
    assert not np.array_equal(rendered.audio[:, 0], rendered.audio[:, 1])
