"""Motion rhythm: from skeleton frames to a kinetic onset envelope, motion
beats and a sliding-window tempo with beat phase.

The pipeline, all driven by timestamps (no clock reads):

1. :class:`MotionResampler` puts irregular frames on a fixed 60 Hz grid
   (the reference method's rate), interpolating per joint.
2. :class:`DirectionalOnset` computes the reference method's directional
   kinetic onset: joint velocities are accumulated into K direction bins (a
   "directogram"); the positive frame-to-frame change summed over bins is the
   onset envelope, which peaks where the dancer hits a beat.
3. :class:`TempoTracker` keeps a sliding window of the envelope and, every
   :data:`UPDATE_INTERVAL_S`, estimates the tempo with librosa (autocorrelation
   tempogram with a log-normal prior, which resists half/double errors), then
   refines period and phase by a recency-weighted line fit through the motion
   beats. A new tempo is committed only when it persists.

Offline helpers (:func:`resample_frames`, :func:`directional_onset`,
:func:`pick_motion_beats`, :func:`estimate_tempo`) run the same steps on a
whole recording for evaluation.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .follow import MovementMeter, Observation
from .skeleton import DEFAULT_TORSO, SkeletonFrame, normalise, valid_mask

#: Internal motion rate (frames per second), as in the reference method.
MOTION_RATE = 60.0
#: Direction bins of the directogram (the reference method's K).
DIRECTION_BINS = 10
#: Longest gap between frames that is interpolated; longer gaps count as no motion.
MAX_GAP_S = 0.5
#: Sliding window the tempo is estimated over.
TEMPO_WINDOW_S = 8.0
#: Least motion history before a first tempo estimate.
MIN_WINDOW_S = 2.0
#: How often (motion time) the tempo estimate is updated.
UPDATE_INTERVAL_S = 0.25
#: Tempo range (BPM).
MIN_BPM, MAX_BPM = 60.0, 200.0
#: Centre of the tempo prior before lock-in (BPM); the prior is log-normal, one octave wide.
PRIOR_BPM = 115.0
#: Motion beats older than this weigh 1/e as much in the period/phase fit (s).
FIT_TIME_CONSTANT_S = 1.8
#: Motion beats this many beat periods old weigh 1/e as much in the live fit.
FIT_TIME_CONSTANT_BEATS = 3.5
#: The fit spans at least this many beat periods (slow tempi), within the window.
FIT_SPAN_BEATS = 10
#: Span of motion beats used for the period/phase fit (s).
FIT_SPAN_S = 6.0
#: A motion beat further than this fraction of a period from the fitted grid is an outlier.
INLIER_TOLERANCE = 0.2
#: Width of the tempo prior around the committed tempo once locked (octaves).
LOCKED_PRIOR_OCTAVES = 0.5
#: ... and never further than this from it (s).
MAX_INLIER_S = 0.12
#: Consecutive consistent estimates needed for the first lock-in.
LOCK_UPDATES = 3
#: Estimates within this relative difference of the committed tempo are followed at once.
FOLLOW_TOLERANCE = 0.06
#: ... but once a lock is older than STEP_AFTER_LOCK_S, a step of more than STEP_TOLERANCE only
#: when the next fit agrees with it (within as much): one outlying fit (a move with another
#: rhythm) would otherwise walk a settled estimate off, step by step. The first seconds of a
#: lock are free, while the fit still refines the tempo it locked at.
STEP_TOLERANCE = 0.03
STEP_AFTER_LOCK_S = 4.0
#: A larger tempo change is committed after it persists this long (s).
COMMIT_AFTER_S = 1.5
#: A half/double-tempo change is committed only after it persists this long (s).
OCTAVE_COMMIT_AFTER_S = 6.0
#: Least confidence for an estimate to count.
MIN_CONFIDENCE = 0.35
#: Cut-off of the causal low-pass (2nd-order Butterworth) applied to joint positions
#: before differencing: pose estimators jitter by a few thousandths of the image per
#: frame, which differencing turns into velocities as large as the dance's own.
POSE_LOWPASS_HZ = 6.0
#: A joint missing for at most this long is held at its last position (s).
JOINT_HOLD_S = 0.25
#: Causal moving average over the onset envelope (frames).
ENVELOPE_SMOOTHING = 3
#: Delay of the onset envelope behind the movement it measures: the low-pass, the
#: envelope smoothing and the two differences. Measured on sharp hits (the synthetic
#: dancer's beats) at 70-180 BPM: 89-91 ms, constant across tempi and noise levels.
ONSET_LAG_S = 0.09
#: Time constant of the torso-length estimate that scales positions (s).
TORSO_TIME_CONSTANT_S = 2.0
#: Joints whose mean vertical velocity is the body's bounce (COCO-17 shoulders and hips).
BOUNCE_JOINTS = (5, 6, 11, 12)
#: Weight of the bounce's autocorrelation beside the onset envelope's when the tempo
#: is scored (the onset envelope weighs 1). Real dancers bounce on the beat with the
#: torso while their limbs move at two or three rates: on the nine real videos, 8 s
#: windows gave the soundtrack's tempo (octave-folded, within 4 %) in 27 % of windows
#: from the onset envelope alone and 51 % with the bounce beside it (mean over clips).
BOUNCE_WEIGHT = 1.0


class MotionResampler:
    """Irregular frames in, poses on a fixed grid out.

    Grid times are ``k / rate`` for integers ``k`` on the session timeline, so
    the grid does not depend on when the first frame arrived.
    """

    def __init__(self, rate: float = MOTION_RATE, max_gap_s: float = MAX_GAP_S):
        self.rate = rate
        self.max_gap_s = max_gap_s
        self._prev_t: float | None = None
        self._prev: np.ndarray | None = None
        self._next_k: int | None = None
        self.gaps = 0

    def push(self, t: float, pose: np.ndarray) -> list[tuple[int, np.ndarray, bool]]:
        """Add a pose (``(17, 2)``, NaN = missing) at time ``t``.

        Returns ``(k, pose, after_gap)`` for every grid index ``k`` now
        passed; ``after_gap`` marks the first grid pose after a gap (its motion
        must not be compared with the pose before the gap). Frames that are
        not newer than the previous one are ignored.
        """
        pose = np.asarray(pose, dtype=np.float64)
        if self._prev_t is None:
            self._prev_t, self._prev = t, pose
            self._next_k = math.ceil(t * self.rate - 1e-9)
            return []
        if t <= self._prev_t:
            return []
        out: list[tuple[int, np.ndarray, bool]] = []
        gap = t - self._prev_t > self.max_gap_s
        if gap:
            self.gaps += 1
            k = math.ceil(t * self.rate - 1e-9)
            if k / self.rate <= t + 1e-12 and abs(k / self.rate - t) < 1e-9:
                out.append((k, pose.copy(), True))
                k += 1
            self._next_k = k
            first_after_gap = not out
            self._prev_t, self._prev = t, pose
            if first_after_gap:
                self._gap_pending = True
            return out
        k = self._next_k
        while k / self.rate < t:
            g = k / self.rate
            w = (g - self._prev_t) / (t - self._prev_t)
            p = self._prev + (pose - self._prev) * w
            # a joint missing on either side stays missing
            out.append((k, p, getattr(self, "_gap_pending", False)))
            self._gap_pending = False
            k += 1
        self._next_k = k
        self._prev_t, self._prev = t, pose
        return out


class DirectionalOnset:
    """The directional kinetic onset of the reference method, one grid frame at a time."""

    def __init__(self, rate: float = MOTION_RATE, bins: int = DIRECTION_BINS):
        self.rate = rate
        self.bins = bins
        self._prev_pose: np.ndarray | None = None
        self._prev_vel: np.ndarray | None = None

    def reset(self) -> None:
        self._prev_pose = None
        self._prev_vel = None

    def step(self, pose: np.ndarray) -> float:
        """Onset strength for this frame (torso lengths per second, summed over bins).

        The flux compares the directograms of this and the previous frame over
        the joints present in both, so a joint that drops out or comes back is
        not mistaken for a movement onset.
        """
        if self._prev_pose is None:
            self._prev_pose = pose
            return 0.0
        vel = (pose - self._prev_pose) * self.rate
        self._prev_pose = pose
        prev_vel, self._prev_vel = self._prev_vel, vel
        if prev_vel is None:
            return 0.0
        both = np.isfinite(vel).all(axis=1) & np.isfinite(prev_vel).all(axis=1)
        if not both.any():
            return 0.0
        now = directogram(vel[both], self.bins)
        before = directogram(prev_vel[both], self.bins)
        return float(np.maximum(now - before, 0.0).sum())


def directogram(vel: np.ndarray, bins: int = DIRECTION_BINS) -> np.ndarray:
    """Velocity magnitudes of all joints accumulated into ``bins`` direction sectors."""
    ok = np.isfinite(vel).all(axis=1)
    v = vel[ok]
    out = np.zeros(bins)
    if len(v):
        mag = np.hypot(v[:, 0], v[:, 1])
        ang = np.arctan2(v[:, 1], v[:, 0])
        idx = np.floor((ang + np.pi) / (2 * np.pi) * bins).astype(int) % bins
        np.add.at(out, idx, mag)
    return out


def pick_peaks(env: np.ndarray, rate: float = MOTION_RATE, *, half_window_s: float = 0.1,
               mean_window_s: float = 0.5, delta: float = 0.1) -> np.ndarray:
    """Motion beats: local maxima over ``±half_window_s`` above the local mean plus ``delta``.

    ``env`` is normalised by its maximum first (as the reference method does).
    Returns fractional frame positions (parabolic interpolation around each peak).
    """
    env = np.asarray(env, dtype=np.float64)
    if len(env) < 3 or not np.isfinite(env).all() or env.max() <= 0:
        return np.zeros(0)
    x = env / env.max()
    hw = max(1, int(round(half_window_s * rate)))
    mw = max(1, int(round(mean_window_s * rate)))
    from scipy.ndimage import maximum_filter1d, uniform_filter1d
    local_max = maximum_filter1d(x, size=2 * hw + 1, mode="constant", cval=0.0)
    local_mean = uniform_filter1d(x, size=2 * mw + 1, mode="nearest")
    cand = np.flatnonzero((x == local_max) & (x > local_mean + delta) & (x > 0))
    # keep one index per plateau
    if len(cand) > 1:
        cand = cand[np.concatenate([[True], np.diff(cand) > hw])]
    pos = cand.astype(np.float64)
    inner = (cand > 0) & (cand < len(x) - 1)
    c = cand[inner]
    a, b, d = x[c - 1], x[c], x[c + 1]
    den = a - 2 * b + d
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(np.abs(den) > 1e-12, 0.5 * (a - d) / den, 0.0)
    pos[inner] += np.clip(off, -0.5, 0.5)
    return pos


def pick_motion_beats(env: np.ndarray, rate: float = MOTION_RATE) -> np.ndarray:
    """Frame indices of the motion beats (integer, for binary beat vectors)."""
    return np.unique(np.clip(np.round(pick_peaks(env, rate)).astype(int), 0, max(0, len(env) - 1)))


def beat_vector(env: np.ndarray, rate: float = MOTION_RATE) -> np.ndarray:
    """The reference method's binary motion-beat vector, one value per frame."""
    out = np.zeros(len(env), dtype=np.float32)
    out[pick_motion_beats(env, rate)] = 1.0
    return out


