"""Pitched instruments rendered note by note: bass, chord comping and lead.

Every function returns the whole note including its release, ending in an
exact zero, so the generator can add it anywhere (also across a bar line)
without clicks. ``vel`` (0..1) scales loudness, ``bright`` (0..1) opens the
filter, ``sharp`` (0..1) shortens releases and hardens attacks.
"""

from __future__ import annotations

import numpy as np

from .dsp import (
    TWO_PI, exp_decay, frac32, gate_envelope, harmonic_stack, lowpass1, lowpass2, phase_from_freq, phase_ramp,
    pulse_blep, saw, saw_blep, sine,
)
from .theory import midi_to_hz

#: Release time of bass notes at sharpness 0 (legato) and 1 (staccato), seconds.
BASS_RELEASE_S = (0.09, 0.03)
#: Release of chord notes (legato, staccato), seconds.
CHORD_RELEASE_S = (0.35, 0.08)
#: Release of lead notes (legato, staccato), seconds.
LEAD_RELEASE_S = (0.18, 0.05)
#: Detune of the paired oscillators in saw chords/strings (ratio).
DETUNE = 0.0045

BASS_KINDS = ("saw", "square", "sub808", "finger", "upright", "moog")
CHORD_KINDS = ("piano", "epiano", "stab", "strings", "organ", "brass")
LEAD_KINDS = ("pulse", "pluck", "whistle", "brass", "bell", "saw")


def _mix(a: float, b: float, x: float) -> float:
    return a + (b - a) * float(np.clip(x, 0.0, 1.0))


def _release_samples(sr: int, pair: tuple[float, float], sharp: float) -> int:
    return max(16, int(_mix(pair[0], pair[1], sharp) * sr))


def _filter_sweep(x: np.ndarray, dark: float, bright: float, tau_s: float, sr: int) -> np.ndarray:
    """A decaying low-pass sweep from ``bright`` to ``dark`` Hz (crossfade of two filters)."""
    lo = lowpass2(x, dark, sr)
    hi = lowpass2(x, bright, sr)
    env = exp_decay(len(x), tau_s, sr)
    return lo + env * (hi - lo)


# --------------------------------------------------------------------------- bass

def render_bass(kind: str, midi: int, n_gate: int, sr: int, *, vel: float = 0.8,
                bright: float = 0.5, sharp: float = 0.5) -> np.ndarray:
    """One bass note, ``n_gate`` samples held plus its release."""
    n_rel = _release_samples(sr, BASS_RELEASE_S, sharp)
    n = max(1, n_gate) + n_rel
    f = float(midi_to_hz(midi))
    if kind == "sub808":
        t = np.arange(n, dtype=np.float64) / sr
        freq = f * (1.0 + 0.5 * np.exp(-t / 0.025))
        ph = phase_from_freq(freq, sr)
        x = sine(ph) + 0.25 * sine(2.0 * ph)
        x = np.tanh((1.5 + 1.5 * bright) * x).astype(np.float32)
        env = gate_envelope(n_gate, n, 0.002, 0.0, sr, decay_tau_s=_mix(1.2, 0.5, sharp))
    elif kind == "upright":
        ph = phase_ramp(f, n, sr)
        x = sine(ph) + 0.35 * sine(2.0 * ph) + 0.12 * sine(3.0 * ph)
        x = _filter_sweep(x, 500.0, 2500.0, 0.03, sr) if bright > 0.3 else x
        env = gate_envelope(n_gate, n, 0.004, 0.0, sr, decay_tau_s=_mix(0.7, 0.35, sharp))
    else:
        ph = phase_ramp(f, n, sr)
        if kind == "square":
            x = np.where(np.modf(ph)[0] < 0.5, 1.0, -1.0).astype(np.float32)
        elif kind == "moog":
            x = 0.6 * saw(ph) + 0.4 * saw(ph * 1.004 + 0.3)
        else:
            x = saw(ph)
        dark = 120.0 + 260.0 * bright
        hi = 500.0 + 2300.0 * bright
        tau = {"finger": 0.05, "moog": 0.12}.get(kind, 0.08) * _mix(1.4, 0.7, sharp)
        x = _filter_sweep(x, dark, hi, tau, sr)
        if kind in ("moog", "saw"):
            x = x + 0.5 * sine(ph)  # sub weight under the filtered saw
        decay = 0.5 if kind == "finger" else None
        env = gate_envelope(n_gate, n, 0.003, 0.0, sr, decay_tau_s=decay)
    return (x * env * np.float32(vel)).astype(np.float32)


# --------------------------------------------------------------------------- chords

def _saw_pair(f: float, n: int, sr: int) -> np.ndarray:
    p = phase_ramp(f * (1.0 - DETUNE), n, sr)
    q = phase_ramp(f * (1.0 + DETUNE), n, sr, 0.37)
    return np.float32(0.5) * (saw(p) + saw(q))


