"""JSON-lines motion recording format."""

import json
import math

import numpy as np
import pytest

from d2m.control import Control
from d2m.recording import (
    ControlEntry, Recording, RecordingError, encode_control, encode_frame, encode_header,
    parse_recording, require_frames,
)
from d2m.skeleton import Layout, SkeletonFrame


def frame(t, person=0, layout=Layout.COCO17, seed=0):
    rng = np.random.default_rng(seed)
    n = Layout(layout).n_joints
    values = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 1, n),
                              np.zeros(n), rng.uniform(0.5, 1, n)])
    return SkeletonFrame.from_values(t, person, layout, values)


def test_round_trip_frames_controls_and_header(tmp_path):
    frames = [frame(i / 60, person=i % 2, seed=i) for i in range(5)]
    frames.append(frame(0.1, layout=Layout.MEDIAPIPE33, seed=9))
    ctl = Control(genre="house", bpm=124.0, tempo_lock=True)
    lines = [encode_header(source="test", fps=60)]
    lines += [encode_frame(f) for f in frames[:3]]
    lines.append(encode_control(0.04, ctl))
    lines += [encode_frame(f) for f in frames[3:]]
    path = tmp_path / "take.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with path.open() as fh:
        rec = parse_recording(fh)
    assert rec.errors == []
    assert rec.header == {"d2m_motion": 1, "source": "test", "fps": 60}
    assert len(rec.items) == 7 and isinstance(rec.items[3], ControlEntry)
    assert rec.controls == [ControlEntry(0.04, ctl)]
    assert len(rec.frames) == 6
    for got, want in zip(rec.frames, frames):
        assert got.t == pytest.approx(want.t, abs=1e-6)
        assert got.person == want.person and got.layout is want.layout
        assert np.allclose(got.joints, want.joints, atol=1e-6)
    assert rec.duration == pytest.approx(max(f.t for f in frames), abs=1e-6)


def test_bad_lines_are_reported_with_line_numbers_and_skipped():
    good = encode_frame(frame(1.0))
    short = json.dumps({"t": 1.1, "person": 0, "layout": "coco17", "joints": [[0.5, 0.5, 0, 1]] * 16})
    lines = [
        good,                                                  # 1
        "",                                                    # 2 blank: skipped silently
        "{not json",                                           # 3
        short,                                                 # 4 wrong joint count
        '{"t": Infinity, "joints": [[0.5, 0.5]]}',             # 5 non-finite t
        '{"t": "soon", "control": {"bpm": 120}}',              # 6 t not a number
        '{"t": 1.2, "control": {"bpm": 900}}',                 # 7 out of range
        '{"t": 1.2, "control": {"tempo": 120}}',               # 8 unknown field
        '{"t": 1.2, "hello": 1}',                              # 9 neither frame nor control
        "[1, 2, 3]",                                           # 10 not an object
        encode_frame(frame(0.5)),                              # 11 goes back 0.5 s
        encode_frame(frame(0.98)),                             # 12 within tolerance: kept
        '{"d2m_motion": 1}',                                   # 13 header not first
        json.dumps({"t": 2.0, "joints": [[10 ** 400, 0.5]] * 17}),  # 14 number too large
        encode_control(2.5, Control(volume=0.5)),              # 15
    ]
    rec = parse_recording(lines)
    assert [n for n, _ in rec.errors] == [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14]
    msgs = dict(rec.errors)
    assert "not valid JSON" in msgs[3]
    assert "17 joints" in msgs[4] and "got 64" in msgs[4]
    assert "finite" in msgs[5]
    assert "number of seconds" in msgs[6]
    assert "bpm must be between" in msgs[7]
    assert "unknown control field" in msgs[8] and "tempo" in msgs[8]
    assert '"joints"' in msgs[9] and '"control"' in msgs[9]
    assert "JSON object" in msgs[10]
    assert "backwards" in msgs[11] and "time order" in msgs[11]
    assert "first line" in msgs[13]
    assert "OverflowError" in msgs[14]
    assert [it.t for it in rec.items] == [1.0, 0.98, 2.5]
    assert rec.header == {}


def test_nan_and_null_joints_become_missing_not_errors():
    joints = [[0.5, 0.5, 0.0, 1.0]] * 17
    joints[3] = [None, None, None, 0.0]
    line_null = json.dumps({"t": 0.0, "person": 0, "layout": "coco17", "joints": joints})
    line_nan = line_null.replace("[null, null, null, 0.0]", "[NaN, 0.4, 0.0, 0.9]")
    rec = parse_recording([line_null, line_nan.replace('"t": 0.0', '"t": 0.1')])
    assert rec.errors == []
    for f in rec.frames:
        assert not f.valid[3] and f.valid.sum() == 16
        assert math.isnan(f.joints[3, 0])
    # Missing joints are written back as null and survive a round trip.
    again = parse_recording([encode_frame(rec.frames[1])])
    assert "null" in encode_frame(rec.frames[1]) and not again.frames[0].valid[3]


def test_accepts_a_whole_string_and_bytes_lines():
    text = encode_header() + "\n\n" + encode_frame(frame(0.0)) + "\n"
    assert len(parse_recording(text).frames) == 1
    assert len(parse_recording([text.encode().splitlines()[2]]).frames) == 1


def test_header_version_is_checked_and_reserved():
    rec = parse_recording(['{"d2m_motion": 2}', encode_frame(frame(0.0))])
    assert rec.errors and "version" in rec.errors[0][1] and rec.errors[0][0] == 1
    assert len(rec.frames) == 1
    with pytest.raises(ValueError, match="d2m_motion"):
        encode_header(d2m_motion=3)


def test_encode_control_rejects_bad_time():
    with pytest.raises(ValueError, match="finite"):
        encode_control(float("nan"), Control(volume=1.0))
    assert json.loads(encode_control(1.5, Control(prompt=""))) == {"t": 1.5, "control": {"prompt": ""}}


def test_require_frames_on_empty_and_unusable_recordings():
    with pytest.raises(RecordingError, match="empty.jsonl: no motion frame.*JSON lines"):
        require_frames(parse_recording([]), "empty.jsonl")
    rec = parse_recording(["garbage", encode_control(0.0, Control(playing=True))])
    with pytest.raises(RecordingError) as info:
        require_frames(rec, "bad.jsonl")
    assert "line 1" in str(info.value) and '"joints"' in str(info.value)
    blank = SkeletonFrame.from_values(0.0, 0, "coco17", [float("nan")] * 68)
    with pytest.raises(RecordingError, match="none with a visible joint"):
        require_frames(parse_recording([encode_frame(blank)]), "blank.jsonl")
    ok = parse_recording([encode_frame(frame(0.0)), encode_frame(frame(0.5))])
    assert len(require_frames(ok, "ok.jsonl")) == 2
    assert Recording().duration == 0.0