class PoseLowpass:
    """Causal 2nd-order Butterworth low-pass per joint coordinate, NaN-aware.

    A joint missing for up to ``hold_frames`` frames is held at its last
    value (pose estimators drop joints for a frame or two all the time, and
    restarting the filter on every return would read as motion). A joint
    missing for longer outputs NaN; when it returns its filter restarts at the
    returned position, so a re-appearing joint never looks like a jump.
    """

    def __init__(self, cutoff_hz: float = POSE_LOWPASS_HZ, rate: float = MOTION_RATE,
                 hold_frames: int | None = None):
        from scipy.signal import butter

        self.b, self.a = butter(2, cutoff_hz / (rate / 2))
        self.hold_frames = int(round(JOINT_HOLD_S * rate)) if hold_frames is None else hold_frames
        self._x1 = self._x2 = self._y1 = self._y2 = None
        self._last: np.ndarray | None = None
        self._missing: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        if self._last is None:
            self._last = x.copy()
            self._missing = np.zeros(x.shape, dtype=int)
        gone = ~np.isfinite(x)
        self._missing = np.where(gone, self._missing + 1, 0)
        held = gone & np.isfinite(self._last) & (self._missing <= self.hold_frames)
        x[held] = self._last[held]
        self._last = np.where(np.isfinite(x), x, self._last)
        if self._x1 is None:
            self._x1 = self._x2 = self._y1 = self._y2 = x.copy()
            return x.copy()
        b, a = self.b, self.a
        y = b[0] * x + b[1] * self._x1 + b[2] * self._x2 - a[1] * self._y1 - a[2] * self._y2
        restart = ~np.isfinite(self._y1) & np.isfinite(x)
        y = np.where(restart, x, y)
        for name in ("_x1", "_x2", "_y1", "_y2"):
            st = getattr(self, name)
            st[restart] = x[restart]
        self._x2, self._x1 = self._x1, x.copy()
        self._y2, self._y1 = self._y1, y.copy()
        return y


