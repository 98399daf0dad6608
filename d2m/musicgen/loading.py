"""Finding and loading MusicGen weights: local directory or Hugging Face hub id.

A hub id (``facebook/musicgen-small``) is resolved from the local Hugging Face
cache only, unless ``allow_download=True`` (never in tests). Missing weights
raise :class:`ModelNotFound` saying how to get them.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from . import deps

#: The model the reference method fine-tunes against (CC-BY-NC 4.0 weights).
DEFAULT_MODEL = "facebook/musicgen-small"
#: Device names accepted by ``--device``.
DEVICES = ("auto", "cpu", "cuda")


class ModelNotFound(FileNotFoundError):
    """MusicGen weights are not where the caller said (the message says how to get them)."""


def _how_to_get(model: str) -> str:
    return (
        f"download them once with network access (`huggingface-cli download {DEFAULT_MODEL}` or "
        f"`python -c \"from huggingface_hub import snapshot_download; snapshot_download('{DEFAULT_MODEL}')\"`) "
        f"and pass the hub id or the directory to --model; or write a small random test model "
        f"with `d2m musicgen make-tiny DIR` and pass --model DIR"
    )


def looks_like_hub_id(model: str) -> bool:
    """``owner/name`` with no path-only characters and not an existing path."""
    text = str(model)
    if text.startswith((".", "/", "~")) or "\\" in text or Path(text).exists():
        return False
    parts = text.split("/")
    return len(parts) == 2 and all(parts)


def resolve_model(model, *, allow_download: bool = False, cache_dir=None) -> Path:
    """Directory holding ``config.json`` of the MusicGen named by ``model``.

    ``model`` is a local directory or a hub id. Hub ids are looked up in the
    local cache (``cache_dir`` or the Hugging Face default); with
    ``allow_download`` they are fetched when missing.
    """
    text = str(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise ModelNotFound(
                f"{path} is not a MusicGen model directory (no config.json); " + _how_to_get(text))
        return path
    if not looks_like_hub_id(text):
        raise ModelNotFound(f"MusicGen model directory {path} does not exist; " + _how_to_get(text))
    deps.require()
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(text, local_files_only=not allow_download, cache_dir=cache_dir)
    except Exception as exc:  # huggingface_hub raises several types for "not cached"
        where = "could not be downloaded" if allow_download else "are not in the local Hugging Face cache"
        raise ModelNotFound(f"MusicGen weights {text!r} {where} ({type(exc).__name__}); "
                            + _how_to_get(text)) from None
    local = Path(local)
    if not (local / "config.json").is_file():
        raise ModelNotFound(f"the cached snapshot of {text!r} has no config.json; " + _how_to_get(text))
    return local


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    deps.require()
    import torch

    if device not in DEVICES and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    return str(device)


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' info/warning chatter (pad-token range notes, progress bars) for a block."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:
        bars = None
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def load_musicgen(model, *, device: str = "auto", half: bool | None = None, allow_download: bool = False,
                  cache_dir=None):
    """Load ``(model, tokenizer, device)``: frozen, eval mode; float16 on GPU unless ``half=False``."""
    deps.require()
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    path = resolve_model(model, allow_download=allow_download, cache_dir=cache_dir)
    dev = resolve_device(device)
    if half is None:
        half = dev.startswith("cuda")
    with quiet_transformers():
        try:
            mg = MusicgenForConditionalGeneration.from_pretrained(str(path))
            tokenizer = AutoTokenizer.from_pretrained(str(path))
        except OSError as exc:
            raise ModelNotFound(f"could not load MusicGen from {path}: {exc}; " + _how_to_get(str(model))) from None
    mg = mg.to(dev)
    if half:
        mg = mg.half()
    mg.eval()
    for p in mg.parameters():
        p.requires_grad_(False)
    return mg, tokenizer, dev
