"""Small randomly initialised MusicGen models, built locally (no download).

:func:`make_tiny` writes a complete MusicGen directory in transformers' format
(``config.json``, ``model.safetensors``, ``generation_config.json``, an offline
T5-style tokenizer and the EnCodec feature-extractor config), so tests, CI and
demos run the real loading and generation code. :func:`musicgen_small_config`
rebuilds the configuration of ``facebook/musicgen-small`` from its published
hyper-parameters, for speed benchmarks with random weights.

The weights are random: the audio is noise-like, not music.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import deps

#: Sample rate of MusicGen's EnCodec (Hz).
ENCODEC_SAMPLE_RATE = 32000
#: EnCodec hop: 8 * 5 * 4 * 4 = 640 samples -> 50 code frames per second.
ENCODEC_UPSAMPLING_RATIOS = (8, 5, 4, 4)
#: Codebook size of MusicGen's EnCodec; also the decoder's vocabulary (pad/start token = this value).
CODEBOOK_SIZE = 2048
#: Codebooks of musicgen-small (2.2 kbps at 50 Hz, 11 bits each).
NUM_CODEBOOKS = 4
#: Bandwidth (kbps) that gives NUM_CODEBOOKS codebooks of 11 bits at 50 Hz.
TARGET_BANDWIDTH = 2.2

#: Weight std of the tiny decoder (musicgen uses 0.02 at width 1024; see tiny_config).
TINY_INIT_SCALE = 0.2

#: Pseudo-words of the method (rhythm, genre); always in the tiny vocabulary.
PSEUDO_WORDS = ("*", "@")

#: Words of the tiny tokenizer's vocabulary (whole words; anything else falls back to characters).
TINY_WORDS = (
    "a", "an", "the", "with", "as", "and", "of", "in", "for", "on", "to", "by", "at",
    "music", "rhythm", "song", "track", "beat", "beats", "drums", "drum", "bass", "piano",
    "guitar", "saxophone", "sax", "synth", "synths", "strings", "vocals", "melody", "chords",
    "jazz", "hip", "hop", "hip-hop", "house", "pop", "funk", "funky", "disco", "electronic",
    "dance", "groove", "laid-back", "energetic", "upbeat", "slow", "fast", "loud", "soft",
    "ballet", "street", "break", "breakdance", "breakbeat", "lock", "locking", "popping",
    "krump", "waack", "waacking", "la", "style", "la-style", "middle", "bpm", "tempo",
    "heavy", "light", "happy", "dark", "bright", "ambient", "techno", "trap", "soul",
    "classical", "orchestral", "cinematic", "percussion", "claps", "hi-hats", "kick",
    "snare", "808", "lo-fi", "chill", "hard", "smooth", "epic", "minimal", "deep",
)
_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"-()/&+%#=_[]{}<>|~^$"


def _require():
    deps.require()
    import torch  # noqa: F401
    import transformers  # noqa: F401


def build_tokenizer(words=TINY_WORDS):
    """An offline T5-style tokenizer (``tokenizers`` Unigram + Metaspace, ``</s>`` appended).

    Ids follow T5: ``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2. The pseudo-words and
    ``words`` are single pieces (``▁word``); any other text splits into
    characters, so nothing common is unknown. Returns a transformers fast
    tokenizer (``T5Tokenizer`` on transformers 5, ``T5TokenizerFast`` on 4.x).
    """
    _require()
    from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import Unigram

    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    seen = {p for p, _ in vocab}
    for w in (*PSEUDO_WORDS, *words):
        piece = "\u2581" + w
        if piece not in seen:
            vocab.append((piece, -4.0))
            seen.add(piece)
    for c in _CHARS + "*@":
        for piece in (c, "\u2581" + c):
            if piece not in seen:
                vocab.append((piece, -9.0 if piece.startswith("\u2581") else -10.0))
                seen.add(piece)
    tok = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)]
    )
    from transformers import PreTrainedTokenizerFast

    try:  # transformers 4.x
        from transformers import T5TokenizerFast as _T5Fast
    except ImportError:  # transformers 5: T5Tokenizer is the tokenizers-backed class
        _T5Fast = None
    kwargs = dict(eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    if _T5Fast is not None:
        try:
            return _T5Fast(tokenizer_object=tok, extra_ids=0, **kwargs)
        except (TypeError, ValueError):
            pass
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)
    return fast


def tiny_config(vocab_size: int, *, text_width: int = 32, decoder_width: int = 64,
                decoder_layers: int = 2, text_layers: int = 2, heads: int = 4,
                init_scale: float = TINY_INIT_SCALE, stereo: bool = False):
    """Configuration of a tiny MusicGen: T5 text encoder, MusicGen decoder, 32 kHz EnCodec.

    Same family as musicgen-small (4 codebooks of 2048, 50 Hz codes at 32 kHz,
    text width different from decoder width so ``enc_to_dec_proj`` exists),
    only narrower and shallower. ``stereo`` gives the musicgen-stereo layout
    (8 interleaved left/right codebooks). ``init_scale`` is the decoder's weight std:
    larger than musicgen's 0.02 so that, at this small width, the text
    conditioning visibly moves the logits (tests can then see training work).
    """
    _require()
    from transformers import EncodecConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(
        vocab_size=vocab_size, d_model=text_width, d_kv=text_width // heads, d_ff=2 * text_width,
        num_layers=text_layers, num_heads=heads, relative_attention_num_buckets=8,
        dropout_rate=0.0, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    audio = EncodecConfig(
        sampling_rate=ENCODEC_SAMPLE_RATE, audio_channels=1, normalize=False, chunk_length_s=None,
        overlap=None, hidden_size=16, num_filters=4, num_residual_layers=1,
        upsampling_ratios=list(ENCODEC_UPSAMPLING_RATIOS), norm_type="weight_norm", kernel_size=7,
        last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=False,
        pad_mode="reflect", compress=2, num_lstm_layers=1, trim_right_ratio=1.0,
        codebook_size=CODEBOOK_SIZE, codebook_dim=16, use_conv_shortcut=False,
        target_bandwidths=[TARGET_BANDWIDTH],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, max_position_embeddings=2048, num_hidden_layers=decoder_layers,
        ffn_dim=2 * decoder_width, num_attention_heads=heads, layerdrop=0.0, use_cache=True,
        activation_function="gelu", hidden_size=decoder_width, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, initializer_factor=init_scale, scale_embedding=False,
        num_codebooks=NUM_CODEBOOKS * (2 if stereo else 1), audio_channels=2 if stereo else 1,
        pad_token_id=CODEBOOK_SIZE, bos_token_id=CODEBOOK_SIZE, tie_word_embeddings=False,
    )
    return _compose(text, audio, decoder)


def musicgen_small_config():
    """The architecture of ``facebook/musicgen-small`` (random weights; nothing downloaded).

    Decoder: 24 layers, width 1024, 16 heads, FFN 4096, 4 codebooks of 2048.
    Text encoder: t5-base (12 layers, width 768, 12 heads, FFN 3072, vocab 32128).
    Audio: EnCodec 32 kHz (64 filters, hidden 128, ratios 8-5-4-4, 2 LSTM layers).
    """
    _require()
    from transformers import EncodecConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(
        vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
        relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu",
        layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    audio = EncodecConfig(
        sampling_rate=ENCODEC_SAMPLE_RATE, audio_channels=1, normalize=False, chunk_length_s=None,
        overlap=None, hidden_size=128, num_filters=64, num_residual_layers=1,
        upsampling_ratios=list(ENCODEC_UPSAMPLING_RATIOS), norm_type="weight_norm", kernel_size=7,
        last_kernel_size=7, residual_kernel_size=3, dilation_growth_rate=2, use_causal_conv=False,
        pad_mode="reflect", compress=2, num_lstm_layers=2, trim_right_ratio=1.0,
        codebook_size=CODEBOOK_SIZE, codebook_dim=128, use_conv_shortcut=False,
        target_bandwidths=[TARGET_BANDWIDTH],
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, max_position_embeddings=2048, num_hidden_layers=24, ffn_dim=4096,
        num_attention_heads=16, layerdrop=0.0, use_cache=True, activation_function="gelu",
        hidden_size=1024, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
        initializer_factor=0.02, scale_embedding=False, num_codebooks=NUM_CODEBOOKS,
        audio_channels=1, pad_token_id=CODEBOOK_SIZE, bos_token_id=CODEBOOK_SIZE,
        tie_word_embeddings=False,
    )
    return _compose(text, audio, decoder)


def _compose(text, audio, decoder):
    from transformers import MusicgenConfig

    try:
        config = MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)
    except TypeError:  # older transformers
        config = MusicgenConfig.from_sub_models_config(text, audio, decoder)
    config.decoder_start_token_id = CODEBOOK_SIZE
    config.pad_token_id = CODEBOOK_SIZE
    return config


def random_model(config, *, seed: int = 0):
    """A ``MusicgenForConditionalGeneration`` with random weights for ``config`` (eval mode)."""
    _require()
    import torch
    from transformers import MusicgenForConditionalGeneration

    torch.manual_seed(seed)
    model = MusicgenForConditionalGeneration(config)
    gc = model.generation_config
    gc.decoder_start_token_id = CODEBOOK_SIZE
    gc.pad_token_id = CODEBOOK_SIZE
    gc.bos_token_id = CODEBOOK_SIZE
    gc.do_sample = True
    gc.guidance_scale = 3.0
    gc.top_k = 250
    gc.max_length = 1500
    return model.eval()


def fit_codebooks(model, *, seed: int = 0, seconds: float = 4.0) -> None:
    """Give a random EnCodec usable codebooks (transformers initialises them to zeros).

    Encodes a few seconds of synthetic audio (noise bursts, tones, clicks) and
    fills each residual quantizer's codebook with residual vectors sampled
    from it, like a k-means initialisation, so codes depend on the audio.
    """
    _require()
    import numpy as np
    import torch

    enc = model.audio_encoder
    sr = int(enc.config.sampling_rate)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    audio = 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2.0 * t) > 0)
    for f in (110.0, 220.0, 440.0, 880.0, 1760.0):
        audio += 0.1 * np.sin(2 * np.pi * f * t) * (np.sin(2 * np.pi * f / 300.0 * t) > 0)
    audio += np.exp(-((t * 4.0) % 1.0) * 30.0) * rng.standard_normal(t.size) * 0.5
    x = torch.from_numpy(audio.astype(np.float32))[None, None]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        residual = enc.encoder(x)[0].T                        # (frames, dim)
        for layer in enc.quantizer.layers:
            book = layer.codebook
            n = book.embed.shape[0]
            pick = torch.randint(0, residual.shape[0], (n,), generator=gen)
            jitter = torch.randn(n, residual.shape[1], generator=gen) * residual.std() * 0.1
            book.embed.copy_(residual[pick] + jitter)
            book.embed_avg.copy_(book.embed)
            book.cluster_size.fill_(1.0)
            idx = book.quantize(residual)
            residual = residual - book.embed[idx]


def make_tiny(directory, *, seed: int = 0, words=TINY_WORDS, stereo: bool = False) -> Path:
    """Write a tiny random MusicGen (model, tokenizer, feature extractor) into ``directory``.

    Loadable with ``MusicgenForConditionalGeneration.from_pretrained(directory)``
    and ``AutoTokenizer.from_pretrained(directory)``, fully offline.
    Returns the directory.
    """
    _require()
    from transformers import EncodecFeatureExtractor

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(words)
    config = tiny_config(vocab_size=len(tokenizer), stereo=stereo)
    model = random_model(config, seed=seed)
    fit_codebooks(model, seed=seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    EncodecFeatureExtractor(feature_size=1, sampling_rate=ENCODEC_SAMPLE_RATE).save_pretrained(out)
    (out / "D2M_TINY.json").write_text(json.dumps({
        "what": "tiny randomly initialised MusicGen written by `d2m musicgen make-tiny`",
        "seed": seed, "stereo": stereo, "note": "random weights: the audio is noise-like, for tests and demos only",
    }, indent=2) + "\n")
    return out