def torso_length(frame: SkeletonFrame) -> float | None:
    """Shoulder-centre to hip-centre distance of a frame, or None when not visible."""
    j = frame.to_coco17().joints
    ok = valid_mask(j)
    if not (ok[5] or ok[6]) or not (ok[11] or ok[12]):
        return None
    sh = np.nanmean(j[[5, 6], 0:2][ok[[5, 6]]], axis=0)
    hp = np.nanmean(j[[11, 12], 0:2][ok[[11, 12]]], axis=0)
    d = float(np.hypot(*(sh - hp)))
    return d if d > 1e-3 else None


class RhythmFrontEnd:
    """Frames of one person in, onset values on the 60 Hz grid out.

    Positions are divided by a slowly tracked torso length (so the envelope
    does not depend on distance to the camera) but not centred: the whole
    body's bounce is part of the rhythm, and a per-frame centre would add the
    hips' jitter to every joint.
    """

    def __init__(self, rate: float = MOTION_RATE):
        self.rate = rate
        self.resampler = MotionResampler(rate)
        self.lowpass = PoseLowpass(POSE_LOWPASS_HZ, rate)
        self.onset = DirectionalOnset(rate)
        self._smooth: deque[float] = deque(maxlen=ENVELOPE_SMOOTHING)
        self.movement = MovementMeter(rate)
        self._torso: float | None = None
        self._torso_t: float | None = None
        self._bounce_prev: np.ndarray | None = None

    def push(self, frame: SkeletonFrame) -> list[tuple[int, float]]:
        """Add a frame; returns ``(grid index, onset value)`` for every grid frame passed."""
        return [(k, v) for k, v, _moving, _bounce in self.push_rhythm(frame)]

    def push_moving(self, frame: SkeletonFrame) -> list[tuple[int, float, bool]]:
        """As :meth:`push`, with whether the dancer moves at each grid frame (:attr:`movement`)."""
        return [(k, v, moving) for k, v, moving, _bounce in self.push_rhythm(frame)]

    def push_rhythm(self, frame: SkeletonFrame) -> list[tuple[int, float, bool, float]]:
        """As :meth:`push_moving`, with the body's bounce at each grid frame: the mean
        vertical velocity of the :data:`BOUNCE_JOINTS` (torso lengths per second, signed)."""
        tl = torso_length(frame)
        if tl is not None:
            if self._torso is None:
                self._torso = tl
            else:
                dt = max(0.0, frame.t - (self._torso_t or frame.t))
                a = 1.0 - math.exp(-dt / TORSO_TIME_CONSTANT_S)
                self._torso += a * (tl - self._torso)
            self._torso_t = frame.t
        scale = self._torso or DEFAULT_TORSO
        j = frame.to_coco17().joints
        xy = np.where(valid_mask(j)[:, None], j[:, 0:2], np.nan) / scale
        out = []
        for k, pose, after_gap in self.resampler.push(frame.t, xy):
            if after_gap:
                self.onset.reset()
                self.lowpass = PoseLowpass(POSE_LOWPASS_HZ, self.rate)
                self._smooth.clear()
                self._bounce_prev = None
            filtered = self.lowpass(pose)
            self._smooth.append(self.onset.step(filtered))
            self.movement.push(k / self.rate, filtered)
            out.append((k, float(np.mean(self._smooth)), self.movement.active(k / self.rate),
                        self._bounce(filtered)))
        return out

    def _bounce(self, pose: np.ndarray) -> float:
        y = pose[list(BOUNCE_JOINTS), 1]
        prev, self._bounce_prev = self._bounce_prev, y
        if prev is None:
            return 0.0
        both = np.isfinite(y) & np.isfinite(prev)
        return float(np.mean(y[both] - prev[both]) * self.rate) if both.any() else 0.0


