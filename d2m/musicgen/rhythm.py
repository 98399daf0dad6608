"""Fixed (not learned) rhythm features of a motion window, in numpy.

The rhythm encoder reads a window of kinetic-onset features at the motion rate:
channel 0 the binary motion-beat (peak) vector, channel 1 the onset envelope
normalised by the window's maximum. Live, both come from the plan
(``SegmentPlan.motion_envelope`` / ``motion_peaks``); for training they are
computed from 2D keypoints here with the reference method's directogram
(velocity magnitudes binned by direction, spectral-flux-like positive
difference, peak picking).

The time scale is never stretched: a window that is shorter or longer than the
encoder's is cropped or zero-padded on the *left* (the most recent frames are
kept, right-aligned), because tempo reaches the model only through where the
peaks fall. Only a window at a different *rate* is resampled.
"""

from __future__ import annotations

import numpy as np

#: Motion frame rate of plans and of AIST++ keypoints (Hz).
MOTION_RATE = 60.0
#: Rhythm window length of the reference method (s).
DEFAULT_WINDOW_S = 5.12
#: Frames in the default window at the motion rate (5.12 s * 60 Hz).
DEFAULT_WINDOW_FRAMES = 307
#: Feature channels the rhythm encoder reads: peaks, envelope.
RHYTHM_CHANNELS = 2
#: Direction bins of the directogram (the paper's K).
DIRECTOGRAM_BINS = 10
#: Frames of context on each side when peaks are picked block by block over a sequence.
PEAK_MEAN_HALF_WIDTH = 30


def window_frames(window_s: float = DEFAULT_WINDOW_S, rate: float = MOTION_RATE) -> int:
    """Frames in a window of ``window_s`` seconds at ``rate`` (floor, as 5.12 s -> 307)."""
    return max(1, int(np.floor(window_s * rate + 1e-9)))


