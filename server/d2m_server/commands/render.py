"""``d2m render MOTION -o OUT.wav``: the live core, offline."""

from __future__ import annotations

import sys
from pathlib import Path

from .serve import add_voice_arguments

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


def hit_options(args) -> dict:
    """``hit_sensitivity`` for ConductorConfig when ``--hit-sensitivity`` was given."""
    value = getattr(args, "hit_sensitivity", None)
    return {} if value is None else {"hit_sensitivity": value}


def register(sub) -> None:
    p = sub.add_parser("render", help="turn a motion recording (JSONL) or a dance video into music",
                       description="Render music offline from a motion recording (d2m serve "
                                   "--record-motion) or a dance video, with the live loop's core.")
    p.add_argument("motion", help="recording.jsonl or a video file")
    p.add_argument("-o", "--output", required=True, help="output WAV")
    p.add_argument("--backend", default="synth", choices=("synth", "musicgen"))
    p.add_argument("--model", default=None, help="MusicGen directory or hub id")
    p.add_argument("--encoders", default=None)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--genre", default=None)
    p.add_argument("--prompt", default="")
    p.add_argument("--bpm", type=float, default=120.0, help="tempo before the dancer is found")
    p.add_argument("--lead", type=float, default=None, help="as d2m serve --lead (must match to reproduce a live run)")
    p.add_argument("--latency", type=float, default=0.0, help="as d2m serve --latency")
    p.add_argument("--seed", type=int, default=0)
    add_voice_arguments(p, reproduce=True)
    p.add_argument("--duration", type=float, default=None, help="output length (default: motion + 2 s)")
    p.add_argument("--mux", metavar="OUT.mp4", help="with a video: write it with the music as soundtrack")
    p.add_argument("--midi", metavar="OUT.mid", default=None,
                   help="also write the band's score as a MIDI file: one track per part (drums on "
                        "channel 10, GM drum map), tempo map on the planned beats (synth backend)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def load_items(path: str, *, progress: bool = True):
    """Frames and (t, Control) pairs from a recording or a video; raises SystemExit with a clear message."""
    from d2m.recording import ControlEntry, RecordingError, parse_recording, require_frames

    p = Path(path)
    if not p.exists():
        raise SystemExit(f"d2m: {path}: no such file")
    if p.suffix.lower() in VIDEO_SUFFIXES:
        try:
            from ..camera import video_motion
        except ImportError as exc:
            raise SystemExit(f"d2m: rendering a video needs the camera extra ({exc}): "
                             "pip install -e '.[camera]'")
        try:
            frames = video_motion(str(p), progress=progress)
        except Exception as exc:  # VideoError and friends carry a clear message
            raise SystemExit(f"d2m: {exc}")
        if not frames:
            raise SystemExit(f"d2m: no person was found in {path}")
        return frames, None
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            rec = parse_recording(f)
    except OSError as exc:
        raise SystemExit(f"d2m: cannot read {path}: {exc.strerror}")
    for line, msg in rec.errors[:5]:
        print(f"d2m: {path}:{line}: skipped: {msg}", file=sys.stderr)
    if len(rec.errors) > 5:
        print(f"d2m: {path}: {len(rec.errors) - 5} more bad lines skipped", file=sys.stderr)
    try:
        require_frames(rec, path)
    except RecordingError as exc:
        raise SystemExit(f"d2m: {exc}")
    items = [(it.t, it.control) if isinstance(it, ControlEntry) else it for it in rec.items]
    return items, rec


def run(args) -> int:
    from tqdm import tqdm

    from d2m.conductor import ConductorConfig
    from d2m.render import render_motion

    from ..backends import BackendUnavailable, make_generator
    from .serve import MUSICGEN_LEAD_S, SYNTH_LEAD_S, voice_options

    items, _rec = load_items(args.motion, progress=not args.no_progress)
    lead = args.lead if args.lead is not None else (MUSICGEN_LEAD_S if args.backend == "musicgen" else SYNTH_LEAD_S)
    try:
        genre = None if args.genre in (None, "auto") else args.genre
        cfg = ConductorConfig(plan_lead_s=lead, output_latency_s=args.latency, initial_bpm=args.bpm,
                              genre=genre, prompt=args.prompt, seed=args.seed,
                              **hit_options(args))
        gen = make_generator(args.backend, sample_rate=cfg.sample_rate, seed=args.seed, model=args.model,
                             device=args.device, encoders=args.encoders, **voice_options(args))
    except (BackendUnavailable, ValueError) as exc:
        print(f"d2m: {exc}", file=sys.stderr)
        return 2
    end = max(it.t if hasattr(it, "t") else it[0] for it in items)
    bar = tqdm(total=round(end, 1), unit="s", desc="rendering", disable=args.no_progress)

    def progress(t: float) -> None:
        bar.update(max(0.0, round(t, 1) - bar.n))

    duration = args.duration
    if duration is None and Path(args.motion).suffix.lower() in VIDEO_SUFFIXES:
        duration = end + 1 / 30
    result = render_motion(items, gen, cfg, duration=duration, progress=progress)
    bar.close()
    from ..recorder import RecorderError, WavRecorder
    try:
        # the same writer as the live recorder, so a render of a live run is bit-identical to it
        with WavRecorder(args.output, result.sample_rate, 2) as wav:
            wav.write(result.audio)
    except (RecorderError, OSError) as exc:
        print(f"d2m: cannot write {args.output}: {exc}", file=sys.stderr)
        return 2
    if args.midi:
        from d2m.midi import write_midi_file
        try:
            st = write_midi_file(args.midi, result.plans, result.scores, result.sample_rate,
                                 accents=midi_accents(result))
        except OSError as exc:
            print(f"d2m: cannot write {args.midi}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.midi}: {st['beats']} beats, {st['notes']} notes"
              + ("" if any(s is not None for s in result.scores) else
                 f" (the {args.backend} backend has no score: tempo map only)"))
    print(f"wrote {args.output}: {len(result.audio) / result.sample_rate:.2f} s, "
          + render_summary(result.conductor.status()))
    if args.mux:
        try:
            from ..camera import mux
            mux(args.motion, args.output, args.mux)
        except ImportError as exc:
            print(f"d2m: --mux needs the camera extra ({exc})", file=sys.stderr)
            return 2
        except Exception as exc:
            print(f"d2m: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.mux}")
    return 0


def render_summary(status: dict) -> str:
    """What the render played, in words: the music's tempo (the band's, which is what a listener
    hears) first, then the dancer's tempo as the tracker last saw it, and whether it had a beat."""
    from d2m.conductor import FOLLOWING, HOLDING, IDLE_MODE, LOCKED   # (d2m loads on use: a quick CLI)
    words = {FOLLOWING: "following the dancer", HOLDING: "holding its own tempo",
             LOCKED: "at the operator's locked tempo", IDLE_MODE: "idle at the end"}
    tempo = status["tempo"]
    dance = (f"the dancer's beat {tempo['dance_bpm']:.1f} BPM" if tempo["locked"]
             else f"no clear beat from the dancer (tracker at {tempo['dance_bpm']:.1f} BPM)")
    mode = words.get(tempo["mode"], tempo["mode"])
    return (f"{status['bar']} bars, music at {tempo['bpm']:.1f} BPM, {mode}; {dance}; "
            f"genre {status['genre']}")


def midi_accents(result) -> list:
    """``(sample, note, velocity)`` of the accents answering the dancer's hits (d2m.midi.hit_accent)."""
    from d2m.midi import hit_accent

    items = (hit_accent(h) for h in getattr(result, "hits", None) or ())
    return [it for it in items if it is not None]
