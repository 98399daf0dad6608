"""End to end over loopback: a synthetic dancer streams OSC to a real ``d2m serve``;
the recorded music's beat-tracked tempo and beats follow the dance."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from d2m.dancer import SyntheticDancer, TempoCurve

from .dancer_stream import music_beats, offsets_to_grid, session_offset, start_server, stream

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

DANCE_S = 22.0
#: Music beats must sit within this of the dance's beat grid ...
TOLERANCE_S = 0.050
#: ... from this many dance beats after the music starts on.
LOCK_IN_BEATS = 8

#: Share of judged beats that must sit within TOLERANCE_S. A ramp is held to less: the band
#: sees a ramp once the tracker's tempo has moved the same way three bars running, and until
#: then it lags (seen up to ~270 ms late, docs/architecture.md, "Known limits"). The design
#: that re-fitted every bar held the ramp to 75 %, a 25 ms median and 2 % of tempo (issue 10).
ON_GRID_SHARE = {"ramp100to130": 0.6}
ON_GRID_SHARE_DEFAULT = 0.9
#: ... and the median offset (measured live: 18-23 ms on the ramp, with 72 % of beats within 50 ms;
#: 12-20 ms on the constant dancers).
MEDIAN_OFFSET_S = {"ramp100to130": 0.04}
MEDIAN_OFFSET_DEFAULT_S = 0.025
#: ... and its beat intervals, which work off the lag, stray further from the ramp's tempo.
TEMPO_ERROR = {"ramp100to130": 0.035}
TEMPO_ERROR_DEFAULT = 0.02

CASES = {
    "96bpm": TempoCurve.constant(96.0),
    "120bpm": TempoCurve.constant(120.0),
    "140bpm": TempoCurve.constant(140.0),
    "ramp100to130": TempoCurve.linear(100.0, 130.0, 4.0, 20.0),
}


def run_case(tmp_path, curve):
    dancer = SyntheticDancer(tempo=curve, seed=3, phase_offset=0.35, noise=0.003, sharpness=0.9)
    proc, port, wav, motion = start_server(tmp_path, "--genre", "house", duration=DANCE_S + 3.0)
    try:
        stream(dancer, port, DANCE_S)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    offset = session_offset(motion)
    dance_beats = dancer.beat_times(0.0, DANCE_S + 3.0) + offset
    return dancer, wav, motion, dance_beats, offset


@pytest.mark.parametrize("name", list(CASES))
def test_music_locks_to_the_dancers_beat(tmp_path, name):
    curve = CASES[name]
    dancer, wav, motion, dance_beats, offset = run_case(tmp_path, curve)
    beats, _tempo = music_beats(wav)
    audio, sr = sf.read(str(wav))
    assert len(audio) / sr > DANCE_S, "the recording covers the whole dance"

    # the music starts once the tracker has locked on; judge from LOCK_IN_BEATS dance beats later
    first_music = beats[0]
    judged_from = dance_beats[np.searchsorted(dance_beats, first_music) + LOCK_IN_BEATS]
    end = offset + DANCE_S - 0.5
    judged = beats[(beats >= judged_from) & (beats <= end)]
    assert len(judged) >= 8, f"too few music beats to judge: {beats}"
    off = offsets_to_grid(judged, dance_beats)
    print(f"{name}: music from {first_music - offset:.2f} s of dance, judged from "
          f"{judged_from - offset:.2f} s, |offset| median {np.median(np.abs(off)) * 1000:.1f} ms, "
          f"max {np.max(np.abs(off)) * 1000:.1f} ms over {len(off)} beats, "
          f"{np.mean(np.abs(off) <= TOLERANCE_S) * 100:.0f} % within {TOLERANCE_S * 1000:.0f} ms")
    assert first_music - offset < 6.0, "the music starts within 6 s of dancing"
    assert np.median(np.abs(off)) < MEDIAN_OFFSET_S.get(name, MEDIAN_OFFSET_DEFAULT_S)
    share = ON_GRID_SHARE.get(name, ON_GRID_SHARE_DEFAULT)
    assert np.mean(np.abs(off) <= TOLERANCE_S) >= share, f"offsets (ms): {np.round(off * 1000)}"

    # tempo: the music's beat intervals against the dance's tempo where they fall
    ibi = np.diff(judged)
    mids = judged[:-1] + ibi / 2
    music_bpm = 60.0 / ibi
    dance_bpm = np.array([curve.bpm(t - offset) for t in mids])
    rel = np.abs(music_bpm / dance_bpm - 1.0)
    print(f"{name}: tempo error median {np.median(rel) * 100:.2f} %")
    assert np.median(rel) < TEMPO_ERROR.get(name, TEMPO_ERROR_DEFAULT)


def test_render_of_the_recording_is_the_music_played_live(tmp_path):
    _dancer, wav, motion, _beats, _offset = run_case(tmp_path, CASES["120bpm"])
    out = tmp_path / "rendered.wav"
    res = subprocess.run([sys.executable, "-m", "d2m_server.cli", "render", str(motion), "-o", str(out),
                          "--genre", "house", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    live, sr1 = sf.read(str(wav), dtype="int16")
    rendered, sr2 = sf.read(str(out), dtype="int16")
    assert sr1 == sr2
    n = min(len(live), len(rendered))
    assert n > 20 * sr1
    diff = np.abs(live[:n].astype(int) - rendered[:n].astype(int))
    assert int(diff.max()) == 0, f"first difference at sample {int(np.argmax(diff.max(axis=1) > 0))}"
