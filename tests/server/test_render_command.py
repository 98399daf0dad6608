"""What `d2m render` tells the user it played: the music's tempo, not only the tracker's."""
from __future__ import annotations

import re
import subprocess
import sys

from d2m_server.commands.render import render_summary

from d2m.dancer import SyntheticDancer


def _status(bpm: float, dance_bpm: float, locked: bool, mode: str) -> dict:
    return {"bar": 4, "genre": "break",
            "tempo": {"bpm": bpm, "dance_bpm": dance_bpm, "locked": locked, "mode": mode}}


def test_the_summary_leads_with_the_tempo_the_music_played():
    # the case a user met on a real video: the tracker never locked and sat at its 120 BPM
    # starting tempo while the band held 81.6 BPM; the summary used to say "tempo 120.0 BPM"
    line = render_summary(_status(81.6, 120.0, False, "holding"))
    assert line.startswith("4 bars, music at 81.6 BPM, holding its own tempo")
    assert "no clear beat from the dancer (tracker at 120.0 BPM)" in line
    assert line.endswith("genre break")


def test_the_summary_names_the_dancers_beat_when_the_tracker_has_one():
    line = render_summary(_status(100.2, 99.8, True, "following"))
    assert "music at 100.2 BPM, following the dancer; the dancer's beat 99.8 BPM" in line


def test_render_prints_the_music_tempo_of_a_dancer_it_followed(tmp_path):
    frames = SyntheticDancer(tempo=100.0, seed=4, noise=0.003).frames(14.0)
    motion = tmp_path / "m.jsonl"
    motion.write_text("".join(f.to_json() + "\n" for f in frames))
    res = subprocess.run([sys.executable, "-m", "d2m_server.cli", "render", str(motion), "-o",
                          str(tmp_path / "o.wav"), "--no-progress", "--genre", "house"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    m = re.search(r"music at ([\d.]+) BPM, following the dancer; the dancer's beat ([\d.]+) BPM",
                  res.stdout)
    assert m, res.stdout
    assert abs(float(m.group(1)) - 100.0) < 3.0 and abs(float(m.group(2)) - 100.0) < 3.0
