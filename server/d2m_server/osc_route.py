"""Route decoded OSC messages to skeleton frames, controls and status requests (sans-I/O).

:func:`route` never raises: a message it cannot use comes back with
``error`` set to one of :data:`ROUTE_ERRORS` and a ``detail`` saying what
was expected, so the receiver can count it and move on.

Motion layouts accepted (see docs/protocol.md for the full table):

* ``/d2m/pose person layout v...`` -- d2m's own: ``layout`` is ``coco17`` or
  ``mediapipe33``, then J x 4 (x, y, z, conf), J x 3 (x, y, conf) or J x 2
  (x, y) numbers, inferred from the count; x, y normalised 0..1, y down.
* ``/mediapipe/pose count v...`` -- mediapipe-osc (cansik): ``count`` poses
  of 33 x (x, y, z, visibility). ``count`` 0 with nothing after it means
  "nobody in view" (no frames, not an error). A sender that puts the number
  of landmarks (33) in ``count`` followed by one pose is accepted too.
* ``/poses/arr width height nPoses ...`` -- PoseOSC (LingDong) ARR format:
  per pose a score, then 17 x (x, y, score) in pixels; x and y are divided by
  width and height. The person id is the pose's index in the message.

Numbers may arrive as any OSC numeric type (osc-js sends whole numbers as
int32, TouchDesigner sends float32). In joint values nil ('N') and NaN mean
"missing joint"; everywhere else a non-finite number is an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from d2m.control import AUTO, Control, InvalidControl
from d2m.genres import GENRES
from d2m.skeleton import InvalidFrame, Layout, SkeletonFrame

from .osc_codec import IMPULSE, OscMessage

#: MediaPipe Pose landmarks per person and values per landmark (x, y, z, visibility).
MEDIAPIPE_LANDMARKS = 33
MEDIAPIPE_VALUES = MEDIAPIPE_LANDMARKS * 4
#: PoseOSC (PoseNet) keypoints per person; values per pose: score + 17 x (x, y, score).
POSEOSC_KEYPOINTS = 17
POSEOSC_VALUES = 1 + POSEOSC_KEYPOINTS * 3
#: Largest person id accepted in /d2m/pose (fits an OSC int32).
MAX_PERSON_ID = 2**31 - 1
#: Longest ``Routed.detail`` kept (details quote the sender's input, which can be long).
MAX_DETAIL_CHARS = 240

#: Error codes a :class:`Routed` can carry.
ROUTE_ERRORS: tuple[str, ...] = (
    "unknown_address",  # no route for this address
    "bad_args",         # wrong number or type of arguments
    "bad_value",        # right type but not allowed: out of range, unknown genre, not finite
)

# Addresses (exact match; OSC pattern characters such as * are not expanded).
POSE = "/d2m/pose"
MEDIAPIPE_POSE = "/mediapipe/pose"
POSEOSC_ARR = "/poses/arr"
GENRE = "/d2m/genre"
PROMPT = "/d2m/prompt"
TEMPO_LOCK = "/d2m/tempo/lock"
TEMPO_UNLOCK = "/d2m/tempo/unlock"
VOLUME = "/d2m/volume"
START = "/d2m/start"
STOP = "/d2m/stop"
STATUS = "/d2m/status"


@dataclass
class Routed:
    """What one OSC message asked for. At most one of frames/control/status_request is set."""
    frames: list[SkeletonFrame] = field(default_factory=list)
    control: Control | None = None
    status_request: bool = False
    error: str | None = None     #: one of ROUTE_ERRORS, None when the message was used
    detail: str = ""             #: human-readable reason for ``error``
    address: str = ""            #: the message's address


class _Reject(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def route(msg: OscMessage, t: float) -> Routed:
    """Turn one decoded message, received at session time ``t``, into frames or a control."""
    address = msg.address
    handler = _ROUTES.get(address)
    if handler is None:
        return _error("unknown_address", address, "no route for this address "
                      "(see docs/protocol.md for the OSC addresses d2m understands)")
    try:
        result = handler(list(msg.args), t)
    except _Reject as exc:
        return _error(exc.code, address, exc.detail)
    except (InvalidControl, InvalidFrame) as exc:
        return _error("bad_value", address, str(exc))
    except Exception as exc:  # noqa: BLE001 - route() must never raise
        return _error("bad_args", address, f"{type(exc).__name__}: {exc}")
    result.address = address
    return result


def _error(code: str, address: str, detail: str) -> Routed:
    text = f"{address[:80]}: {detail}"
    if len(text) > MAX_DETAIL_CHARS:
        text = text[:MAX_DETAIL_CHARS - 3] + "..."
    return Routed(error=code, detail=text, address=address)


# ---------------------------------------------------------------- helpers

def _type_name(value) -> str:
    if value is None:
        return "nil"
    if value is IMPULSE:
        return "impulse"
    return type(value).__name__


def _types(args: list, shown: int = 6) -> str:
    names = ", ".join(_type_name(a) for a in args[:shown])
    return (names + ", ..." if len(args) > shown else names) or "none"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value, name: str) -> float:
    """A required finite number (any OSC numeric type)."""
    if not _is_number(value):
        raise _Reject("bad_args", f"{name} must be a number, got {_type_name(value)}")
    out = float(value)
    if not math.isfinite(out):
        raise _Reject("bad_value", f"{name} must be finite, got {out}")
    return out


def _integer(value, name: str) -> int:
    """A required whole number; integral floats (e.g. from TouchDesigner) are accepted."""
    out = _number(value, name)
    if not out.is_integer():
        raise _Reject("bad_value", f"{name} must be a whole number, got {out:g}")
    return int(out)


def _joint_values(values: list) -> np.ndarray:
    """Joint coordinates as float64; nil becomes NaN (missing joint)."""
    try:
        if all(type(v) is float or type(v) is int for v in values):
            return np.asarray(values, dtype=np.float64)
    except OverflowError:
        pass
    out = np.empty(len(values), dtype=np.float64)
    for k, v in enumerate(values):
        if v is None:
            out[k] = np.nan
        elif _is_number(v):
            try:
                out[k] = float(v)
            except OverflowError:
                out[k] = np.nan
        else:
            raise _Reject("bad_args", f"joint value {k} must be a number or nil, got {_type_name(v)}")
    return out


def _trigger(args: list, what: str) -> bool:
    """Trigger addresses: no argument fires; one number/bool fires when non-zero.

    TouchDesigner and similar tools send a button as 1 on press and 0 on release;
    the release is ignored rather than rejected.
    """
    if not args:
        return True
    if len(args) == 1:
        value = args[0]
        if value is IMPULSE:
            return True
        if isinstance(value, bool):
            return value
        if _is_number(value):
            number = float(value)
            if math.isnan(number):
                raise _Reject("bad_value", f"{what} trigger value must not be NaN")
            return number != 0.0
    raise _Reject("bad_args", f"{what} takes no argument (or one number: non-zero fires), "
                              f"got {len(args)} ({_types(args)})")


def _words(args: list, what: str) -> str:
    """Join string/number arguments with spaces (Max and Pd split text into words)."""
    parts = []
    for a in args:
        if isinstance(a, str):
            parts.append(a)
        elif _is_number(a):
            parts.append(str(a) if isinstance(a, int) else f"{a:g}")
        else:
            raise _Reject("bad_args", f"{what} must be text, got {_type_name(a)}")
    return " ".join(parts)


# ---------------------------------------------------------------- motion

def _pose(args: list, t: float) -> Routed:
    if len(args) < 3:
        raise _Reject("bad_args", "expected person (int), layout ('coco17' or 'mediapipe33'), "
                                  f"then joint values; got {len(args)} argument(s)")
    person = _integer(args[0], "person")
    if not 0 <= person <= MAX_PERSON_ID:
        raise _Reject("bad_value", f"person must be 0..{MAX_PERSON_ID}, got {person}")
    if not isinstance(args[1], str):
        raise _Reject("bad_args", f"layout must be a string, got {_type_name(args[1])}")
    try:
        layout = Layout(args[1].strip().lower())
    except ValueError:
        raise _Reject("bad_args", f"layout must be 'coco17' or 'mediapipe33', got {args[1]!r}") from None
    values = args[2:]
    n_joints = layout.n_joints
    dims = len(values) // n_joints if len(values) % n_joints == 0 else 0
    if dims not in (2, 3, 4):
        raise _Reject("bad_args", f"{layout.value} needs {n_joints} joints x 2, 3 or 4 values "
                                  f"({n_joints * 2}, {n_joints * 3} or {n_joints * 4} numbers), "
                                  f"got {len(values)}")
    frame = SkeletonFrame.from_values(t, person, layout, _joint_values(values), dims=dims)
    return Routed(frames=[frame])


def _mediapipe_pose(args: list, t: float) -> Routed:
    if not args:
        raise _Reject("bad_args", "expected count, then count x 33 x (x, y, z, visibility)")
    count = _integer(args[0], "count")
    values = args[1:]
    if count == 0 and not values:
        return Routed()                      # nobody in view
    if count > 0 and len(values) == count * MEDIAPIPE_VALUES:
        n_poses = count
    elif count == MEDIAPIPE_LANDMARKS and len(values) == MEDIAPIPE_VALUES:
        n_poses = 1                          # count sent as the number of landmarks
    else:
        raise _Reject("bad_args", f"count {count} needs count x {MEDIAPIPE_VALUES} values "
                                  f"(33 landmarks x x, y, z, visibility), got {len(values)}")
    flat = _joint_values(values)
    frames = [
        SkeletonFrame.from_values(t, k, Layout.MEDIAPIPE33,
                                  flat[k * MEDIAPIPE_VALUES:(k + 1) * MEDIAPIPE_VALUES], dims=4)
        for k in range(n_poses)
    ]
    return Routed(frames=frames)


def _poseosc_arr(args: list, t: float) -> Routed:
    if len(args) < 3:
        raise _Reject("bad_args", "expected width, height, nPoses, then nPoses x "
                                  f"(score + 17 x (x, y, score)); got {len(args)} argument(s)")
    width = _number(args[0], "width")
    height = _number(args[1], "height")
    if width <= 0 or height <= 0:
        raise _Reject("bad_value", f"width and height must be > 0, got {width:g} x {height:g}")
    n_poses = _integer(args[2], "nPoses")
    values = args[3:]
    if n_poses < 0 or len(values) != n_poses * POSEOSC_VALUES:
        raise _Reject("bad_args", f"nPoses {n_poses} needs nPoses x {POSEOSC_VALUES} values "
                                  f"(score + 17 x (x, y, score)), got {len(values)}")
    if n_poses == 0:
        return Routed()
    flat = _joint_values(values).reshape(n_poses, POSEOSC_VALUES)
    keypoints = flat[:, 1:].reshape(n_poses, POSEOSC_KEYPOINTS, 3).copy()
    with np.errstate(over="ignore", invalid="ignore"):   # overflow -> inf -> missing joint
        keypoints[:, :, 0] /= width
        keypoints[:, :, 1] /= height
    frames = [
        SkeletonFrame.from_values(t, k, Layout.COCO17, keypoints[k], dims=3)
        for k in range(n_poses)
    ]
    return Routed(frames=frames)


# ---------------------------------------------------------------- controls

def _genre(args: list, t: float) -> Routed:
    if not args:
        raise _Reject("bad_args", "expected a genre name, 'auto', or an index "
                                  f"0..{len(GENRES) - 1} (-1 = auto)")
    if len(args) == 1 and _is_number(args[0]):
        index = _integer(args[0], "genre index")
        if index == -1:
            return Routed(control=Control(genre=AUTO))
        if not 0 <= index < len(GENRES):
            raise _Reject("bad_value", f"genre index must be 0..{len(GENRES) - 1} or -1 (auto), "
                                       f"got {index}")
        return Routed(control=Control(genre=GENRES[index]))
    name = _words(args, "genre").strip()
    if name.lower() == AUTO:
        return Routed(control=Control(genre=AUTO))
    return Routed(control=Control(genre=name))


def _prompt(args: list, t: float) -> Routed:
    return Routed(control=Control(prompt=_words(args, "prompt")))


def _tempo_lock(args: list, t: float) -> Routed:
    if not args:
        return Routed(control=Control(tempo_lock=True))
    if len(args) == 1:
        return Routed(control=Control(tempo_lock=True, bpm=_number(args[0], "bpm")))
    raise _Reject("bad_args", f"expected nothing or one bpm number, got {len(args)} ({_types(args)})")


def _tempo_unlock(args: list, t: float) -> Routed:
    return Routed(control=Control(tempo_lock=False)) if _trigger(args, "tempo unlock") else Routed()


def _volume(args: list, t: float) -> Routed:
    if len(args) != 1:
        raise _Reject("bad_args", f"expected one number 0..1, got {len(args)} ({_types(args)})")
    return Routed(control=Control(volume=_number(args[0], "volume")))


def _start(args: list, t: float) -> Routed:
    return Routed(control=Control(playing=True)) if _trigger(args, "start") else Routed()


def _stop(args: list, t: float) -> Routed:
    return Routed(control=Control(playing=False)) if _trigger(args, "stop") else Routed()


def _status(args: list, t: float) -> Routed:
    return Routed(status_request=_trigger(args, "status"))


_ROUTES: dict[str, Callable[[list, float], Routed]] = {
    POSE: _pose,
    MEDIAPIPE_POSE: _mediapipe_pose,
    POSEOSC_ARR: _poseosc_arr,
    GENRE: _genre,
    PROMPT: _prompt,
    TEMPO_LOCK: _tempo_lock,
    TEMPO_UNLOCK: _tempo_unlock,
    VOLUME: _volume,
    START: _start,
    STOP: _stop,
    STATUS: _status,
}

#: Every input address route() understands.
INPUT_ADDRESSES: tuple[str, ...] = tuple(_ROUTES)
