"""The d2m motion recording format: JSON lines of frames and operator controls.

Pure encode/decode (reading and writing files lives in the server and CLI).
One JSON object per line, in time order:

- optional header, first line only::

    {"d2m_motion": 1, "source": "camera", ...any JSON metadata}

- a skeleton frame (see :meth:`d2m.skeleton.SkeletonFrame.to_json`)::

    {"t": 1.25, "person": 0, "layout": "coco17",
     "joints": [[x, y, z, conf], ...]}        # 17 rows (coco17) or 33 (mediapipe33)

  ``t`` in seconds on the session timeline; x, y normalised image coordinates
  (0..1, y down); ``null`` (or NaN) for a missing value, which makes that
  joint missing. Rows of ``[x, y]`` or ``[x, y, conf]`` are accepted too.
  Unknown extra keys on a frame line are ignored (forward compatible).

- an operator control (fields of :class:`d2m.control.Control`, only the ones
  that change)::

    {"t": 3.0, "control": {"genre": "house", "bpm": 120}}

Blank lines are skipped. :func:`parse_recording` never raises for a bad
line: it records ``(line_number, message)`` in :attr:`Recording.errors` and
skips the line.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Iterable

from .control import Control, InvalidControl
from .skeleton import InvalidFrame, SkeletonFrame, frame_from_json

#: Value of the header's ``d2m_motion`` key for this version of the format.
FORMAT_VERSION = 1
#: Header key that marks a d2m motion recording.
HEADER_KEY = "d2m_motion"
#: An item may be this many seconds earlier than the latest one before it
#: (clock jitter between sources); further back it is an error and skipped.
TIME_BACKWARDS_TOLERANCE_S = 0.05

#: What a recording must contain, quoted in error messages.
FORMAT_HINT = (
    'a d2m motion recording is JSON lines, one object per line: frames like '
    '{"t": 0.0, "person": 0, "layout": "coco17", "joints": [[x, y, z, conf], ... 17 rows]} '
    '(or "mediapipe33" with 33 rows), optionally operator controls like '
    '{"t": 2.0, "control": {"genre": "house"}} and a first header line {"d2m_motion": 1}'
)


class RecordingError(ValueError):
    """A recording that cannot be used at all; the message says what it must contain."""


@dataclass(frozen=True)
class ControlEntry:
    """An operator control at session time ``t`` (s)."""
    t: float
    control: Control


@dataclass
class Recording:
    """A parsed recording: items in file order, bad lines, and the header (``{}`` if none)."""
    items: list[SkeletonFrame | ControlEntry] = field(default_factory=list)  #: in file order
    errors: list[tuple[int, str]] = field(default_factory=list)  #: (line_number, message), 1-based
    header: dict = field(default_factory=dict)  #: the header object, including "d2m_motion"

    @property
    def frames(self) -> list[SkeletonFrame]:
        return [it for it in self.items if isinstance(it, SkeletonFrame)]

    @property
    def controls(self) -> list[ControlEntry]:
        return [it for it in self.items if isinstance(it, ControlEntry)]

    @property
    def duration(self) -> float:
        """Seconds from the earliest to the latest item (0 with fewer than two)."""
        if not self.items:
            return 0.0
        times = [it.t for it in self.items]
        return float(max(times) - min(times))


def encode_frame(frame: SkeletonFrame) -> str:
    """One line (without newline) for a skeleton frame."""
    return frame.to_json()


def encode_control(t: float, control: Control) -> str:
    """One line (without newline) for an operator control at time ``t`` (s)."""
    t = float(t)
    if not math.isfinite(t):
        raise ValueError("control time t must be a finite number of seconds")
    if not isinstance(control, Control):
        raise TypeError(f"control must be a d2m.control.Control, got {type(control).__name__}")
    return json.dumps({"t": round(t, 6), "control": control.changes()},
                      separators=(",", ":"), allow_nan=False)


def encode_header(**meta) -> str:
    """The header line (without newline): ``{"d2m_motion": 1, **meta}``; meta must be JSON values."""
    if HEADER_KEY in meta:
        raise ValueError(f"{HEADER_KEY!r} is the format version and is set by encode_header")
    return json.dumps({HEADER_KEY: FORMAT_VERSION, **meta}, separators=(",", ":"), allow_nan=False)


def _time(obj: dict) -> float:
    if "t" not in obj:
        raise ValueError('missing "t" (seconds)')
    t = obj["t"]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ValueError(f'"t" must be a number of seconds, got {t!r}')
    if not math.isfinite(t):
        raise ValueError(f'"t" must be finite, got {t!r}')
    return float(t)


def _parse_line(obj, seen_item: bool, rec: Recording):
    """Return an item, or None for a header; raise ValueError with a message for a bad line."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if HEADER_KEY in obj:
        if seen_item or rec.header:
            raise ValueError("header line must be the first line of the recording")
        version = obj[HEADER_KEY]
        if version != FORMAT_VERSION:
            raise ValueError(f"unsupported {HEADER_KEY} version {version!r}; this d2m reads version {FORMAT_VERSION}")
        rec.header = dict(obj)
        return None
    has_joints, has_control = "joints" in obj, "control" in obj
    if has_joints and has_control:
        raise ValueError('a line is either a frame ("joints") or a control ("control"), not both')
    if has_control:
        t = _time(obj)
        extra = sorted(set(obj) - {"t", "control"})
        if extra:
            raise ValueError(f"unknown key(s) on a control line: {', '.join(extra)}; allowed: t, control")
        try:
            return ControlEntry(t, Control.from_dict(obj["control"]))
        except InvalidControl as exc:
            raise ValueError(f"bad control: {exc}") from None
        except TypeError as exc:
            raise ValueError(f"bad control: {exc}") from None
    if has_joints:
        _time(obj)
        try:
            return frame_from_json(obj)
        except InvalidFrame as exc:
            raise ValueError(f"bad motion frame: {exc}") from None
    raise ValueError('not a frame or control: a line needs "joints" (frame) or "control" (operator control)')


