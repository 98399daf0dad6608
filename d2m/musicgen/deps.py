"""Lazy access to the optional ``musicgen`` dependencies (torch, transformers).

``import d2m`` and ``import d2m.musicgen`` never import torch; the modules that
need it call :func:`require` (or import :mod:`torch` inside functions), which
raises :class:`MusicGenUnavailable` naming the install command when the extra
is missing.
"""

from __future__ import annotations

import importlib

#: How to install the optional dependencies of this backend.
INSTALL_HINT = "pip install -e .[musicgen]"

#: Modules the backend needs, in import order.
REQUIRED_MODULES = ("torch", "transformers", "safetensors")


class MusicGenUnavailable(ImportError):
    """torch / transformers / safetensors are not installed."""


def require() -> None:
    """Import the backend's dependencies or raise :class:`MusicGenUnavailable`."""
    missing = []
    for name in REQUIRED_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise MusicGenUnavailable(
            f"the musicgen backend needs {', '.join(missing)}, which is not installed; "
            f"install the optional extra with: {INSTALL_HINT}"
        )


def available() -> bool:
    """True when :func:`require` would succeed."""
    try:
        require()
    except MusicGenUnavailable:
        return False
    return True
