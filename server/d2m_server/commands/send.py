"""``d2m send``: replay a motion recording over OSC at real-time pace (a stand-in for a mocap rig).

The recording (d2m's JSON-lines format, e.g. from ``d2m serve --record-motion``) is
sent to a d2m server, or anything else that reads these layouts, in one of the
motion layouts d2m accepts:

* ``d2m`` -- ``/d2m/pose person layout`` + J x (x, y, z, conf), one message per frame;
* ``mediapipe`` -- ``/mediapipe/pose count`` + count x 33 x (x, y, z, visibility), as
  mediapipe-osc sends it (COCO-17 frames are placed on their MediaPipe landmarks, the
  other landmarks sent as missing);
* ``poseosc`` -- ``/poses/arr width height nPoses`` + per pose a score and 17 x (x, y,
  score) in pixels, as PoseOSC sends it (MediaPipe-33 frames are reduced to COCO-17).

Frames stamped with the same time go out in one message (several people). The
recording's operator controls are sent as d2m's OSC controls unless ``--no-controls``.
Sending follows the recording's timestamps against a monotonic clock (absolute
schedule, so sleep jitter does not accumulate); ``--loop`` starts over after the end.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import time
from typing import Iterable

import numpy as np
from pythonosc.osc_message_builder import OscMessageBuilder

from d2m.control import AUTO, Control
from d2m.recording import ControlEntry, RecordingError, parse_recording, require_frames
from d2m.skeleton import MEDIAPIPE33_TO_COCO17, Layout, SkeletonFrame

#: Where ``d2m send`` sends by default (d2m's OSC-in default).
DEFAULT_TO = ("127.0.0.1", 9000)
#: Layouts ``--layout`` accepts.
LAYOUTS = ("d2m", "mediapipe", "poseosc")
#: Image size PoseOSC coordinates are scaled to (pixels; the receiver divides them back).
POSEOSC_SIZE = (640, 480)
#: Frames whose times differ by less than this are sent together (s).
SAME_TIME_S = 1e-6
#: With --loop, the gap between the last item of one pass and the first of the next when
#: the recording does not say (s): one frame at 60 Hz.
DEFAULT_GAP_S = 1 / 60


def _message(address: str, args: Iterable[tuple[str, object]]) -> bytes:
    builder = OscMessageBuilder(address=address)
    for tag, value in args:
        builder.add_arg(value, tag)
    return builder.build().dgram


def _floats(values) -> list[tuple[str, float]]:
    return [("f", float(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def encode_d2m(frame: SkeletonFrame) -> bytes:
    """``/d2m/pose person layout`` + J x (x, y, z, conf); missing joints as NaN."""
    return _message("/d2m/pose", [("i", int(frame.person)), ("s", frame.layout.value),
                                  *_floats(frame.joints)])


def to_mediapipe33(frame: SkeletonFrame) -> np.ndarray:
    """(33, 4) joints of a frame: COCO-17 joints go to their MediaPipe landmarks, the rest missing."""
    if frame.layout is Layout.MEDIAPIPE33:
        return frame.joints
    joints = np.full((33, 4), np.nan)
    joints[:, 3] = 0.0
    joints[list(MEDIAPIPE33_TO_COCO17)] = frame.joints
    return joints


def encode_mediapipe(frames: list[SkeletonFrame]) -> bytes:
    """``/mediapipe/pose count`` + count x 33 x (x, y, z, visibility); pose order = person order."""
    values = []
    for frame in frames:
        joints = to_mediapipe33(frame).copy()
        joints[:, 3] = np.where(np.isfinite(joints[:, 3]), joints[:, 3], 0.0)
        values.extend(_floats(joints))
    return _message("/mediapipe/pose", [("i", len(frames)), *values])


def encode_poseosc(frames: list[SkeletonFrame], size: tuple[int, int] = POSEOSC_SIZE) -> bytes:
    """``/poses/arr width height nPoses`` + per pose score and 17 x (x, y, score) in pixels."""
    width, height = size
    values = []
    for frame in frames:
        j = frame.to_coco17().joints
        ok = np.isfinite(j[:, 0]) & np.isfinite(j[:, 1]) & (j[:, 3] > 0)
        x = np.where(ok, j[:, 0] * width, 0.0)
        y = np.where(ok, j[:, 1] * height, 0.0)
        score = np.where(ok, j[:, 3], 0.0)
        values.append(("f", float(score[ok].mean()) if ok.any() else 0.0))
        values.extend(_floats(np.column_stack([x, y, score])))
    return _message("/poses/arr", [("f", float(width)), ("f", float(height)), ("i", len(frames)),
                                   *values])


def encode_frames(frames: list[SkeletonFrame], layout: str,
                  size: tuple[int, int] = POSEOSC_SIZE) -> list[bytes]:
    """Datagrams for frames sharing one timestamp, in ``layout`` (one of :data:`LAYOUTS`)."""
    frames = sorted(frames, key=lambda f: f.person)
    if layout == "d2m":
        return [encode_d2m(f) for f in frames]
    if layout == "mediapipe":
        return [encode_mediapipe(frames)]
    if layout == "poseosc":
        return [encode_poseosc(frames, size)]
    raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def encode_control(control: Control) -> list[bytes]:
    """d2m's OSC control messages for a recorded :class:`Control` (see the OSC input table)."""
    out = []
    if control.genre is not None:
        out.append(_message("/d2m/genre", [("s", AUTO if control.genre == AUTO else control.genre)]))
    if control.prompt is not None:
        out.append(_message("/d2m/prompt", [("s", control.prompt)] if control.prompt else []))
    if control.tempo_lock is True:
        out.append(_message("/d2m/tempo/lock", [("f", control.bpm)] if control.bpm is not None else []))
    elif control.tempo_lock is False:
        out.append(_message("/d2m/tempo/unlock", []))
    if control.volume is not None:
        out.append(_message("/d2m/volume", [("f", control.volume)]))
    if control.playing is not None:
        out.append(_message("/d2m/start" if control.playing else "/d2m/stop", []))
    return out


