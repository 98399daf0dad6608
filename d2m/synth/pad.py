"""A sustained pad that runs continuously across segments.

Unlike note-by-note voices, the pad keeps its oscillator phases and loudness
in :class:`PadState`, so it glides seamlessly from one segment to the next
(bars, one-beat idle segments, fade-out into silence). Each oscillator is a
short band-limited harmonic stack, evaluated at a quarter of the sample
rate and interpolated up (the pad has no content above a few kHz), which
keeps it cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dsp import harmonic_stack
from .theory import VOICES_PER_CHORD, midi_to_hz

#: Detune of the two oscillators per note (ratio); one leans left, one right.
PAD_DETUNE = 0.002
#: Seconds for the pad level to move by 1.0 (full scale): fade-ins/outs are linear ramps.
PAD_SLEW_S = 1.2
#: Level of each note's detuned second oscillator: below 1 so the pair shimmers without
#: beating down to silence (deep beats would read as pulses).
PAD_DETUNED_GAIN = 0.45
#: Cross-feed of each oscillator into the opposite channel.
PAD_CROSSFEED = 0.5
#: The pad is computed every ``PAD_DECIMATION`` samples and linearly interpolated.
PAD_DECIMATION = 4
#: Longest time (s) over which a brightness change glides.
PAD_BRIGHT_GLIDE_S = 0.25
#: Harmonic amplitudes of a pad oscillator when dark (bright=0) and open (bright=1).
PAD_HARMONICS = ((1.0, 0.25, 0.08, 0.0), (1.0, 0.5, 0.3, 0.18))


@dataclass(frozen=True)
class PadState:
    """Everything the pad needs to continue exactly where it stopped."""

    phases: np.ndarray            # (2 * VOICES_PER_CHORD,) oscillator phases in cycles, [0, 1)
    level: float                  # current loudness 0..1
    midis: tuple[int, ...] = ()   # the chord it last played (held while fading out)
    bright: float = 0.0           # brightness it ended on (changes glide, never jump)

    @staticmethod
    def initial() -> "PadState":
        phases = (np.arange(2 * VOICES_PER_CHORD, dtype=np.float64) * 0.137) % 1.0
        return PadState(phases=phases, level=0.0)


def level_ramp(level: float, target: float, n: int, sr: int, slew_s: float = PAD_SLEW_S) -> np.ndarray:
    """Linear ramp from ``level`` toward ``target`` (reached exactly, then held), float32."""
    rate = 1.0 / (slew_s * sr)
    if level == target:
        return np.full(n, level, dtype=np.float32)
    steps = np.arange(1, n + 1, dtype=np.float64) * rate
    if target >= level:
        ramp = np.minimum(level + steps, target)
    else:
        ramp = np.maximum(level - steps, target)
    return ramp.astype(np.float32)


def _upsample(y: np.ndarray, n: int, factor: int) -> np.ndarray:
    """Linear interpolation of ``y`` (values at 0, f, 2f, ...) onto samples ``0..n-1``."""
    head, dy = y[:-1], y[1:] - y[:-1]
    full = np.empty((len(head), factor), dtype=np.float32)
    for r in range(factor):  # one long strided write per phase (tiny inner broadcasts are slow)
        full[:, r] = head + dy * np.float32(r / factor)
    return full.ravel()[:n]


def render_pad(state: PadState, midis: tuple[int, ...], target: float, n: int, sr: int,
               bright: float = 0.5) -> tuple[np.ndarray, np.ndarray, PadState]:
    """Render ``n`` samples of the pad playing ``midis``; returns ``(left, right, state)``.

    The loudness ramps linearly from the state's level toward ``target``;
    once both are zero the pad costs nothing and outputs exact zeros.
    """
    if n <= 0:
        return np.zeros(0, np.float32), np.zeros(0, np.float32), state
    if state.level <= 0.0 and target <= 0.0:
        z = np.zeros(n, dtype=np.float32)
        return z, z.copy(), PadState(state.phases, 0.0, state.midis, state.bright)
    freqs = np.repeat(midi_to_hz(np.asarray(midis[:VOICES_PER_CHORD], dtype=np.float64)), 2)
    freqs[0::2] *= 1.0 - PAD_DETUNE
    freqs[1::2] *= 1.0 + PAD_DETUNE
    incs = freqs / sr
    b = float(np.clip(bright, 0.0, 1.0))
    d = PAD_DECIMATION
    n_points = -(-n // d) + 1                     # grid 0, d, 2d, ... reaching past the end
    pos = np.arange(n_points, dtype=np.float64) * d
    if state.level <= 0.0:  # fading in from silence: nothing to glide from
        amps = tuple(lo + (hi - lo) * b for lo, hi in zip(*PAD_HARMONICS))
    else:  # glide the timbre from where it was, over at most PAD_BRIGHT_GLIDE_S
        glide = np.minimum(pos / max(1.0, min(n, PAD_BRIGHT_GLIDE_S * sr)), 1.0).astype(np.float32)
        b_curve = np.float32(state.bright) + np.float32(b - state.bright) * glide
        amps = tuple(np.float32(lo) + np.float32(hi - lo) * b_curve for lo, hi in zip(*PAD_HARMONICS))
    left = np.zeros(n_points, dtype=np.float32)
    right = np.zeros(n_points, dtype=np.float32)
    for k in range(len(freqs)):
        w = harmonic_stack(state.phases[k] + pos * incs[k], amps)
        if k % 2:
            w *= np.float32(PAD_DETUNED_GAIN)
        near, far = (left, right) if k % 2 == 0 else (right, left)
        near += w
        far += np.float32(PAD_CROSSFEED) * w
    new_phases = (state.phases + n * incs) % 1.0
    ramp = level_ramp(state.level, target, n, sr)
    norm = np.float32(2.0 / (len(freqs) * (1.0 + PAD_CROSSFEED) * (1.0 + PAD_DETUNED_GAIN) / 2.0))
    gain = ramp * norm
    out_l = _upsample(left, n, d) * gain
    out_r = _upsample(right, n, d) * gain
    new_state = PadState(new_phases, float(ramp[-1]), tuple(midis), b)
    return out_l, out_r, new_state
