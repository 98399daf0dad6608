"""``d2m devices``: sound outputs (default marked) and cameras, numbered as the flags take them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from d2m_server.devices import Camera, camera_indices, cameras, report, sound_outputs

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "tests" / "data" / "dance_clip.mp4"


def _device(index, name, inputs, outputs, hostapi=0, rate=48000.0):
    """One entry as ``sounddevice.query_devices()`` gives it (its keys, from sounddevice 0.5)."""
    return {"name": name, "index": index, "hostapi": hostapi, "max_input_channels": inputs,
            "max_output_channels": outputs, "default_low_input_latency": 0.0087,
            "default_low_output_latency": 0.0087, "default_high_input_latency": 0.0348,
            "default_high_output_latency": 0.0348, "default_samplerate": rate}


def test_sound_outputs_are_listed_in_audio_out_numbering_with_the_default_marked():
    sd = pytest.importorskip("sounddevice")
    devices = sd.DeviceList([_device(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", 2, 2),
                             _device(1, "USB Microphone", 1, 0),
                             _device(2, "Focusrite Scarlett 18i20 (hw:2,0)", 18, 20, hostapi=1, rate=96000.0),
                             _device(3, "pulse", 32, 32, hostapi=0, rate=44100.0)])
    apis = ({"name": "ALSA"}, {"name": "JACK Audio Connection Kit"})
    outs = sound_outputs(devices, 3, apis)
    assert [o.index for o in outs] == [0, 2, 3]                 # the microphone has no output
    assert [o.default for o in outs] == [False, False, True]
    assert outs[1].host_api == "JACK Audio Connection Kit" and outs[1].channels == 20
    text = report(outs, None, [], None)
    lines = text.splitlines()
    assert lines[0].startswith("Sound outputs (--audio-out N")
    assert "      2  Focusrite Scarlett 18i20 (hw:2,0) (20 ch, 96000 Hz, JACK Audio Connection Kit)" in lines
    assert any(line.startswith("  *   3  pulse") for line in lines)
    assert "no default output" not in text
    assert "no default output" in report(sound_outputs(devices, None, apis), None, [], None)


def test_cameras_are_opened_and_read_as_opencv_reports_them(tmp_path):
    cv2 = pytest.importorskip("cv2", reason="the camera extra is not installed")
    sources = {0: str(CLIP), 1: str(tmp_path / "not-a-camera.mp4")}
    found = cameras([0, 1], lambda i: cv2.VideoCapture(sources[i]))
    probe = cv2.VideoCapture(str(CLIP))
    size = (int(probe.get(cv2.CAP_PROP_FRAME_WIDTH)), int(probe.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    probe.release()
    assert size[0] > 0 and found[0] == Camera(0, True, *size)
    assert found[1].usable is False and "cannot be opened" in found[1].note
    text = report([], None, found, None)
    assert f"      0  {found[0].width}x{found[0].height}" in text
    assert "      1  not usable: cannot be opened" in text
    assert "none found" not in text.split("Cameras")[1]


def test_camera_indices_are_the_video_device_numbers():
    assert camera_indices(["/dev/video2", "/dev/video0", "/dev/video10", "/dev/vhci"]) == [0, 2, 10]
    assert camera_indices([]) == []


def test_with_no_devices_it_says_so():
    text = report([], None, [], None)
    assert "none found: d2m serve streams to browsers only (as with --audio-out none)" in text
    assert "none found: plug a webcam in, or use --source video:PATH" in text
    text = report([], "PortAudio library not found", [], "OpenCV is not installed")
    assert "none: PortAudio library not found" in text and "not looked for: OpenCV" in text


def test_d2m_devices_on_this_machine():
    """The real command. This machine has neither a sound card nor a camera: it says so."""
    sd = pytest.importorskip("sounddevice")
    proc = subprocess.run([sys.executable, "-m", "d2m_server.cli", "devices"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    outputs = [d for d in sd.query_devices() if d["max_output_channels"] > 0]
    if outputs:
        for d in outputs:
            assert f"  {d['index']:>3}  {d['name']} " in proc.stdout
    else:
        assert "Sound outputs" in proc.stdout and "none found" in proc.stdout.split("Cameras")[0]
    if not camera_indices() and sys.platform.startswith("linux"):
        assert "none found: plug a webcam in" in proc.stdout.split("Cameras")[1] \
            or "not looked for" in proc.stdout
