"""A missing optional dependency gives one line saying what to install, never a traceback.

Each case runs the real ``d2m`` command in a subprocess in which the optional
modules are not importable: Python's path finder is told they are not there,
so ``import cv2`` fails exactly as it does where OpenCV was never installed
(``importlib.util.find_spec`` says None too).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from d2m_server.optional import EXTRAS, MissingExtra, explain, require

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "tests" / "data" / "dance_clip.mp4"
SERVE = ["serve", "--audio-out", "none", "--no-osc", "--no-ws", "--duration", "1"]

HIDE = textwrap.dedent("""
    import importlib.machinery, sys
    hidden = set(sys.argv[1].split(","))
    find_spec = importlib.machinery.PathFinder.find_spec.__func__
    def not_installed(cls, name, path=None, target=None):
        return None if name.split(".", 1)[0] in hidden else find_spec(cls, name, path, target)
    importlib.machinery.PathFinder.find_spec = classmethod(not_installed)
    from d2m_server.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def _run_without(tmp_path: Path, modules: str, *argv: str) -> subprocess.CompletedProcess:
    script = tmp_path / "without.py"
    script.write_text(HIDE)
    return subprocess.run([sys.executable, str(script), modules, *argv], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)


def _motion(tmp_path: Path) -> tuple[str, str]:
    from tests.d2m.evaluation.conftest import bounce_frames, click_audio, motion_lines

    wav, jsonl = tmp_path / "music.wav", tmp_path / "motion.jsonl"
    sf.write(wav, click_audio(np.arange(0.5, 6.0, 0.5), 6.0), 48000)
    jsonl.write_text("\n".join(motion_lines(bounce_frames(120, 6.0))) + "\n")
    return str(wav), str(jsonl)


CASES = {
    "plot": ("matplotlib", lambda t: ["eval", *_motion(t)[:1], "--motion", _motion(t)[1], "--plot",
                                      str(t / "eval.png")], "d2m[plot]"),
    "camera": ("cv2", lambda t: [*SERVE, "--source", "camera:0"], "d2m[camera]"),
    "web camera": ("mediapipe", lambda t: [*SERVE, "--web-camera"], "d2m[camera]"),
    "musicgen": ("torch,transformers,safetensors",
                 lambda t: [*SERVE, "--backend", "musicgen", "--model", str(t / "model")], "[musicgen]"),
    "mqtt": ("aiomqtt", lambda t: [*SERVE, "--mqtt", "127.0.0.1"], "d2m[mqtt]"),
    "midi": ("rtmidi,mido", lambda t: [*SERVE, "--midi-out", "d2m"], "[midi]"),
    "link": ("aalink", lambda t: [*SERVE, "--link"], "[link]"),
    "soundfont voices": ("tinysoundfont", lambda t: [*SERVE, "--voices", "soundfont"], "[soundfont]"),
    "render a video": ("cv2", lambda t: ["render", str(CLIP), "-o", str(t / "x.wav")], "[camera]"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_missing_extra_is_one_line_naming_it(tmp_path, case):
    modules, argv, extra = CASES[case]
    proc = _run_without(tmp_path, modules, *argv(tmp_path))
    assert proc.returncode != 0, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    said = [line for line in proc.stderr.splitlines() if "install" in line and "d2m" in line]
    assert len(said) == 1, proc.stderr
    assert extra in said[0] and "pip install" in said[0], said[0]
    assert not (tmp_path / "eval.png").exists()


def test_devices_without_opencv_still_lists_sound_and_says_what_to_install(tmp_path):
    proc = _run_without(tmp_path, "cv2", "devices")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert "Sound outputs" in proc.stdout
    assert "not looked for" in proc.stdout and "[camera]" in proc.stdout


def test_the_table_and_the_entry_point_turn_import_errors_into_that_line():
    with pytest.raises(MissingExtra) as info:
        require("d2m_no_such_module_for_tests", "a test feature")
    assert "a test feature needs d2m_no_such_module_for_tests" in str(info.value)
    assert explain(ModuleNotFoundError("No module named 'aalink'", name="aalink")) == \
        "Ableton Link (--link) needs aalink, which is not installed: pip install 'd2m[link]'"
    # an ImportError of d2m's own code is a bug, not a missing extra: it is not explained away
    assert explain(ModuleNotFoundError("No module named 'd2m.nothing'", name="d2m.nothing")) is None
    assert {extra for extra, _, _ in EXTRAS.values()} >= {"plot", "camera", "musicgen", "mqtt",
                                                           "midi", "link"}
