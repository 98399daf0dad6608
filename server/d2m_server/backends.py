"""Choosing a generator backend by name (``--backend``)."""

from __future__ import annotations

from d2m.generator import Generator

BACKENDS = ("synth", "musicgen")


class BackendUnavailable(RuntimeError):
    """The backend cannot be loaded; the message says what to install or pass."""


def make_generator(backend: str, *, sample_rate: int = 48000, seed: int = 0, model: str | None = None,
                   device: str = "auto", encoders: str | None = None) -> Generator:
    if backend == "synth":
        from d2m.synth import SynthGenerator
        return SynthGenerator(sample_rate=sample_rate, seed=seed)
    if backend == "musicgen":
        if not model:
            raise BackendUnavailable(
                "--backend musicgen needs --model DIR_OR_ID: a MusicGen directory in transformers' "
                "format (e.g. facebook/musicgen-small from your Hugging Face cache), or make a tiny "
                "random one with: d2m musicgen make-tiny DIR")
        try:
            from d2m.musicgen import make_musicgen_generator
        except ImportError as exc:
            raise BackendUnavailable(
                f"the musicgen backend needs torch and transformers ({exc}); install them with: "
                "pip install -e '.[musicgen]'") from None
        try:
            return make_musicgen_generator(model=model, device=device, encoders=encoders,
                                           sample_rate=sample_rate)
        except (ImportError, FileNotFoundError, ValueError, OSError) as exc:
            # MusicGenUnavailable, ModelNotFound, EncoderCheckpointError carry what to do
            raise BackendUnavailable(str(exc)) from None
    raise BackendUnavailable(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