def schedule(items: list, layout: str, *, controls: bool = True,
             size: tuple[int, int] = POSEOSC_SIZE) -> list[tuple[float, list[bytes], int, int]]:
    """``(seconds from the start, datagrams, frames, controls)`` per send time, in time order."""
    out: list[tuple[float, list[bytes], int, int]] = []
    if not items:
        return out
    t0 = min(it.t for it in items)
    i = 0
    ordered = sorted(items, key=lambda it: it.t)
    while i < len(ordered):
        t = ordered[i].t
        group = [ordered[i]]
        i += 1
        while i < len(ordered) and ordered[i].t - t < SAME_TIME_S:
            group.append(ordered[i])
            i += 1
        frames = [it for it in group if isinstance(it, SkeletonFrame)]
        entries = [it for it in group if isinstance(it, ControlEntry)] if controls else []
        packets = [p for entry in entries for p in encode_control(entry.control)]
        if frames:
            packets.extend(encode_frames(frames, layout, size))
        if packets:
            out.append((t - t0, packets, len(frames), len(entries)))
    return out


def _hostport(text: str):
    from ..osc import parse_hostport
    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 640x480, got {text!r}") from None
    return w, h


def register(sub) -> None:
    p = sub.add_parser("send", help="replay a motion recording over OSC in real time (a mocap stand-in)",
                       description="Replay a d2m motion recording (JSON lines) over OSC at real-time "
                                   "pace, in d2m's, mediapipe-osc's or PoseOSC's layout.")
    p.add_argument("recording", metavar="RECORDING.jsonl", help="motion recording (d2m serve --record-motion)")
    p.add_argument("--to", type=_hostport, default=DEFAULT_TO, metavar="HOST:PORT",
                   help="where to send (default 127.0.0.1:9000, d2m's OSC in)")
    p.add_argument("--layout", choices=LAYOUTS, default="d2m",
                   help="d2m: /d2m/pose; mediapipe: /mediapipe/pose (mediapipe-osc); "
                        "poseosc: /poses/arr (PoseOSC). Default d2m")
    p.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl-C or --duration)")
    p.add_argument("--speed", type=float, default=1.0, help="playback speed (default 1 = real time)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--no-controls", action="store_true", help="send motion only, not the recorded controls")
    p.add_argument("--poseosc-size", type=_size, default=POSEOSC_SIZE, metavar="WxH",
                   help="image size PoseOSC pixel coordinates refer to (default 640x480)")
    p.set_defaults(func=run)


def run(args) -> int:
    if not math.isfinite(args.speed) or args.speed <= 0:
        print("d2m send: --speed must be a positive number", file=sys.stderr)
        return 2
    try:
        with open(args.recording, encoding="utf-8") as fh:
            rec = parse_recording(fh)
        require_frames(rec, args.recording)
    except OSError as exc:
        print(f"d2m send: cannot read {args.recording}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RecordingError as exc:
        print(f"d2m send: {exc}", file=sys.stderr)
        return 2
    if rec.errors:
        line, msg = rec.errors[0]
        print(f"d2m send: skipped {len(rec.errors)} bad line(s); first: line {line}: {msg}", file=sys.stderr)
    plan = schedule(rec.items, args.layout, controls=not args.no_controls, size=args.poseosc_size)
    times = [t for t, _, _, _ in plan]
    gaps = np.diff(times) if len(times) > 1 else np.array([])
    period = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else DEFAULT_GAP_S
    pass_s = (times[-1] if times else 0.0) + period
    host, port = args.to
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except OSError as exc:
        print(f"d2m send: cannot resolve {host}:{port}: {exc}", file=sys.stderr)
        return 2
    family, _, _, _, addr = infos[0]
    frames = messages = controls = errors = passes = 0
    start = time.monotonic()
    print(f"sending {args.recording} ({len(rec.frames)} frames, {pass_s:.1f} s) to {host}:{port} "
          f"as {args.layout}" + (", looping" if args.loop else ""), file=sys.stderr)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            offset = 0.0
            while True:
                for t, packets, n_frames, n_controls in plan:
                    due = start + (offset + t) / args.speed
                    if args.duration is not None and due - start > args.duration:
                        raise StopIteration
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    for packet in packets:
                        try:
                            sock.sendto(packet, addr)
                            messages += 1
                        except OSError:
                            errors += 1      # e.g. nobody listening (ICMP): keep the pace
                    frames += n_frames
                    controls += n_controls
                passes += 1
                if not args.loop:
                    break
                offset += pass_s
        except (StopIteration, KeyboardInterrupt):
            pass
    elapsed = time.monotonic() - start
    print(f"sent {frames} frames and {controls} controls in {messages} messages over {elapsed:.1f} s "
          f"({passes} full pass(es))" + (f"; {errors} send errors" if errors else ""))
    return 0
