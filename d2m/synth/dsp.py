"""Vectorised signal building blocks: oscillators, envelopes, filters.

Everything works on whole notes at once (numpy arrays), never sample by
sample in Python; recursive filters go through :func:`scipy.signal.lfilter`.
Audio is float32; phases are float64 so long notes stay in tune.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter

TWO_PI = 2.0 * np.pi


def phase_ramp(freq: float, n: int, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Phase in cycles (float64, not wrapped) of a constant-frequency oscillator."""
    return phase0 + np.arange(n, dtype=np.float64) * (freq / sr)


def phase_from_freq(freq: np.ndarray, sr: int, phase0: float = 0.0) -> np.ndarray:
    """Phase in cycles of an oscillator whose frequency varies per sample."""
    return phase0 + np.cumsum(freq, dtype=np.float64) / sr


def frac(phase: np.ndarray) -> np.ndarray:
    """Wrap a phase in cycles to ``[0, 1)``."""
    return phase - np.floor(phase)


def frac32(phase: np.ndarray) -> np.ndarray:
    """Wrapped phase as float32 (precise: wrapping happens in float64 first)."""
    return frac(phase).astype(np.float32)


def saw(phase: np.ndarray) -> np.ndarray:
    """Naive sawtooth in -1..1 (fine for low, low-passed voices)."""
    return frac32(phase) * np.float32(2.0) - np.float32(1.0)


def _poly_blep(t: np.ndarray, dt: float) -> np.ndarray:
    """PolyBLEP residual that removes most aliasing from a saw's reset at ``t = 0``."""
    out = np.zeros_like(t)
    lo = t < dt
    x = t[lo] / dt
    out[lo] = x + x - x * x - 1.0
    hi = t > 1.0 - dt
    x = (t[hi] - 1.0) / dt
    out[hi] = x * x + x + x + 1.0
    return out


def saw_blep(phase: np.ndarray, inc: float) -> np.ndarray:
    """Band-limited (PolyBLEP) sawtooth for bright voices; ``inc`` = cycles per sample."""
    t = frac(phase)
    inc = min(max(inc, 1e-6), 0.5)
    return (2.0 * t - 1.0 - _poly_blep(t, inc)).astype(np.float32)


def pulse_blep(phase: np.ndarray, inc: float, width: float = 0.5) -> np.ndarray:
    """Band-limited pulse wave of duty cycle ``width`` (difference of two saws)."""
    t = frac(phase)
    t2 = frac(phase + (1.0 - width))
    inc = min(max(inc, 1e-6), 0.5)
    a = 2.0 * t - 1.0 - _poly_blep(t, inc)
    b = 2.0 * t2 - 1.0 - _poly_blep(t2, inc)
    return (0.5 * (a - b)).astype(np.float32)


_TWO_PI32 = np.float32(TWO_PI)


def sine(phase: np.ndarray) -> np.ndarray:
    """``sin(2 pi phase)`` computed in float32 (numpy's float32 sine is ~25x faster)."""
    return np.sin(_TWO_PI32 * frac32(phase))


def sine_cos(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``sin`` and ``cos`` of ``2 pi phase`` in float32."""
    a = _TWO_PI32 * frac32(phase)
    return np.sin(a), np.cos(a)


def harmonic_stack(phase: np.ndarray, amps) -> np.ndarray:
    """``sum_k amps[k] * sin(2 pi (k+1) phase)`` by the Chebyshev recurrence (one sin, one cos).

    Each amplitude is a number or an array as long as ``phase`` (a timbre that changes).
    """
    s1, c1 = sine_cos(phase)
    two_c = np.float32(2.0) * c1
    out = s1 * _f32(amps[0])
    prev, cur = np.zeros_like(s1), s1
    for amp in amps[1:]:
        prev, cur = cur, two_c * cur - prev
        if np.ndim(amp) or amp:
            out += cur * _f32(amp)
    return out


def _f32(a):
    """A float32 scalar, or a per-sample float32 array of amplitudes."""
    return np.asarray(a, dtype=np.float32) if np.ndim(a) else np.float32(a)


def one_pole_coef(cutoff: float, sr: int) -> float:
    """Feedback coefficient of a one-pole low-pass with the given -3 dB cutoff."""
    cutoff = min(max(cutoff, 10.0), 0.45 * sr)
    return float(np.exp(-TWO_PI * cutoff / sr))


def lowpass1(x: np.ndarray, cutoff: float, sr: int, zi: np.ndarray | None = None):
    """One-pole low-pass (6 dB/oct). Returns ``(y, zf)``; pass ``zi`` to continue a stream."""
    a = one_pole_coef(cutoff, sr)
    b_, a_ = [1.0 - a], [1.0, -a]
    if zi is None:
        return lfilter(b_, a_, x).astype(np.float32, copy=False), None
    y, zf = lfilter(b_, a_, x, zi=zi)
    return y.astype(np.float32, copy=False), zf


def lowpass2(x: np.ndarray, cutoff: float, sr: int) -> np.ndarray:
    """Two cascaded one-pole low-passes (12 dB/oct), one ``lfilter`` call."""
    a = one_pole_coef(cutoff, sr)
    g = (1.0 - a) ** 2
    return lfilter([g], [1.0, -2.0 * a, a * a], x).astype(np.float32, copy=False)


def butter_filter(x: np.ndarray, cutoff, sr: int, btype: str, order: int = 2) -> np.ndarray:
    """Butterworth filter (for pre-rendering drum one-shots, not the real-time path)."""
    nyq = 0.5 * sr
    wn = np.clip(np.asarray(cutoff, dtype=np.float64) / nyq, 1e-4, 0.999)
    b, a = butter(order, wn, btype=btype)
    return lfilter(b, a, x).astype(np.float32)


def exp_decay(n: int, tau_s: float, sr: int) -> np.ndarray:
    """``exp(-t / tau)`` over ``n`` samples (float32)."""
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    return np.exp(-t / np.float32(max(tau_s, 1e-5)))


def gate_envelope(n_gate: int, n_total: int, attack_s: float, release_s: float, sr: int,
                  decay_tau_s: float | None = None) -> np.ndarray:
    """Note envelope: linear attack, optional exponential decay while held, then release.

    The note is held for ``n_gate`` samples and rings out linearly to exactly
    zero over the remaining ``n_total - n_gate`` samples (``release_s`` long),
    so a note's buffer always ends in silence.
    """
    env = np.ones(n_total, dtype=np.float32)
    n_att = max(1, min(int(attack_s * sr), n_total))
    env[:n_att] = np.linspace(0.0, 1.0, n_att, endpoint=False, dtype=np.float32) + np.float32(1.0 / n_att)
    if decay_tau_s is not None:
        env *= exp_decay(n_total, decay_tau_s, sr)
    n_rel = n_total - n_gate
    if n_rel > 0:
        level = env[n_gate - 1] if n_gate > 0 else np.float32(0.0)
        env[n_gate:] = level * np.linspace(1.0, 0.0, n_rel, dtype=np.float32)
    env[-1] = 0.0
    return env


def pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power gains (left, right) for ``pan`` in -1 (left) .. +1 (right)."""
    angle = (min(max(pan, -1.0), 1.0) + 1.0) * np.pi / 4.0
    return float(np.cos(angle) * np.sqrt(2.0)), float(np.sin(angle) * np.sqrt(2.0))