#: A locked tracker also scores the last SWITCH_WINDOW_S (s) alone, with the broad prior (none
#: toward its tempo); a tempo there at least SWITCH_STRENGTH strong and more than
#: SWITCH_MIN_CHANGE (relative) from the locked one and its octaves, and from the octaves and 3:2
#: relatives of the whole window's tempo, is tried on the recent motion beats: a sudden change
#: is seen within seconds, not once it fills the whole window.
#: SWITCH_WINDOW_S = 0 turns this off.
SWITCH_WINDOW_S = 3.0
SWITCH_STRENGTH = 0.3
SWITCH_MIN_CHANGE = 0.1

#: Multiples of the beat period summed when scoring a tempo (harmonic sum).
HARMONICS = 4
#: Candidate tempi are scored every this many BPM.
TEMPO_STEP_BPM = 0.5


#: Autocorrelation strength (0..1) below which the motion has no rhythm (the dancer
#: is still and only sensor jitter is left: measured 0.12 for jitter, 0.3-0.95 dancing).
MIN_RHYTHM_STRENGTH = 0.2
#: Motion beats weaker than this fraction of the window's strong ones (90th percentile)
#: are ignored by the beat-grid fit (jitter bumps, small gestures).
PEAK_FLOOR = 0.3
#: When the rhythm fades, the estimate from this long before is held (s).
HOLD_LOOKBACK_S = 2.5
#: With no strong motion beat for this many beat periods, tempo and phase are held.
HOLD_AFTER_BEATS = 1.5
#: The last this-many seconds must show rhythm too, so stopping is noticed quickly.
RECENT_RHYTHM_S = 4.0
#: An octave relative (x2, /2) whose autocorrelation is at least this fraction of the
#: best's is equally plausible; the one nearer PRIOR_BPM is then chosen.
OCTAVE_AMBIGUITY = 0.75


def _autocorrelation(env: np.ndarray, rate: float) -> np.ndarray:
    import librosa

    x = np.asarray(env, dtype=np.float64)
    x = x - x.mean()
    max_lag = int(math.ceil(HARMONICS * 60.0 / MIN_BPM * rate)) + 2
    ac = librosa.autocorrelate(x, max_size=min(len(x), max_lag))
    if ac[0] <= 0:
        return np.zeros(len(ac))
    ac = ac / (len(x) - np.arange(len(ac)))     # unbiased: long lags are not penalised
    return ac / ac[0]


def _ac_at(ac: np.ndarray, lags: np.ndarray) -> np.ndarray:
    ok = lags < len(ac) - 1
    out = np.zeros(len(lags))
    out[ok] = np.interp(lags[ok], np.arange(len(ac)), ac)
    return out


def tempo_scores(env: np.ndarray, rate: float = MOTION_RATE, *, prior_bpm: float = PRIOR_BPM,
                 prior_octaves: float = 1.0, ac: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score every tempo in MIN_BPM..MAX_BPM: ``(bpms, weighted scores, raw scores)``.

    The raw score is the envelope's autocorrelation (librosa's) averaged at
    1..HARMONICS beat periods; summing multiples of the period favours the
    true beat over its 3/2 relatives and off-beat bumps. The weighted score
    multiplies in a log-normal tempo prior. ``ac`` replaces the envelope's own
    autocorrelation (:func:`rhythm_autocorrelation` of several envelopes).
    """
    ac = _autocorrelation(env, rate) if ac is None else ac
    bpms = np.arange(MIN_BPM, MAX_BPM + 1e-9, TEMPO_STEP_BPM)
    lags = 60.0 / bpms * rate
    score = np.zeros_like(bpms)
    used = np.zeros_like(bpms)
    for k in range(1, HARMONICS + 1):
        lk = lags * k
        score += _ac_at(ac, lk)
        used += lk < len(ac) - 1
    raw = np.maximum(np.where(used > 0, score / np.maximum(used, 1), 0.0), 0.0)
    prior = np.exp(-0.5 * (np.log2(bpms / prior_bpm) / prior_octaves) ** 2)
    return bpms, raw * prior, raw


def coarse_tempo(env: np.ndarray, rate: float = MOTION_RATE, *, prior_bpm: float = PRIOR_BPM,
                 prior_octaves: float = 1.0) -> float:
    """The most plausible tempo (BPM) of an onset envelope (see :func:`rhythm_estimate`)."""
    return rhythm_estimate(env, rate, prior_bpm=prior_bpm, prior_octaves=prior_octaves)[0]


def rhythm_autocorrelation(envs: Sequence[np.ndarray], weights: Sequence[float],
                           rate: float = MOTION_RATE) -> np.ndarray:
    """The weighted mean of several envelopes' normalised autocorrelations (a flat one,
    such as a still torso's bounce, adds nothing but lowers every score alike)."""
    acs = [_autocorrelation(e, rate) for e in envs]
    n = min(len(a) for a in acs)
    return sum(w * a[:n] for w, a in zip(weights, acs)) / float(sum(weights))


def rhythm_estimate(env: np.ndarray, rate: float = MOTION_RATE, *, prior_bpm: float = PRIOR_BPM,
                    prior_octaves: float = 1.0, ac: np.ndarray | None = None) -> tuple[float, float]:
    """``(bpm, strength)``: the best-scoring tempo and its raw autocorrelation strength (0..1).

    Where the double or half of the best tempo is almost as well supported
    (an envelope with a hit on every beat supports both), the one nearer the
    prior's centre wins. ``ac``: as for :func:`tempo_scores`.
    """
    ac = _autocorrelation(env, rate) if ac is None else ac
    bpms, weighted, raw = tempo_scores(env, rate, prior_bpm=prior_bpm, prior_octaves=prior_octaves, ac=ac)
    i = int(np.argmax(weighted))
    best, strength = float(bpms[i]), float(raw[i])
    single = lambda b: float(_ac_at(ac, np.array([60.0 / b * rate]))[0])  # noqa: E731
    base = single(best)
    options = [best] + [c for c in (best * 2, best / 2) if MIN_BPM <= c <= MAX_BPM
                        and single(c) >= OCTAVE_AMBIGUITY * base]
    chosen = min(options, key=lambda b: abs(math.log2(b / prior_bpm)))
    if chosen != best:
        j = int(np.argmin(np.abs(bpms - chosen)))
        lo, hi = max(0, j - 4), min(len(bpms), j + 5)
        chosen = float(bpms[lo + int(np.argmax(raw[lo:hi]))])
    return chosen, strength


