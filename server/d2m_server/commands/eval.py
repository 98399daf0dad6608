"""``d2m eval``: how well a music track follows a recorded dance.

    d2m eval MUSIC.wav --motion MOTION.jsonl [--reference REF.wav] [--json] [--plot OUT.png]

Motion beats and dance tempo come from the recorded motion (d2m.motion's
analysis, the same as the live tracker's); music beats from the WAV
(librosa). With ``--reference`` the music's onsets are also scored against a
reference track (BCS/BHS). Definitions: docs/evaluation.md.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

#: File suffixes read as JSONL motion recordings; anything else is treated as video
#: (pose by d2m_server.video.video_motion, MediaPipe).
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


class EvalError(Exception):
    """A problem with the inputs; the message says what to do."""


def register(subparsers) -> None:
    from d2m.evaluation.metrics import (BAS_SIGMA_S, LOCK_TOLERANCE_S, LORIS_BIN_S,
                                        ONSET_TOLERANCE_S)

    p = subparsers.add_parser(
        "eval", help="score how well music follows a recorded dance",
        description="Score a music track against a recorded dance: beat alignment, offsets, "
                    "tempo agreement, lock-in; BCS/BHS against a reference track. "
                    "See docs/evaluation.md.")
    p.add_argument("music", type=Path, help="music audio file (WAV, FLAC, ...)")
    p.add_argument("--motion", type=Path, required=True,
                   help="motion: a JSONL recording (one frame per line) or a video")
    p.add_argument("--reference", type=Path, help="reference music for BCS/BHS")
    p.add_argument("--music-beats", type=Path, metavar="BEATS",
                   help="use these music beat times (s from the music's first sample; one per line, "
                        "or a JSON list) instead of detecting them in the audio")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--plot", type=Path, metavar="OUT.png",
                   help="write a PNG: envelope, beats, offsets, tempo over time")
    p.add_argument("--person", type=int, default=None,
                   help="person id to score (default: the one with the most frames)")
    p.add_argument("--music-start", type=float, default=0.0, metavar="S",
                   help="session time (s) of the music's first sample (default 0)")
    p.add_argument("--sigma-ms", type=float, default=BAS_SIGMA_S * 1000,
                   help=f"Beat Alignment Score Gaussian width (default {BAS_SIGMA_S * 1000:g} ms)")
    p.add_argument("--lock-tol-ms", type=float, default=LOCK_TOLERANCE_S * 1000,
                   help=f"lock-in tolerance (default {LOCK_TOLERANCE_S * 1000:g} ms)")
    p.add_argument("--onset-tol-ms", type=float, default=ONSET_TOLERANCE_S * 1000,
                   help=f"BCS/BHS tolerance variant window (default {ONSET_TOLERANCE_S * 1000:g} ms)")
    p.add_argument("--bin-s", type=float, default=LORIS_BIN_S,
                   help=f"BCS/BHS bin width (default {LORIS_BIN_S:g} s, LORIS)")
    p.set_defaults(func=run)


def _read_audio(path: Path, what: str):
    import soundfile as sf

    if not path.is_file():
        raise EvalError(f"{what} file not found: {path}")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise EvalError(f"cannot read {what} {path}: {exc} (give a WAV/FLAC/OGG file)") from None
    if len(y) == 0:
        raise EvalError(f"{what} {path} has no samples")
    return y, int(sr)


def parse_beat_list(text: str) -> list[float]:
    """Beat times from text: a JSON list (or ``{"beats": [...]}``), else one number per line (``#`` comments)."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise EvalError(f"music beats: not valid JSON ({exc})") from None
        if isinstance(obj, dict):
            obj = obj.get("beats")
        if not isinstance(obj, list):
            raise EvalError('music beats: JSON must be a list of times or {"beats": [times]}')
        values = obj
    else:
        values = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        values = [v for v in values if v]
    try:
        beats = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise EvalError(f"music beats: every beat must be a number of seconds ({exc})") from None
    if not all(math.isfinite(b) for b in beats):
        raise EvalError("music beats: every beat must be a finite number of seconds")
    return sorted(beats)


def _read_motion(path: Path):
    """Frames and input counts from a JSONL recording or a video (MediaPipe pose)."""
    from d2m.evaluation.motion_input import parse_motion_lines

    if not path.is_file():
        raise EvalError(f"motion file not found: {path}")
    if path.suffix.lower() in JSONL_SUFFIXES:
        with open(path, encoding="utf-8", errors="replace") as fh:
            rec = parse_motion_lines(fh)
        return rec.frames, {"format": "jsonl", "frames": len(rec.frames), "bad_lines": rec.n_bad,
                            "bad_by_reason": dict(rec.bad), "control_lines": rec.controls}
    try:
        from d2m_server.video import VideoError, video_motion
    except ImportError as exc:
        raise EvalError(
            f"{path} is not a JSONL recording ({', '.join(JSONL_SUFFIXES)}) and video input is not "
            f"available here ({exc}); record the dance as JSONL motion and pass that file") from None
    try:
        frames = list(video_motion(path))
    except (VideoError, ImportError) as exc:   # unreadable video, or OpenCV/MediaPipe missing
        raise EvalError(f"cannot get motion from video {path}: {exc}") from None
    return frames, {"format": "video", "frames": len(frames), "bad_lines": 0,
                    "bad_by_reason": {}, "control_lines": 0}


def evaluate_files(args) -> tuple:
    """Run the whole evaluation; returns ``(EvalReport, MotionAnalysis)``."""
    from d2m.evaluation.audio import beat_coverage_hit_audio, detect_beats, grid_bpm
    from d2m.evaluation.motion_input import analyse_motion, select_person
    from d2m.evaluation.report import score

    for name, v in (("--sigma-ms", args.sigma_ms), ("--lock-tol-ms", args.lock_tol_ms),
                    ("--onset-tol-ms", args.onset_tol_ms), ("--bin-s", args.bin_s)):
        if not (math.isfinite(v) and v > 0):
            raise EvalError(f"{name} must be a positive number, got {v}")
    music, sr = _read_audio(args.music, "music")
    reference = _read_audio(args.reference, "reference") if args.reference else None
    frames, inputs = _read_motion(args.motion)
    persons = sorted({f.person for f in frames})
    if args.person is not None and args.person not in persons:
        raise EvalError(f"person {args.person} is not in {args.motion} (persons: {persons or 'none'})")
    frames = select_person(frames, args.person)
    if len(frames) < 2:
        raise EvalError(f"{args.motion} has {len(frames)} usable motion frame(s); need a recording "
                        f"of at least a few seconds ({inputs['bad_lines']} bad lines skipped)")
    inputs.update(persons=persons, person=frames[0].person, person_frames=len(frames),
                  motion_span_s=round(frames[-1].t - frames[0].t, 3))
    try:
        motion = analyse_motion(frames)
    except ValueError as exc:
        raise EvalError(f"cannot analyse the motion in {args.motion}: {exc}") from None
    if args.music_beats:
        if not args.music_beats.is_file():
            raise EvalError(f"music beats file not found: {args.music_beats}")
        music_beats = np.asarray(parse_beat_list(args.music_beats.read_text(encoding="utf-8")))
        ibi = np.diff(music_beats)
        ibi = ibi[ibi > 0]
        music_bpm = grid_bpm(music_beats, 60.0 / float(np.median(ibi))) if ibi.size else math.nan
        inputs["music_beats"] = "given"
    else:
        music_bpm, music_beats = detect_beats(music, sr)
        inputs["music_beats"] = "detected"
    duration = len(music) / sr
    report = score(music_beats, music_bpm, motion.beat_times, motion.bpm,
                   music_start_s=args.music_start, music_duration_s=duration,
                   sigma_s=args.sigma_ms / 1000.0, lock_tol_s=args.lock_tol_ms / 1000.0)
    if reference is not None:
        report.loris, report.tolerant = beat_coverage_hit_audio(
            music, sr, reference[0], reference[1], bin_s=args.bin_s, tol_s=args.onset_tol_ms / 1000.0)
        report.bin_s, report.onset_tol_s = args.bin_s, args.onset_tol_ms / 1000.0
    inputs.update(music=str(args.music), music_sr=sr, reference=str(args.reference) if args.reference else None)
    report.inputs = inputs
    return report, motion


def run(args) -> int:
    if args.plot:                          # before the work: one line if matplotlib is missing
        from ..optional import MissingExtra, require
        try:
            require("matplotlib", "--plot")
        except MissingExtra as exc:
            print(f"d2m eval: {exc}", file=sys.stderr)
            return 2
    try:
        report, motion = evaluate_files(args)
    except EvalError as exc:
        print(f"d2m eval: error: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        from d2m.evaluation.motion_input import dance_tempo_curve
        from d2m.evaluation.plot import make_figure

        fig = make_figure(report, motion, dance_tempo_curve(motion),
                          title=f"{args.music.name} vs {args.motion.name}")
        try:
            fig.savefig(str(args.plot))
        except OSError as exc:
            print(f"d2m eval: error: cannot write plot {args.plot}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        d = report.to_dict()
        if args.plot:
            d["plot"] = str(args.plot)
        print(json.dumps(d, indent=2))
    else:
        skipped = report.inputs.get("bad_lines", 0)
        print(f"music   {args.music}  ({report.music_duration_s:.2f} s from t={report.music_start_s:g} s)")
        print(f"motion  {args.motion}  ({report.inputs['person_frames']} frames of person "
              f"{report.inputs['person']}, {skipped} bad lines skipped)")
        if args.reference:
            print(f"ref     {args.reference}")
        print(report.table())
        if args.plot:
            print(f"plot    {args.plot}")
    return 0
