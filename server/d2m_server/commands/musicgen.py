"""``d2m musicgen make-tiny DIR``: write a small random MusicGen for tests and demos."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("musicgen", help="MusicGen backend utilities",
                       description="Utilities of the MusicGen backend (see docs/musicgen.md).")
    msub = p.add_subparsers(dest="musicgen_command", metavar="ACTION")
    t = msub.add_parser("make-tiny", help="write a tiny randomly initialised MusicGen into DIR",
                        description="Write a tiny random MusicGen (T5 text encoder, decoder, 32 kHz "
                                    "EnCodec, offline tokenizer) in transformers' format. Its audio is "
                                    "noise-like; it exists so tests and demos run the real code offline.")
    t.add_argument("directory", help="output directory (created)")
    t.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    t.add_argument("--stereo", action="store_true", help="the musicgen-stereo layout (8 codebooks)")
    t.set_defaults(func=make_tiny)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def make_tiny(args) -> int:
    from d2m.musicgen import MusicGenUnavailable

    try:
        from d2m.musicgen.loading import quiet_transformers
        from d2m.musicgen.tiny import make_tiny as write

        with quiet_transformers():
            out = write(args.directory, seed=args.seed, stereo=args.stereo)
    except MusicGenUnavailable as exc:
        raise SystemExit(f"d2m: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"d2m: cannot write {args.directory}: {exc.strerror or exc}") from None
    print(f"wrote a tiny random MusicGen to {out} (random weights: noise-like audio, for tests "
          f"and demos); use it with --backend musicgen --model {out}")
    return 0