def estimate_tempo(env: np.ndarray, rate: float = MOTION_RATE) -> float:
    """Offline: the dominant tempo (BPM) of a whole onset envelope, refined by the beat fit."""
    coarse = coarse_tempo(env, rate)
    peaks = pick_peaks(env, rate) / rate
    fit = fit_beat_grid(peaks, 60.0 / coarse, weights_tc=None)
    return 60.0 / fit.period if fit is not None else coarse


@dataclass(frozen=True)
class BeatFit:
    period: float        #: seconds per beat at the anchor
    anchor: float        #: time of a beat (the latest fitted one)
    inliers: int         #: motion beats on the fitted grid
    expected: int        #: beats the fitted span should hold
    residual: float      #: mean |residual| of inliers as a fraction of the period
    drift: float = 0.0   #: change of the period per beat (s/beat), positive = slowing down

    @property
    def confidence(self) -> float:
        cover = min(1.0, self.inliers / max(1, self.expected))
        return float(max(0.0, cover * (1.0 - self.residual / INLIER_TOLERANCE * 0.5)))


#: Largest tempo trend the fit may report, as a fraction of the period per beat.
MAX_DRIFT = 0.01
#: Beats within this fraction of a period of the fitted line always count for the trend fit.
TIGHT_TOLERANCE = 0.04
#: A tempo trend is kept only if it cuts the fit's weighted squared residual by this fraction.
TREND_GAIN = 0.05
#: Fit a tempo trend (ramps) as well as period and phase.
FIT_TREND = True


def fit_beat_grid(times: np.ndarray, period0: float, *, heights: np.ndarray | None = None,
                  weights_tc: float | None = FIT_TIME_CONSTANT_S,
                  tolerance: float = INLIER_TOLERANCE, max_change: float = 0.15,
                  trend: bool = False, phase_hint: float | None = None) -> BeatFit | None:
    """Fit a beat grid ``t = anchor + period * k (+ drift * k^2 / 2)`` through motion-beat times.

    The grid's phase is the one the strongest recent motion beats support
    (``heights`` weigh each beat; off-beat bumps are weaker than hits), or the
    one nearest ``phase_hint`` (a predicted beat time) when that is given and
    supported. Each time gets the nearest integer beat index; outliers are
    dropped; recent beats weigh more when ``weights_tc`` is set; ``trend``
    adds a tempo drift term so ramps are followed without lag. Returns
    ``None`` when fewer than three beats fit.
    """
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 3 or period0 <= 0:
        return None
    # an inlier lies within a fraction of a period, but never further than MAX_INLIER_S:
    # at slow tempi a fifth of a beat would admit off-beat gestures
    tolerance = min(tolerance, MAX_INLIER_S / period0)
    h = np.ones(len(times)) if heights is None else np.asarray(heights, dtype=np.float64)
    t_last = times[-1]
    w_all = np.ones(len(times)) if weights_tc is None else np.exp(-(t_last - times) / weights_tc)

    def support(anchor: float) -> float:
        k = np.round((times - anchor) / period0)
        r = np.abs(times - (anchor + k * period0))
        return float(np.sum(h * w_all * (r <= tolerance * period0)))

    recent = times[times >= t_last - 2 * period0]
    anchors = list(recent)
    if phase_hint is not None:
        anchors.append(phase_hint)
    scores = [support(a) for a in anchors]
    best = int(np.argmax(scores))
    if phase_hint is not None and scores[-1] >= 0.8 * scores[best]:
        best = len(anchors) - 1                 # stay on the current phase unless clearly wrong
    anchor, period, drift = anchors[best], period0, 0.0
    for _ in range(3):
        k = np.round((times - anchor) / period)
        resid = times - (anchor + k * period + drift * k * k / 2)
        mask = np.abs(resid) <= tolerance * period
        if mask.sum() < 3 or len(np.unique(k[mask])) < 3:
            return None
        kk, tt, ww = k[mask], times[mask], w_all[mask] * h[mask]
        A2 = np.column_stack([np.ones_like(kk), kk])
        W = np.sqrt(ww)
        sol, *_ = np.linalg.lstsq(A2 * W[:, None], tt * W, rcond=None)
        drift = 0.0
        drift = 0.0
        if trend and len(np.unique(kk)) >= 6:
            # The trend is fitted on tightly chosen beats only: one misassigned off-beat bump
            # at the recent end would bend it. "Tight" is judged against the curved fit
            # (residuals within 3 x MAD), so a real ramp's outer beats are kept.
            A3 = np.column_stack([np.ones_like(kk), kk, kk * kk / 2])
            sol3, *_ = np.linalg.lstsq(A3 * W[:, None], tt * W, rcond=None)
            r = tt - A3 @ sol3
            tight = np.abs(r) <= max(TIGHT_TOLERANCE * period, 3.0 * 1.4826 * np.median(np.abs(r)))
            if len(np.unique(kk[tight])) >= 6:
                k2, t2, w2 = kk[tight], tt[tight], ww[tight]
                W2 = np.sqrt(w2)
                B2 = np.column_stack([np.ones_like(k2), k2])
                B3 = np.column_stack([np.ones_like(k2), k2, k2 * k2 / 2])
                s2, *_ = np.linalg.lstsq(B2 * W2[:, None], t2 * W2, rcond=None)
                s3, *_ = np.linalg.lstsq(B3 * W2[:, None], t2 * W2, rcond=None)
                r2 = np.sum(w2 * (t2 - B2 @ s2) ** 2)
                r3 = np.sum(w2 * (t2 - B3 @ s3) ** 2)
                if r3 < (1.0 - TREND_GAIN) * r2:
                    sol = s3
                    drift = float(np.clip(s3[2], -MAX_DRIFT * s3[1], MAX_DRIFT * s3[1]))
        anchor_new, period_new = float(sol[0]), float(sol[1])
        if not (abs(period_new / period0 - 1.0) <= max_change) or period_new <= 0:
            return None
        anchor, period = anchor_new, period_new
    k = np.round((times - anchor) / period)
    resid = times - (anchor + k * period + drift * k * k / 2)
    mask = np.abs(resid) <= tolerance * period
    span = times[-1] - times[0]
    expected = int(round(span / period)) + 1
    inliers = len(np.unique(k[mask]))
    res = float(np.mean(np.abs(resid[mask])) / period) if mask.any() else 1.0
    # re-anchor on the grid beat nearest the latest motion beat, with the local period there
    k_last = float(np.round((t_last - anchor) / period))
    new_anchor = anchor + k_last * period + drift * k_last * k_last / 2
    local_period = period + drift * k_last
    return BeatFit(period=local_period, anchor=new_anchor, inliers=inliers,
                   expected=expected, residual=res, drift=drift)


