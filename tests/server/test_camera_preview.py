"""The preview overlay: skeleton, BPM text and beat pulse drawn on a copy of the frame."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from d2m.skeleton import Layout, SkeletonFrame  # noqa: E402
from d2m_server.camera import draw_preview, encode_jpeg  # noqa: E402
from d2m_server.preview import MEDIAPIPE33_EDGES, PreviewWindow  # noqa: E402

H, W = 480, 640


def standing_person() -> SkeletonFrame:
    """A MediaPipe-33 pose: a vertical line of joints down the middle of the image."""
    joints = np.zeros((33, 4))
    joints[:, 0] = 0.5
    joints[:, 1] = np.linspace(0.15, 0.9, 33)
    joints[:, 3] = 1.0
    joints[5, 3] = 0.0  # one missing joint must not break drawing
    return SkeletonFrame.from_values(0.0, 0, Layout.MEDIAPIPE33, joints)


def test_draws_skeleton_without_touching_input():
    image = np.zeros((H, W, 3), np.uint8)
    out = draw_preview(image, standing_person(), 120.0, 0.5)
    assert image.max() == 0  # pure: the input is unchanged
    assert out.shape == image.shape and out.dtype == np.uint8
    column = out[int(0.3 * H):int(0.85 * H), W // 2 - 2:W // 2 + 3]
    assert (column.max(axis=(1, 2)) > 100).mean() > 0.9  # the body line is drawn down the middle
    bare = draw_preview(image, None, 120.0, 0.5)
    assert bare[int(0.3 * H):int(0.85 * H), W // 2].max() == 0  # no person: no skeleton
    assert bare[:30, :120].max() > 200  # but the BPM label is there


def test_bpm_label_and_beat_pulse():
    image = np.full((H, W, 3), 40, np.uint8)
    label_120 = draw_preview(image, None, 120.0, None)[:40, :160]
    label_90 = draw_preview(image, None, 90.0, None)[:40, :160]
    label_none = draw_preview(image, None, None, None)[:40, :160]
    assert not np.array_equal(label_120, label_90) and not np.array_equal(label_90, label_none)
    corner = (slice(0, 60), slice(W - 60, W))
    on_beat = draw_preview(image, None, 120.0, 0.0)[corner].astype(int)
    late = draw_preview(image, None, 120.0, 0.9)[corner].astype(int)
    off = draw_preview(image, None, 120.0, None)[corner].astype(int)
    # the pulse is red and strongest on the beat, fading through the beat
    assert on_beat[..., 2].sum() > late[..., 2].sum() > off[..., 2].sum() - 1
    assert (on_beat[..., 2] > 200).sum() > 100


def test_edges_are_valid_pairs_and_jpeg_roundtrips():
    assert all(0 <= a < 33 and 0 <= b < 33 and a != b for a, b in MEDIAPIPE33_EDGES)
    drawn = draw_preview(np.zeros((120, 160, 3), np.uint8), standing_person(), 100.0, 0.1)
    jpeg = encode_jpeg(drawn)
    assert jpeg[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == drawn.shape
    with pytest.raises(ValueError, match="colour image"):
        draw_preview(np.zeros((10, 10), np.uint8), None, None, None)


def test_window_only_with_display(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    window = PreviewWindow()
    assert window.enabled is False
    assert window.show(np.zeros((10, 10, 3), np.uint8)) is False
