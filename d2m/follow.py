"""How the music follows a dancer: is someone dancing, and the band's own beat grid.

Two small, deterministic pieces (no I/O, timestamps in) that sit between the
motion tracker (:class:`d2m.motion.TempoTracker`, which *observes* the dance's
tempo and beat phase) and the bar plans (:class:`d2m.conductor.Conductor`):

* :class:`MovementMeter` answers "is somebody dancing?" from how far the
  joints travel (not from how clear the beat is), so music starts for a
  dancer whose beat is merely unclear, and the idle pad stays for an empty
  room or a still dancer. Sensor jitter is fast and small; dancing, even a
  soft hand dance, moves joints over a larger range within a second: the
  measure is the spread of each joint's position over the last
  :data:`EXTENT_WINDOW_S`, in torso lengths (measured: 0.003-0.02 for a still
  synthetic dancer with 1-6 thousandths of jitter; 0.03-0.5 for the real
  dancers in AIST++ and the real videos; 0.08 for the synthetic dancer).

* :class:`BeatKeeper` is the band's beat grid, the way a band or a DJ follows a
  dancer (B-Keeper-style bounded following): the music keeps its own tempo
  and phase, and each bar nudges them toward the dancer's observed beats, by
  a bounded amount per beat and in proportion to the tracker's confidence.
  The tempo moves only on persistent evidence: small differences are eased
  in over several bars, a large change (a new song in the dancer's head) is
  adopted once it has persisted for :data:`JUMP_AFTER_BEATS` beats. Once music
  plays, its grid is held unless the dancer clearly departs from it, so a
  dancer who entrains to the music is not chased around.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

#: Window over which a joint's travel is measured (s).
EXTENT_WINDOW_S = 1.0
#: A joint position spread (torso lengths, 90th percentile over joints) above this is movement.
MOVING_EXTENT = 0.025
#: Percentile over the joints: hand dances move only the arms (4 of 17 joints).
EXTENT_PERCENTILE = 90
#: Movement sustained this long starts the music (s).
START_AFTER_S = 2.0
#: ... counting a window as sustained when at least this share of its frames moved.
SUSTAINED_SHARE = 0.75
#: A dancer who stopped moving (or left) this long ago is still (s).
STILL_AFTER_S = 1.5
#: After this long without movement the music ends and the idle pad plays again (s).
STILL_ENDS_MUSIC_S = 12.0

#: Observations with a confidence below this are ignored by the keeper.
MIN_FOLLOW_CONFIDENCE = 0.25
#: Tempo differences within this (relative) are eased in, bar by bar.
FOLLOW_BAND = 0.08
#: Share of the remaining tempo difference taken per bar (at full confidence).
TEMPO_GAIN = 0.25
#: The eased tempo never moves by more than this per bar (relative).
MAX_TEMPO_STEP = 0.01
#: A ramp: the observed dance period moved the same way by at least RAMP_MIN_STEP (relative) at
#: each of the last RAMP_BARS bar lines, and by RAMP_MIN_TOTAL over them (a noisy estimate
#: wanders by a percent or two). During a ramp the band plays on the tracker's grid, with its
#: trend, changing its tempo by at most RAMP_STEP a bar.
RAMP_BARS = 3
RAMP_MIN_STEP = 0.006
RAMP_MIN_TOTAL = 0.05
RAMP_STEP = 0.04
#: After a ramp the band stays on the tracker's grid (without the trend) for this many bars.
RAMP_SETTLE_BARS = 2
#: No ramp is taken while the phase measure is clear (CLEAR_COHERENCE) and the dancer's beats sit
#: within this fraction of a beat of the band's: then the tracker's estimate wandered.
RAMP_HELD_ERROR = 0.12
#: The eased tempo follows the median of the tracker's (folded) tempo at the last this many bar lines.
FOLLOW_MEDIAN_BARS = 3
#: Tempo differences within this are not chased at all (relative): the dancer entrains to the band.
TEMPO_DEADBAND = 0.004
#: A tempo outside the follow band is adopted after it persisted this many (music) beats.
JUMP_AFTER_BEATS = 6
#: ... and only if the observations agree within this (relative).
JUMP_AGREEMENT = 0.04
#: Share of the phase error corrected per bar (at full confidence).
PHASE_GAIN = 0.5
#: Share of the bar's phase error turned into a tempo change (a PLL's integral term): a phase
#: error that persists bar after bar means the band's tempo is off.
PHASE_TO_TEMPO = 0.08
#: The phase error is measured from the dancer's motion beats of the last this many music beats,
#: against the band's own beats (a phase detector, as in a PLL), weighted by height and recency.
PHASE_WINDOW_BEATS = 8
#: Recency time constant of that measure, in beats.
PHASE_RECENCY_BEATS = 4.0
#: Least motion beats in the window for the measure to count.
MIN_PHASE_PEAKS = 4
#: Share of the (weighted) motion beats near the measured phase below which they say
#: nothing about the phase (they are spread all over the beat).
MIN_COHERENCE = 0.15
#: At this coherence the phase measure is clear: within PHASE_LED_BAND of the band's tempo, the
#: tempo then follows the phase measure alone (a PLL), not the tracker's noisier tempo estimate.
#: Below UNCLEAR_COHERENCE the tracker's tempo estimate steers the tempo alone; in between, both.
CLEAR_COHERENCE = 0.65
UNCLEAR_COHERENCE = 0.45
PHASE_LED_BAND = 0.03
#: A phase error measured on PERSIST_BARS bar lines running, on the same side and within
#: PERSIST_SPREAD of its mean, is clear evidence however spread the motion beats of each bar are
#: (a soft dancer's hits scatter, but the band that stays late bar after bar is late).
PERSIST_BARS = 3
PERSIST_SPREAD = 0.35
#: Heard music beats kept for the phase measure.
BEAT_HISTORY = 32
#: Width of a motion beat's vote in the phase measure (fraction of a beat).
PHASE_KERNEL = 0.06
#: The current phase is preferred: a phase this far off (fraction of a beat) needs e^0.5 times the votes.
PHASE_PRIOR = 0.25
_OFFSETS = np.linspace(-0.5, 0.5, 101)[:-1]

#: The dancer's period is fitted from the motion beats at the measured phase when they span at
#: least this many beats and scatter by at most FIT_MAX_SCATTER of a beat around the line.
FIT_MIN_SPAN_BEATS = 4
FIT_MAX_SCATTER = 0.08
#: Share of the fitted period's difference taken per bar when the phase measure is clear, in the
#: first ACQUIRE_BARS bars after the band took a new tempo (at the start, after a jump or a ramp:
#: the tracker's tempo may be a little off). After that the band holds its tempo more firmly:
#: a dancer who hears the music entrains to it, and chasing their every beat would swing.
FIT_GAIN = 0.5
ACQUIRE_BARS = 4
#: Errors smaller than this (s) are left alone: within them the dancer hears the music on the beat.
PHASE_DEADBAND_S = 0.008
#: Largest phase correction per beat, as a fraction of the beat (a nudge: the bar's tempo
#: stays within 1.5 % of the band's).
MAX_NUDGE = 0.015
#: Largest phase correction per beat when the dancer is clearly elsewhere: an error above
#: CATCH_UP_ERROR on two bar lines running, on the same side.
MAX_CATCH_UP = 0.12
#: Phase errors above this fraction of a beat, twice running, are caught up faster.
CATCH_UP_ERROR = 0.12


def _folded(err: float, m: float) -> float:
    """``err`` taken modulo ``m``, into [-m/2, m/2): a phase error at a beat level of period ``m``."""
    return (err + m / 2) % m - m / 2


class MovementMeter:
    """Is somebody dancing? Fed one pose per motion-grid frame."""

    def __init__(self, rate: float, window_s: float = EXTENT_WINDOW_S):
        self.rate = rate
        self.n = max(2, int(round(window_s * rate)))
        self._poses = np.zeros((self.n, 17, 2))          # a ring of the last n poses
        self._ok = np.zeros((self.n, 17), dtype=bool)   # joint present in that pose
        self._filled = 0
        self._next = 0
        self._moving: deque[bool] = deque(maxlen=max(1, int(round(START_AFTER_S * rate))))
        self.extent = 0.0
        self.last_moving_t = -math.inf

    def reset(self) -> None:
        self._filled = self._next = 0
        self._moving.clear()
        self.extent = 0.0

    def push(self, t: float, pose: np.ndarray) -> bool:
        """Add a torso-scaled pose ``(17, 2)`` (NaN = missing) at grid time ``t``; True if moving."""
        pose = np.asarray(pose, dtype=np.float64)
        ok = np.isfinite(pose).all(axis=1)
        self._poses[self._next] = np.where(ok[:, None], pose, 0.0)
        self._ok[self._next] = ok
        self._next = (self._next + 1) % self.n
        self._filled = min(self._filled + 1, self.n)
        moving = False
        if self._filled >= self.n // 2:
            # each joint's position spread over the window (population std of x and y, over the
            # frames it was present in), vectorised: this runs for every grid frame
            P, okw = self._poses[:self._filled], self._ok[:self._filled]
            counts = okw.sum(axis=0)
            use = counts >= max(3, self._filled // 2)
            if use.any():
                c = counts[use][:, None]
                s1 = P[:, use].sum(axis=0)
                s2 = (P[:, use] ** 2).sum(axis=0)
                var = np.maximum(s2 / c - (s1 / c) ** 2, 0.0)
                spread = np.sqrt(var.sum(axis=1))
                self.extent = float(np.percentile(spread, EXTENT_PERCENTILE))
                moving = self.extent >= MOVING_EXTENT
        self._moving.append(moving)
        if moving:
            self.last_moving_t = t
        return moving

    def sustained(self) -> bool:
        """Movement over most of the last :data:`START_AFTER_S`."""
        full = len(self._moving) == self._moving.maxlen
        return full and sum(self._moving) >= SUSTAINED_SHARE * len(self._moving)

    def active(self, now: float) -> bool:
        """Moved within the last :data:`STILL_AFTER_S`."""
        return self.still_for(now) < STILL_AFTER_S

    def still_for(self, now: float) -> float:
        """Seconds since the last movement (inf if none yet)."""
        return now - self.last_moving_t


@dataclass(frozen=True)
class Observation:
    """The dancer's beat grid as the tracker sees it at a decision."""

    period: float            #: seconds per dance beat
    anchor: float            #: session time of a dance beat
    confidence: float        #: 0..1
    drift: float = 0.0       #: change of the period per beat (the tracker's tempo trend), s/beat

    def nearest_beat(self, t: float) -> float:
        return self.anchor + round((t - self.anchor) / self.period) * self.period

    def beats_after(self, b0: float, n: int, ratio: float = 1.0, max_change: float = math.inf) -> list[float]:
        """``n + 1`` beats from the dance beat ``b0`` on, with the trend, every ``ratio`` dance
        beats (2: the music at half the dance's tempo, 0.5: at double); the trend changes the
        period by at most ``max_change`` (relative) over them."""
        P = self.period * ratio
        d = float(np.clip(self.drift * ratio * ratio, -max_change * P / n, max_change * P / n))
        return [b0 + k * P + d * k * (k + 1) / 2 for k in range(n + 1)]


