"""Sliding-window style of the dance: energy, sharpness and a genre estimate.

:class:`StyleTracker` is fed one normalised COCO-17 pose per motion frame
(``(17, 2)``, hip-centred, in torso lengths, NaN for missing joints; see
:func:`d2m.skeleton.normalise`) on the 60 Hz motion grid and keeps, over the
last ``window_s`` seconds, running sums of a few per-frame motion features.
:meth:`StyleTracker.state` turns them into a :class:`StyleState`:

``energy`` (0..1)
    Window mean joint speed ``s`` (torso lengths/s, over all visible joints,
    hips included) through the saturating curve
    ``1 - exp(-max(0, s - SPEED_DEADBAND) / ENERGY_SPEED_SCALE)``:
    still ~0, casual sway (~0.3-0.5 torso/s) ~0.2-0.3, vigorous dancing
    (2-4 torso/s) ~0.7-0.9.
``sharpness`` (0..1)
    How percussive the motion is: the peakiness of the body's acceleration,
    ``K = E[A^4] / E[A^2]^2`` over the window, where ``A`` is the per-frame mean
    joint acceleration magnitude. Smooth sinusoidal sway gives ``K`` about 1.5
    (and continuous circling 1); hits, pops and sudden stops concentrate the
    acceleration in short bursts and give a large ``K``. ``K`` is mapped
    linearly from :data:`SHARPNESS_K_SMOOTH` (0) to :data:`SHARPNESS_K_SHARP`
    (1) and faded out below :data:`SHARPNESS_MIN_SPEED` (a still dancer has no
    meaningful sharpness).
``genre_probs``
    A **transparent heuristic**, not a trained classifier (there is no
    training data here): each genre of :data:`d2m.genres.GENRES` has a
    hand-set prototype in a small feature space (energy, sharpness, arm vs leg
    activity, vertical vs horizontal motion, how low / tilted the body is,
    wrist speed vs core speed), the probabilities are a softmax over negative
    weighted distances to the prototypes with temperature
    :data:`GENRE_TEMPERATURE`, and they are smoothed over time with time
    constant :data:`GENRE_TIME_CONSTANT_S` so the estimate does not flicker.
    The update is gated by activity (over the window and over the last
    :data:`RECENT_ACTIVITY_S`), so standing still keeps the last estimate.
    Expect it to separate broad families (floor/legwork vs arm-led vs
    percussive vs soft) rather than e.g. middle vs LA hip-hop; a learned
    classifier on AIST++ (the MusicGen issue) can replace :meth:`genre_scores`.

Velocities are finite differences over :data:`VELOCITY_SPAN_FRAMES` frames and
accelerations differences of those velocities over the same span. Feed poses
from a pose detector through :class:`d2m.smoothing.PoseSmoother` first: raw
jitter of 0.01 torso lengths per frame alone reads as energy ~0.25 on a still
dancer (~0.0 after the smoother), and it dilutes sharpness. Every update is O(1)
(fixed-size ring buffers and running sums, re-summed every window to stop
floating-point drift); memory does not grow. Deterministic; no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .genres import GENRES

#: Default length of the sliding window (s).
DEFAULT_WINDOW_S = 4.0
#: Default motion frame rate (Hz); the window holds ``window_s * rate`` frames.
DEFAULT_RATE = 60.0

#: Velocity = position difference over this many frames (and acceleration =
#: velocity difference over as many), ~33 ms at 60 Hz.
VELOCITY_SPAN_FRAMES = 2
#: A difference spanning more than this many seconds (a gap in tracking) is not used.
MAX_DIFF_SPAN_S = 0.25

#: A joint faster than this (torso lengths/s; ~15 m/s for a 0.5 m torso, beyond a
#: dancer's wrist) is a tracking glitch, not motion, and is skipped in that frame.
MAX_JOINT_SPEED = 30.0
#: Joint speeds below this (torso lengths/s) count as still (detector jitter).
SPEED_DEADBAND = 0.05
#: Speed scale of the energy curve (torso lengths/s): energy 0.63 at this speed above the deadband.
ENERGY_SPEED_SCALE = 1.5

#: Acceleration peakiness K of smooth sinusoidal motion (maps to sharpness 0).
SHARPNESS_K_SMOOTH = 1.6
#: Acceleration peakiness K of clearly percussive motion (maps to sharpness 1).
SHARPNESS_K_SHARP = 4.5
#: Below this window mean joint speed (torso lengths/s) sharpness fades to 0.
SHARPNESS_MIN_SPEED = 0.3

#: Standing ankle height below the hips (torso lengths); crouching lowers it.
STANDING_ANKLE_DROP = 1.6

#: Softmax temperature over negative prototype distances: smaller = more decided.
GENRE_TEMPERATURE = 0.08
#: Time constant (s) of the exponential smoothing of genre probabilities.
GENRE_TIME_CONSTANT_S = 3.0
#: Energy at and above which the genre estimate updates at full rate (below: slower; still: frozen).
GENRE_ACTIVE_ENERGY = 0.2
#: Length (s) of the recent-activity mean speed that also gates genre updates, so
#: a dancer who stops freezes the estimate at once instead of letting the draining
#: window (a mix of dancing and stillness) pull it around.
RECENT_ACTIVITY_S = 0.5
#: Frames with a measured speed needed in the window before style is reported (0.5 s at 60 Hz).
MIN_STYLE_FRAMES = 30

# COCO-17 joint groups.
_NOSE, _L_SH, _R_SH, _L_EL, _R_EL, _L_WR, _R_WR = 0, 5, 6, 7, 8, 9, 10
_L_HIP, _R_HIP, _L_KN, _R_KN, _L_AN, _R_AN = 11, 12, 13, 14, 15, 16
ARM_JOINTS = (_L_EL, _R_EL, _L_WR, _R_WR)
LEG_JOINTS = (_L_KN, _R_KN, _L_AN, _R_AN)
WRIST_JOINTS = (_L_WR, _R_WR)
CORE_JOINTS = (_NOSE, _L_SH, _R_SH)

#: Names of the genre features, in prototype order.
GENRE_FEATURES: tuple[str, ...] = (
    "energy",          # 0..1, see module doc
    "sharpness",       # 0..1, see module doc
    "arm_share",       # arm speed / (arm + leg speed): 0 legs only, 1 arms only
    "vertical_share",  # |vy| / (|vx| + |vy|) over all joints: 1 = bouncing, 0 = swaying
    "lowness",         # 0 upright and standing tall .. 1 torso horizontal or deep crouch
    "wrist_share",     # wrist speed / (wrist + core speed): whips and flicks vs body
)
#: Weight of each feature in the prototype distance.
GENRE_FEATURE_WEIGHTS: tuple[float, ...] = (1.0, 1.0, 1.0, 0.6, 1.5, 0.6)

#: Hand-set prototype per genre, in :data:`GENRE_FEATURES` order. Rationale:
#: break = legwork and floorwork (low); pop = hits (very sharp), moderate energy;
#: lock = sharp arm points and wrist rolls; middle hip-hop = vertical bounce;
#: LA hip-hop = groove with more arms; house = fast footwork, smooth;
#: waack = arm whips (arms, wrists); krump = very energetic and sharp;
#: street jazz = mixed, moderately sharp; ballet jazz = soft, flowing.
GENRE_PROTOTYPES: dict[str, tuple[float, ...]] = {
    "break":         (0.75, 0.40, 0.35, 0.45, 0.60, 0.50),
    "pop":           (0.40, 0.85, 0.60, 0.50, 0.05, 0.50),
    "lock":          (0.60, 0.65, 0.65, 0.50, 0.15, 0.65),
    "middle_hiphop": (0.55, 0.35, 0.50, 0.70, 0.10, 0.50),
    "la_hiphop":     (0.60, 0.45, 0.60, 0.55, 0.12, 0.55),
    "house":         (0.65, 0.25, 0.25, 0.40, 0.10, 0.45),
    "waack":         (0.65, 0.55, 0.85, 0.45, 0.05, 0.75),
    "krump":         (0.90, 0.75, 0.60, 0.60, 0.15, 0.50),
    "street_jazz":   (0.60, 0.45, 0.55, 0.50, 0.10, 0.55),
    "ballet_jazz":   (0.35, 0.10, 0.55, 0.55, 0.05, 0.50),
}

# Per-frame window columns.
_SPEED, _ARM, _LEG, _WRIST, _CORE, _VX, _VY, _ACC2, _ACC4, _LOW = range(10)
_N_COLS = 10


@dataclass(frozen=True)
class StyleState:
    """The dance's style over the last window."""
    energy: float                       #: 0..1, see :mod:`d2m.style`
    sharpness: float                    #: 0..1, how percussive
    genre_probs: tuple[float, ...]      #: over :data:`d2m.genres.GENRES`, sums to 1
    genre: str                          #: the most likely genre
    genre_confidence: float             #: 0 (uniform) .. 1 (certain): (p_max - 1/G) / (1 - 1/G)

    def to_dict(self) -> dict:
        """JSON-friendly dict (genre probabilities keyed by genre)."""
        return {
            "energy": round(self.energy, 4),
            "sharpness": round(self.sharpness, 4),
            "genre": self.genre,
            "genre_confidence": round(self.genre_confidence, 4),
            "genre_probs": {g: round(p, 4) for g, p in zip(GENRES, self.genre_probs)},
        }


