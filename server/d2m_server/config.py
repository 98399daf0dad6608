"""A show's settings in one TOML file: ``d2m serve --config show.toml``.

Every flag of ``d2m serve`` (and ``d2m demo``) is a key of the file, named
after the flag: ``--osc-in 0.0.0.0:7500`` is ``osc_in = "0.0.0.0:7500"``
(``osc-in`` is accepted too), ``--no-osc`` is ``no_osc = true``, a
repeatable flag takes a list (``osc_out = ["127.0.0.1:9001", ...]``).
The keys are *derived from the command's argparse definitions*
(:func:`settings_of`), so a flag added to ``d2m serve`` is a config key at
once, with the same parsing and the same checks as on the command line.

Precedence: the built-in defaults, then the file, then the flags typed on the
command line (a repeatable flag on the command line replaces the file's
list). ``d2m config --dump`` writes the resulting settings as a starting
file.

The settings are held in a frozen dataclass made from the same definitions
(:func:`config_class`), validated on construction: every value must be one
the command line would accept. A bad file is refused with a message naming
the key and what is allowed (:class:`ConfigError`).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import math
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

#: The flag naming the config file; not itself a key of the file.
CONFIG_FLAG = "--config"
#: Argparse destinations that are not settings (the file itself, help).
NOT_SETTINGS = frozenset({"config", "help"})
#: Largest config file read (bytes): a show file is a few kB.
MAX_CONFIG_BYTES = 1024 * 1024
#: Width of the comment lines ``d2m config --dump`` writes.
DUMP_WIDTH = 92

# kinds of setting, from the argparse action
FLAG, LIST, VALUE = "flag", "list", "value"


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message names the key and what is allowed."""


def load_toml_text(text: str) -> dict:
    """Parse TOML (``tomllib``, or ``tomli`` on Python 3.10)."""
    try:
        import tomllib
    except ModuleNotFoundError:            # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError("reading a config file on Python 3.10 needs tomli: "
                              "pip install tomli") from None
    return tomllib.loads(text)


