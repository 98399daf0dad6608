"""One Euro filter: low-jitter, low-lag smoothing of noisy tracked positions.

Casiez, Roussel and Vogel (CHI 2012), "1 Euro Filter: A Simple Speed-based
Low-pass Filter for Noisy Input in Interactive Systems". An exponential
low-pass filter whose cutoff rises with the signal's (smoothed) speed::

    cutoff = min_cutoff + beta * |dx/dt|

so a still point is smoothed hard (no jitter) and a fast move gets a high
cutoff (little lag). Time is taken from the caller's timestamps, so frames may
arrive at irregular intervals. The filter does no I/O and reads no clock.

Parameters (all keyword arguments with named defaults):

- ``min_cutoff`` (Hz): cutoff when the signal is still. Lower = less jitter,
  more lag on slow moves.
- ``beta`` (Hz per unit/s of speed, i.e. 1 / unit of ``x``): how fast the
  cutoff rises with speed. Higher = less lag on fast moves, more jitter while
  moving. Depends on the units of ``x``: the paper's 0.007 suits pixels; for
  poses in torso lengths use :data:`POSE_BETA`.
- ``d_cutoff`` (Hz): cutoff of the low-pass filter on the speed estimate.
"""

from __future__ import annotations

import math

import numpy as np

#: Default cutoff when still (Hz), the paper's value.
DEFAULT_MIN_CUTOFF = 1.0
#: Default speed coefficient (Hz per unit/s), the paper's value for pixel units.
DEFAULT_BETA = 0.007
#: Default cutoff for the speed estimate (Hz), the paper's value.
DEFAULT_D_CUTOFF = 1.0

#: :class:`PoseSmoother` cutoff when still (Hz).
POSE_MIN_CUTOFF = 1.0
#: :class:`PoseSmoother` speed coefficient (Hz per torso length/s). A wrist
#: moving at 4 torso/s gets a cutoff of about 1 + 2 * 4 = 9 Hz.
POSE_BETA = 2.0
#: :class:`PoseSmoother` cutoff for the speed estimate (Hz).
POSE_D_CUTOFF = 1.0
#: Shape of a normalised COCO-17 pose (see :func:`d2m.skeleton.normalise`).
POSE_SHAPE = (17, 2)


def smoothing_factor(dt: float | np.ndarray, cutoff: float | np.ndarray) -> float | np.ndarray:
    """Weight of a new sample in an exponential low-pass of ``cutoff`` Hz after ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One Euro filter for a vector (any fixed shape) of independent values.

    ``filter(t, x)`` returns the smoothed value at time ``t`` (seconds):

    - the first value (and the first value after a reset) is returned as is;
    - NaN (or infinite) entries come out as NaN and that entry's state is
      reset, so when values return the entry restarts cleanly from the new
      value instead of blending with a stale one;
    - a timestamp not later than the previous one returns the previous output
      unchanged (a copy) and leaves the state alone;
    - a value of a different shape than before restarts the filter.
    """

    def __init__(self, min_cutoff: float = DEFAULT_MIN_CUTOFF, beta: float = DEFAULT_BETA,
                 d_cutoff: float = DEFAULT_D_CUTOFF) -> None:
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of Hz, got {value!r}")
        if not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"beta must be >= 0, got {beta!r}")
        self.min_cutoff = float(min_cutoff)
        self.beta = float(beta)
        self.d_cutoff = float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget all state; the next value is returned as is."""
        self._t: float | None = None
        self._x: np.ndarray | None = None       # last smoothed value
        self._dx: np.ndarray | None = None      # last smoothed speed
        self._ok: np.ndarray | None = None      # entries with live state
        self._out: np.ndarray | None = None     # last output

    def __call__(self, t: float, x) -> np.ndarray:
        x = np.array(x, dtype=np.float64)      # copy: the caller's array is never kept
        t = float(t)
        if self._out is not None and self._out.shape != x.shape:
            self.reset()
        if self._t is not None and not t > self._t:
            return self._out.copy()
        if not math.isfinite(t):
            return x if self._out is None else self._out.copy()
        finite = np.isfinite(x)
        if self._t is None:
            self._x = np.where(finite, x, np.nan)
            self._dx = np.zeros_like(x)
            self._ok = finite
        else:
            dt = t - self._t
            live = finite & self._ok           # entries that continue smoothing
            fresh = finite & ~self._ok         # entries that (re)start here
            dx = np.where(live, (x - np.where(live, self._x, 0.0)) / dt, 0.0)
            a_d = smoothing_factor(dt, self.d_cutoff)
            dx_hat = np.where(live, self._dx + a_d * (dx - self._dx), 0.0)
            cutoff = self.min_cutoff + self.beta * np.abs(dx_hat)
            a = smoothing_factor(dt, cutoff)
            prev = np.where(live, self._x, 0.0)
            x_hat = np.where(live, prev + a * (np.where(live, x, 0.0) - prev), np.nan)
            x_hat = np.where(fresh, x, x_hat)
            self._x = x_hat
            self._dx = dx_hat
            self._ok = finite
        self._t = t
        self._out = self._x.copy()
        return self._out.copy()


class PoseSmoother:
    """One Euro smoothing of normalised COCO-17 poses, ``(17, 2)`` in torso lengths.

    Each joint coordinate is filtered independently. Missing joints (NaN) pass
    through as NaN and restart cleanly when the joint is seen again. Call
    :meth:`reset` when the tracked person changes.
    """

    def __init__(self, min_cutoff: float = POSE_MIN_CUTOFF, beta: float = POSE_BETA,
                 d_cutoff: float = POSE_D_CUTOFF) -> None:
        self._filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)

    def __call__(self, t: float, pose) -> np.ndarray:
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != POSE_SHAPE:
            raise ValueError(f"pose must have shape {POSE_SHAPE} (normalised COCO-17), got {pose.shape}")
        return self._filter(t, pose)

    def reset(self) -> None:
        """Forget all state (e.g. a different person is now tracked)."""
        self._filter.reset()