@dataclass(frozen=True)
class TempoEstimate:
    """What the tracker believes at time ``t``."""

    t: float                  #: motion time of the estimate
    bpm: float                #: committed tempo (BPM)
    period: float             #: seconds per beat (60 / bpm, refined)
    anchor: float             #: session time of a dance beat
    confidence: float         #: 0..1 of the latest estimate
    locked: bool              #: True once the tracker has locked on to a dancer
    still: bool               #: True while the dancer is not moving
    drift: float = 0.0        #: change of the period per beat (tempo trend), s/beat

    #: The trend is extrapolated at most this many beats ahead, then held.
    MAX_TREND_BEATS = 3

    def beat_time(self, n: int) -> float:
        """Predicted time of beat ``n`` counted from the anchor (negative: past beats)."""
        m = max(-self.MAX_TREND_BEATS, min(self.MAX_TREND_BEATS, n))
        return self.anchor + n * self.period + self.drift * (m * m / 2 + m * (n - m))

    def _index_near(self, t: float) -> int:
        n = int(round((t - self.anchor) / self.period))
        for _ in range(4):
            local = self.period + self.drift * max(-self.MAX_TREND_BEATS, min(self.MAX_TREND_BEATS, n))
            step = int(round((t - self.beat_time(n)) / max(local, 1e-3)))
            if step == 0:
                break
            n += step
        return n

    def next_beat(self, after: float) -> float:
        """The first predicted dance beat at or after ``after``."""
        n = self._index_near(after)
        while self.beat_time(n) < after - 1e-9:
            n += 1
        while self.beat_time(n - 1) >= after - 1e-9:
            n -= 1
        return self.beat_time(n)

    def nearest_beat(self, t: float) -> float:
        n = self._index_near(t)
        return min((self.beat_time(m) for m in (n - 1, n, n + 1)), key=lambda b: abs(b - t))

    def period_at(self, t: float) -> float:
        """Local beat period around time ``t``."""
        n = self._index_near(t)
        return self.beat_time(n + 1) - self.beat_time(n)

    def to_dict(self) -> dict:
        return {"bpm": round(self.bpm, 3), "confidence": round(self.confidence, 3),
                "locked": self.locked, "still": self.still}