class BeatKeeper:
    """The band's beat grid, nudged toward the dancer's by bounded steps.

    :meth:`bar` is called once per bar with the session time at which the
    bar line is heard and the latest observation (or None); it returns the
    heard times of the bar's beats plus the next bar line.
    """

    def __init__(self, period: float, beats_per_bar: int = 4):
        self.period = float(period)
        self.beats_per_bar = beats_per_bar
        self._candidate: tuple[float, int] | None = None     # (period, beats seen)
        self.following = False           #: the last bar was steered by a confident observation
        self.last_error = 0.0            #: phase error at the last bar line (s; + = music late)
        self._snap = False
        self.coherence = 0.0             #: how consistently the motion beats sit at one phase (0..1)
        self._observed: deque[float] = deque(maxlen=RAMP_BARS + 1)
        self._beats: deque[float] = deque(maxlen=BEAT_HISTORY)
        self._settle = 0                 # bars left on the tracker's grid after a ramp
        self._acquire = ACQUIRE_BARS     # bars left in which the fitted period is followed fast
        self.fitted_period: float | None = None   #: the dancer's period from the phase measure's beats
        self._measured: deque[float] = deque(maxlen=PERSIST_BARS)   # the last bars' measured errors
        self.persistent = False          #: the last bars' measured phase errors agree

    @property
    def bpm(self) -> float:
        return 60.0 / self.period

    def _fold(self, period: float) -> float:
        """The dance period at the music's metrical level (x2 / /2 moves only)."""
        while period < self.period / 1.45:
            period *= 2.0
        while period > self.period * 1.45:
            period /= 2.0
        return period

    def adopt(self, period: float) -> None:
        """Take the dancer's tempo and phase outright at the next bar (the first confident lock:
        the music may have started on a guess)."""
        self.period = float(period)
        self._candidate = None
        self._snap = True
        self._acquire = ACQUIRE_BARS

    def _ramping(self, dance: float, rel: float) -> bool:
        """The observed (folded) period moved the same way, by at least RAMP_MIN_STEP, over the
        last RAMP_BARS bars, and the band is behind it in that direction."""
        seen = self._observed
        seen.append(dance)
        if len(seen) < RAMP_BARS + 1:
            return False
        steps = np.diff(np.array(seen)) / np.array(seen)[:-1]
        if not (np.all(steps > RAMP_MIN_STEP) or np.all(steps < -RAMP_MIN_STEP)):
            return False
        if abs(seen[-1] / seen[0] - 1.0) < RAMP_MIN_TOTAL:
            return False
        return bool(steps[-1] * rel > 0)

    def phase_error(self, heard: float, peaks: np.ndarray, heights: np.ndarray,
                    level: float | None = None) -> tuple[float, float]:
        """``(error s, coherence)`` of the band's beats against the motion beats ``peaks``.

        Each motion beat's phase is taken against the band's nearest heard beat (at the
        period ``level``, the dance's when it is shorter, so a dancer at double time counts);
        the weighted circular mean gives the error (+ = music late) and its coherence.
        """
        P = self.period
        # (the dance's period only when it is an octave shorter: a dancer a few percent faster
        # than the band is at the band's level, and folding at their period smears the phases)
        m = P if level is None or level > P / 1.45 else level
        grid = np.array(self._beats) if self._beats else np.zeros(0)
        past = heard - np.arange(1, PHASE_WINDOW_BEATS + 2)[::-1] * P
        grid = np.concatenate([past[past < grid[0] - P / 2] if len(grid) else past, grid, [heard]])
        keep = (peaks >= heard - PHASE_WINDOW_BEATS * P) & (peaks < heard)
        t, h = peaks[keep], heights[keep]
        if len(t) < MIN_PHASE_PEAKS:
            return 0.0, 0.0
        i = np.clip(np.searchsorted(grid, t), 1, len(grid) - 1)
        near = np.where(t - grid[i - 1] < grid[i] - t, grid[i - 1], grid[i])
        phase = (t - near) / m
        w = h * np.exp(-(heard - t) / (PHASE_RECENCY_BEATS * P))
        # the mode of the motion beats' phase, not their mean: a dancer's hits cluster on the
        # beat, with other moves between; the current phase is preferred unless clearly beaten
        d = (phase[None, :] - _OFFSETS[:, None] + 0.5) % 1.0 - 0.5
        score = (w[None, :] * np.exp(-0.5 * (d / PHASE_KERNEL) ** 2)).sum(axis=1)
        score = score * np.exp(-0.5 * (_OFFSETS / PHASE_PRIOR) ** 2)
        j = int(np.argmax(score))
        # refine: weighted mean phase of the motion beats near the mode
        near_mode = np.abs((phase - _OFFSETS[j] + 0.5) % 1.0 - 0.5) <= 2 * PHASE_KERNEL
        off = _OFFSETS[j]
        if near_mode.any():
            off = off + float(np.average((phase[near_mode] - off + 0.5) % 1.0 - 0.5, weights=w[near_mode]))
        support = float(np.sum(w[near_mode]) / max(np.sum(w), 1e-12))
        fit = self._fit_line(t[near_mode], w[near_mode], heard, m)
        self.fitted_period = None if fit is None else fit[0] * max(1, round(self.period / m))
        if fit is None or self._acquire <= 0:
            # holding: the window's mode (the line's error at the bar line is noisier, and a band
            # that chases a dancer who entrains to it random-walks the tempo)
            return -off * m, support
        # acquiring: the line's beat nearest this bar line, the error now (the window's mode lags
        # while the band's tempo is still off)
        err = heard - fit[1]
        return float(_folded(err, m)), support

    def _fit_line(self, t: np.ndarray, w: np.ndarray, heard: float, m: float) -> tuple[float, float] | None:
        """The dancer's beats from the motion beats at the measured phase (a PLL's frequency
        detector): a weighted straight line through their times against their beat numbers at
        level ``m``. ``(period, the line's beat at this bar line)``, or None when they span too
        few beats or scatter too much."""
        n = np.round((t - heard) / m)
        if len(t) < MIN_PHASE_PEAKS or np.ptp(n) < FIT_MIN_SPAN_BEATS:
            return None
        W = w / w.sum()
        nb, tb = float(W @ n), float(W @ t)
        var = float(W @ (n - nb) ** 2)
        slope = float(W @ ((n - nb) * (t - tb))) / var
        resid = t - (tb + slope * (n - nb))
        if math.sqrt(float(W @ resid ** 2)) > FIT_MAX_SCATTER * m or not 0.5 * m < slope < 1.5 * m:
            return None
        return slope, tb - slope * nb

    def _persists(self, measured: tuple[float, float] | None) -> bool:
        """The phase error measured at this bar line and the PERSIST_BARS - 1 before agree."""
        if measured is None or measured[1] < MIN_COHERENCE:
            self._measured.clear()
            return False
        self._measured.append(measured[0])
        e = np.array(self._measured)
        if len(e) < PERSIST_BARS or not (np.all(e > 0) or np.all(e < 0)):
            return False
        return bool(np.min(np.abs(e)) > 2 * PHASE_DEADBAND_S and np.std(e) <= PERSIST_SPREAD * np.mean(np.abs(e)))

    def _ramp_bar(self, heard: float, obs: Observation, trend: bool = True) -> list[float]:
        """A bar during a ramp: the tracker's own grid, with its trend (the motion beats smear
        across the phase measure's window while the tempo moves), the phase error worked off
        by at most MAX_CATCH_UP of a beat per beat."""
        n = self.beats_per_bar
        dance = self._fold(obs.period)
        ratio = dance / obs.period
        b0 = obs.nearest_beat(heard)
        err = _folded(heard - b0, min(dance, obs.period))
        b0 = heard - err
        grid = obs.beats_after(b0, n, ratio, RAMP_STEP) if trend else [b0 + k * dance for k in range(n + 1)]
        step = MAX_CATCH_UP * dance
        beats = [g + float(np.sign(err)) * max(0.0, abs(err) - step * k) for k, g in enumerate(grid)]
        self.period = (grid[-1] - grid[0]) / n
        self.following, self.last_error = True, err
        self._candidate, self._snap = None, False     # the bar is on the tracker's grid already
        return beats

    def bar(self, heard: float, obs: Observation | None, peaks: np.ndarray | None = None,
            heights: np.ndarray | None = None) -> list[float]:
        beats = self._bar(heard, obs, peaks, heights)
        self._beats.extend(beats[:-1])
        return beats

    def _bar(self, heard: float, obs: Observation | None, peaks, heights) -> list[float]:
        n = self.beats_per_bar
        self.following = False
        self.coherence = 0.0
        if obs is None or obs.confidence < MIN_FOLLOW_CONFIDENCE:
            self._candidate = None
            self.last_error = 0.0
            return [heard + k * self.period for k in range(n + 1)]
        w = min(1.0, (obs.confidence - MIN_FOLLOW_CONFIDENCE) / (1.0 - MIN_FOLLOW_CONFIDENCE) * 2.0)
        # the phase detector first: where it is clear, it also steers the tempo (below), and the
        # tracker's tempo estimate (noisier, often a little off) is needed only for larger changes
        measured = None
        self.fitted_period = None
        if peaks is not None and heights is not None and not self._snap:
            measured = self.phase_error(heard, peaks, heights, obs.period)
            self.coherence = measured[1]
        self.persistent = self._persists(measured)
        clear = min(1.0, max(0.0, (self.coherence - UNCLEAR_COHERENCE) / (CLEAR_COHERENCE - UNCLEAR_COHERENCE)))
        if self.persistent:
            clear = 1.0
        dance = self._fold(obs.period)
        rel = dance / self.period - 1.0
        jumped = False
        self._acquire -= 1
        # a ramp: the observed tempo moved the same way bar after bar (checked every bar, so a
        # ramp that has run past the follow band is followed, not waited out as a jump)
        ramp = self._ramping(dance, rel)
        if ramp and measured is not None and self.coherence >= CLEAR_COHERENCE \
                and abs(measured[0]) <= RAMP_HELD_ERROR * self.period:
            # the dancer's beats still sit clearly on the band's: the tracker's estimate wandered
            # (a dancer who entrains to the music, or a noisy fit), the dance did not speed up
            ramp = False
        if abs(rel) > FOLLOW_BAND and not ramp:
            cand = self._candidate
            if cand is not None and abs(dance / cand[0] - 1.0) <= JUMP_AGREEMENT:
                seen = cand[1] + n
                if seen >= JUMP_AFTER_BEATS:
                    self.period, self._candidate, jumped = dance, None, True
                    self._acquire = ACQUIRE_BARS
                else:
                    self._candidate = (dance, seen)
            else:
                self._candidate = (dance, n)
        else:
            self._candidate = None
            # the tracker's tempo is the median of its last bars' (one outlying fit moves nothing;
            # only those within the follow band: after a jump the bars before it are another tempo)
            seen = np.array(self._observed)[-FOLLOW_MEDIAN_BARS:] / self.period - 1.0
            rel = float(np.median(seen[np.abs(seen) <= FOLLOW_BAND])) if abs(rel) <= FOLLOW_BAND else rel
            # where the phase measure is clear the tracker's (noisier) tempo has no pull: with a
            # dancer who entrains to the band, chasing it random-walks the shared tempo
            trust = 1.0 - clear if abs(rel) <= PHASE_LED_BAND else 1.0
            gain, cap = TEMPO_GAIN, MAX_TEMPO_STEP
            fit = self.fitted_period
            if ramp or self._settle > 0:
                # during a ramp, and for a couple of bars after one (the band may have overshot
                # its end), the band plays on the tracker's grid
                self._settle = RAMP_SETTLE_BARS if ramp else self._settle - 1
                self._acquire = ACQUIRE_BARS
                return self._ramp_bar(heard, obs, trend=ramp)
            if self._acquire > 0 and fit is not None and clear > 0 and abs(fit / self.period - 1.0) <= PHASE_LED_BAND:
                # the motion beats at the band's phase give the dancer's period directly: where
                # the phase measure is clear, that is the tempo to follow (steadier than the tracker's)
                rel = clear * (fit / self.period - 1.0) + (1.0 - clear) * rel
                gain, trust = TEMPO_GAIN + (FIT_GAIN - TEMPO_GAIN) * clear, 1.0
            if abs(rel) > TEMPO_DEADBAND:
                step = float(np.clip(gain * w * trust * rel, -cap, cap))
                self.period *= 1.0 + step
        P = self.period
        # phase: the dance beat nearest this bar line, at the music's level
        err = heard - obs.nearest_beat(heard)
        if dance < P / 1.45 or dance > P * 1.45:        # only when the levels disagree after a jump
            err = 0.0
        # beats of the music at half the dance tempo still sit on dance beats; at double, every
        # other music beat does: the error is taken modulo the shorter of the two periods
        err = _folded(err, min(P, obs.period))
        self.following = True
        if measured is not None and not jumped:
            # the phase from the motion beats against the band's own beats: steadier than the
            # tracker's latest fit, which re-anchors on whichever hit came last
            err = measured[0]
            w = min(w, 1.0 if self.persistent else
                    max(0.0, (self.coherence - MIN_COHERENCE) / (1.0 - MIN_COHERENCE) * 2.0))
        previous, self.last_error = self.last_error, err
        if jumped or self._snap:
            # a new tempo, or the first confident one: the bar's first beat lands on the dancer's
            self._snap = False
            return [heard] + [heard - err + k * P for k in range(1, n + 1)]
        if abs(err) <= PHASE_DEADBAND_S:
            return [heard + k * P for k in range(n + 1)]
        departed = abs(err) > CATCH_UP_ERROR * P and previous * err > 0 and abs(previous) > CATCH_UP_ERROR * P
        if w > 0:
            # a phase error that persists means the band's tempo is off: ease it (a PLL's integral term)
            self.period *= 1.0 - float(np.clip(PHASE_TO_TEMPO * w * err / (n * P), -MAX_TEMPO_STEP, MAX_TEMPO_STEP))
        bound = (MAX_CATCH_UP if departed else MAX_NUDGE) * P
        total = float(np.clip(PHASE_GAIN * w * err, -bound * n, bound * n))
        per_beat = total / n
        return [heard + k * (P - per_beat) for k in range(n + 1)]