def directogram(xy: np.ndarray, bins: int = DIRECTOGRAM_BINS) -> np.ndarray:
    """Per-frame joint-velocity magnitudes accumulated into ``bins`` direction sectors.

    ``xy`` is ``(T, J, 2)``; missing joints are NaN and contribute nothing.
    Returns ``(T, bins)``; row 0 is zero (no velocity before the first frame).
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 3 or xy.shape[-1] < 2:
        raise ValueError(f"keypoints must be (frames, joints, 2), got {xy.shape}")
    out = np.zeros((xy.shape[0], bins), dtype=np.float64)
    if xy.shape[0] < 2:
        return out
    v = np.diff(xy[..., :2], axis=0)                     # (T-1, J, 2)
    ok = np.isfinite(v).all(axis=-1)
    v = np.where(ok[..., None], v, 0.0)
    mag = np.hypot(v[..., 0], v[..., 1])
    angle = np.arctan2(v[..., 1], v[..., 0])             # -pi..pi
    idx = np.floor((angle + np.pi) / (2 * np.pi) * bins).astype(int) % bins
    rows = np.repeat(np.arange(v.shape[0]), v.shape[1])
    np.add.at(out[1:], (rows, idx.reshape(-1)), mag.reshape(-1))
    return out


def onset_envelope(xy: np.ndarray, bins: int = DIRECTOGRAM_BINS) -> np.ndarray:
    """Kinetic onset envelope of 60 Hz keypoints ``(T, J, 2)``; ``(T,)`` float64, not normalised.

    COCO-17 keypoints go through the live tracker's own front end
    (:func:`d2m.motion.onset_envelope`: torso scaling, 6 Hz low-pass, directional
    flux), so encoders trained here see the envelope the live loop hands them
    in ``SegmentPlan.motion_envelope``. Other layouts use the plain directogram
    flux of the reference method.
    """
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim == 3 and xy.shape[1] == 17 and xy.shape[0] > 2:
        return _live_envelope(xy)
    return _directogram_flux(xy, bins)


def _live_envelope(xy: np.ndarray) -> np.ndarray:
    from d2m.motion import onset_envelope as live_onset
    from d2m.skeleton import Layout, SkeletonFrame

    T = xy.shape[0]
    ones = np.ones((17, 1))
    frames = [SkeletonFrame.from_values(i / MOTION_RATE, 0, Layout.COCO17,
                                        np.hstack([xy[i], ones]).reshape(-1), dims=3)
              for i in range(T)]
    _t, env = live_onset(frames)
    out = np.zeros(T, dtype=np.float64)
    n = min(T - 1, len(env))
    out[1:1 + n] = env[:n]            # grid frame k covers input frames k..k+1
    return out


def _directogram_flux(xy: np.ndarray, bins: int = DIRECTOGRAM_BINS) -> np.ndarray:
    d = directogram(xy, bins)
    flux = np.zeros(d.shape[0], dtype=np.float64)
    if d.shape[0] > 1:
        flux[1:] = np.maximum(np.diff(d, axis=0), 0.0).sum(axis=1)
    return flux


def normalise(envelope: np.ndarray) -> np.ndarray:
    """Divide by the maximum (zeros stay zeros)."""
    env = np.nan_to_num(np.asarray(envelope, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    top = float(env.max()) if env.size else 0.0
    return env / top if top > 0 else np.zeros_like(env)


def pick_peaks(envelope: np.ndarray) -> np.ndarray:
    """Binary motion-beat vector of an envelope, exactly as the live plans carry it
    (:func:`d2m.motion.beat_vector` on the max-normalised envelope), so trained
    encoders see the same peaks live."""
    from d2m.motion import beat_vector

    env = normalise(envelope)
    if env.size == 0:
        return np.zeros(0, dtype=np.float32)
    return beat_vector(env).astype(np.float32)


def fit_window(x: np.ndarray, frames: int, *, rate: float = MOTION_RATE,
               target_rate: float = MOTION_RATE) -> np.ndarray:
    """Right-align ``x`` into ``frames`` values: keep the newest, zero-pad the oldest.

    When ``rate`` differs from ``target_rate`` the series is first resampled
    (linear interpolation; a binary series is re-binarised at 0.5 after
    moving each peak to its nearest new frame).
    """
    x = np.nan_to_num(np.asarray(x, dtype=np.float64).reshape(-1), nan=0.0)
    if rate != target_rate and x.size > 0:
        binary = np.isin(x, (0.0, 1.0)).all()
        n_new = max(1, int(round(x.size * target_rate / rate)))
        if binary:
            y = np.zeros(n_new)
            idx = np.round(np.flatnonzero(x > 0.5) * target_rate / rate).astype(int)
            y[np.clip(idx, 0, n_new - 1)] = 1.0
            x = y
        else:
            t_old = np.arange(x.size) / rate
            x = np.interp(np.arange(n_new) / target_rate, t_old, x)
    out = np.zeros(frames, dtype=np.float32)
    take = min(frames, x.size)
    if take:
        out[frames - take:] = x[x.size - take:]
    return out


def rhythm_window(envelope, peaks, frames: int = DEFAULT_WINDOW_FRAMES, *,
                  rate: float = MOTION_RATE) -> np.ndarray:
    """The rhythm encoder's input, ``(RHYTHM_CHANNELS, frames)`` float32: peaks, envelope.

    ``envelope``/``peaks`` may be ``None`` (no motion: zeros). Missing peaks
    are picked from the envelope; the envelope is normalised by the window's
    maximum after fitting.
    """
    out = np.zeros((RHYTHM_CHANNELS, frames), dtype=np.float32)
    if envelope is None and peaks is None:
        return out
    if envelope is not None:
        env = fit_window(envelope, frames, rate=rate)
        out[1] = normalise(env).astype(np.float32)
    if peaks is None:
        out[0] = pick_peaks(out[1])
    else:
        out[0] = (fit_window(peaks, frames, rate=rate) > 0.5).astype(np.float32)
    return out


def window_from_plan(plan, frames: int = DEFAULT_WINDOW_FRAMES) -> np.ndarray:
    """:func:`rhythm_window` of a :class:`~d2m.plan.SegmentPlan` (its motion fields at 60 Hz)."""
    return rhythm_window(plan.motion_envelope, plan.motion_peaks, frames)


def keypoint_features(xy: np.ndarray, bins: int = DIRECTOGRAM_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Whole-sequence ``(envelope, peaks)`` from 2D keypoints ``(T, J, 2)``, both ``(T,)``.

    The envelope is left unnormalised (windows are normalised when cut);
    peaks are picked on the whole sequence's envelope scaled per 5 s block so
    that quiet passages still have beats.
    """
    env = onset_envelope(xy, bins)
    peaks = np.zeros(env.size, dtype=np.float32)
    block = window_frames()
    for start in range(0, env.size, block):
        lo = max(0, start - PEAK_MEAN_HALF_WIDTH)
        hi = min(env.size, start + block + PEAK_MEAN_HALF_WIDTH)
        p = pick_peaks(env[lo:hi])
        peaks[start:start + block] = p[start - lo:start - lo + min(block, env.size - start)]
    return env, peaks


def window_at(envelope: np.ndarray, peaks: np.ndarray, end_frame: int,
              frames: int = DEFAULT_WINDOW_FRAMES) -> np.ndarray:
    """The rhythm window of a whole-sequence feature pair ending (exclusive) at ``end_frame``."""
    lo = max(0, end_frame - frames)
    return rhythm_window(envelope[lo:end_frame], peaks[lo:end_frame], frames)