class TempoTracker:
    """Sliding-window tempo and beat phase from the onset envelope, updated continuously.

    Feed every grid frame's onset value with :meth:`push` (index ``k`` on the
    :data:`MOTION_RATE` grid). Read :attr:`estimate`. Deterministic: the state
    depends only on the values pushed.
    """

    def __init__(self, *, rate: float = MOTION_RATE, window_s: float = TEMPO_WINDOW_S,
                 update_interval_s: float = UPDATE_INTERVAL_S, initial_bpm: float = 120.0):
        self.rate = rate
        self.window = int(round(window_s * rate))
        self.min_window = int(round(MIN_WINDOW_S * rate))
        self.update_every = max(1, int(round(update_interval_s * rate)))
        self._env: deque[float] = deque(maxlen=self.window)
        self._bounce: deque[float] = deque(maxlen=self.window)
        self._last_k: int | None = None
        self._since_update = 0
        self._agree = 0
        self._previous_raw: float | None = None              # the last confident fit's tempo
        self._locked_at: float | None = None                 # when the committed tempo was taken
        self._candidate: tuple[float, float] | None = None   # (bpm, since t)
        self.estimate = TempoEstimate(t=0.0, bpm=initial_bpm, period=60.0 / initial_bpm,
                                      anchor=0.0, confidence=0.0, locked=False, still=True)
        self.raw_bpm: float | None = None
        self.strength = 0.0
        #: The latest beat-grid fit while the dancer moves, confident or not (None: no fit).
        self.observation: Observation | None = None
        #: The window's most plausible tempo while the dancer moves (BPM; None before that).
        self.coarse_bpm: float | None = None
        self._moving: bool | None = None
        self._history: deque[tuple[float, TempoEstimate]] = deque()
        self.updates = 0

    # -- input -------------------------------------------------------------
    def push(self, k: int, onset: float, moving: bool | None = None, bounce: float | None = None) -> bool:
        """Add the onset value of grid frame ``k``; returns True if the estimate was updated.

        ``moving`` (from :class:`d2m.follow.MovementMeter`) says whether the dancer moves:
        then a weak rhythm still yields an :attr:`observation` (music follows an unclear
        beat softly), and stillness is judged from movement instead of from the rhythm.
        ``bounce`` (from :meth:`RhythmFrontEnd.push_rhythm`) is scored beside the onset
        envelope for the tempo (:data:`BOUNCE_WEIGHT`); the beat phase is the onsets' alone.
        """
        if moving is not None:
            self._moving = bool(moving)
        if self._last_k is not None and k > self._last_k + 1:
            for _ in range(min(k - self._last_k - 1, self.window)):
                self._env.append(0.0)        # a gap is no motion
                self._bounce.append(0.0)
        self._env.append(float(onset) if math.isfinite(onset) else 0.0)
        self._bounce.append(float(bounce) if bounce is not None and math.isfinite(bounce) else 0.0)
        self._last_k = k
        self._since_update += 1
        if self._since_update >= self.update_every:
            self._since_update = 0
            self._update(k / self.rate)
            return True
        return False

    def _with_bounce(self, env: np.ndarray, bounce: np.ndarray) -> np.ndarray | None:
        """The autocorrelation the tempo is scored on: the onsets' and the bounce's together
        (:func:`rhythm_autocorrelation`), or None (the onsets' alone) where the bounce is flat."""
        if BOUNCE_WEIGHT > 0 and np.ptp(bounce) > 0:
            return rhythm_autocorrelation([env, bounce], [1.0, BOUNCE_WEIGHT], self.rate)
        return None

    def envelope(self, n: int | None = None) -> np.ndarray:
        """The last ``n`` onset values (all in the window if None)."""
        env = np.fromiter(self._env, dtype=np.float64, count=len(self._env))
        return env if n is None else env[-n:]

    def recent_peaks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(times, heights)`` of the motion beats in the window (lag-compensated session
        times), without the weak ones (below PEAK_FLOOR of the strong)."""
        env = self.envelope()
        if len(env) < 3 or self._last_k is None:
            return np.zeros(0), np.zeros(0)
        pos = pick_peaks(env, self.rate)
        heights = np.interp(pos, np.arange(len(env)), env)
        t0 = (self._last_k - len(env) + 1) / self.rate
        keep = heights >= PEAK_FLOOR * np.percentile(heights, 90) if len(heights) else heights > 0
        return pos[keep] / self.rate + t0 - ONSET_LAG_S, heights[keep]

    # -- estimation ----------------------------------------------------------
    def _update(self, t: float) -> None:
        env = self.envelope()
        est = self.estimate
        if len(env) < self.min_window:
            return
        self.updates += 1
        prior = est.bpm if est.locked else PRIOR_BPM
        bounce = np.fromiter(self._bounce, dtype=np.float64, count=len(self._bounce))
        ac = self._with_bounce(env, bounce)
        coarse, strength = rhythm_estimate(env, self.rate, prior_bpm=prior, ac=ac,
                                           prior_octaves=LOCKED_PRIOR_OCTAVES if est.locked else 1.0)
        n_recent = int(RECENT_RHYTHM_S * self.rate)
        recent = env[-n_recent:]
        recent_strength = rhythm_estimate(recent, self.rate, prior_bpm=coarse, prior_octaves=0.5)[1]
        if ac is not None:
            # a clear bounce is rhythm too, where the limbs' onsets are not (the stronger counts)
            recent_bounce = bounce[-n_recent:]
            if np.ptp(recent_bounce) > 0:
                recent_strength = max(recent_strength, rhythm_estimate(
                    recent_bounce, self.rate, prior_bpm=coarse, prior_octaves=0.5)[1])
        # stillness is judged on the recent window: the full one smears under tempo ramps
        self.strength = recent_strength
        weak = self.strength < MIN_RHYTHM_STRENGTH
        if self._moving is False or (weak and self._moving is None):
            self.observation = None
            if not est.still and est.locked and self._history:
                # the rhythm faded: hold what was believed before it did, with no trend
                held = self._history[0][1]
                est = _replace(held, drift=0.0)
            self.estimate = _replace(est, t=t, confidence=0.0, still=True)
            self._agree = 0
            return
        self.coarse_bpm = coarse
        self._history.append((t, est))
        while self._history and t - self._history[0][0] > HOLD_LOOKBACK_S:
            self._history.popleft()
        t0 = t - (len(env) - 1) / self.rate
        pos = pick_peaks(env, self.rate)
        heights = np.interp(pos, np.arange(len(env)), env)
        peaks = pos / self.rate + t0 - ONSET_LAG_S
        period0 = 60.0 / coarse
        if est.locked:
            period0 = _same_octave(period0, est.period)
        # span and recency are counted in beats, so slow dances get as many beats as fast ones
        span = max(FIT_SPAN_S, FIT_SPAN_BEATS * period0)
        if est.locked and SWITCH_WINDOW_S > 0:
            # a sudden change (a new song in the dancer's head): the last few seconds alone, with
            # the broad prior (no pull toward the locked tempo), may show a tempo the whole window
            # does not yet; the fit then tries it on the recent motion beats (committed, as any
            # new tempo, only once it persisted)
            n_switch = int(SWITCH_WINDOW_S * self.rate)
            ac_recent = self._with_bounce(env[-n_switch:], bounce[-n_switch:])
            fresh, fresh_strength = rhythm_estimate(env[-n_switch:], self.rate, ac=ac_recent)
            if fresh_strength >= SWITCH_STRENGTH and not any(
                    abs(fresh / (b * r) - 1.0) <= SWITCH_MIN_CHANGE
                    for b, ratios in ((est.bpm, (0.5, 1.0, 2.0)), (coarse, (0.5, 2 / 3, 1.5, 2.0)))
                    for r in ratios):
                # (nor an octave or a 3:2 relative of the whole window's tempo: a few seconds of a
                # dance with half-time or triplet moves show those, and the short fit then pulls the
                # tracker away from a tempo the window still holds)
                period0, span = 60.0 / fresh, SWITCH_WINDOW_S
        keep = peaks >= t - span
        if keep.any():
            keep &= heights >= PEAK_FLOOR * np.percentile(heights[keep], 90)
        peaks, heights = peaks[keep], heights[keep]
        if len(peaks) == 0 or t - ONSET_LAG_S - peaks[-1] > HOLD_AFTER_BEATS * est.period:
            # no recent hit: the dancer paused; hold tempo and phase
            self.observation = None
            self.estimate = _replace(est, t=t, confidence=0.0)
            self._agree = 0
            return
        hint = None
        if est.locked:
            # the current phase is kept unless clearly wrong
            hint = est.nearest_beat(peaks[-1]) if len(peaks) else None
        fit = fit_beat_grid(peaks, period0, heights=heights, trend=FIT_TREND, phase_hint=hint,
                             weights_tc=FIT_TIME_CONSTANT_BEATS * period0)
        self.observation = None if fit is None else Observation(fit.period, fit.anchor, fit.confidence)
        if weak:
            # moving, but no clear rhythm yet: an observation for the music to lean on, no lock
            self.estimate = _replace(est, t=t, confidence=0.0 if fit is None else fit.confidence * 0.5,
                                     still=False)
            self._agree = 0
            return
        if fit is None or fit.confidence < MIN_CONFIDENCE:
            self.estimate = _replace(est, t=t, confidence=0.0 if fit is None else fit.confidence,
                                     still=False)
            self._agree = 0
            return
        raw = 60.0 / fit.period
        self.raw_bpm = raw
        previous, self._previous_raw = self._previous_raw, raw
        if not est.locked:
            if previous is not None and abs(raw / previous - 1) < 0.04:
                self._agree += 1
            else:
                self._agree = 1
            if self._agree >= LOCK_UPDATES:
                self._locked_at = t
                self.estimate = TempoEstimate(t, raw, fit.period, fit.anchor, fit.confidence, True, False)
            else:
                self.estimate = _replace(est, t=t, confidence=fit.confidence, still=False)
            return
        ratio = raw / est.bpm
        if abs(ratio - 1.0) <= FOLLOW_TOLERANCE:
            self._candidate = None
            settled = self._locked_at is not None and t - self._locked_at >= STEP_AFTER_LOCK_S
            if (settled and abs(ratio - 1.0) > STEP_TOLERANCE
                    and (previous is None or abs(raw / previous - 1.0) > STEP_TOLERANCE)):
                self.estimate = _replace(est, t=t, anchor=fit.anchor, confidence=fit.confidence,
                                         still=False)
                return
            self.estimate = TempoEstimate(t, raw, fit.period, fit.anchor, fit.confidence, True, False,
                                          drift=fit.drift)
            return
        octave = any(abs(ratio / r - 1.0) <= FOLLOW_TOLERANCE for r in (2.0, 0.5, 1.5, 2 / 3))
        cand = self._candidate
        if cand is not None and abs(raw / cand[0] - 1.0) <= 0.04:
            wait = OCTAVE_COMMIT_AFTER_S if octave else COMMIT_AFTER_S
            if t - cand[1] >= wait:
                self._candidate = None
                self._locked_at = t
                self.estimate = TempoEstimate(t, raw, fit.period, fit.anchor, fit.confidence, True, False)
                return
            self._candidate = (raw, cand[1])
        else:
            self._candidate = (raw, t)
        # keep the committed tempo; keep the phase fresh when the fit is on an octave of it
        self.estimate = _replace(est, t=t, confidence=fit.confidence, still=False)


def _same_octave(period: float, reference: float) -> float:
    """``period`` moved by factors of two to the octave nearest ``reference``."""
    while period < reference / 1.5:
        period *= 2
    while period > reference * 1.5:
        period /= 2
    return period


def _replace(est: TempoEstimate, **kw) -> TempoEstimate:
    from dataclasses import replace
    return replace(est, **kw)


# -- offline helpers ------------------------------------------------------------

def onset_envelope(frames: Iterable[SkeletonFrame], rate: float = MOTION_RATE,
                   person: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Offline: ``(grid times, onset envelope)`` of one person's frames, as the live tracker sees it."""
    fe = RhythmFrontEnd(rate)
    ks, vs = [], []
    for f in frames:
        if person is not None and f.person != person:
            continue
        for k, v in fe.push(f):
            ks.append(k)
            vs.append(v)
    if not ks:
        return np.zeros(0), np.zeros(0)
    # fill grid gaps with zeros so times are regular
    k0 = ks[0]
    env = np.zeros(ks[-1] - k0 + 1)
    env[np.array(ks) - k0] = vs
    return (np.arange(len(env)) + k0) / rate, env


