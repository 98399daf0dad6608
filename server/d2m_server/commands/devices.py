"""``d2m devices``: the sound outputs and cameras d2m can use, numbered as the flags take them."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("devices", help="list sound outputs (--audio-out) and cameras (--source camera:N)",
                       description="List the sound output devices (the default marked) and the "
                                   "cameras d2m can open, in the numbering --audio-out and "
                                   "--source camera:N take.")
    p.add_argument("--no-cameras", action="store_true",
                   help="do not open cameras (opening one briefly turns its light on)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..devices import query_cameras, query_sound_outputs, report

    outputs, audio_problem = query_sound_outputs()
    cams, camera_problem = ([], "skipped (--no-cameras)") if args.no_cameras else query_cameras()
    print(report(outputs, audio_problem, cams, camera_problem))
    return 0
