"""A show's settings in one TOML file: ``d2m serve --config show.toml``, ``d2m config --dump``."""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys

import pytest

from d2m_server.cli import build_parser, main
from d2m_server.config import ConfigError, config_class, resolve, settings_of


def _parser(command: str = "serve") -> argparse.ArgumentParser:
    return build_parser().commands[command]


def _settings(ns: argparse.Namespace, command: str = "serve") -> dict:
    keys = config_class(_parser(command)).keys()
    return {k: getattr(ns, k) for k in keys}


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_every_flag_of_serve_is_a_config_key(command):
    """A flag added to `d2m serve` later is a config key at once (the keys come from argparse)."""
    parser = _parser(command)
    keys = set(config_class(parser, command=command).keys())
    flags = [a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")]
    assert len(flags) >= 25
    missing = [a.option_strings[-1] for a in flags if a.dest not in keys]
    assert not missing, f"flags without a config key: {missing}"
    # and `d2m config --dump` writes every one of them (set, or commented out when unset)
    text = config_class(parser, command=command).from_namespace(parser.parse_args([])).to_toml()
    for key in keys:
        assert f"\n{key} = " in "\n" + text or f"\n# {key} = " in "\n" + text, key


def test_flags_override_the_file_and_a_repeatable_flag_replaces_its_list(tmp_path):
    show = tmp_path / "show.toml"
    show.write_text('osc-in = "0.0.0.0:7500"\n'            # dashes work too
                    'osc_out = ["192.168.1.20:9001", "[::1]:9002"]\n'
                    'genre = "house"\nbpm = 124\nno_web = true\naudio_out = "none"\n'
                    'source = "video:dance.mp4"\n')
    from_file = resolve("serve", ["--config", str(show)])
    assert from_file.osc_in == ("0.0.0.0", 7500)
    assert from_file.osc_out == [("192.168.1.20", 9001), ("::1", 9002)]
    assert (from_file.genre, from_file.bpm, from_file.no_web) == ("house", 124.0, True)
    assert from_file.source == ["video:dance.mp4"]            # one value stands for a list of one
    assert from_file.ws == ("127.0.0.1", 8765)                # not in the file: the default
    flags = resolve("serve", ["--genre", "krump", "--config", str(show), "--osc-out", "10.0.0.2:9001",
                              "--bpm", "99"])
    assert flags.genre == "krump" and flags.bpm == 99.0       # before or after --config: the flag wins
    assert flags.osc_out == [("10.0.0.2", 9001)]              # replaced, not appended
    assert flags.osc_in == ("0.0.0.0", 7500) and flags.no_web is True
    # the real entry point reads the file the same way (the whole argv, `-v` before the command)
    seen = {}
    parser = build_parser()
    args, _ = parser.parse_known_args(["-v", "serve", "--config", str(show), "--seed", "3"])
    from d2m_server.config import apply_config
    resolved = apply_config(parser, ["-v", "serve", "--config", str(show), "--seed", "3"], args)
    seen.update(vars(resolved))
    assert seen["verbose"] is True and seen["seed"] == 3 and seen["genre"] == "house"
    assert callable(seen["func"])


def test_dump_writes_a_starting_file_that_reads_back_to_the_same_settings(tmp_path, capsys):
    out = tmp_path / "show.toml"
    flags = ["--osc-in", "0.0.0.0:7500", "--osc-out", "192.168.1.20:9001", "--osc-out", "[::1]:9002",
             "--genre", "la-hiphop", "--prompt", 'warm "analog" bass\\', "--bpm", "126.5",
             "--mqtt", "broker.local", "--allow-origin", "http://show.local:8080", "--no-web",
             "--osc-allow", "192.168.1.0/24", "--latency", "0.12", "--duration", "3600"]
    assert main(["config", "--dump", str(out), *flags]) == 0
    text = out.read_text()
    assert text.startswith("# d2m show settings")
    assert 'osc_out = ["192.168.1.20:9001", "[::1]:9002"]' in text
    assert "# record = " in text                        # unset settings are there, commented out
    assert _settings(resolve("serve", ["--config", str(out)])) == _settings(resolve("serve", flags))
    # an existing file is kept unless --force
    assert main(["config", "--dump", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["config", "--dump", str(out), "--force", "--config", str(out), "--seed", "7"]) == 0
    again = resolve("serve", ["--config", str(out)])
    assert again.seed == 7 and again.genre == "la_hiphop" and again.mqtt == ("broker.local", 1883)
    # printed to stdout without a file name
    capsys.readouterr()
    assert main(["config", "--genre", "pop"]) == 0
    assert 'genre = "pop"' in capsys.readouterr().out


@pytest.mark.parametrize("text, words", [
    ('osc_inn = "0.0.0.0:7500"\n', ["unknown key 'osc_inn'", "did you mean osc_in?", "ws"]),
    ("osc_in = 7500\n", ["osc_in = 7500", "a string is needed", "HOST:PORT", "--osc-in"]),
    ('osc_in = "0.0.0.0:port"\n', ["osc_in", "bad OSC port", "--osc-in"]),
    ('backend = "jazzbot"\n', ["backend", '"synth", "musicgen"']),
    ('genre = "polka"\n', ["genre", "unknown genre 'polka'", "house", "auto"]),
    ('bpm = "fast"\n', ["bpm", "a number is needed"]),
    ('seed = 1.5\n', ["seed", "a whole number"]),
    ('no_osc = "yes"\n', ["no_osc", "true or false"]),
    ('osc_out = ["127.0.0.1:9001", 9002]\n', ["osc_out", "a list (or one value)"]),
    ('[serve]\ngenre = "house"\n', ["[serve]", "tables are not used"]),
    ('config = "other.toml"\n', ["cannot name another"]),
    ('genre = house\n', ["not valid TOML", "line 1"]),
    ('mqtt = "[::1"\n', ["mqtt", "bad MQTT broker address"]),
])
def test_a_bad_file_names_the_key_and_what_is_allowed(tmp_path, text, words):
    bad = tmp_path / "show.toml"
    bad.write_text(text)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--config", str(bad), "--audio-out", "none"])
    message = str(info.value.code)
    assert message.startswith("d2m: ") and str(bad) in message
    for word in words:
        assert word in message, (word, message)


def test_a_missing_file_and_the_message_on_the_command_line(tmp_path):
    """The real command: one line on stderr, no traceback, exit status 1."""
    proc = subprocess.run([sys.executable, "-m", "d2m_server.cli", "serve", "--config",
                           str(tmp_path / "nope.toml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"d2m: cannot read the config file {tmp_path / 'nope.toml'}: " \
                                  "No such file or directory"
    bad = tmp_path / "show.toml"
    bad.write_text('ws = "127.0.0.1:99999"\n')
    proc = subprocess.run([sys.executable, "-m", "d2m_server.cli", "demo", "--config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"d2m: {bad}: ws = \"127.0.0.1:99999\": ")


def test_the_configuration_is_frozen_and_validated_on_construction():
    cls = config_class(_parser())
    cfg = cls.from_namespace(_parser().parse_args(["--genre", "house"]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.genre = "pop"
    assert dataclasses.replace(cfg, genre="pop").genre == "pop"
    with pytest.raises(ConfigError, match="backend"):
        dataclasses.replace(cfg, backend="jazzbot")
    with pytest.raises(ConfigError, match="osc_in"):
        dataclasses.replace(cfg, osc_in=("127.0.0.1", 0))
    with pytest.raises(ConfigError, match="no_osc"):
        dataclasses.replace(cfg, no_osc="yes")
    assert cfg.osc_in == ("127.0.0.1", 9000) and cfg.allow_origin == ()


def test_a_flag_kind_config_does_not_know_is_refused_by_name():
    p = argparse.ArgumentParser()
    p.add_argument("--pair", nargs=2)
    with pytest.raises(TypeError, match="--pair"):
        settings_of(p)