def motion_beat_times(frames: Iterable[SkeletonFrame], rate: float = MOTION_RATE,
                      person: int | None = None) -> np.ndarray:
    """Offline: times of the motion beats (lag-compensated), in session seconds."""
    t, env = onset_envelope(frames, rate, person)
    if len(env) == 0:
        return np.zeros(0)
    return pick_peaks(env, rate) / rate + t[0] - ONSET_LAG_S


def resample_frames(frames: Iterable[SkeletonFrame], rate: float = MOTION_RATE,
                    person: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (hip-centred, torso-scaled) COCO-17 poses on the fixed grid: ``(t_grid, poses (N, 17, 2))``."""
    rs = MotionResampler(rate)
    ts, ps = [], []
    for f in frames:
        if person is not None and f.person != person:
            continue
        for k, p, _gap in rs.push(f.t, normalise(f)):
            ts.append(k / rate)
            ps.append(p)
    if not ts:
        return np.zeros(0), np.zeros((0, 17, 2))
    return np.array(ts), np.array(ps)


def directional_onset(poses: Sequence[np.ndarray] | np.ndarray, rate: float = MOTION_RATE,
                      bins: int = DIRECTION_BINS) -> np.ndarray:
    """Raw directional onset of a pose sequence on the grid (no low-pass; the reference method's formula)."""
    det = DirectionalOnset(rate, bins)
    return np.array([det.step(np.asarray(p)) for p in poses])
