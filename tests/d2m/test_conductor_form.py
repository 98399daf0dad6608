"""The conductor carries the song form on its plans, and holds the motion genre between phrase lines."""

from __future__ import annotations

from d2m import form as F
from d2m.conductor import Conductor, ConductorConfig
from d2m.dancer import SyntheticDancer
from d2m.events import SegmentPlanned
from d2m.plan import MUSIC


def _plans(frames, config):
    c = Conductor(config)
    plans = []
    for f in frames:
        plans += [ev.plan for ev in c.push_frame(f) if isinstance(ev, SegmentPlanned)]
    plans += [ev.plan for ev in c.advance(frames[-1].t + 1.0) if isinstance(ev, SegmentPlanned)]
    return c, plans


def test_bars_carry_the_form_from_an_intro_to_an_outro_when_the_dancer_stops():
    dance_s, still_s = 30.0, 20.0
    dancer = SyntheticDancer(tempo=120.0, seed=5, amplitude_points=[(0.0, 1.0), (dance_s, 1.0),
                                                                  (dance_s + 0.01, 0.0), (99.0, 0.0)])
    c, plans = _plans(dancer.frames(dance_s + still_s, fps=30.0), ConductorConfig(genre=None))
    bars = [p for p in plans if p.kind == MUSIC]
    assert bars[0].section == F.INTRO and bars[0].section_bar == 0
    first = bars[0].bar
    for a, b in zip(bars, bars[1:]):            # sections start on phrase lines, announced the bar before
        assert b.section in F.SECTIONS
        if b.section_bar == 0 and b.section not in (F.OUTRO, F.END):
            assert (b.bar - first) % F.PHRASE_BARS == 0
            assert a.bars_to_next_section == 1 and a.next_section == b.section
    sections = [p.section for p in bars]
    assert F.GROOVE in sections and F.OUTRO in sections
    # the end of the dance: an outro from about OUTRO_AFTER_S after the stop, played to its last bar
    outro = [p for p in bars if p.section == F.OUTRO]
    bar_s = 2.0
    assert dance_s + F.OUTRO_AFTER_S <= outro[0].start_time < dance_s + F.OUTRO_AFTER_S + 2 * bar_s + 1.5
    assert outro[-1].bars_to_next_section == 1
    assert outro[0].to_dict()["section"] == F.OUTRO
    assert plans[-1].kind != MUSIC or plans[-1].section == F.END     # then the idle pad (or the end)
    # the motion genre (auto) changes only where a phrase starts
    for a, b in zip(bars, bars[1:]):
        if a.genre != b.genre:
            assert b.section_bar % F.PHRASE_BARS == 0
    assert c.status()["genre_source"] == "motion"


def test_the_operator_tempo_lock_keeps_the_song_going_without_a_dancer():
    from d2m.control import Control
    c = Conductor(ConductorConfig(genre="house"))
    c.control(0.0, Control(bpm=120.0))
    plans = [ev.plan for ev in c.advance(60.0) if isinstance(ev, SegmentPlanned)]
    sections = {p.section for p in plans if p.kind == MUSIC}
    assert F.END not in sections and F.OUTRO not in sections and F.BUILD in sections
