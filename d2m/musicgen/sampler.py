"""MusicGen's token loop: delay pattern, KV cache, classifier-free guidance, top-k (torch).

This is the sampling loop of ``MusicgenForConditionalGeneration.generate``
rewritten around the same transformers decoder, so that

* the conditioning can be any tensor (pseudo-word injection happens before),
* an audio prompt (codes of the music that just played) is continued,
* randomness comes from a private ``torch.Generator`` (deterministic, no
  global RNG state touched; safe in a worker thread),
* guidance is explicit: the batch is ``[conditional, null]`` and the logits
  are ``null + g * (cond - null)``; ``guidance <= 1`` runs the conditional
  branch alone,
* every decoder call is counted (steps per second in the benchmark).

Delay pattern: codebook ``k`` is shifted right by ``k`` steps. Position ``i``
of the delayed grid holds code ``t = i - k`` of codebook ``k``; positions
with ``t < 0`` or ``t >= frames`` hold the pad/start token.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from . import deps
from .conditioning import Conditioning, with_null_condition

deps.require()

import torch  # noqa: E402

#: Sentinel for "not decided yet" in the delayed grid.
UNKNOWN = -1
#: Static KV caches are sized in multiples of this many positions.
STATIC_CACHE_BUCKET = 256


@dataclass
class SampleResult:
    codes: torch.Tensor        #: (B, K, prompt_frames + new_frames) long
    prompt_frames: int
    decoder_calls: int         #: forward passes of the decoder (prefill included)
    guided: bool               #: True when the null branch ran


def _cache_kwarg(decoder) -> str:
    params = inspect.signature(decoder.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _cache_of(out):
    for name in ("cache", "past_key_values"):
        val = getattr(out, name, None)
        if val is not None:
            return val
    return None


def codebook_delays(num_codebooks: int, audio_channels: int = 1) -> list[int]:
    """Delay of each codebook: ``k`` for mono; ``k // 2`` for stereo models, whose left/right
    codebooks are interleaved and share a delay (as transformers' MusicGen does)."""
    return [k // 2 if audio_channels == 2 else k for k in range(num_codebooks)]


def delayed_grid(codes: torch.Tensor, total_frames: int, pad: int, delays=None) -> torch.Tensor:
    """The delayed grid ``(B, K, total_frames + max delay)``: prompt codes placed, pads set, rest UNKNOWN."""
    b, k, p = codes.shape
    delays = list(range(k)) if delays is None else list(delays)
    length = total_frames + max(delays)
    grid = torch.full((b, k, length), UNKNOWN, dtype=torch.long, device=codes.device)
    for cb, d in enumerate(delays):
        grid[:, cb, :d] = pad
        grid[:, cb, d + total_frames:] = pad
        if p:
            grid[:, cb, d:d + p] = codes[:, cb]
    return grid


def undelay(grid: torch.Tensor, frames: int, delays=None) -> torch.Tensor:
    """Inverse of :func:`delayed_grid`: ``(B, K, frames)``."""
    delays = list(range(grid.shape[1])) if delays is None else list(delays)
    return torch.stack([grid[:, cb, d:d + frames] for cb, d in enumerate(delays)], dim=1)


def delay_for_training(codes: torch.Tensor, pad: int, delays=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing pair for codes ``(B, K, T)``: decoder inputs and targets, both ``(B, K, T + max delay)``.

    Targets are the delayed grid (pads where no code exists: ignore them in the
    loss); inputs are the targets shifted right by one behind the start token.
    """
    target = delayed_grid(codes, codes.shape[-1], pad, delays)
    inputs = torch.full_like(target, pad)
    inputs[..., 1:] = target[..., :-1]
    return inputs, target


def _pick(logits: torch.Tensor, top_k: int, temperature: float, generator) -> torch.Tensor:
    """Sample ``(N,)`` tokens from ``(N, V)`` logits with top-k and temperature (greedy if temperature 0)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def static_cache(decoder, max_len: int):
    """An encoder-decoder cache whose self-attention part is a fixed-size ``StaticCache``.

    Fixed shapes let ``torch.compile`` (CUDA graphs) reuse one graph for every
    step. Raises ``RuntimeError`` when this transformers version cannot build it.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache, StaticCache

    try:
        self_cache = StaticCache(config=decoder.config, max_cache_len=max_len)
        cross = DynamicCache(config=decoder.config)
    except TypeError as exc:
        raise RuntimeError(f"this transformers version cannot build a static cache for MusicGen ({exc}); "
                           f"run without static_cache") from None
    return EncoderDecoderCache(self_cache, cross)


@torch.inference_mode()
def sample_codes(model, cond: Conditioning, new_frames: int, *, prompt_codes: torch.Tensor | None = None,
                 guidance: float = 3.0, top_k: int = 250, temperature: float = 1.0,
                 generator: torch.Generator | None = None, step_hook=None,
                 use_static_cache: bool = False, step_decoder=None) -> SampleResult:
    """Generate ``new_frames`` code frames after ``prompt_codes`` (``(B, K, P)`` or None).

    ``step_hook(decoder_input_ids, encoder_hidden_states)`` is called before
    every decoder call (for tests and tracing). ``use_static_cache`` keeps the
    self-attention KV cache at a fixed size; ``step_decoder`` (e.g. a
    ``torch.compile``-d ``model.decoder``) replaces the decoder for the
    one-token steps after the prefill.
    """
    decoder = model.decoder
    k = int(decoder.num_codebooks)
    pad = int(model.generation_config.decoder_start_token_id
              if model.generation_config.decoder_start_token_id is not None
              else decoder.config.pad_token_id)
    device = cond.hidden.device
    b = cond.hidden.shape[0]
    if prompt_codes is None:
        prompt_codes = torch.zeros((b, k, 0), dtype=torch.long, device=device)
    p = int(prompt_codes.shape[-1])
    total = p + int(new_frames)
    limit = int(decoder.config.max_position_embeddings)
    if total + k > limit:
        raise ValueError(f"{total} code frames exceed the decoder's {limit} positions; "
                         f"shorten the segment or the audio prompt")
    delays = codebook_delays(k, int(getattr(decoder.config, "audio_channels", 1)))
    grid = delayed_grid(prompt_codes.to(device), total, pad, delays)
    guided = guidance is not None and guidance > 1.0
    cross = with_null_condition(cond) if guided else cond
    cache_name = _cache_kwarg(decoder)
    reps = 2 if guided else 1

    def inputs_for(lo: int, hi: int) -> torch.Tensor:
        # decoder input at position j is the grid at j-1 (start token at 0)
        x = torch.full((b, k, hi - lo), pad, dtype=torch.long, device=device)
        src_lo = max(lo - 1, 0)
        if hi - 1 > src_lo:
            x[..., (src_lo + 1) - lo:] = grid[..., src_lo:hi - 1]
        return x.repeat(reps, 1, 1).reshape(reps * b * k, hi - lo)

    if use_static_cache:   # bucketed size: few distinct shapes for torch.compile
        size = min(limit, -(-(grid.shape[-1] + 1) // STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET)
        cache = static_cache(decoder, size)
    else:
        cache = None
    calls = 0
    pos = p           # grid position predicted by the next call's last output
    lo = 0
    while pos < grid.shape[-1]:
        ids = inputs_for(lo, pos + 1)
        if step_hook is not None:
            step_hook(ids, cross.hidden)
        kwargs = {cache_name: cache} if cache is not None else {}
        run = step_decoder if (step_decoder is not None and calls > 0) else decoder
        out = run(input_ids=ids, encoder_hidden_states=cross.hidden,
                  encoder_attention_mask=cross.mask, use_cache=True, **kwargs)
        calls += 1
        cache = _cache_of(out)
        logits = out.logits[:, -1, :].reshape(reps, b * k, -1).float()
        if guided:
            logits = logits[1] + guidance * (logits[0] - logits[1])
        else:
            logits = logits[0]
        tokens = _pick(logits, top_k, temperature, generator).reshape(b, k)
        col = grid[..., pos]
        grid[..., pos] = torch.where(col == UNKNOWN, tokens, col)
        lo = pos + 1
        pos += 1
    return SampleResult(undelay(grid, total, delays), p, calls, guided)