# ---------------------------------------------------------------------------
# One setting per flag


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key of the config file: a flag of the command, with its parsing and checks."""
    key: str                                #: TOML key, the argparse destination (``osc_in``)
    flag: str                               #: the command-line flag (``--osc-in``)
    kind: str                               #: FLAG (true/false), LIST (repeatable) or VALUE
    type: Callable[[str], Any] | None       #: the flag's argparse type (None: text)
    choices: tuple | None                   #: allowed values, if the flag has a fixed set
    default: Any                            #: the command's default
    help: str                               #: the flag's help text
    metavar: str | None                     #: what the flag takes (``HOST:PORT``)
    const: Any = None                       #: value a FLAG stores when given (True for store_true)

    # -- what is allowed, in words --------------------------------------------
    def allowed(self) -> str:
        if self.kind == FLAG:
            return "true or false"
        if self.choices:
            one = "one of " + ", ".join(json.dumps(c) for c in self.choices)
        elif self.type is int:
            one = "a whole number"
        elif self.type is float:
            one = "a number"
        else:
            one = f"a string ({self.metavar})" if self.metavar else "a string"
        return f"a list (or one value), each {one}" if self.kind == LIST else one

    def _fail(self, value: Any, why: str, where: str) -> ConfigError:
        shown = json.dumps(value) if isinstance(value, (str, int, float, bool, list)) else repr(value)
        return ConfigError(f"{where}{self.key} = {shown}: {why}; {self.key} takes "
                           f"{self.allowed()} (the flag {self.flag})")

    # -- from TOML -----------------------------------------------------------
    def from_toml(self, value: Any, where: str = "") -> Any:
        """The parsed value of a TOML value, as the command line would give it."""
        if self.kind == FLAG:
            if not isinstance(value, bool):
                raise self._fail(value, "not true or false", where)
            return self.const if value else self.default
        if self.kind == LIST:
            items = value if isinstance(value, list) else [value]
            return tuple(self._item(v, where, value) for v in items)
        return self._item(value, where, value)

    def _item(self, value: Any, where: str, whole: Any) -> Any:
        if isinstance(value, bool) or isinstance(value, (dict, list)) or \
                not isinstance(value, (str, int, float)):
            raise self._fail(whole, f"{type(value).__name__} is not allowed here", where)
        if self.type is float:
            if isinstance(value, str):
                raise self._fail(whole, "a number is needed, not a string", where)
            if not math.isfinite(value):
                raise self._fail(whole, "not a finite number", where)
            parsed = float(value)
        elif self.type is int:
            if not isinstance(value, int):
                raise self._fail(whole, "a whole number is needed", where)
            parsed = value
        else:
            if not isinstance(value, str):
                raise self._fail(whole, "a string is needed (put it in quotes)", where)
            parsed = value
            if self.type is not None:
                try:
                    parsed = self.type(value)
                except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
                    raise self._fail(whole, str(exc), where) from None
        if self.choices and parsed not in self.choices:
            raise self._fail(whole, "not an allowed value", where)
        return parsed

    # -- to TOML ---------------------------------------------------------------
    def to_toml(self, value: Any) -> str | None:
        """The TOML literal of a parsed value (None: not set, so not written)."""
        if self.kind == FLAG:
            return "true" if value == self.const else "false"
        if value is None:
            return None
        if self.kind == LIST:
            return "[" + ", ".join(_toml_scalar(self._text(v)) for v in value) + "]"
        return _toml_scalar(self._text(value))

    def _text(self, value: Any) -> Any:
        """A parsed value back to what the flag takes (host/port pairs to ``HOST:PORT``)."""
        if self.type in (int, float) or isinstance(value, (bool, int, float)) and self.type is None:
            return value
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
            host, port = value
            return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
        return str(value)

    # -- validation of a parsed value (the dataclass) ----------------------------
    def check(self, value: Any) -> Any:
        """A parsed value, validated by writing it as TOML text and reading it back."""
        if self.kind == FLAG:
            if value not in (self.const, self.default):
                raise ConfigError(f"{self.key} = {value!r}: {self.key} takes {self.allowed()}")
            return value
        if value is None:
            return None
        if self.kind == LIST:
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise ConfigError(f"{self.key} = {value!r}: {self.key} takes {self.allowed()}")
            return tuple(self._check_item(v) for v in value)
        return self._check_item(value)

    def _check_item(self, value: Any) -> Any:
        text = self._text(value)
        if self.type is float and isinstance(text, int) and not isinstance(text, bool):
            text = float(text)
        return self._item(text, "", text)


def _toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)    # a TOML basic string


def _help_text(action: argparse.Action) -> str:
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    try:
        return text % {"default": action.default, "dest": action.dest}
    except (KeyError, TypeError, ValueError):
        return text


def settings_of(parser: argparse.ArgumentParser) -> tuple[Setting, ...]:
    """One :class:`Setting` per flag of ``parser`` (all but ``--config`` and ``--help``)."""
    out = []
    for action in parser._actions:        # argparse has no public list of a parser's actions
        if action.dest in NOT_SETTINGS or not action.option_strings:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreConstAction):     # store_true, store_false, store_const
            kind = FLAG
        elif isinstance(action, argparse._AppendAction):
            kind = LIST
        elif isinstance(action, argparse._StoreAction) and action.nargs in (None, "?"):
            kind = VALUE
        else:
            raise TypeError(f"{flag}: a {type(action).__name__} cannot be a config key yet; "
                            "teach d2m_server.config about it")
        default = action.default
        if kind == LIST and default is not None:
            default = tuple(default)
        out.append(Setting(
            key=action.dest, flag=flag, kind=kind, type=action.type,
            choices=tuple(action.choices) if action.choices else None, default=default,
            help=_help_text(action),
            metavar=action.metavar if isinstance(action.metavar, str) else None,
            const=action.const if kind == FLAG else None))
    return tuple(out)


# ---------------------------------------------------------------------------
# The frozen configuration


class _ConfigBase:
    """Methods of every config class made by :func:`config_class`."""

    SETTINGS: tuple[Setting, ...] = ()
    COMMAND: str = ""

    def __post_init__(self) -> None:
        for s in self.SETTINGS:
            object.__setattr__(self, s.key, s.check(getattr(self, s.key)))

    @classmethod
    def setting(cls, key: str) -> Setting:
        for s in cls.SETTINGS:
            if s.key == key:
                return s
        raise KeyError(key)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(s.key for s in cls.SETTINGS)

    @classmethod
    def from_mapping(cls, values: dict, *, source: str = "") -> dict:
        """Validated, parsed values of a TOML mapping (only the keys it sets)."""
        where = f"{source}: " if source else ""
        known = {s.key: s for s in cls.SETTINGS}
        out = {}
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_")
            if key == "config":
                raise ConfigError(f"{where}config: a config file cannot name another one")
            if key not in known:
                if isinstance(value, dict):
                    raise ConfigError(f"{where}[{raw_key}]: tables are not used; put every key at "
                                      f"the top of the file (keys: {', '.join(known)})")
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{where}unknown key {raw_key!r}{hint}; the keys are the flags of "
                                  f"`d2m {cls.COMMAND}`: {', '.join(known)}")
            if key in out:
                raise ConfigError(f"{where}{key} is given twice (as {key} and with dashes)")
            out[key] = known[key].from_toml(value, where)
        return out

    @classmethod
    def read(cls, path: str | Path) -> dict:
        """The parsed values a TOML file sets; :class:`ConfigError` naming what is wrong."""
        p = Path(path)
        try:
            if p.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError(f"{p}: larger than {MAX_CONFIG_BYTES} bytes; is it a config file?")
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the config file {p}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not UTF-8 text; a config file is TOML text") from None
        try:
            data = load_toml_text(text)
        except ValueError as exc:              # tomllib.TOMLDecodeError is a ValueError
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{p} is not valid TOML: {exc}") from None
        return cls.from_mapping(data, source=str(p))

    @classmethod
    def from_namespace(cls, ns: argparse.Namespace):
        """The validated config of parsed arguments (ConfigError when a value is not allowed)."""
        return cls(**{s.key: getattr(ns, s.key, s.default) for s in cls.SETTINGS})

    def namespace(self, base: argparse.Namespace | None = None) -> argparse.Namespace:
        """Arguments as the command reads them (lists for repeatable flags)."""
        ns = argparse.Namespace(**vars(base)) if base is not None else argparse.Namespace()
        for s in self.SETTINGS:
            value = getattr(self, s.key)
            setattr(ns, s.key, list(value) if s.kind == LIST and value is not None else value)
        return ns

    def to_toml(self, *, header: str = "") -> str:
        """A TOML file of every setting, each with its flag's help; unset ones commented out."""
        lines = [f"# {line}" if line else "#" for line in header.splitlines()]
        for s in self.SETTINGS:
            lines.append("")
            help_text = f"{s.flag}: {' '.join(s.help.split())}" if s.help else s.flag
            lines.extend("# " + line for line in textwrap.wrap(help_text, DUMP_WIDTH - 2))
            literal = s.to_toml(getattr(self, s.key))
            if literal is None:
                example = s.metavar or ("NUMBER" if s.type in (int, float) else "TEXT")
                lines.append(f"# {s.key} = {_toml_scalar(example) if s.kind == VALUE else '[' + _toml_scalar(example) + ']'}")
            else:
                lines.append(f"{s.key} = {literal}")
        return "\n".join(lines).lstrip("\n") + "\n"


