"""The browser page (clients/web): served on the WebSocket port, and played by a real
headless Chromium against a running ``d2m serve`` that a synthetic dancer drives over OSC.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` (and selenium); it
skips, saying so, only when they are absent.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from d2m.dancer import SyntheticDancer
from d2m_server.web import (CONTENT_TYPES, VIDEO_HEADER, StaticSite, VideoFrameError, WebcamPose,
                            decode_video_frame, encode_video_frame, web_root)
from d2m_server.ws import WebSocketHub
from tests.ports import free_port as _free_port

REPO = Path(__file__).resolve().parents[2]
PAGE_FILES = ("index.html", "app.js", "worklet.js", "style.css")
CLIP = REPO / "tests" / "data" / "dance_clip.mp4"
TIMEOUT = 10.0

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
BROWSER_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000")
#: The dancer's tempo: not the server's 120 BPM starting tempo, so the display must follow it.
DANCE_BPM = 132.0


# ---------------------------------------------------------------------------
# Static files (no browser)


def test_static_site_serves_only_page_files(tmp_path):
    root = tmp_path / "web"
    root.mkdir()
    (root / "index.html").write_text("<p>hi</p>")
    (root / "app.js").write_text("1;")
    (root / ".env").write_text("SECRET")
    (root / "notes.py").write_text("x = 1")
    (root / "sub").mkdir()
    (root / "sub" / "x.js").write_text("2;")
    (tmp_path / "outside.js").write_text("3;")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    site = StaticSite(root)
    assert site.resolve("/") == (root / "index.html").resolve()
    assert site.resolve("/?autostart=1#top") == (root / "index.html").resolve()
    assert site.resolve("/app.js") == (root / "app.js").resolve()
    assert site.resolve("/%61pp.js") == (root / "app.js").resolve()      # percent-encoded
    for bad in ("/.env", "/notes.py", "/sub/x.js", "/../outside.js", "/%2e%2e/outside.js",
                "/..%2foutside.js", "/link.js", "/app.js%00.html", "/..\\outside.js", "app.js",
                "/missing.js", "//etc/passwd", "/%ff.js"):
        assert site.resolve(bad) is None, bad
    status, headers, body = site.respond("/app.js")
    assert (status, headers["Content-Type"], body) == (200, CONTENT_TYPES[".js"], b"1;")
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = site.respond("/../outside.js")
    assert status == 404 and b"3;" not in body


def test_page_uses_nothing_from_other_sites():
    root = web_root()
    for name in PAGE_FILES:
        assert (root / name).is_file(), f"{name} missing from {root}"
    html = (root / "index.html").read_text()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html), "the page must not load from other sites"
    for name in ("app.js", "worklet.js"):
        code = (root / name).read_text()
        assert not re.search(r'\b(import|importScripts|fetch)\b[^;\n]*["\']https?://', code)


async def _http_get(port: int, path: str) -> tuple[int, dict, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("latin-1"))
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), TIMEOUT)     # the server closes after answering
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


def test_page_is_served_on_the_websocket_port():
    async def main():
        hub = WebSocketHub(lambda c: None, lambda: {}, http_handler=StaticSite().process_request)
        await hub.start("127.0.0.1", 0)
        try:
            for name, ctype in (("", "text/html"), ("app.js", "text/javascript"),
                                ("worklet.js", "text/javascript"), ("style.css", "text/css")):
                status, headers, body = await _http_get(hub.port, "/" + name)
                assert status == 200, name
                assert headers["content-type"].startswith(ctype)
                assert body == (web_root() / (name or "index.html")).read_bytes()
                assert int(headers["content-length"]) == len(body)
            for bad in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml",
                        "/clients/web/index.html", "/.git/config", "/nothing.html"):
                status, _, body = await _http_get(hub.port, bad)
                assert status == 404, bad
                assert b"[project]" not in body
            # the same port still speaks WebSocket
            async with connect(f"ws://127.0.0.1:{hub.port}/") as ws:
                hello = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert hello["type"] == "hello"
        finally:
            await hub.close()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# Camera frames (the page's binary "D2MV" messages)


def test_video_frame_header_round_trip_and_rejections():
    data = encode_video_frame(b"\xff\xd8jpeg", width=320, height=240, number=7, capture_ms=1234.5)
    assert len(data) == VIDEO_HEADER.size + 6
    frame = decode_video_frame(data)
    assert (frame.width, frame.height, frame.number, frame.capture_ms, frame.image) == \
        (320, 240, 7, 1234.5, b"\xff\xd8jpeg")
    bad = [data[:10], b"XXXX" + data[4:], data[:4] + b"\x09" + data[5:],
           encode_video_frame(b"", width=320, height=240),
           encode_video_frame(b"x", width=4000, height=4000),
           encode_video_frame(b"x", width=320, height=240, fmt=2)]
    for item in bad:
        with pytest.raises(VideoFrameError):
            decode_video_frame(item)


def _clip_jpegs(n: int, width: int = 320) -> list[bytes]:
    import cv2

    cap = cv2.VideoCapture(str(CLIP))
    out = []
    while len(out) < n:
        ok, img = cap.read()
        if not ok:
            break
        img = cv2.resize(img, (width, img.shape[0] * width // img.shape[1]))
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
        out.append(jpeg.tobytes())
    cap.release()
    return out


def test_camera_frames_over_websocket_become_skeletons():
    """JPEG frames of a real dancer, sent as the page sends them, come out as pose frames."""
    try:
        from d2m_server.pose import require_camera_stack
        require_camera_stack()
    except ImportError as exc:
        pytest.skip(f"camera stack not installed: {exc}")
    jpegs = _clip_jpegs(16)
    assert len(jpegs) == 16

    async def main():
        frames = []
        t0 = time.monotonic()
        webcam = WebcamPose(lambda: time.monotonic() - t0, frames.append)
        await webcam.start()
        hub = WebSocketHub(lambda c: None, lambda: {}, on_video=webcam.submit)
        plain = WebSocketHub(lambda c: None, lambda: {})          # started without --web-camera
        await hub.start("127.0.0.1", 0)
        await plain.start("127.0.0.1", 0)
        try:
            async with connect(f"ws://127.0.0.1:{hub.port}/", max_size=None) as ws:
                await ws.recv()                                        # hello
                for i, jpeg in enumerate(jpegs):
                    await ws.send(encode_video_frame(jpeg, width=320, height=240, number=i,
                                                     capture_ms=1000.0 + i * 1000 / 15))
                    await asyncio.sleep(1 / 15)
                deadline = time.monotonic() + 30
                while webcam.posed + webcam.dropped < len(jpegs) and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await ws.send(b"D2MV" + bytes(30))                      # version 0: refused
                err = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert err["type"] == "error" and err["request"] == "video_frame"
                assert "version" in err["message"]
            async with connect(f"ws://127.0.0.1:{plain.port}/") as ws:
                await ws.recv()
                await ws.send(encode_video_frame(jpegs[0], width=320, height=240))
                err = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert err["type"] == "error" and "--web-camera" in err["message"]
        finally:
            await hub.close()
            await plain.close()
            await webcam.stop()
        return frames, webcam.status()

    frames, status = asyncio.run(main())
    assert status["frames_received"] == 16 and status["decode_errors"] == 0
    assert status["poses"] >= 8, status                  # the dancer is found in most frames
    assert len(frames) == status["poses"]
    assert all(f.layout.value == "mediapipe33" for f in frames)
    assert all(int(f.valid.sum()) >= 20 for f in frames)
    ts = np.array([f.t for f in frames])
    assert np.all(np.diff(ts) > 0)
    # stamped by capture time: spacing follows the 15 fps capture clock, not arrival jitter
    assert np.median(np.diff(ts)) == pytest.approx(1 / 15, abs=0.01)


# ---------------------------------------------------------------------------
# The page in a real browser against a live server



def _start_server(*extra: str, duration: float = 90.0, token: str | None = None, command: str = "serve"):
    ws_port, osc_port = _free_port(), _free_port(socket.SOCK_DGRAM)
    cmd = [sys.executable, "-m", "d2m_server.cli", command, "--audio-out", "none",
           "--osc-in", f"127.0.0.1:{osc_port}", "--osc-out", f"127.0.0.1:{_free_port(socket.SOCK_DGRAM)}",
           "--ws", f"127.0.0.1:{ws_port}", "--duration", str(duration), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if token:
        env["D2M_TOKEN"] = token
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    deadline = time.monotonic() + 90
    for line in proc.stdout:
        lines.append(line)
        if "d2m is live" in line:
            break
        if time.monotonic() > deadline:
            break
    else:
        proc.kill()
        raise RuntimeError("server exited before going live:\n" + "".join(lines))
    # keep draining the server's output so it never blocks on a full pipe
    threading.Thread(target=lambda: [lines.append(x) for x in proc.stdout], daemon=True).start()
    return proc, ws_port, osc_port, lines


def _stream_dancer(port: int, stop: threading.Event, bpm: float, person: int) -> None:
    from pythonosc.udp_client import SimpleUDPClient

    dancer = SyntheticDancer(tempo=bpm, seed=5, sharpness=0.9, phase_offset=0.35, noise=0.003,
                             person=person)
    client = SimpleUDPClient("127.0.0.1", port)
    t0 = time.monotonic()
    i = 0
    while not stop.is_set():
        delay = t0 + i / 60 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        f = dancer.frame(i / 60)
        client.send_message("/d2m/pose", [person, "coco17", *[float(v) for v in f.joints.reshape(-1)]])
        i += 1


def _browser(profile: str, *extra_flags: str, autoplay: bool = True):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    flags = BROWSER_FLAGS if autoplay else tuple(f for f in BROWSER_FLAGS if "autoplay" not in f)
    for flag in (*flags, *extra_flags, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))


def _wait(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.25)
    state = driver.execute_script("return JSON.stringify(window.d2m)")
    raise AssertionError(f"timed out waiting for {what}; page state: {state}")


@pytest.mark.slow
@pytest.mark.e2e
def test_browser_plays_the_stream_follows_the_dancer_and_sends_controls(tmp_path):
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium "
                    "chromium-driver); the browser test needs them")
    camera = True
    try:
        from d2m_server.pose import require_camera_stack
        require_camera_stack()
    except ImportError:
        camera = False
    fake_video = tmp_path / "dancer.mjpeg"
    if camera and shutil.which("ffmpeg"):
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(CLIP), "-vf", "scale=320:240", "-q:v", "5",
                        "-f", "mjpeg", str(fake_video)], check=True, timeout=60)
    else:
        camera = False
    token = "page-test-secret"           # the page authenticates with ?token= (hello says auth_required)
    proc, ws_port, osc_port, server_log = _start_server(*(["--web-camera"] if camera else []), token=token)
    stop = threading.Event()
    # person 1: the page's camera (person 0) must not steal the lead from the synthetic dancer
    streamer = threading.Thread(target=_stream_dancer, args=(osc_port, stop, DANCE_BPM, 1), daemon=True)
    streamer.start()
    profile = tempfile.mkdtemp(prefix="d2m-chromium-", dir=tmp_path)
    camera_flags = ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                    f"--use-file-for-fake-video-capture={fake_video}") if camera else ()
    driver = None
    try:
        driver = _browser(profile, *camera_flags)
        driver.get(f"http://127.0.0.1:{ws_port}/?token={token}")
        assert driver.title == "d2m live"
        # audio arrives over the WebSocket and the worklet plays it
        _wait(driver, "return window.d2m.audio.samplesPlayed > 96000", 30, "2 s of played audio")
        # the music's tempo display follows the dancer (it starts at 120 BPM)
        _wait(driver, f"const b = Number(document.getElementById('bpm').textContent);"
                      f"return Math.abs(b - {DANCE_BPM}) < {DANCE_BPM * 0.03}", 40, "BPM display near the dance")
        # a control from the page changes the server's genre, and the page shows it
        from selenium.webdriver.support.ui import Select
        Select(driver.find_element("id", "genre-select")).select_by_value("house")
        _wait(driver, "return window.d2m.music.genre === 'house' && window.d2m.music.genreSource === 'operator'"
                      " && document.getElementById('genre').textContent === 'house'", 15, "genre house")
        if camera:
            driver.find_element("id", "camera").click()
            _wait(driver, "const c = window.d2m.camera; return c.sent >= 10 && c.server && c.server.poses >= 3",
                  40, "the server finding the dancer in the page's camera frames")
            driver.find_element("id", "camera").click()        # stop it
        _wait(driver, "return window.d2m.beats >= 8", 15, "beat events")
        time.sleep(0.3)
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        state = driver.execute_script("return window.d2m")
        page_text = driver.find_element("tag name", "body").text
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        stop.set()
        if driver is not None:
            driver.quit()
        proc.kill()
        proc.wait(timeout=10)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    if os.environ.get("D2M_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["D2M_KEEP_SCREENSHOT"])
    audio = state["audio"]
    assert audio["state"] == "running" and audio["contextRate"] > 0
    assert audio["samplesReceived"] >= audio["samplesPlayed"] - 48000   # played what arrived
    assert audio["peak"] > 0.01, "the played audio is not silent"
    assert audio["badFrames"] == 0
    assert state["hello"]["auth_required"] is True
    assert state["events"].get("segment", 0) >= 1 and state["events"].get("state", 0) >= 1
    assert state["music"]["next"]["kind"] in ("music", "idle", "silence")
    assert state["music"]["lookaheadS"] is not None
    assert "BPM" in page_text and "house" in page_text
    assert not errors, errors
    if camera:
        cam = state["camera"]["server"]
        assert cam["decode_errors"] == 0 and cam["frames_received"] >= cam["poses"] >= 3


def test_generated_routes_such_as_the_camera_preview_are_served_fresh():
    from d2m_server.web import StaticSite

    frames = []
    site = StaticSite(routes={"/preview.jpg": lambda: ("image/jpeg", frames[-1]) if frames else None})
    status, _headers, body = site.respond("/preview.jpg")
    assert status == 404 and b"not available yet" in body
    frames.append(b"\xff\xd8jpeg\xff\xd9")
    status, headers, body = site.respond("/preview.jpg?t=1")
    assert status == 200 and body == frames[-1]
    assert headers["Content-Type"] == "image/jpeg" and headers["Cache-Control"] == "no-store"


# ---------------------------------------------------------------------------
# What d2m sees: the sound button, the tracked skeleton, the tempo plot

#: Colours the page draws with (clients/web/app.js): skeleton bones, music / dance tempo, confidence.
BONE_RGB, MUSIC_RGB, DANCE_RGB, CONFIDENCE_RGB = (76, 195, 255), (255, 90, 54), (76, 195, 255), (60, 207, 122)

COUNT_COLOUR = """
const [id, r, g, b] = arguments;
const c = document.getElementById(id);
const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
let n = 0;
for (let i = 0; i < px.length; i += 4) {
  if (Math.abs(px[i] - r) < 40 && Math.abs(px[i + 1] - g) < 40 && Math.abs(px[i + 2] - b) < 40) n++;
}
return n;
"""


def _needs_browser():
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium and chromedriver are not installed (Debian: apt-get install chromium "
                    "chromium-driver); the browser test needs them")


@pytest.mark.slow
@pytest.mark.e2e
def test_page_shows_the_sound_button_the_skeleton_and_the_tempo_plot_during_the_demo(tmp_path):
    """`d2m demo` in a browser that, like a real one, plays sound only after a click."""
    _needs_browser()
    proc, ws_port, _osc, server_log = _start_server("--no-osc", command="demo", duration=120)
    driver = None
    try:
        driver = _browser(tempfile.mkdtemp(prefix="d2m-chromium-", dir=tmp_path), autoplay=False)
        driver.get(f"http://127.0.0.1:{ws_port}/")
        gate = driver.find_element("id", "sound-gate")
        _wait(driver, "return window.d2m.connected && window.d2m.audio.state === 'suspended'", 15,
              "the page connected, sound waiting for a click")
        assert gate.is_displayed() and "click" in gate.text.lower()
        assert window_state(driver)["audio"]["samplesPlayed"] == 0
        driver.find_element("id", "start").click()
        _wait(driver, "return window.d2m.audio.state === 'running' && window.d2m.audio.samplesPlayed > 24000",
              20, "sound playing after the click")
        assert not gate.is_displayed()
        # the skeleton from the `pose` events, and 10 s of tempo history
        _wait(driver, "return window.d2m.stage.poses >= 60 && window.d2m.music.mode !== null", 30,
              "pose events and the tracking mode")
        _wait(driver, "const s = window.d2m.plot.samples; return s.length > 10 && "
                      "s[s.length - 1].t - s[0].t > 10 && s.some((x) => x.music !== null)", 40,
              "10 s of tempo in the plot")
        time.sleep(0.5)
        bones = driver.execute_script(COUNT_COLOUR, "stage", *BONE_RGB)
        music = driver.execute_script(COUNT_COLOUR, "tempo-plot", *MUSIC_RGB)
        dance = driver.execute_script(COUNT_COLOUR, "tempo-plot", *DANCE_RGB)
        confidence = driver.execute_script(COUNT_COLOUR, "tempo-plot", *CONFIDENCE_RGB)
        shot = tmp_path / "d2m-demo-page.png"
        driver.save_screenshot(str(shot))
        state = window_state(driver)
        status_line = driver.find_element("id", "stage-status").text
        mode = driver.find_element("id", "mode").text
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        if driver is not None:
            driver.quit()
        proc.kill()
        proc.wait(timeout=10)
    if os.environ.get("D2M_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["D2M_KEEP_SCREENSHOT"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bones > 300, f"no skeleton drawn on the stage ({bones} bone pixels)"
    assert music > 100 and dance > 100 and confidence > 50, (music, dance, confidence)
    assert state["stage"]["preview"] is False and "no camera preview" in status_line
    assert mode in ("following", "holding", "idle", "locked", "searching")
    pose = state["stage"]["last"]
    assert pose["layout"] == "coco17" and len(pose["joints"]) == 17
    assert not errors, errors


def window_state(driver) -> dict:
    return driver.execute_script("return window.d2m")


@pytest.mark.slow
@pytest.mark.e2e
def test_page_draws_the_skeleton_over_the_camera_preview(tmp_path):
    """A video source with --preview: the page shows its frames with the tracked skeleton on top."""
    _needs_browser()
    try:
        from d2m_server.pose import require_camera_stack
        require_camera_stack()
    except ImportError as exc:
        pytest.skip(f"camera stack not installed: {exc}")
    proc, ws_port, _osc, _log = _start_server("--no-osc", "--source", f"video:{CLIP}", "--loop",
                                              "--preview", duration=120)
    driver = None
    try:
        driver = _browser(tempfile.mkdtemp(prefix="d2m-chromium-", dir=tmp_path))
        driver.get(f"http://127.0.0.1:{ws_port}/")
        _wait(driver, "const s = window.d2m.stage; return s.preview && s.previewFrames >= 5 && s.poses >= 10",
              60, "preview frames and poses")
        time.sleep(0.3)
        bones = driver.execute_script(COUNT_COLOUR, "stage", *BONE_RGB)
        aspect = driver.execute_script("const c = document.getElementById('stage'); return c.width / c.height")
        driver.save_screenshot(str(tmp_path / "d2m-preview-page.png"))
        status_line = driver.find_element("id", "stage-status").text
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        if driver is not None:
            driver.quit()
        proc.kill()
        proc.wait(timeout=10)
    import cv2
    cap = cv2.VideoCapture(str(CLIP))
    clip_aspect = cap.get(cv2.CAP_PROP_FRAME_WIDTH) / cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    cap.release()
    assert aspect == pytest.approx(clip_aspect, rel=0.02)      # the canvas takes the preview's shape
    assert bones > 200 and "camera preview + tracked skeleton" in status_line
    assert not errors, errors
