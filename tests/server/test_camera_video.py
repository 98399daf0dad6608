"""Offline video: decoding with stream timestamps, pose of every frame, bad files, muxing."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from d2m.skeleton import Layout  # noqa: E402
from d2m_server.camera import FFmpegMissing, VideoError, mux, stream_types, video_info, video_motion  # noqa: E402
from d2m_server.video import VideoReader  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "data" / "dance_clip.mp4"
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg/ffprobe not installed")


def test_clip_is_small_and_licensed():
    assert CLIP.stat().st_size < 1_000_000
    notice = (CLIP.parent / "NOTICE-sports2d.txt").read_text()
    assert "BSD 3-Clause" in notice and "sports2d" in notice


def test_reader_gives_stream_times_from_zero():
    info = video_info(CLIP)
    assert (info.fps, info.width, info.height, info.frame_count) == (30.0, 640, 480, 120)
    assert info.duration_s == pytest.approx(4.0)
    reader = VideoReader(CLIP)
    got = [(i, t) for i, t, img in reader.frames()]
    assert len(got) == 120 and reader.decoded == 120 and not reader.truncated
    assert [i for i, _ in got] == list(range(120))
    assert np.allclose([t for _, t in got], np.arange(120) / 30.0, atol=1e-6)


def test_video_motion_every_frame_timed_and_posed():
    frames = video_motion(CLIP, progress=False, max_frames=12)
    assert len(frames) == 12  # a person in every frame, none dropped
    assert all(f.layout is Layout.MEDIAPIPE33 and f.joints.shape == (33, 4) for f in frames)
    assert np.allclose([f.t for f in frames], np.arange(12) / 30.0, atol=1e-6)
    f = frames[0]
    assert f.valid.sum() >= 25
    # the performer stands on the left half of the frame, head above hips
    nose, l_hip = f.joints[0], f.joints[23]
    assert 0.3 < nose[0] < 0.8 and nose[1] < l_hip[1]


def _write(path: Path, frames, fps=30.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def test_video_without_person(tmp_path, caplog):
    empty = _write(tmp_path / "empty.mp4", [np.full((240, 320, 3), 90, np.uint8)] * 6)
    with caplog.at_level(logging.WARNING, logger="d2m.video"):
        assert video_motion(empty, progress=False) == []
    assert "no person was detected" in caplog.text
    kept = video_motion(empty, progress=False, include_empty=True)
    assert len(kept) == 6 and not any(f.valid.any() for f in kept)
    assert np.allclose([f.t for f in kept], np.arange(6) / 30.0, atol=1e-6)


def test_random_bytes_and_missing_file_are_video_errors(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="cannot open video"):
        video_motion(junk, progress=False)
    with pytest.raises(VideoError, match="does not exist"):
        video_motion(tmp_path / "missing.mp4", progress=False)
    with pytest.raises(VideoError, match="not a file"):
        video_info(tmp_path)


def test_truncated_video_keeps_decoded_frames_and_warns(tmp_path, caplog):
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:40_000])  # the index (moov) is at the front, the frame data cut short
    with caplog.at_level(logging.WARNING, logger="d2m.video"):
        reader = VideoReader(cut)
        n = sum(1 for _ in reader.frames())
    assert 0 < n < 120 and reader.truncated
    assert "truncated" in caplog.text and f"after {n} of its 120 frames" in caplog.text
    frames = video_motion(cut, progress=False)
    assert 0 < len(frames) <= n
    k = np.array([f.t for f in frames]) * 30.0
    assert np.allclose(k, np.round(k), atol=1e-6)  # stream times of whole frames
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))
    tiny = tmp_path / "tiny.mp4"
    tiny.write_bytes(data[:3_000])  # header only: not one frame
    with pytest.raises(VideoError, match="cannot (decode|open)"):
        video_motion(tiny, progress=False)


@needs_ffmpeg
def test_mux_writes_video_with_soundtrack(tmp_path):
    sf = pytest.importorskip("soundfile")
    sr = 48_000
    t = np.arange(int(sr * 2.5)) / sr
    wav = tmp_path / "music.wav"
    sf.write(wav, np.stack([np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32) * 0.2, sr)
    out = mux(CLIP, wav, tmp_path / "out.mp4")
    assert out.is_file()
    assert sorted(stream_types(out)) == ["audio", "video"]
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
                            "-show_entries", "format=duration", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=True).stdout
    assert "h264,video" in probe and "aac,audio" in probe  # video copied, audio encoded as AAC
    duration = float(probe.strip().splitlines()[-1])
    assert duration == pytest.approx(4.0, abs=0.15)  # the video's length: short music padded
    assert video_info(out).frame_count == 120
    with pytest.raises(FileNotFoundError, match="render the music first"):
        mux(CLIP, tmp_path / "none.wav", tmp_path / "x.mp4")


def test_mux_without_ffmpeg_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no ffmpeg anywhere
    with pytest.raises(FFmpegMissing, match="apt install ffmpeg"):
        mux(CLIP, tmp_path / "a.wav", tmp_path / "out.mp4")