def config_class(parser: argparse.ArgumentParser, *, command: str = "serve", name: str = "ServeConfig"):
    """A frozen dataclass with one field per setting of ``parser`` (see :func:`settings_of`)."""
    settings = settings_of(parser)
    fields = [(s.key, Any, dataclasses.field(default=s.default, metadata={"setting": s}))
              for s in settings]
    cls = dataclasses.make_dataclass(name, fields, bases=(_ConfigBase,), frozen=True,
                                     namespace={"SETTINGS": settings, "COMMAND": command,
                                                "__module__": __name__})
    return cls


# ---------------------------------------------------------------------------
# The command line


def command_parser(command: str) -> argparse.ArgumentParser:
    """The argparse parser of ``d2m COMMAND`` (``serve``, ``demo``), as the CLI builds it."""
    from .cli import build_parser

    parser = build_parser()
    return parser.commands[command]


def resolve(command: str, sub_argv: Sequence[str], parser: argparse.ArgumentParser | None = None,
            *, base: argparse.Namespace | None = None) -> argparse.Namespace:
    """The arguments of ``d2m COMMAND SUB_ARGV``, with its ``--config`` file applied.

    Defaults, then the file, then the flags in ``sub_argv`` (a repeatable flag
    there replaces the file's list). Raises :class:`ConfigError`.
    """
    parser = parser if parser is not None else command_parser(command)
    first = parser.parse_args(list(sub_argv))
    cls = config_class(parser, command=command)
    keys = set(cls.keys()) | {"config"}
    preset = argparse.Namespace(**{k: v for k, v in vars(base or argparse.Namespace()).items()
                                   if k not in keys})
    file_values = cls.read(first.config) if getattr(first, "config", None) else {}
    lists = {}
    for key, value in file_values.items():
        if cls.setting(key).kind == LIST:
            value = lists[key] = list(value)
        setattr(preset, key, value)
    ns = parser.parse_args(list(sub_argv), namespace=preset)
    for key, given in lists.items():
        now = getattr(ns, key)
        if now is not given:                 # the command line has this flag: it replaces the file's
            setattr(ns, key, now[len(given):])
    return cls.from_namespace(ns).namespace(ns)


def apply_config(root: argparse.ArgumentParser, argv: Sequence[str], args: argparse.Namespace
                 ) -> argparse.Namespace:
    """``cli.main`` hook: re-read ``d2m COMMAND ... --config FILE`` with the file applied."""
    command = args.command
    argv = list(argv)
    sub_argv = argv[argv.index(command) + 1:]
    try:
        return resolve(command, sub_argv, root.commands[command], base=args)
    except ConfigError as exc:
        raise SystemExit(f"d2m: {exc}") from None
