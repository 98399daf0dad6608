"""A sustained pad that runs continuously across segments.

Unlike note-by-note voices, the pad keeps its oscillator phases, filter memory
and loudness in :class:`PadState`, so it glides seamlessly from one segment to
the next (bars, one-beat idle segments, fade-out into silence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from .dsp import one_pole_coef
from .theory import VOICES_PER_CHORD, midi_to_hz

#: Detune of the two oscillators per note (ratio); one leans left, one right.
PAD_DETUNE = 0.0035
#: Seconds for the pad level to move by 1.0 (full scale): fade-ins/outs are linear ramps.
PAD_SLEW_S = 1.2
#: Cross-feed of each oscillator into the opposite channel.
PAD_CROSSFEED = 0.5
#: Low-pass cutoff range (Hz) from dark (bright=0) to open (bright=1).
PAD_CUTOFF_HZ = (600.0, 2400.0)


@dataclass(frozen=True)
class PadState:
    """Everything the pad needs to continue exactly where it stopped."""

    phases: np.ndarray   # (2 * VOICES_PER_CHORD,) oscillator phases in cycles, [0, 1)
    level: float         # current loudness 0..1
    zi: np.ndarray       # (2, 2) low-pass filter memory per channel
    midis: tuple[int, ...] = ()  # the chord it last played (held while fading out)

    @staticmethod
    def initial() -> "PadState":
        phases = (np.arange(2 * VOICES_PER_CHORD, dtype=np.float64) * 0.137) % 1.0
        return PadState(phases=phases, level=0.0, zi=np.zeros((2, 2)))


def level_ramp(level: float, target: float, n: int, sr: int, slew_s: float = PAD_SLEW_S) -> np.ndarray:
    """Linear ramp from ``level`` toward ``target`` (reached exactly, then held)."""
    rate = 1.0 / (slew_s * sr)
    steps = np.arange(1, n + 1, dtype=np.float64) * rate
    if target >= level:
        return np.minimum(level + steps, target)
    return np.maximum(level - steps, target)


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
        return z, z.copy(), PadState(state.phases, 0.0, np.zeros((2, 2)), state.midis)
    freqs = np.repeat(midi_to_hz(np.asarray(midis[:VOICES_PER_CHORD], dtype=np.float64)), 2)
    freqs[0::2] *= 1.0 - PAD_DETUNE
    freqs[1::2] *= 1.0 + PAD_DETUNE
    incs = freqs / sr
    idx = np.arange(n, dtype=np.float64)
    left = np.zeros(n, dtype=np.float64)
    right = np.zeros(n, dtype=np.float64)
    new_phases = np.empty_like(state.phases)
    for k in range(len(freqs)):
        ph = state.phases[k] + idx * incs[k]
        w = 2.0 * (ph - np.floor(ph)) - 1.0
        if k % 2 == 0:
            left += w
            right += PAD_CROSSFEED * w
        else:
            right += w
            left += PAD_CROSSFEED * w
        new_phases[k] = (state.phases[k] + n * incs[k]) % 1.0
    a = one_pole_coef(PAD_CUTOFF_HZ[0] + (PAD_CUTOFF_HZ[1] - PAD_CUTOFF_HZ[0]) * bright, sr)
    b_, a_ = [(1.0 - a) ** 2], [1.0, -2.0 * a, a * a]
    left, zl = lfilter(b_, a_, left, zi=state.zi[0])
    right, zr = lfilter(b_, a_, right, zi=state.zi[1])
    ramp = level_ramp(state.level, target, n, sr)
    gain = ramp / (len(freqs) * (1.0 + PAD_CROSSFEED) / 2.0)
    new_state = PadState(new_phases, float(ramp[-1]), np.stack([zl, zr]), tuple(midis))
    return (left * gain).astype(np.float32), (right * gain).astype(np.float32), new_state
