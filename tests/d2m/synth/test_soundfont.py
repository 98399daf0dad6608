"""The optional SoundFont voices (``--voices soundfont``): deterministic, per genre, level-matched,
and one clear line when the extra or the SoundFont is missing.

The rendering tests need TinySoundFont and a GM SoundFont (``apt-get install
fluid-soundfont-gm``); without them they skip, saying what is missing.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from d2m.plan import MUSIC, SegmentPlan
from d2m.synth import SynthGenerator
from d2m.synth.soundfont import GENRE_VOICES, SoundFontUnavailable, find_soundfont, gm_drum_key

SR = 48000


def _available() -> str | None:
    try:
        import tinysoundfont  # noqa: F401
    except ImportError:
        return "tinysoundfont is not installed (pip install -e '.[soundfont]')"
    try:
        find_soundfont()
    except SoundFontUnavailable as exc:
        return str(exc)
    return None


needs_soundfont = pytest.mark.skipif(_available() is not None, reason=f"SoundFont voices: {_available()}")


def bars(genre: str, n: int = 4, bpm: float = 120.0) -> list[SegmentPlan]:
    beat = int(round(60.0 / bpm * SR))
    return [SegmentPlan(index=b, kind=MUSIC, start_sample=b * 4 * beat, n_samples=4 * beat, sample_rate=SR, bar=b,
                        beat_offsets=tuple(i * beat for i in range(4)), bpm=bpm, genre=genre, energy=0.7, seed=1)
            for b in range(n)]


def render(gen, plans) -> np.ndarray:
    state, out = gen.initial_state(), []
    for plan in plans:
        r, state = gen.render(plan, state)
        out.append(r.audio)
    return np.concatenate(out)


@needs_soundfont
@pytest.mark.parametrize("genre", ["ballet_jazz", "lock"])
def test_soundfont_band_is_deterministic_level_matched_and_not_the_numpy_band(genre):
    from d2m.synth.soundfont import SoundFontGenerator

    plans = bars(genre)
    a = render(SoundFontGenerator(SR), plans)
    b = render(SoundFontGenerator(SR), bars(genre))      # a fresh generator, the same plans
    numpy_band = render(SynthGenerator(SR), plans)
    assert np.array_equal(a, b), "same plans -> same samples (live == render)"
    assert not np.allclose(a, numpy_band, atol=1e-3)
    level_db = 20 * np.log10(np.sqrt(np.mean(a.astype(float) ** 2)) / np.sqrt(np.mean(numpy_band.astype(float) ** 2)))
    assert abs(level_db) < 6.0, level_db
    assert np.abs(a).max() <= 0.95 + 1e-6, "the synth's limiter still bounds the mix"


@needs_soundfont
def test_a_cached_note_renders_the_same_whatever_came_before():
    from d2m.synth.soundfont import SampledNotes

    notes = SampledNotes(sample_rate=SR)
    first = notes.note(0, 0, 60, 0.8, 12000).copy()
    notes.note(0, 48, (55, 62, 67), 0.5, 40000)
    notes._cache.clear()                                     # force a re-render after other notes
    assert np.array_equal(first, notes.note(0, 0, 60, 0.8, 12000))
    assert first.shape[0] == 2 and first[:, -1].tolist() == [0.0, 0.0], "ends in an exact zero"


def test_every_genre_maps_known_programs_and_drum_sounds_map_to_gm_keys():
    from d2m.genres import GENRES

    assert set(GENRE_VOICES) == set(GENRES)
    for voices in GENRE_VOICES.values():
        for part in ("bass", "chord", "lead"):
            bank, program = voices[part]
            assert bank == 0 and 0 <= program < 128
    assert gm_drum_key("kick_house") == 36 and gm_drum_key("kick_808_ghost") == 36
    assert gm_drum_key("snare_break") == 38 and gm_drum_key("open_hat") == 46 and gm_drum_key("hat_soft") == 42


def test_missing_soundfont_file_is_one_clear_line(tmp_path):
    with pytest.raises(SoundFontUnavailable, match="not found"):
        find_soundfont(str(tmp_path / "nope.sf2"))
    motion = tmp_path / "m.jsonl"
    motion.write_text('{"t": 0.0, "person": 0, "layout": "coco17", "joints": '
                      + str([[0.5, 0.5, 0.0, 0.9]] * 17) + "}\n")
    res = subprocess.run([sys.executable, "-m", "d2m_server.cli", "render", str(motion), "-o", str(tmp_path / "o.wav"),
                          "--voices", "soundfont", "--soundfont", str(tmp_path / "nope.sf2"), "--no-progress"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("d2m: "), res.stderr
    assert "tinysoundfont" in lines[0].lower() or "not found" in lines[0]


def test_missing_extra_is_one_clear_line(monkeypatch):
    from d2m.synth.soundfont import SampledNotes

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)      # import fails as when not installed
    with pytest.raises(SoundFontUnavailable, match=r"pip install -e '\.\[soundfont\]'"):
        SampledNotes()
