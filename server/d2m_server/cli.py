"""The ``d2m`` command line. Sub-commands live in :mod:`d2m_server.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from d2m import __version__

from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="d2m",
        description="d2m: live dance in, beat-locked music out.",
    )
    parser.add_argument("--version", action="version", version=f"d2m {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    parser.commands = sub.choices          # name -> sub-command parser (d2m_server.config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "takes_serve_flags", False):
        args.serve_flags = extra           # `d2m config` passes them on to serve's parser
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "config", None):      # `d2m serve --config show.toml`: the file under the flags
        from .config import apply_config
        args = apply_config(parser, argv, args)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except ImportError as exc:             # an optional extra is missing: one line, no traceback
        from .optional import explain
        line = explain(exc)
        if line is None:
            raise
        print(f"d2m: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
