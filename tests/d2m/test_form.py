"""The song form: sections over minutes, steered by the dancer's energy, on phrase lines."""

from __future__ import annotations

from d2m import form as F
from d2m.form import SongForm


def _run(energies, still=None):
    form = SongForm()
    still = still or [False] * len(energies)
    return [form.bar(e, s) for e, s in zip(energies, still)]


def test_steady_dancing_plays_a_whole_arc_with_sections_on_phrase_lines():
    infos = _run([0.4] * 120)
    starts = [(i, x.section) for i, x in enumerate(infos) if x.section_bar == 0]
    assert [s for _, s in starts[:6]] == [F.INTRO, F.GROOVE, F.BUILD, F.PEAK, F.BREAKDOWN, F.GROOVE]
    assert all(i % F.PHRASE_BARS == 0 for i, _ in starts)
    lengths = [x.section_bars for x in infos if x.section_bar == 0]
    assert all(F.PHRASE_BARS <= n <= F.MAX_SECTION_BARS and n % F.PHRASE_BARS == 0 for n in lengths)


def test_the_next_section_is_announced_and_counted_down():
    infos = _run([0.4] * 40)
    for a, b in zip(infos, infos[1:]):
        if b.section_bar == 0:
            assert a.bars_to_next_section == 1 and a.next_section == b.section
        else:
            assert b.bars_to_next_section == a.bars_to_next_section - 1


def test_a_rise_in_energy_earns_a_build_then_a_peak_within_a_phrase():
    energies = [0.2] * 12 + [0.5] * 30
    infos = _run(energies)
    build = next(i for i, x in enumerate(infos) if x.section == F.BUILD)
    assert build - 12 <= F.PHRASE_BARS       # answered at the next phrase line
    peak = next(i for i, x in enumerate(infos) if x.section == F.PEAK)
    assert peak == build + 8
    # a peak the dancer keeps earning is extended rather than broken down
    energies = [0.2] * 12 + [0.5] * 14 + [0.9] * 40
    infos = _run(energies)
    peak_len = next(x.section_bars for x in infos if x.section == F.PEAK and x.section_bar == 20)
    assert peak_len > F.SECTION_BARS[F.PEAK]


def test_slowing_down_gets_a_breakdown_and_stopping_an_outro_then_the_end():
    infos = _run([0.4] * 10 + [0.15] * 20)
    fall = next(i for i, x in enumerate(infos) if x.section == F.BREAKDOWN)
    assert 10 < fall <= 10 + F.PHRASE_BARS and fall % F.PHRASE_BARS == 0
    still = [False] * 10 + [True] * 30
    infos = _run([0.4] * 10 + [0.0] * 30, still)
    outro = next(i for i, x in enumerate(infos) if x.section == F.OUTRO)
    assert outro <= 10 + F.PHRASE_BARS
    assert infos[outro + F.PHRASE_BARS].section == F.END
    # the dancer comes back: an intro on the very next bar
    form = SongForm()
    for e, s in zip([0.4] * 10 + [0.0] * 30, still):
        form.bar(e, s)
    assert form.bar(0.4, False).section == F.INTRO


def test_the_form_is_deterministic_and_bad_energy_does_not_break_it():
    energies = [0.1, 0.5, float("nan"), 0.9, -1.0, 2.0] * 20
    a = _run(energies)
    b = _run(energies)
    assert a == b
    assert all(x.section in F.SECTIONS for x in a)


def test_the_end_of_the_dance_starts_an_outro_at_once_that_fits_before_the_music_ends():
    form = SongForm()
    for _ in range(11):                       # mid-phrase of the groove
        form.bar(0.4)
    info = form.bar(0.0, True, ending=3)
    assert (info.section, info.section_bars, info.next_section) == (F.OUTRO, 3, F.END)
    assert [form.bar(0.0, True, ending=k).bars_to_next_section for k in (2, 1)] == [2, 1]
    assert form.bar(0.0, True, ending=1).section == F.END
    # the dancer is back during an outro: the band comes back on the next bar
    form = SongForm()
    for _ in range(11):
        form.bar(0.4)
    form.bar(0.0, True, ending=4)
    assert form.bar(0.4, False).section == F.GROOVE
    # under an operator's tempo lock nothing ends the song
    form = SongForm()
    infos = [form.bar(0.0, True, ending=2, can_end=False) for _ in range(40)]
    assert not {F.OUTRO, F.END} & {x.section for x in infos}
