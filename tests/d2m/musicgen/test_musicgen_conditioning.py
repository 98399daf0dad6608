"""Pseudo-word injection into T5's input embeddings, and prompt templates."""

from __future__ import annotations

import pytest
import torch

from d2m.musicgen.prompts import (DEFAULT_TEMPLATE, GENRE_SUFFIX, RHYTHM_SUFFIX, compose_prompt,
                                  text_fallback)


def test_default_template_when_no_operator_text():
    assert compose_prompt("") == DEFAULT_TEMPLATE == "a @ music with * as the rhythm"
    assert compose_prompt("   ") == DEFAULT_TEMPLATE


def test_operator_text_keeps_its_own_pseudo_words_and_gets_missing_ones_appended():
    assert compose_prompt("laid-back @ music with saxophone, with * as the rhythm") == \
        "laid-back @ music with saxophone, with * as the rhythm"
    assert compose_prompt("laid-back music with piano") == \
        "laid-back music with piano" + GENRE_SUFFIX + RHYTHM_SUFFIX
    assert compose_prompt("jazzy *beat*", append_missing=()) == "jazzy * beat *"
    assert compose_prompt("piano", append_missing=()) == "piano"


def test_text_fallback_names_genre_and_tempo():
    assert text_fallback(DEFAULT_TEMPLATE, genre_name="house", bpm=124.4) == \
        "a house music with a 124 bpm beat as the rhythm"


@pytest.fixture(scope="module")
def conditioner(tiny):
    from d2m.musicgen.conditioning import PromptConditioner

    return PromptConditioner(*tiny)


def test_injection_replaces_exactly_the_pseudo_word_rows(conditioner):
    torch.manual_seed(0)
    prompts = [compose_prompt(""), compose_prompt("fast drums and bass")]
    tokens = conditioner.tokenize(prompts)
    assert tokens.rhythm_mask.sum(dim=1).tolist() == [1, 1]
    assert tokens.genre_mask.sum(dim=1).tolist() == [1, 1]
    d = conditioner.text_width
    rhythm, genre = torch.randn(2, d) * 5, torch.randn(2, d) * 5
    plain = conditioner.input_embeddings(tokens)
    injected = conditioner.input_embeddings(tokens, rhythm, genre)
    changed = (plain != injected).any(dim=-1)
    assert torch.equal(changed, tokens.rhythm_mask | tokens.genre_mask)
    assert torch.equal(injected[tokens.rhythm_mask], rhythm)
    assert torch.equal(injected[tokens.genre_mask], genre)
    # the rhythm token of the default prompt is the 5th piece: "a @ music with *"
    assert tokens.rhythm_mask[0].nonzero().flatten().tolist() == [4]
    assert tokens.genre_mask[0].nonzero().flatten().tolist() == [1]


def test_injection_changes_the_t5_conditioning(conditioner):
    torch.manual_seed(1)
    tokens = conditioner.tokenize([DEFAULT_TEMPLATE])
    d = conditioner.text_width
    with torch.no_grad():
        base = conditioner.encode(tokens)
        a = conditioner.encode(tokens, torch.randn(1, d), torch.randn(1, d))
        b = conditioner.encode(tokens, torch.randn(1, d), torch.randn(1, d))
    assert base.hidden.shape == a.hidden.shape
    assert a.hidden.shape[-1] == conditioner.model.decoder.config.hidden_size  # projected
    assert not torch.allclose(a.hidden, base.hidden)
    assert not torch.allclose(a.hidden, b.hidden)
    assert torch.isfinite(a.hidden).all()


def test_gradients_reach_the_injected_vectors(conditioner):
    tokens = conditioner.tokenize([DEFAULT_TEMPLATE])
    vec = torch.randn(1, conditioner.text_width, requires_grad=True)
    conditioner.encode(tokens, vec, None).hidden.pow(2).mean().backward()
    assert vec.grad is not None and vec.grad.abs().sum() > 0


def test_vector_without_its_pseudo_word_is_an_error(conditioner):
    from d2m.musicgen.conditioning import PseudoWordMissing

    tokens = conditioner.tokenize(["plain piano music"])
    with pytest.raises(PseudoWordMissing):
        conditioner.input_embeddings(tokens, torch.zeros(1, conditioner.text_width))
