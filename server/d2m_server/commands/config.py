"""``d2m config``: print or write the settings of ``d2m serve`` as a TOML file."""

from __future__ import annotations

import sys
from pathlib import Path

#: First lines of a file written by ``d2m config --dump``.
DUMP_HEADER = (
    "d2m show settings: d2m serve --config {name}\n"
    "Written by `d2m config --dump` (d2m {version}). Every key is a flag of `d2m serve`\n"
    "(--osc-in is osc_in); flags typed on the command line override this file, and a\n"
    "repeatable flag there replaces the list here. Keys left commented out are not set.\n"
    "Keep the access token out of this file: set D2M_TOKEN in the environment instead."
)


def register(sub) -> None:
    p = sub.add_parser(
        "config", help="write the settings of `d2m serve` as a TOML file (a show's starting file)",
        description="Print or write the settings `d2m serve` would run with, as a TOML file for "
                    "`d2m serve --config FILE`. Any serve flag (and --config FILE) may follow; "
                    "the output has them applied.", allow_abbrev=False)
    p.add_argument("--dump", nargs="?", const="-", default="-", metavar="FILE.toml",
                   help="write the settings to FILE.toml (default: print them)")
    p.add_argument("--force", action="store_true", help="overwrite FILE.toml if it exists")
    p.set_defaults(func=run_config, takes_serve_flags=True)


def run_config(args) -> int:
    from d2m import __version__

    from ..config import ConfigError, command_parser, config_class, resolve

    parser = command_parser("serve")
    try:
        ns = resolve("serve", list(getattr(args, "serve_flags", []) or []), parser)
    except ConfigError as exc:
        print(f"d2m: {exc}", file=sys.stderr)
        return 2
    target = args.dump
    name = "show.toml" if target == "-" else Path(target).name
    text = config_class(parser).from_namespace(ns).to_toml(
        header=DUMP_HEADER.format(name=name, version=__version__))
    if target == "-":
        sys.stdout.write(text)
        return 0
    path = Path(target)
    if path.exists() and not args.force:
        print(f"d2m: {path} exists; add --force to overwrite it", file=sys.stderr)
        return 2
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}; run it with: d2m serve --config {path}", file=sys.stderr)
    return 0
