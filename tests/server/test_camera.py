"""Live pose sources: a video file played in real time and the camera code path.

The camera path is exercised with a real ``cv2.VideoCapture`` opened on the
test clip (the capture class accepts any OpenCV source) and on a camera index
that does not exist. MediaPipe work is kept to a few dozen frames.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("mediapipe")

from d2m.skeleton import Layout  # noqa: E402
from d2m_server.camera import (  # noqa: E402
    CameraStackMissing, CameraUnavailable, PoseModelMissing, PoseSource, SourceSpec, VideoError,
    parse_source,
)
from d2m_server.capture import CameraCapture, CapturedFrame, LatestFrame  # noqa: E402
from d2m_server.pose import require_camera_stack  # noqa: E402
from d2m_server.video import VideoReader  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "data" / "dance_clip.mp4"
CLIP_FPS = 30.0
WAIT_S = 60.0  # generous: the machine is shared; nothing here measures speed


def session_clock(offset: float = 1000.0):
    """A session clock running at monotonic rate but starting near ``offset`` (not 0)."""
    base = time.monotonic()
    return lambda: time.monotonic() - base + offset


async def wait_until(cond, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def write_video(path: Path, frames: list[np.ndarray], fps: float = CLIP_FPS) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def clip_frames(n: int) -> list[np.ndarray]:
    out = []
    for i, _, img in VideoReader(CLIP).frames():
        if i >= n:
            break
        out.append(img)
    return out


# -- source specs and the optional stack ------------------------------------------------

def test_parse_source_forms_and_errors():
    assert parse_source("camera:2") == SourceSpec("camera", 2)
    assert parse_source("camera") == SourceSpec("camera", 0)
    assert parse_source("video:/a/b:c.mp4") == SourceSpec("video", "/a/b:c.mp4")
    assert parse_source("camera:/dev/video4") == SourceSpec("camera", "/dev/video4")
    for bad in ("", "webcam", "video:", "camera:-1", "file:x.mp4"):
        with pytest.raises(ValueError, match="camera:N"):
            parse_source(bad)


def test_missing_stack_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes `import mediapipe` fail
    with pytest.raises(CameraStackMissing, match=r"pip install -e '\.\[camera\]'"):
        require_camera_stack()
    with pytest.raises(CameraStackMissing, match="mediapipe==0.10.21"):
        PoseSource.open("camera:0", clock=time.monotonic, on_frame=lambda f: None)


def test_module_imports_without_the_stack_and_open_says_what_to_install():
    code = ("import sys, time; sys.modules['cv2'] = None; sys.modules['mediapipe'] = None\n"
            "from d2m_server.camera import PoseSource, CameraStackMissing\n"
            "try:\n    PoseSource.open('camera:0', clock=time.monotonic, on_frame=print)\n"
            "except CameraStackMissing as exc:\n    print('MISSING', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("MISSING") and "pip install -e '.[camera]'" in out.stdout


def test_pose_model_not_in_wheel_is_a_clear_error():
    import mediapipe
    lite = Path(mediapipe.__file__).parent / "modules" / "pose_landmark" / "pose_landmark_lite.tflite"
    if lite.exists():
        pytest.skip("the lite model has been downloaded on this machine")
    with pytest.raises(PoseModelMissing, match="model_complexity=1"):
        PoseSource.open(f"video:{CLIP}", clock=time.monotonic, on_frame=lambda f: None, model_complexity=0)


def test_missing_camera_is_a_clear_error():
    with pytest.raises(CameraUnavailable) as err:
        PoseSource.open("camera:99", clock=time.monotonic, on_frame=lambda f: None)
    msg = str(err.value)
    assert "camera 99" in msg and "plugged in" in msg and "camera:0" in msg


def test_unreadable_video_source_fails_at_open(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match="ffprobe"):
        PoseSource.open(f"video:{junk}", clock=time.monotonic, on_frame=lambda f: None)
    with pytest.raises(VideoError, match="does not exist"):
        PoseSource.open(f"video:{tmp_path / 'nope.mp4'}", clock=time.monotonic, on_frame=lambda f: None)


def test_stop_without_start_releases_the_file():
    async def main():
        src = PoseSource.open(f"video:{CLIP}", clock=time.monotonic, on_frame=lambda f: None)
        await src.stop()
        return src.status()

    status = asyncio.run(main())
    assert status["state"] == "stopped" and status["frames_captured"] == 0


def test_latest_frame_keeps_newest_and_counts_drops():
    slot = LatestFrame()
    img = np.zeros((2, 2, 3), np.uint8)
    assert slot.put(CapturedFrame(img, 1.0, 0)) is False
    assert slot.put(CapturedFrame(img, 2.0, 1)) is True
    assert slot.put(CapturedFrame(img, 3.0, 2)) is True
    got = slot.get(0)
    assert got.index == 2 and slot.dropped == 2
    assert slot.get(0.01) is None
    slot.close()
    assert slot.get(None) is None  # closed: returns at once


# -- video played live -------------------------------------------------------------------

def test_video_source_delivers_timed_mediapipe_frames():
    clock = session_clock()
    frames, threads = [], set()

    def on_frame(f):
        threads.add(threading.current_thread().name)
        frames.append((f, clock()))

    async def main():
        src = PoseSource.open(f"video:{CLIP}", clock=clock, on_frame=on_frame, preview=True, window=False)
        t_open = clock()
        await src.start()
        loop_thread = threading.current_thread().name
        await wait_until(lambda: len(frames) >= 12)
        status = src.status()
        jpeg = src.latest_preview_jpeg()
        await src.stop()
        return t_open, loop_thread, status, jpeg

    t_open, loop_thread, status, jpeg = asyncio.run(main())
    assert threads == {loop_thread}  # delivered on the event loop, not the pose thread
    ts = np.array([f.t for f, _ in frames])
    for f, delivered_at in frames:
        assert f.layout is Layout.MEDIAPIPE33 and f.joints.shape == (33, 4)
        assert f.t <= delivered_at  # capture time precedes delivery
        assert f.valid.sum() >= 20  # a whole person is found in every frame of this clip
    assert ts[0] >= t_open  # on the session clock, not monotonic or stream time
    steps = np.diff(ts) * CLIP_FPS
    assert np.all(steps > 0.5)  # strictly increasing, at least one frame apart
    assert np.allclose(steps, np.round(steps), atol=1e-6)  # whole numbers of 1/30 s: the file's rate
    assert status["state"] == "running" and status["nominal_fps"] == CLIP_FPS
    assert status["frames_posed"] >= 12 and status["detect_ms"] > 0 and status["pose_fps"] > 0
    # every captured frame was posed or dropped, except at most one waiting and one in the model
    assert 0 <= status["frames_captured"] - status["frames_posed"] - status["frames_dropped"] <= 2
    assert isinstance(status["keeping_up"], (bool, type(None)))
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"  # a JPEG for the web client


def test_video_loop_keeps_time_running(tmp_path):
    short = write_video(tmp_path / "short.mp4", clip_frames(8))
    clock = session_clock()
    frames = []

    async def main():
        src = PoseSource.open(f"video:{short}", loop=True, clock=clock, on_frame=frames.append)
        await src.start()
        await wait_until(lambda: src.capture.captured.total >= 20 and len(frames) >= 12)
        status = src.status()
        await src.stop()
        return src, status

    src, status = asyncio.run(main())
    assert src.capture.loops_done >= 2
    ts = np.array([f.t for f in frames])
    steps = np.diff(ts) * CLIP_FPS
    assert np.all(steps > 0.5) and np.allclose(steps, np.round(steps), atol=1e-6)
    assert (ts[-1] - ts[0]) * CLIP_FPS >= 11  # past the 8-frame file: the loop continues the timeline
    assert status["state"] == "running"


def test_no_person_holds_then_recovers(tmp_path):
    grey = [np.full((480, 640, 3), 128, np.uint8)] * 45  # 1.5 s with nobody in view
    path = write_video(tmp_path / "empty_then_person.mp4", grey + clip_frames(16))
    clock = session_clock()
    frames, states, ended = [], [], []

    async def main():
        src = PoseSource.open(f"video:{path}", clock=clock, on_frame=frames.append,
                              on_end=lambda: ended.append(clock()))
        t0 = clock()
        await src.start()

        def seen():
            states.append(src.status()["state"])
            return bool(ended)

        await wait_until(seen)
        status = src.status()
        await src.stop()
        return t0, status

    t0, status = asyncio.run(main())
    assert "no_person" in states  # told the user while the frame was empty
    assert status["state"] == "ended" and status["frames_no_person"] >= 2
    assert status["input"]["by_reason"]["no person in frame"] == status["frames_no_person"]
    assert frames, "frames resumed once the person appeared"
    # nothing was delivered for the empty part: the first frame is from the person part (frame >= 45)
    assert (frames[0].t - t0) * CLIP_FPS >= 44.5


# -- the camera code path on a real cv2.VideoCapture -------------------------------------------

def test_camera_path_drops_stale_frames_and_reopens_lost_source():
    """A file opened as a 'camera' is read as fast as it decodes (faster than pose: frames are
    dropped), and at its end reads fail like an unplugged camera: the source is reopened."""
    clock = session_clock(offset=500.0)
    frames = []

    async def main():
        cap = CameraCapture(str(CLIP), max_read_failures=2, retry_initial_s=0.05).open()
        src = PoseSource(SourceSpec("camera", str(CLIP)), cap, clock=clock, on_frame=frames.append)
        await src.start()
        await wait_until(lambda: cap.reconnects >= 1 and src.status()["frames_delivered"] >= 3)
        n_before = len(frames)
        await wait_until(lambda: len(frames) >= n_before + 3)  # frames keep coming after reopening
        status = src.status()
        await src.stop()
        return cap, status

    cap, status = asyncio.run(main())
    assert status["reconnects"] >= 1 and cap.read_failures >= 2
    assert status["frames_dropped"] > 0  # stale frames were replaced, pose took the newest
    assert status["frames_captured"] > status["frames_posed"]
    assert status["keeping_up"] is False  # pose cannot keep up with an unthrottled file
    ts = [f.t for f in frames]
    assert all(b > a for a, b in zip(ts, ts[1:]))
    assert all(500.0 <= t <= clock() for t in ts)  # capture time mapped onto the session clock
    assert all(f.layout is Layout.MEDIAPIPE33 for f in frames)