def render_chord(kind: str, midis: tuple[int, ...], n_gate: int, sr: int, *, vel: float = 0.8,
                 bright: float = 0.5, sharp: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A chord hit; returns ``(left, right)`` (alternate notes spread across the stereo field).

    All notes of a chord share one envelope and one filter, so the notes are
    summed raw first and shaped once per channel.
    """
    n_rel = _release_samples(sr, CHORD_RELEASE_S, sharp)
    n_gate = max(1, n_gate)
    n = n_gate + n_rel
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    fm_index = None
    if kind == "epiano":
        fm_index = (0.6 + 1.6 * bright) * exp_decay(n, 0.25, sr) + np.float32(0.15)
    for i, m in enumerate(midis):
        f = float(midi_to_hz(m))
        ph = phase_ramp(f, n, sr, 0.21 * i)
        if kind == "piano":
            x = harmonic_stack(ph, (1.0, 0.5, 0.32, 0.22, 0.12 * bright))
        elif kind == "epiano":
            s1 = sine(ph)
            x = np.sin(np.float32(TWO_PI) * frac32(ph) + fm_index * s1)
        elif kind == "organ":
            x = harmonic_stack(ph, (1.0, 0.6, 0.35, 0.2 * bright))
        else:
            x = _saw_pair(f, n, sr)
        near, far = (left, right) if i % 2 == 0 else (right, left)
        near += x
        far += np.float32(0.45) * x
    attack, decay = 0.002, None
    if kind == "piano":
        left, right = (_filter_sweep(c, 900.0 + 1500.0 * bright, 4000.0 + 5000.0 * bright, 0.3, sr)
                       for c in (left, right))
        decay = 1.4
    elif kind == "epiano":
        decay = 1.8
    elif kind == "organ":
        attack = 0.004
    elif kind == "stab":
        left, right = (_filter_sweep(c, 600.0 + 900 * bright, 3000.0 + 5000.0 * bright, 0.07, sr)
                       for c in (left, right))
        decay = 0.6
    elif kind == "strings":
        left, right = (lowpass2(c, 1800.0 + 2500.0 * bright, sr) for c in (left, right))
        attack = _mix(0.09, 0.015, sharp)
    else:  # brass
        cut = 1200.0 + 3800.0 * bright
        left, right = (lowpass2(c, cut, sr) for c in (left, right))
        attack = _mix(0.04, 0.012, sharp)
    env = gate_envelope(n_gate, n, attack, 0.0, sr, decay_tau_s=decay)
    env *= np.float32(vel / max(1, len(midis)) * 1.6)
    return left * env, right * env


# --------------------------------------------------------------------------- lead

def render_lead(kind: str, midi: int, n_gate: int, sr: int, *, vel: float = 0.8, bright: float = 0.5,
                sharp: float = 0.5, glide_from: int | None = None) -> np.ndarray:
    """One lead note with vibrato (held notes) and optional portamento from ``glide_from``."""
    n_rel = _release_samples(sr, LEAD_RELEASE_S, sharp)
    n_gate = max(1, n_gate)
    n = n_gate + n_rel
    f = float(midi_to_hz(midi))
    t = np.arange(n, dtype=np.float64) / sr
    semis = np.zeros(n, dtype=np.float64)
    vib_depth = {"whistle": 0.35, "pulse": 0.15, "brass": 0.1, "saw": 0.12}.get(kind, 0.0)
    if vib_depth:
        onset = np.clip((t - 0.12) / 0.2, 0.0, 1.0)
        semis += vib_depth * onset * sine(5.6 * t)
    if glide_from is not None and kind in ("whistle", "saw", "pulse"):
        semis += (glide_from - midi) * np.exp(-t / 0.035)
    freq = f * 2.0 ** (semis / 12.0)
    ph = phase_from_freq(freq, sr)
    inc = f / sr
    decay = None
    attack = 0.004
    if kind == "pulse":
        x = lowpass1(pulse_blep(ph, inc, 0.32), 1800.0 + 5000.0 * bright, sr)[0]
    elif kind == "pluck":
        x = _filter_sweep(saw_blep(ph, inc), 700.0, 3000.0 + 5000.0 * bright, 0.09, sr)
        decay = _mix(0.45, 0.2, sharp)
        attack = 0.001
    elif kind == "whistle":
        x = sine(ph) + 0.08 * sine(2.0 * ph)
        attack = _mix(0.04, 0.01, sharp)
    elif kind == "brass":
        x = lowpass2(saw_blep(ph, inc), 1500.0 + 3500.0 * bright, sr)
        attack = _mix(0.05, 0.015, sharp)
    elif kind == "bell":
        index = (1.0 + 2.0 * bright) * exp_decay(n, 0.3, sr)
        x = np.sin(np.float32(TWO_PI) * frac32(ph) + index * sine(3.5 * ph))
        decay = _mix(0.9, 0.4, sharp)
        attack = 0.001
    else:  # saw
        x = lowpass2(saw_blep(ph, inc), 2000.0 + 5000.0 * bright, sr)
    env = gate_envelope(n_gate, n, attack, 0.0, sr, decay_tau_s=decay)
    return (x * env * np.float32(vel)).astype(np.float32)