def parse_recording(lines: Iterable[str]) -> Recording:
    """Parse JSON lines (a file object, a list of lines, or one string) into a :class:`Recording`.

    Never raises for a bad line; see the module doc for the format. An item
    whose ``t`` is more than :data:`TIME_BACKWARDS_TOLERANCE_S` before the
    latest earlier item is reported and skipped.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    rec = Recording()
    latest = -math.inf
    for lineno, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        text = line.strip()
        if not text:
            continue
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            rec.errors.append((lineno, f"not valid JSON: {msg}"))
            continue
        try:
            item = _parse_line(obj, bool(rec.items), rec)
        except ValueError as exc:
            rec.errors.append((lineno, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - a bad line must never stop the parse
            rec.errors.append((lineno, f"unusable line: {type(exc).__name__}: {exc}"))
            continue
        if item is None:
            continue
        if item.t < latest - TIME_BACKWARDS_TOLERANCE_S:
            rec.errors.append((lineno, f"time goes backwards: t={item.t:g} s is {latest - item.t:.3f} s "
                                       f"before an earlier line (t={latest:g} s); lines must be in time order"))
            continue
        latest = max(latest, item.t)
        rec.items.append(item)
    return rec


def require_frames(rec: Recording, source_name: str) -> list[SkeletonFrame]:
    """The recording's frames; :class:`RecordingError` if none has any visible joint."""
    frames = rec.frames
    if any(f.valid.any() for f in frames):
        return frames
    if frames:
        found = f"{len(frames)} frame(s) but none with a visible joint"
    else:
        found = "no motion frame"
    detail = ""
    if rec.errors:
        lineno, msg = rec.errors[0]
        detail = f" ({len(rec.errors)} bad line(s); first: line {lineno}: {msg})"
    raise RecordingError(f"{source_name}: {found}{detail}. {FORMAT_HINT}")
