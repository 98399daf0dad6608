from fractions import Fraction

from d2m.clock import BarClock


def test_a_two_hour_show_at_an_awkward_tempo_does_not_drift():
    clock = BarClock.start(0, 123.457, 48000)
    beats = int(2 * 3600 * 123.457 / 60)
    exact = Fraction(60 * 48000) / Fraction(123457, 1000) * beats
    # the clock's beat lands on the exact rational position, rounded once
    assert abs(clock.beat_sample(beats) - exact) <= Fraction(1, 2)
    # whereas summing rounded beat lengths would drift by many samples
    naive = beats * round(60 * 48000 / 123.457)
    assert abs(naive - exact) > 100


def test_bar_beats_are_contiguous_bar_after_bar():
    clock = BarClock.start(1000, 97.0, 48000)
    bar1 = clock.bar_beats(0)
    bar2 = clock.bar_beats(4)
    assert len(bar1) == 5 and bar1[0] == 1000
    assert bar1[-1] == bar2[0]
    gaps = [b - a for a, b in zip(bar1, bar1[1:])]
    assert max(gaps) - min(gaps) <= 1


def test_beat_at_or_after_finds_the_first_beat_not_before_a_sample():
    clock = BarClock.start(0, 120.0, 48000)
    assert clock.beat_at_or_after(0) == 0
    assert clock.beat_at_or_after(1) == 1
    assert clock.beat_at_or_after(24000) == 1
    assert clock.beat_at_or_after(24001) == 2
