"""Pseudo-word injection into MusicGen's T5 conditioning (torch).

The prompt is tokenised; T5's token embeddings are looked up; at every token
that carries a pseudo-word character (``*`` rhythm, ``@`` genre) the looked-up
row is *replaced* by the matching encoder output; the whole T5 encoder runs on
these ``inputs_embeds``; then MusicGen's own projection (``enc_to_dec_proj``)
and padding mask follow, exactly as in ``MusicgenForConditionalGeneration``.

Classifier-free guidance: :func:`with_null_condition` appends the null
condition of the empty prompt (zero states, zero mask), which is what
transformers' MusicGen ``generate`` and audiocraft use.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import deps
from .prompts import GENRE_WORD, RHYTHM_WORD

deps.require()

import torch  # noqa: E402

#: Distinct prompts whose tokenisation is kept (operator prompts repeat).
TOKEN_CACHE_SIZE = 64


class PseudoWordMissing(ValueError):
    """An encoder vector was given but the prompt has no token for its pseudo-word."""


@dataclass
class PromptTokens:
    """A tokenised batch of prompts with the pseudo-words' positions."""

    input_ids: torch.Tensor       #: (B, L) long
    attention_mask: torch.Tensor  #: (B, L) long
    rhythm_mask: torch.Tensor     #: (B, L) bool: tokens replaced by the rhythm vector
    genre_mask: torch.Tensor      #: (B, L) bool: tokens replaced by the genre vector

    def to(self, device) -> "PromptTokens":
        return PromptTokens(*(t.to(device) for t in
                              (self.input_ids, self.attention_mask, self.rhythm_mask, self.genre_mask)))


@dataclass
class Conditioning:
    """Cross-attention input of the decoder: projected T5 states and their mask."""

    hidden: torch.Tensor          #: (B, L, decoder width)
    mask: torch.Tensor            #: (B, L) long


def pseudo_word_mask(offsets, text: str, word: str) -> list[bool]:
    """For each token's character span, whether it covers an occurrence of ``word``."""
    spots = [i for i, ch in enumerate(text) if ch == word]
    return [any(a <= s < b for s in spots) if b > a else False for a, b in offsets]


class PromptConditioner:
    """Turns prompts plus pseudo-word vectors into decoder conditioning for one MusicGen."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self._cache: dict[str, tuple[list[int], list[bool], list[bool]]] = {}

    @property
    def text_width(self) -> int:
        return int(self.model.text_encoder.get_input_embeddings().weight.shape[1])

    def _tokenize_one(self, text: str):
        hit = self._cache.get(text)
        if hit is None:
            enc = self.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
            ids = list(enc["input_ids"])
            offsets = [tuple(o) for o in enc["offset_mapping"]]
            hit = (ids, pseudo_word_mask(offsets, text, RHYTHM_WORD),
                   pseudo_word_mask(offsets, text, GENRE_WORD))
            if len(self._cache) >= TOKEN_CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[text] = hit
        return hit

    def tokenize(self, prompts: list[str]) -> PromptTokens:
        """Tokenise (right-padded with the tokenizer's pad id) and locate the pseudo-words."""
        rows = [self._tokenize_one(p) for p in prompts]
        length = max(len(r[0]) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        b = len(rows)
        ids = torch.full((b, length), pad, dtype=torch.long)
        mask = torch.zeros((b, length), dtype=torch.long)
        rmask = torch.zeros((b, length), dtype=torch.bool)
        gmask = torch.zeros((b, length), dtype=torch.bool)
        for i, (tok, r, g) in enumerate(rows):
            n = len(tok)
            ids[i, :n] = torch.tensor(tok)
            mask[i, :n] = 1
            rmask[i, :n] = torch.tensor(r, dtype=torch.bool)
            gmask[i, :n] = torch.tensor(g, dtype=torch.bool)
        return PromptTokens(ids, mask, rmask, gmask)

    def input_embeddings(self, tokens: PromptTokens, rhythm: torch.Tensor | None = None,
                         genre: torch.Tensor | None = None) -> torch.Tensor:
        """T5 input embeddings with the pseudo-word rows replaced; ``(B, L, text width)``.

        ``rhythm`` / ``genre`` are ``(B, text width)`` (or ``None``: keep the
        token's own embedding). Gradients flow into the vectors.
        """
        emb_layer = self.model.text_encoder.get_input_embeddings()
        emb = emb_layer(tokens.input_ids.to(emb_layer.weight.device))
        for vec, where, word in ((rhythm, tokens.rhythm_mask, RHYTHM_WORD),
                                 (genre, tokens.genre_mask, GENRE_WORD)):
            if vec is None:
                continue
            where = where.to(emb.device)
            if not bool(where.any(dim=1).all()):
                raise PseudoWordMissing(
                    f"a {word!r} vector was given but a prompt has no {word!r}; use "
                    f"d2m.musicgen.prompts.compose_prompt to build prompts")
            emb = torch.where(where[..., None], vec.to(emb.dtype)[:, None, :], emb)
        return emb

    def encode(self, tokens: PromptTokens, rhythm: torch.Tensor | None = None,
               genre: torch.Tensor | None = None) -> Conditioning:
        """Run T5 on the injected embeddings and project to the decoder's width."""
        model = self.model
        device = model.text_encoder.get_input_embeddings().weight.device
        tokens = tokens.to(device)
        embeds = self.input_embeddings(tokens, rhythm, genre)
        hidden = model.text_encoder(inputs_embeds=embeds, attention_mask=tokens.attention_mask).last_hidden_state
        proj = getattr(model, "enc_to_dec_proj", None)
        if proj is not None and hidden.shape[-1] != model.decoder.config.hidden_size:
            hidden = proj(hidden)
        hidden = hidden * tokens.attention_mask[..., None].to(hidden.dtype)
        return Conditioning(hidden, tokens.attention_mask)


def with_null_condition(cond: Conditioning) -> Conditioning:
    """Stack ``[cond, null]`` along the batch: the null half is the empty prompt (zeros, masked)."""
    return Conditioning(torch.cat([cond.hidden, torch.zeros_like(cond.hidden)], dim=0),
                        torch.cat([cond.mask, torch.zeros_like(cond.mask)], dim=0))
