"""Optional dependencies: which extra installs each, and one line saying so when one is missing.

d2m's core needs none of these; a feature that does imports its module only
when asked for (``--plot``, ``--source camera:0``, ``--backend musicgen``,
``--mqtt``, MIDI, ``--link``). When the module is missing, the user gets one
line naming the extra to install, never a traceback: features call
:func:`require`, and ``d2m``'s entry point turns any ``ImportError`` of a
module listed in :data:`EXTRAS` into that line (:func:`explain`).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any, Callable

#: Top-level module -> (extra that installs it, pip package, what needs it).
EXTRAS: dict[str, tuple[str, str, str]] = {
    "matplotlib": ("plot", "matplotlib", "--plot"),
    "cv2": ("camera", "opencv-python-headless", "camera and video input"),
    "mediapipe": ("camera", "mediapipe", "camera and video input (pose)"),
    "torch": ("musicgen", "torch", "the musicgen backend"),
    "transformers": ("musicgen", "transformers", "the musicgen backend"),
    "safetensors": ("musicgen", "safetensors", "the musicgen backend"),
    "aiomqtt": ("mqtt", "aiomqtt", "MQTT (--mqtt)"),
    "mido": ("midi", "mido", "MIDI"),
    "rtmidi": ("midi", "python-rtmidi", "live MIDI"),
    "aalink": ("link", "aalink", "Ableton Link (--link)"),
    "tinysoundfont": ("soundfont", "tinysoundfont", "--voices soundfont"),
}


class MissingExtra(ImportError):
    """An optional module is not installed; the message is the one line to show."""


def install_hint(extra: str) -> str:
    """The command that installs an extra (works for a wheel and for a checkout's editable install)."""
    return f"pip install 'd2m[{extra}]'"


def missing_message(module: str, what: str | None = None) -> str:
    top = module.split(".", 1)[0]
    extra, package, needs = EXTRAS.get(top, ("all", top, "this feature"))
    return (f"{what or needs} needs {package}, which is not installed: "
            f"{install_hint(extra)}")


def require(module: str, what: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtra` with the one line to show."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(missing_message(module, what), name=module) from exc


def explain(exc: BaseException) -> str | None:
    """The one line for an ImportError of an optional module (None: not one; let it raise).

    d2m's own "not installed" errors (ImportError subclasses such as
    :class:`MissingExtra`, ``CameraStackMissing``, ``MusicGenUnavailable``)
    already carry that line; a plain ``ImportError`` of a module in
    :data:`EXTRAS` gets one made from the table.
    """
    if not isinstance(exc, ImportError):
        return None
    if type(exc) not in (ImportError, ModuleNotFoundError):
        return str(exc).strip().splitlines()[0] if str(exc).strip() else None
    name = (exc.name or "").split(".", 1)[0]
    if name in EXTRAS:
        return missing_message(name)
    return None


def _wants_camera(args) -> bool:
    return bool(getattr(args, "source", None)) or bool(getattr(args, "web_camera", False))


#: Flags of ``d2m serve`` that need optional modules: (asked for?, modules, what needs them).
SERVE_NEEDS: tuple[tuple[Callable[[Any], bool], tuple[str, ...], str], ...] = (
    (_wants_camera, ("cv2", "mediapipe"), "camera and video input (--source, --web-camera)"),
    (lambda a: getattr(a, "mqtt", None) is not None, ("aiomqtt",), "MQTT (--mqtt)"),
    (lambda a: bool(getattr(a, "midi_out", None)), ("rtmidi",), "MIDI out (--midi-out)"),
    (lambda a: bool(getattr(a, "link", False) or getattr(a, "link_follow", False)), ("aalink",),
     "Ableton Link (--link)"),
)


def check_serve_extras(args) -> None:
    """Before a show starts (and before the warm-up): :class:`MissingExtra` for a flag whose
    optional module is missing. Looks the modules up without importing them (MediaPipe and
    torch take seconds to import)."""
    for asked, modules, what in SERVE_NEEDS:
        if not asked(args):
            continue
        for module in modules:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                raise MissingExtra(missing_message(module, what), name=module)