def _nanmean(values: np.ndarray) -> float:
    ok = np.isfinite(values)
    return float(values[ok].mean()) if ok.any() else math.nan


def energy_from_speed(speed: float) -> float:
    """Map a mean joint speed (torso lengths/s) to energy 0..1 (see module doc)."""
    if not math.isfinite(speed):
        return 0.0
    return 1.0 - math.exp(-max(0.0, speed - SPEED_DEADBAND) / ENERGY_SPEED_SCALE)


def sharpness_from_peakiness(k: float, speed: float) -> float:
    """Map acceleration peakiness ``K`` and mean speed to sharpness 0..1 (see module doc)."""
    if not (math.isfinite(k) and math.isfinite(speed)):
        return 0.0
    s = (k - SHARPNESS_K_SMOOTH) / (SHARPNESS_K_SHARP - SHARPNESS_K_SMOOTH)
    gate = min(1.0, max(0.0, speed / SHARPNESS_MIN_SPEED))
    return float(min(1.0, max(0.0, s)) * gate)


def _lowness(pose: np.ndarray) -> float:
    """0 = upright torso and straight legs, 1 = torso horizontal (or inverted) or deep crouch."""
    shoulders = pose[[_L_SH, _R_SH]]
    shoulders = shoulders[np.isfinite(shoulders).all(axis=1)]
    tilt = math.nan
    if len(shoulders):
        hips = pose[[_L_HIP, _R_HIP]]
        hips = hips[np.isfinite(hips).all(axis=1)]
        centre = hips.mean(axis=0) if len(hips) else np.zeros(2)
        up = shoulders.mean(axis=0) - centre
        norm = float(np.hypot(*up))
        if norm > 1e-6:
            # y is down: upright => up[1] = -norm => cos = 1; horizontal => 0; inverted => -1.
            tilt = min(1.0, max(0.0, 1.0 - (-up[1] / norm)))
    ankles = pose[[_L_AN, _R_AN], 1]
    ankles = ankles[np.isfinite(ankles)]
    crouch = math.nan
    if len(ankles):
        crouch = min(1.0, max(0.0, 1.0 - float(ankles.mean()) / STANDING_ANKLE_DROP))
    parts = [v for v in (tilt, crouch) if math.isfinite(v)]
    return max(parts) if parts else math.nan


