"""Song form over minutes: which section each bar is in, steered by the dancer.

:class:`SongForm` is asked once per music bar (``Conductor._segment``) and
answers with a :class:`SectionInfo`: the section the bar is in, the bar's
position in it, and how many bars remain before the next section (and which
one that will be), so visuals can be cued to a drop before it happens.

Sections (all but the outro and ``end`` last a whole number of 8-bar phrases, 8-32 bars)::

    intro      the band comes in: kick and hats, sparse chords, no lead
    groove     the body of the song: the arrangement at the dancer's energy
    build      leads into a peak: riser, snare roll, filter opening up
    peak       the full band, lead always on, brighter and louder
    breakdown  at least 6 dB below the peak: no kick or snare, pad and chords
    outro      the dancer stopped: the band thins out and ends on a chord (1-4 bars)
    end        after an outro while the dancer stays still: only the pad

How the dancer steers it. The form compares the bar's energy (the plan's
``energy``, a 4 s window) with a slow baseline of the dancer's own energy
(an exponential mean over :data:`BASELINE_BARS` bars), so a calm dancer and a
wild one both get a whole song. ``drive = energy / baseline`` (the mean
energy of the last :data:`SMOOTH_BARS` bars). The form also keeps the range of
energies the dancer has shown (fast attack, slow decay over :data:`RANGE_BARS`);
once that range is wide, energy in its top :data:`RANGE_HIGH` counts as rising
and in its bottom :data:`RANGE_LOW` as falling, so sustained high energy keeps
its peak although the baseline catches up with it.

* ``drive >= RISE_DRIVE`` (or energy at least :data:`HIGH_ENERGY`, or the top
  of the range): rising.
  A groove, intro or breakdown goes to a build, a build to the peak, and a
  peak is extended (up to :data:`MAX_SECTION_BARS`) instead of breaking down.
* ``drive <= FALL_DRIVE`` (or the bottom of the range): falling. A build
  fizzles into a groove; anything else but an outro goes to a breakdown.
* the beat tracker says the dancer is still (or the energy drops below
  :data:`STILL_ENERGY` and :data:`STILL_RATIO` of the baseline): an outro, then
  ``end``; when the dancer moves again, an intro on the next bar.
* otherwise the form follows its own arc: intro 8 → groove 16 → build 8 →
  peak 16 → breakdown 8 → groove 16 → build 8 → ... A groove leads to a build
  only when the energy holds (``drive > FALL_DRIVE``): the peak is earned.

Changes land on phrase boundaries only, with two exceptions for the end of a
dance: a dancer still for :data:`OUTRO_AFTER_S` gets the outro on the next
bar (sized to end before the music does, see :meth:`SongForm.bar`), and a
dancer who moves again during the outro or the end gets the band back on the
next bar. The next section is committed
:data:`ANNOUNCE_BARS` bars before the boundary, so from then on
``bars_to_next_section`` and ``next_section`` are final; earlier they give the
planned arc. Deterministic, no I/O: the same bars in give the same form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Section names, in the order of the arc.
INTRO, GROOVE, BUILD, PEAK, BREAKDOWN, OUTRO, END = "intro", "groove", "build", "peak", "breakdown", "outro", "end"
SECTIONS: tuple[str, ...] = (INTRO, GROOVE, BUILD, PEAK, BREAKDOWN, OUTRO, END)

#: Bars per phrase: sections start and end on multiples of this.
PHRASE_BARS = 8
#: Longest section (bars); a peak the dancer keeps earning is extended up to this.
MAX_SECTION_BARS = 32
#: The next section is fixed this many bars before it starts (announced over OSC/WebSocket/MQTT).
ANNOUNCE_BARS = 2
#: Planned length (bars) of each section of the arc.
SECTION_BARS: dict[str, int] = {INTRO: 8, GROOVE: 16, BUILD: 8, PEAK: 16, BREAKDOWN: 8, OUTRO: 4, END: 1}
#: Where the arc goes after each section when the dancer neither rises nor falls.
ARC_NEXT: dict[str, str] = {INTRO: GROOVE, GROOVE: BUILD, BUILD: PEAK, PEAK: BREAKDOWN,
                            BREAKDOWN: GROOVE, OUTRO: END, END: END}
#: Time constant (bars) of the dancer's energy baseline.
BASELINE_BARS = 24.0
#: drive = energy / baseline at or above which the dancer is rising.
RISE_DRIVE = 1.3
#: drive at or below which the dancer is falling (slowing down).
FALL_DRIVE = 0.7
#: The form reads the mean energy of the last this many bars (each bar's is a 4 s window already).
SMOOTH_BARS = 2
#: Energy (0..1) that counts as rising whatever the baseline.
HIGH_ENERGY = 0.75
#: Baseline floor, so a near-still start does not make every move look like a rise.
MIN_BASELINE = 0.02
#: The range of energies the dancer has shown (a fast-attack envelope of the highest and lowest,
#: decaying to the baseline with this time constant in bars) ...
RANGE_BARS = 48.0
#: ... counts once it spans at least RANGE_MIN (energy) and its top is RANGE_RATIO times its bottom;
RANGE_MIN = 0.05
RANGE_RATIO = 1.4
#: then energy in the top RANGE_HIGH of it is rising (sustained high energy keeps the peak), in the
#: bottom RANGE_LOW falling.
RANGE_HIGH = 0.7
RANGE_LOW = 0.3
#: Energy below STILL_ENERGY and below STILL_RATIO x the baseline counts as still (an outro) even
#: when the beat tracker still hears a rhythm.
STILL_ENERGY = 0.03
STILL_RATIO = 0.3
#: A dancer still for this long (s; longer than a freeze) has ended the dance: the outro starts on
#: the next bar, not on a phrase line, so that it ends before the conductor's idle pad takes over.
OUTRO_AFTER_S = 4.0
#: Gain of each section (linear, on every part's velocity); the breakdown sits >= 6 dB under the peak.
SECTION_GAIN: dict[str, float] = {INTRO: 0.8, GROOVE: 0.9, BUILD: 0.9, PEAK: 1.0, BREAKDOWN: 0.55,
                                  OUTRO: 0.8, END: 0.0}


@dataclass(frozen=True)
class SectionInfo:
    """Where a bar sits in the song form."""

    section: str                 #: one of :data:`SECTIONS`
    section_bar: int             #: bar within the section (0-based)
    section_bars: int            #: length of the section as planned now (bars)
    bars_to_next_section: int    #: bars until the next section starts (1 = this is the last bar)
    next_section: str            #: the section that follows (final once ``bars_to_next_section <= ANNOUNCE_BARS``)
    section_index: int           #: sequential number of the section since the form (re)started
    drive: float                 #: energy / baseline at this bar

    @property
    def phrase_bar(self) -> int:
        """Bar within the current 8-bar phrase (0 = first)."""
        return self.section_bar % PHRASE_BARS


class SongForm:
    """Decides the section of every music bar (see the module doc)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start over: the next bar is the first bar of an intro."""
        self.section: str | None = None
        self.section_bar = 0
        self.section_bars = 0
        self.next_section = ARC_NEXT[INTRO]
        self.section_index = -1
        self.baseline: float | None = None
        self.low = self.high = 0.0
        self._recent: list[float] = []

    # -- per bar ---------------------------------------------------------------
    def bar(self, energy: float, still: bool = False, ending: int | None = None, *,
            can_end: bool = True) -> SectionInfo:
        """The section of the next music bar, from its plan energy and the tracker's stillness.

        ``ending``: the dancer has stopped for :data:`OUTRO_AFTER_S` and the music will end
        (the conductor goes back to its idle pad) after this many bars, this one included;
        the outro then starts on this bar and fits in them. None: no end in sight.
        ``can_end=False`` (an operator's tempo lock: the operator runs the show): the song
        never ends, whatever the dancer does.
        """
        e = float(energy) if math.isfinite(energy) else 0.0
        e = min(1.0, max(0.0, e))
        self._recent = (self._recent + [e])[-SMOOTH_BARS:]
        e = sum(self._recent) / len(self._recent)      # decisions follow a trend, not one bar
        if self.baseline is None:
            self.baseline = self.low = self.high = max(MIN_BASELINE, e)
        drive = max(MIN_BASELINE, e) / max(MIN_BASELINE, self.baseline)   # at the floor: steady, not falling
        span = self.high - self.low
        varied = span >= RANGE_MIN and self.high >= RANGE_RATIO * max(MIN_BASELINE, self.low)
        level = (e - self.low) / span if varied else 0.5
        rising = drive >= RISE_DRIVE or e >= HIGH_ENERGY or level >= RANGE_HIGH
        falling = not rising and (drive <= FALL_DRIVE or level <= RANGE_LOW)
        still = bool(still) or (e < STILL_ENERGY and e < STILL_RATIO * self.baseline)
        if not can_end:
            still, ending = False, None

        if ending is not None:
            still = True
        if self.section is None:
            self._start(END if still else INTRO)
        elif ending is not None and self.section not in (OUTRO, END):
            self._start(OUTRO)              # the dance has ended: the outro starts now and fits before the end
            self.section_bars = max(1, min(self.section_bars, int(ending)))
        elif self.section == OUTRO and ending is None and not still:
            self._start(GROOVE)             # the dancer is back during the outro
        elif self.section == END:
            if not still:
                self._start(INTRO)          # the dancer is back: the band comes in on this bar
            else:
                self.section_bar += 1
        else:
            self.section_bar += 1
            if self.section_bar >= self.section_bars:
                self._start(self.next_section)

        if self.section != END and PHRASE_BARS - self.section_bar % PHRASE_BARS == ANNOUNCE_BARS:
            self._decide(rising, falling, still)
        if not still:   # a still dancer's energy is no baseline
            a = 1.0 - math.exp(-1.0 / BASELINE_BARS)
            self.baseline = max(MIN_BASELINE, self.baseline + a * (e - self.baseline))
            r = 1.0 - math.exp(-1.0 / RANGE_BARS)       # the range the dancer has shown, slowly forgotten
            self.high = max(e, self.high + r * (self.baseline - self.high))
            self.low = min(e, self.low + r * (self.baseline - self.low))
        left = self.section_bars - self.section_bar if self.section != END else 1
        return SectionInfo(section=self.section, section_bar=self.section_bar, section_bars=self.section_bars,
                           bars_to_next_section=max(1, left), next_section=self.next_section,
                           section_index=self.section_index, drive=float(drive))

    # -- decisions -----------------------------------------------------------------
    def _start(self, section: str) -> None:
        self.section = section
        self.section_bar = 0
        self.section_bars = SECTION_BARS[section]
        self.next_section = ARC_NEXT[section]
        self.section_index += 1

    def _decide(self, rising: bool, falling: bool, still: bool) -> None:
        """At ANNOUNCE_BARS before a phrase boundary: what plays from that boundary on."""
        s = self.section
        boundary = self.section_bar + ANNOUNCE_BARS       # section bar at which the change would land
        at_end = boundary >= self.section_bars
        want: str | None = None                            # None: keep the plan
        if still:
            want = None if s == OUTRO else OUTRO
        elif s == OUTRO:
            want = GROOVE                                  # the dancer came back during the outro
        elif falling and s == BUILD:
            want = GROOVE                                  # the build fizzles out: no peak unearned
        elif falling:
            want = None if s == BREAKDOWN and not at_end else BREAKDOWN
            if s == BREAKDOWN and at_end and self.section_bars >= 2 * PHRASE_BARS:
                want = GROOVE                              # a breakdown lasts at most two phrases
        elif rising:
            if s in (INTRO, GROOVE, BREAKDOWN):
                want = BUILD
            elif s == BUILD:
                want = PEAK if at_end else None
            elif s == PEAK:
                want = PEAK if at_end and self.section_bars < MAX_SECTION_BARS else None
        if want is None:
            return
        if want == s:                                      # extend by a phrase
            self.section_bars = min(MAX_SECTION_BARS, self.section_bars + PHRASE_BARS)
            self.next_section = ARC_NEXT[s]
            return
        self.section_bars = boundary                       # end this section at the boundary
        self.next_section = want
