"""The ``musicgen`` backend: MusicGen steered by dance through two pseudo-words.

``*`` (rhythm, from the motion's kinetic-onset peaks) and ``@`` (genre) are
replaced in T5's input embeddings by the outputs of small trained encoders
(Li et al., SIGGRAPH Asia 2024; see docs/musicgen.md).

Importing this package does not import torch or transformers; the factories
below do, and raise :class:`MusicGenUnavailable` naming
``pip install -e .[musicgen]`` when they are missing.

Modules: ``prompts`` and ``rhythm`` and ``beatwarp`` (numpy only),
``encoders``, ``conditioning``, ``sampler``, ``backend``, ``tiny``,
``dataset``, ``train`` (torch).
"""

from __future__ import annotations

from .deps import INSTALL_HINT, MusicGenUnavailable, available, require

#: Names accepted by :func:`load_generator`.
BACKENDS = ("musicgen",)


def make_musicgen_generator(model, device: str = "auto", encoders=None, **options):
    """A :class:`~d2m.musicgen.backend.MusicGenGenerator` for ``--model`` / ``--device`` / ``--encoders``.

    ``model`` is a MusicGen directory or a cached hub id; ``encoders`` a
    checkpoint written by ``d2m train`` (file or directory) or ``None`` (the
    pseudo-words become plain words). ``options`` go to the generator
    (``guidance``, ``top_k``, ``prompt_s``, ``beat_lock``, ``allow_download``...).
    """
    require()
    from .backend import MusicGenGenerator

    return MusicGenGenerator(model, device=device, encoders=encoders, **options)


def load_generator(backend: str, **options):
    """Factory by backend name; only ``"musicgen"`` lives here (options as for
    :func:`make_musicgen_generator`, ``model`` required)."""
    if backend != "musicgen":
        raise ValueError(f"d2m.musicgen.load_generator builds only the 'musicgen' backend, not {backend!r}")
    if "model" not in options:
        raise ValueError("the musicgen backend needs model=DIR_OR_HUB_ID (--model)")
    model = options.pop("model")
    return make_musicgen_generator(model, **options)


__all__ = ["BACKENDS", "INSTALL_HINT", "MusicGenUnavailable", "available", "require",
           "make_musicgen_generator", "load_generator"]