class StyleTracker:
    """Energy, sharpness and genre estimate over a sliding window of poses.

    ``window_s`` (s): length of the window; ``rate`` (Hz): motion frame rate,
    used only to size the window (``round(window_s * rate)`` frames); time
    differences come from the timestamps given to :meth:`update`.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, rate: float = DEFAULT_RATE) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of Hz, got {rate!r}")
        self.window_s = float(window_s)
        self.rate = float(rate)
        self._n = max(2 * VELOCITY_SPAN_FRAMES + 1, int(round(window_s * rate)))
        self._m = max(1, min(self._n, int(round(RECENT_ACTIVITY_S * rate))))
        self._proto = np.array([GENRE_PROTOTYPES[g] for g in GENRES], dtype=np.float64)
        self._weights = np.array(GENRE_FEATURE_WEIGHTS, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget everything (e.g. a different dancer)."""
        k = VELOCITY_SPAN_FRAMES + 1
        self._poses = np.full((k, 17, 2), np.nan)     # last k poses (ring)
        self._pose_t = np.full(k, np.nan)
        self._vels = np.full((k, 17, 2), np.nan)      # last k velocities (ring)
        self._vel_t = np.full(k, np.nan)
        self._hist = 0                                # frames in the pose/velocity rings
        self._rows = np.full((self._n, _N_COLS), np.nan)   # the window, one row per frame
        self._sums = np.zeros(_N_COLS)
        self._counts = np.zeros(_N_COLS, dtype=np.int64)
        self._pos = 0                                 # next row to overwrite
        self._since_resum = 0
        self._last_t: float | None = None
        self._probs = np.full(len(GENRES), 1.0 / len(GENRES))
        self._recent_sum = 0.0                        # speed sum over the last _m rows
        self._recent_count = 0

    # ------------------------------------------------------------------ update
    def update(self, t: float, pose) -> None:
        """Add the pose of the frame at time ``t`` (s).

        A pose with no valid joint, a wrong shape, or a timestamp not later
        than the previous one is ignored (the state does not change). A joint
        moving faster than :data:`MAX_JOINT_SPEED` is skipped as a glitch.
        """
        pose = np.asarray(pose, dtype=np.float64)
        t = float(t)
        if pose.shape != (17, 2) or not math.isfinite(t):
            return
        if self._last_t is not None and not t > self._last_t:
            return
        pose = np.array(pose, dtype=np.float64)
        pose[~np.isfinite(pose).all(axis=1)] = np.nan
        if not np.isfinite(pose).all(axis=1).any():
            return
        prev_t = self._last_t
        self._last_t = t
        k = VELOCITY_SPAN_FRAMES
        slot = self._hist % (k + 1)
        old = (self._hist - k) % (k + 1)

        vel = np.full((17, 2), np.nan)
        if self._hist >= k:
            span = t - self._pose_t[old]
            if 0 < span <= MAX_DIFF_SPAN_S:
                vel = (pose - self._poses[old]) / span
                vel[np.hypot(vel[:, 0], vel[:, 1]) > MAX_JOINT_SPEED] = np.nan
        acc = np.full((17, 2), np.nan)
        vt = t - 0.5 * (t - self._pose_t[old]) if self._hist >= k else math.nan
        if self._hist >= 2 * k and math.isfinite(vt):
            span = vt - self._vel_t[old]
            if 0 < span <= MAX_DIFF_SPAN_S:
                acc = (vel - self._vels[old]) / span
        self._poses[slot] = pose
        self._pose_t[slot] = t
        self._vels[slot] = vel
        self._vel_t[slot] = vt
        self._hist += 1

        row = np.full(_N_COLS, np.nan)
        speed = np.hypot(vel[:, 0], vel[:, 1])
        row[_SPEED] = _nanmean(speed)
        row[_ARM] = _nanmean(speed[list(ARM_JOINTS)])
        row[_LEG] = _nanmean(speed[list(LEG_JOINTS)])
        row[_WRIST] = _nanmean(speed[list(WRIST_JOINTS)])
        row[_CORE] = _nanmean(speed[list(CORE_JOINTS)])
        row[_VX] = _nanmean(np.abs(vel[:, 0]))
        row[_VY] = _nanmean(np.abs(vel[:, 1]))
        a = _nanmean(np.hypot(acc[:, 0], acc[:, 1]))
        row[_ACC2] = a * a
        row[_ACC4] = a ** 4
        row[_LOW] = _lowness(pose)
        self._push(row)
        self._update_genre(t - prev_t if prev_t is not None else 0.0)

    def _push(self, row: np.ndarray) -> None:
        leaving = self._rows[(self._pos - self._m) % self._n, _SPEED]   # leaves the recent span
        if math.isfinite(leaving):
            self._recent_sum -= leaving
            self._recent_count -= 1
        if math.isfinite(row[_SPEED]):
            self._recent_sum += row[_SPEED]
            self._recent_count += 1
        out = self._rows[self._pos]
        ok_out = np.isfinite(out)
        self._sums[ok_out] -= out[ok_out]
        self._counts[ok_out] -= 1
        ok_in = np.isfinite(row)
        self._sums[ok_in] += row[ok_in]
        self._counts[ok_in] += 1
        self._rows[self._pos] = row
        self._pos = (self._pos + 1) % self._n
        self._since_resum += 1
        if self._since_resum >= self._n:          # O(n) every n frames: O(1) amortised
            self._since_resum = 0
            self._sums = np.nansum(self._rows, axis=0)
            self._counts = np.isfinite(self._rows).sum(axis=0)
            recent = self._rows[(self._pos - 1 - np.arange(self._m)) % self._n, _SPEED]
            self._recent_sum = float(np.nansum(recent))
            self._recent_count = int(np.isfinite(recent).sum())

    # ------------------------------------------------------------------ read-out
    def _mean(self, col: int) -> float:
        c = self._counts[col]
        return float(self._sums[col] / c) if c > 0 else math.nan

    def _ready(self) -> bool:
        return self._counts[_SPEED] >= min(MIN_STYLE_FRAMES, self._n // 2)

    def features(self) -> dict[str, float]:
        """The window's genre features (NaN where not measurable, e.g. legs not visible)."""
        speed = self._mean(_SPEED)
        acc2, acc4 = self._mean(_ACC2), self._mean(_ACC4)
        k = acc4 / (acc2 * acc2) if acc2 > 1e-12 else math.nan
        arm, leg = self._mean(_ARM), self._mean(_LEG)
        wrist, core = self._mean(_WRIST), self._mean(_CORE)
        vx, vy = self._mean(_VX), self._mean(_VY)
        return {
            "energy": energy_from_speed(speed) if self._ready() else 0.0,
            "sharpness": sharpness_from_peakiness(k, speed) if self._ready() else 0.0,
            "arm_share": _share(arm, leg),
            "vertical_share": _share(vy, vx),
            "lowness": self._mean(_LOW),
            "wrist_share": _share(wrist, core),
            "mean_speed": speed,
            "peakiness": k,
        }

    def genre_scores(self, features: dict[str, float] | None = None) -> np.ndarray:
        """Instantaneous (unsmoothed) genre probabilities over GENRES from the window features.

        Softmax of ``-distance / GENRE_TEMPERATURE``, with the weighted
        Euclidean distance to each prototype over the features that are
        measurable (NaN ones are left out for every genre alike).
        """
        f = self.features() if features is None else features
        x = np.array([f[name] for name in GENRE_FEATURES], dtype=np.float64)
        ok = np.isfinite(x)
        d2 = ((self._proto[:, ok] - x[ok]) ** 2 * self._weights[ok]).sum(axis=1)
        logits = -np.sqrt(d2) / GENRE_TEMPERATURE
        logits -= logits.max()
        p = np.exp(logits)
        return p / p.sum()

    def _update_genre(self, dt: float) -> None:
        if not self._ready() or dt <= 0:
            return
        f = self.features()
        recent = self._recent_sum / self._recent_count if self._recent_count else 0.0
        activity = min(f["energy"], energy_from_speed(recent))
        gate = min(1.0, activity / GENRE_ACTIVE_ENERGY)
        if gate <= 0:
            return
        alpha = (1.0 - math.exp(-min(dt, MAX_DIFF_SPAN_S) / GENRE_TIME_CONSTANT_S)) * gate
        self._probs += alpha * (self.genre_scores(f) - self._probs)
        self._probs /= self._probs.sum()

    def state(self) -> StyleState:
        """The current :class:`StyleState`."""
        f = self.features()
        probs = tuple(float(p) for p in self._probs)
        top = int(np.argmax(self._probs))
        g = len(GENRES)
        conf = (probs[top] - 1.0 / g) / (1.0 - 1.0 / g)
        return StyleState(energy=float(f["energy"]), sharpness=float(f["sharpness"]),
                          genre_probs=probs, genre=GENRES[top],
                          genre_confidence=float(min(1.0, max(0.0, conf))))


def _share(a: float, b: float) -> float:
    """a / (a + b), NaN when either is unknown or both are ~0."""
    if not (math.isfinite(a) and math.isfinite(b)) or a + b < 1e-9:
        return math.nan
    return a / (a + b)
