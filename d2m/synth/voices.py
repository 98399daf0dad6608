"""Pitched instruments rendered note by note: bass, chord comping and lead.

Every function returns the whole note including its release, ending in an
exact zero, so the generator can add it anywhere (also across a bar line)
without clicks. ``vel`` (0..1) scales loudness, ``bright`` (0..1) opens the
filter, ``sharp`` (0..1) shortens releases and hardens attacks.
"""

from __future__ import annotations

import numpy as np

from .dsp import (
    gate_envelope, lowpass1, lowpass2, phase_from_freq, phase_ramp, pulse_blep, saw, saw_blep, sine,
    exp_decay, TWO_PI,
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

def _piano_note(f: float, n: int, sr: int, bright: float) -> np.ndarray:
    ph = phase_ramp(f, n, sr)
    out = np.zeros(n, dtype=np.float32)
    n_partials = 4 if bright < 0.5 else 6
    for k in range(1, n_partials + 1):
        amp = (1.0 / k ** 1.1) * (0.6 + 0.4 * bright if k > 1 else 1.0)
        tau = 1.6 / k ** 0.8
        out += np.float32(amp) * sine(k * ph * (1.0 + 0.0004 * k * k)) * exp_decay(n, tau, sr)
    return out


def _epiano_note(f: float, n: int, sr: int, bright: float) -> np.ndarray:
    ph = phase_ramp(f, n, sr)
    index = (0.6 + 1.6 * bright) * exp_decay(n, 0.25, sr) + 0.15
    x = np.sin(TWO_PI * ph + index * np.sin(TWO_PI * ph)).astype(np.float32)
    x += 0.25 * sine(ph * 4.0) * exp_decay(n, 0.05, sr)  # tine
    return x * exp_decay(n, 1.8, sr)


def _saw_pair(f: float, n: int, sr: int) -> np.ndarray:
    p = phase_ramp(f * (1.0 - DETUNE), n, sr)
    q = phase_ramp(f * (1.0 + DETUNE), n, sr, 0.37)
    return 0.5 * (saw(p) + saw(q))


def render_chord(kind: str, midis: tuple[int, ...], n_gate: int, sr: int, *, vel: float = 0.8,
                 bright: float = 0.5, sharp: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """A chord hit; returns ``(left, right)`` (alternate notes spread across the stereo field)."""
    n_rel = _release_samples(sr, CHORD_RELEASE_S, sharp)
    n_gate = max(1, n_gate)
    n = n_gate + n_rel
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    attack = 0.002
    for i, m in enumerate(midis):
        f = float(midi_to_hz(m))
        if kind == "piano":
            x = _piano_note(f, n, sr, bright)
        elif kind == "epiano":
            x = _epiano_note(f, n, sr, bright)
        elif kind == "organ":
            ph = phase_ramp(f, n, sr)
            x = sine(ph) + 0.6 * sine(2.0 * ph) + 0.35 * sine(3.0 * ph) + 0.2 * bright * sine(4.0 * ph)
            attack = 0.004
        else:
            x = _saw_pair(f, n, sr)
        (left if i % 2 == 0 else right)[:] += x
        (right if i % 2 == 0 else left)[:] += 0.45 * x
    if kind in ("stab", "strings", "brass"):
        if kind == "stab":
            left = _filter_sweep(left, 600.0 + 900 * bright, 3000.0 + 5000.0 * bright, 0.07, sr)
            right = _filter_sweep(right, 600.0 + 900 * bright, 3000.0 + 5000.0 * bright, 0.07, sr)
        elif kind == "strings":
            left = lowpass2(left, 1800.0 + 2500.0 * bright, sr)
            right = lowpass2(right, 1800.0 + 2500.0 * bright, sr)
            attack = _mix(0.09, 0.015, sharp)
        else:  # brass: filter opens with the attack
            cut = 1200.0 + 3800.0 * bright
            left = lowpass2(left, cut, sr)
            right = lowpass2(right, cut, sr)
            attack = _mix(0.04, 0.012, sharp)
    env = gate_envelope(n_gate, n, attack, 0.0, sr)
    g = np.float32(vel / max(1, len(midis)) * 1.6)
    return left * env * g, right * env * g


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
        semis += vib_depth * onset * np.sin(TWO_PI * 5.6 * t)
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
        x = np.sin(TWO_PI * ph + index * np.sin(TWO_PI * 3.5 * ph)).astype(np.float32)
        decay = _mix(0.9, 0.4, sharp)
        attack = 0.001
    else:  # saw
        x = lowpass2(saw_blep(ph, inc), 2000.0 + 5000.0 * bright, sr)
    env = gate_envelope(n_gate, n, attack, 0.0, sr, decay_tau_s=decay)
    return (x * env * np.float32(vel)).astype(np.float32)
