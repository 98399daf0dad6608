"""Effects the song form adds: the riser that leads a build into its peak."""

from __future__ import annotations

import numpy as np

from .dsp import TWO_PI

#: Riser sweep: the tone glides from RISER_LOW_HZ up RISER_OCTAVES octaves over a whole build.
RISER_LOW_HZ = 220.0
RISER_OCTAVES = 3.0
#: Share of noise (rest: the gliding tone) in the riser.
RISER_NOISE = 0.7
#: Fade (s) at both ends of each bar's riser.
EDGE_S = 0.003


def render_riser(n: int, sr: int, p0: float, p1: float, level: float, seed: int) -> np.ndarray:
    """One bar of a build's riser, mono float32: noise that brightens and a tone that glides up.

    ``p0``/``p1``: progress through the build (0..1) at the bar's start and end; the level
    rises with the square of the progress, so the riser swells into the peak. Deterministic
    for a given ``seed``.
    """
    if n <= 0:
        return np.zeros(0, np.float32)
    p = np.linspace(p0, p1, n, endpoint=False, dtype=np.float64)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n + 1).astype(np.float32)
    high = noise[1:] - noise[:-1]                    # first difference: a bright (high-passed) noise
    low = 0.5 * (noise[1:] + noise[:-1])
    pf = p.astype(np.float32)
    hiss = (1.0 - pf) * low * 0.5 + pf * high * 0.5
    # phase as a function of progress (the build's length from this bar's), so it joins across bar lines
    build_s = n / sr / max(1e-6, p1 - p0)
    k = RISER_OCTAVES * np.log(2.0)
    phase = build_s * RISER_LOW_HZ * (np.exp(k * p) - 1.0) / k
    phase -= np.floor(phase)
    tone = np.sin(TWO_PI * phase).astype(np.float32)
    env = (level * p * p).astype(np.float32)
    edge = min(n // 2, int(sr * EDGE_S))             # the noise differs per bar: no click at bar lines
    if edge > 0:
        ramp = np.linspace(0.0, 1.0, edge, dtype=np.float32)
        env[:edge] *= ramp
        env[n - edge:] *= ramp[::-1]
    return (env * (RISER_NOISE * hiss + (1.0 - RISER_NOISE) * tone)).astype(np.float32)
