"""Choosing a generator backend by name (``--backend``)."""

from __future__ import annotations

from d2m.generator import Generator

BACKENDS = ("synth", "musicgen")
#: Instrument sets of the synth backend (``--voices``): the numpy band, or GM SoundFont instruments.
VOICES = ("synth", "soundfont")


class BackendUnavailable(RuntimeError):
    """The backend cannot be loaded; the message says what to install or pass."""


def make_generator(backend: str, *, sample_rate: int = 48000, seed: int = 0, model: str | None = None,
                   device: str = "auto", encoders: str | None = None, voices: str = "synth",
                   soundfont: str | None = None) -> Generator:
    if backend == "synth" and voices == "soundfont":
        from d2m.synth.soundfont import SoundFontGenerator, SoundFontUnavailable
        try:
            return SoundFontGenerator(sample_rate=sample_rate, seed=seed, soundfont=soundfont)
        except SoundFontUnavailable as exc:
            raise BackendUnavailable(str(exc)) from None
    if voices not in VOICES:
        raise BackendUnavailable(f"unknown voices {voices!r}; choose one of: {', '.join(VOICES)}")
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
