"""Accent sounds that answer the dancer's hits (see :mod:`d2m.hits`).

An accent is the genre's own drums hit together: its crash, its fill snare
(clap, brush, ...) and its kick, louder for a harder hit. Sounds come from
the synth's :class:`~d2m.synth.drums.DrumKit` (same rate and seed), so an
accent sounds like the band it plays over. Accents are rendered once per
(genre, level) and cached: mixing one into an output block is an addition.
"""

from __future__ import annotations

import numpy as np

from ..generator import CHANNELS
from .drums import DrumKit
from .dsp import pan_gains
from .presets import preset_for

#: Accent loudness relative to a drum one-shot at full scale (before the band's limiter: the
#: accent is added after it, see :func:`soft_clip`).
ACCENT_GAIN = 0.42
#: Hit strengths (score / threshold) at or above which the louder levels play.
LEVEL_STRENGTHS = (1.0, 1.6, 2.4)
#: Velocity of each level.
LEVEL_VELOCITY = (0.7, 0.85, 1.0)
#: Layers of an accent: (which sound of the preset, gain, pan). ``crash``/``fill`` name the
#: preset's crash and fill sounds, ``kick`` its first kick.
LAYERS = (("crash", 0.55, 0.25), ("fill", 0.8, -0.1), ("kick", 0.7, 0.0))
#: Sharpness handed to the drum kit (picks the decay variant; accents are staccato-ish).
ACCENT_SHARPNESS = 0.7
#: Output samples above this magnitude are compressed smoothly towards 1.0 where an accent
#: plays (the band's own limiter ceiling is 0.95, so music without accents is untouched).
CLIP_KNEE = 0.95


def accent_level(strength: float) -> int:
    """Index into :data:`LEVEL_VELOCITY` for a hit strength."""
    level = 0
    for i, s in enumerate(LEVEL_STRENGTHS):
        if strength >= s:
            level = i
    return level


class AccentBank:
    """Accent one-shots per (genre, level), ``(n, CHANNELS)`` float32, read-only and cached."""

    def __init__(self, sample_rate: int = 48000, seed: int = 0):
        self.sample_rate = int(sample_rate)
        self.kit = DrumKit(self.sample_rate, seed)
        self._cache: dict[tuple[str, int], np.ndarray] = {}

    def sounds_for(self, genre: str) -> list[tuple[str, float, float]]:
        """``(drum sound, gain, pan)`` of the genre's accent."""
        preset = preset_for(genre)
        names = set(self.kit.names())
        kick = next((p.sound for p in getattr(preset, "drums", ()) if p.sound.startswith("kick")), "kick_house")
        pick = {"crash": getattr(preset, "crash_sound", "crash"),
                "fill": getattr(preset, "fill_sound", "snare_tight"), "kick": kick}
        return [(pick[role], g, pan) for role, g, pan in LAYERS if pick[role] in names]

    def get(self, genre: str, strength: float) -> np.ndarray:
        level = accent_level(strength)
        key = (genre, level)
        audio = self._cache.get(key)
        if audio is None:
            audio = self._render(genre, LEVEL_VELOCITY[level])
            audio.setflags(write=False)
            self._cache[key] = audio
        return audio

    def _render(self, genre: str, velocity: float) -> np.ndarray:
        layers = [(self.kit.get(name, ACCENT_SHARPNESS), g, pan) for name, g, pan in self.sounds_for(genre)]
        n = max((len(x) for x, _, _ in layers), default=0)
        out = np.zeros((n, CHANNELS), np.float32)
        for x, g, pan in layers:
            gl, gr = pan_gains(pan)
            k = np.float32(g * velocity * ACCENT_GAIN)
            out[: len(x), 0] += x * (k * np.float32(gl))
            out[: len(x), 1] += x * (k * np.float32(gr))
        return out


def soft_clip(x: np.ndarray, knee: float = CLIP_KNEE) -> np.ndarray:
    """In place: magnitudes above ``knee`` approach 1.0 smoothly; below are unchanged.

    ``knee + room * u / (1 + u)`` with ``u = (|x| - knee) / room``: only exactly
    rounded arithmetic (no SIMD transcendental functions), so the result of a
    sample never depends on how the audio was cut into blocks (live == render).
    """
    a = np.abs(x)
    over = a > knee
    if over.any():
        room = 1.0 - knee
        u = (a[over].astype(np.float64) - knee) / room
        x[over] = (np.sign(x[over]) * (knee + room * u / (1.0 + u))).astype(x.dtype)
    return x
