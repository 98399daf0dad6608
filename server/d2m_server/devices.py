"""What d2m can see: sound output devices and cameras, numbered as the flags take them.

``d2m devices`` prints both lists. Sound outputs are numbered as PortAudio
(sounddevice) numbers them, which is what ``--audio-out N`` takes (a part of
the name works too); the default output is marked. Cameras are the indices
``--source camera:N`` opens with OpenCV: on Linux the ``/dev/videoN`` devices,
elsewhere the first :data:`CAMERA_PROBE_COUNT` indices; each is opened and one
frame read, so a camera another program holds shows as not usable.

:func:`sound_outputs` and :func:`cameras` take what sounddevice / OpenCV
report (or a way to open a capture), so they are tested without hardware.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

#: Indices probed for cameras where there is no ``/dev/video*`` to list (macOS, Windows).
CAMERA_PROBE_COUNT = 4
#: Linux camera device nodes.
VIDEO_DEVICE_GLOB = "/dev/video*"


@dataclass(frozen=True)
class SoundOutput:
    index: int            #: what ``--audio-out`` takes
    name: str
    channels: int         #: output channels
    sample_rate: float    #: the device's default rate (Hz)
    host_api: str         #: ALSA, PulseAudio, Core Audio, WASAPI, ...
    default: bool         #: the output ``d2m serve`` uses without --audio-out


@dataclass(frozen=True)
class Camera:
    index: int            #: what ``--source camera:N`` takes
    usable: bool          #: opened and delivered a frame
    width: int = 0
    height: int = 0
    note: str = ""        #: why it is not usable, or the device node


def sound_outputs(devices: Sequence[dict], default_output: int | None,
                  host_apis: Sequence[dict] = ()) -> list[SoundOutput]:
    """Output devices of sounddevice's ``query_devices()`` (dicts), the default marked."""
    out = []
    for i, d in enumerate(devices):
        channels = int(d.get("max_output_channels", 0) or 0)
        if channels <= 0:
            continue
        index = int(d.get("index", i))
        api = d.get("hostapi")
        api_name = host_apis[api]["name"] if isinstance(api, int) and 0 <= api < len(host_apis) else ""
        out.append(SoundOutput(index, str(d.get("name", "?")), channels,
                               float(d.get("default_samplerate", 0.0) or 0.0), api_name,
                               default_output is not None and index == default_output))
    return out


def query_sound_outputs() -> tuple[list[SoundOutput], str | None]:
    """``(outputs, problem)`` from PortAudio; ``problem`` says why there is no list."""
    from .audio import AudioUnavailable, import_sounddevice

    try:
        sd = import_sounddevice()
    except AudioUnavailable as exc:
        return [], str(exc)
    try:
        devices = sd.query_devices()
        host_apis = sd.query_hostapis()
        default_out = sd.default.device[1]          # (input, output); -1: none
        default_out = int(default_out) if default_out is not None and int(default_out) >= 0 else None
    except Exception as exc:   # noqa: BLE001 - PortAudio errors are reported, not raised
        return [], f"PortAudio could not list devices: {exc}"
    return sound_outputs(devices, default_out, host_apis), None


def camera_indices(paths: Sequence[str] | None = None) -> list[int]:
    """Camera indices to try: the N of every ``/dev/videoN`` (Linux), else 0..CAMERA_PROBE_COUNT-1."""
    if paths is None:
        if not sys.platform.startswith("linux"):
            return list(range(CAMERA_PROBE_COUNT))
        paths = glob.glob(VIDEO_DEVICE_GLOB)
    found = sorted({int(m.group(1)) for p in paths if (m := re.fullmatch(r".*/video(\d+)", p))})
    return found


def cameras(indices: Sequence[int], open_capture: Callable[[int], Any]) -> list[Camera]:
    """Open each index with ``open_capture`` (``cv2.VideoCapture``) and read one frame."""
    out = []
    for index in indices:
        cap = open_capture(index)
        try:
            if not cap.isOpened():
                out.append(Camera(index, False, note="cannot be opened (in use, or not a camera)"))
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                out.append(Camera(index, False, note="opened but gave no picture"))
                continue
            h, w = frame.shape[:2]
            out.append(Camera(index, True, int(w), int(h)))
        finally:
            cap.release()
    return out


def query_cameras() -> tuple[list[Camera], str | None]:
    """``(cameras, problem)``: ``problem`` says why none could be looked for (no OpenCV)."""
    from .pose import CameraStackMissing, require_cv2

    try:
        cv2 = require_cv2()
    except CameraStackMissing as exc:
        return [], str(exc)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")      # no warning per missing index
    return cameras(camera_indices(), cv2.VideoCapture), None


def report(outputs: list[SoundOutput], audio_problem: str | None,
           cams: list[Camera], camera_problem: str | None) -> str:
    """The text ``d2m devices`` prints."""
    lines = ["Sound outputs (--audio-out N, or part of the name; * = the default):"]
    if outputs:
        for o in outputs:
            api = f", {o.host_api}" if o.host_api else ""
            lines.append(f"  {'*' if o.default else ' '} {o.index:>3}  {o.name} "
                         f"({o.channels} ch, {o.sample_rate:g} Hz{api})")
        if not any(o.default for o in outputs):
            lines.append("    no default output: d2m serve uses --audio-out none unless you pick one")
    elif audio_problem:
        lines.append(f"    none: {audio_problem}")
    else:
        lines.append("    none found: d2m serve streams to browsers only (as with --audio-out none)")
    lines.append("Cameras (--source camera:N):")
    usable = [c for c in cams if c.usable]
    for c in cams:
        if c.usable:
            lines.append(f"    {c.index:>3}  {c.width}x{c.height}")
        else:
            lines.append(f"    {c.index:>3}  not usable: {c.note}")
    if camera_problem:
        lines.append(f"    not looked for: {camera_problem}")
    elif not usable:
        lines.append("    none found" + (" that can be opened" if cams else "")
                     + ": plug a webcam in, or use --source video:PATH")
    return "\n".join(lines)
