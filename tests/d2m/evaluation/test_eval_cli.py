"""``d2m eval`` end to end on a synthetic click WAV and a JSONL skeleton bouncing at a known tempo."""

import json

import numpy as np
import pytest

from d2m_server.cli import main

DUR = 12.0
BEATS_120 = np.arange(0.5, DUR - 0.3, 0.5)


def run_json(capsys, *argv):
    rc = main(["eval", *argv, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


@pytest.fixture
def motion_120(write_motion):
    return write_motion("dance.jsonl", 120.0, DUR)


def test_aligned_music(capsys, write_wav, motion_120):
    music = write_wav("music.wav", BEATS_120, DUR)
    ref = write_wav("ref.wav", BEATS_120, DUR, sr=44100)
    d = run_json(capsys, music, "--motion", motion_120, "--reference", ref)
    assert d["beat_alignment_score"] > 0.9
    assert d["offsets"]["median_abs_ms"] < 15.0
    assert d["tempo"]["match"] and abs(d["tempo"]["dance_bpm"] - 120) < 1.5
    assert abs(d["tempo"]["music_bpm"] - 120) < 0.6
    assert d["lock_in"]["locked"] and d["lock_in"]["beat"] <= 1
    assert d["music_side"]["offsets"]["median_abs_ms"] < 15.0
    assert d["music_side"]["lock_in"]["beat"] <= 1
    assert d["reference"]["loris"]["f1"] == 1.0
    assert d["reference"]["tolerance"]["f1"] > 0.95
    inp = d["inputs"]
    assert inp["bad_lines"] == 2 and inp["control_lines"] == 1
    assert inp["person_frames"] == int(DUR * 30)


def test_music_shifted_late(capsys, write_wav, motion_120):
    music = write_wav("late.wav", BEATS_120 + 0.12, DUR)
    d = run_json(capsys, music, "--motion", motion_120)
    assert d["offsets"]["median_ms"] == pytest.approx(120.0, abs=15.0)
    assert d["beat_alignment_score"] < 0.2
    assert not d["lock_in"]["locked"] and not d["music_side"]["lock_in"]["locked"]
    assert d["music_side"]["offsets"]["median_ms"] == pytest.approx(120.0, abs=15.0)
    assert d["tempo"]["match"]


def test_given_music_beats_replace_detection(capsys, tmp_path, write_wav, motion_120):
    music = write_wav("music.wav", BEATS_120, DUR)
    beats = tmp_path / "beats.txt"
    beats.write_text("# music beats, s\n" + "\n".join(f"{b + 0.03:.4f}" for b in BEATS_120) + "\n")
    d = run_json(capsys, music, "--motion", motion_120, "--music-beats", str(beats))
    assert d["inputs"]["music_beats"] == "given"
    assert d["n_music_beats"] == BEATS_120.size
    assert d["music_side"]["offsets"]["median_ms"] == pytest.approx(30.0, abs=8.0)
    assert d["tempo"]["music_bpm"] == pytest.approx(120.0, abs=1e-6)
    as_json = tmp_path / "beats.json"
    as_json.write_text(json.dumps({"beats": (BEATS_120 + 0.03).tolist()}))
    assert run_json(capsys, music, "--motion", motion_120, "--music-beats", str(as_json))["n_music_beats"] == BEATS_120.size
    bad = tmp_path / "bad.txt"
    bad.write_text("0.5\nsoon\n")
    assert main(["eval", music, "--motion", motion_120, "--music-beats", str(bad)]) == 2
    assert "must be a number" in capsys.readouterr().err


def test_music_starts_later_on_the_session_timeline(capsys, write_wav, motion_120):
    start = 2.1                                   # the WAV's first sample plays at session t = 2.1 s
    session_beats = BEATS_120[BEATS_120 > start + 0.3]
    music = write_wav("later.wav", session_beats - start, DUR - start)
    d = run_json(capsys, music, "--motion", motion_120, "--music-start", str(start))
    assert d["offsets"]["median_abs_ms"] < 15.0
    assert d["n_scored_motion_beats"] < d["n_motion_beats"] - 3   # beats before the music are not scored
    wrong = run_json(capsys, music, "--motion", motion_120)        # as if it started at 0
    assert wrong["offsets"]["median_ms"] == pytest.approx(-100.0, abs=15.0)


def test_half_tempo_music_is_an_octave_error(capsys, write_wav, motion_120):
    music = write_wav("half.wav", np.arange(1.0, DUR - 0.3, 1.0), DUR)
    d = run_json(capsys, music, "--motion", motion_120)
    t = d["tempo"]
    assert not t["match"] and t["octave"] == "1/2" and t["octave_error"]
    assert t["rel_error"] == pytest.approx(0.5, abs=0.02)
    assert d["offsets"]["median_abs_ms"] > 200     # every other dance beat has no music beat


def test_wrong_tempo(capsys, write_wav, motion_120):
    music = write_wav("slow.wav", np.arange(0.5, DUR - 0.3, 60 / 90), DUR)
    d = run_json(capsys, music, "--motion", motion_120)
    assert d["tempo"]["octave"] is None and not d["tempo"]["match"]
    assert d["tempo"]["rel_error"] == pytest.approx(0.25, abs=0.02)
    assert d["beat_alignment_score"] < 0.5


def test_table_and_plot(capsys, tmp_path, write_wav, motion_120):
    from matplotlib.image import imread

    music = write_wav("music.wav", BEATS_120, DUR)
    png = tmp_path / "out.png"
    assert main(["eval", music, "--motion", motion_120, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    for label in ("beat alignment score", "offset |median|", "tempo music / dance", "lock-in",
                  "per motion beat", "per music beat"):
        assert label in out
    img = imread(str(png))
    assert img.shape[0] > 500 and img.shape[1] > 800
    assert img[..., :3].std() > 0.05                     # not a blank canvas


def test_errors_are_clear(capsys, tmp_path, write_wav, motion_120):
    music = write_wav("music.wav", BEATS_120, DUR)
    assert main(["eval", str(tmp_path / "nope.wav"), "--motion", motion_120]) == 2
    assert "music file not found" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("garbage\n{\"control\": {}}\n")
    assert main(["eval", music, "--motion", str(empty)]) == 2
    assert "usable motion frame" in capsys.readouterr().err
    assert main(["eval", music, "--motion", motion_120, "--person", "7"]) == 2
    assert "person 7" in capsys.readouterr().err
    notvideo = tmp_path / "dance.mp4"
    notvideo.write_bytes(b"not a video")
    assert main(["eval", music, "--motion", str(notvideo)]) == 2
    assert "video" in capsys.readouterr().err


def test_video_motion_goes_through_pose(capsys, tmp_path, write_wav):
    """A video is read through d2m_server.video (MediaPipe); a person-less clip gives a clear error."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("mediapipe")
    path = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for _ in range(10):
        writer.write(np.full((120, 160, 3), 128, np.uint8))
    writer.release()
    music = write_wav("music.wav", BEATS_120, DUR)
    assert main(["eval", music, "--motion", str(path)]) == 2
    assert "0 usable motion frame" in capsys.readouterr().err
