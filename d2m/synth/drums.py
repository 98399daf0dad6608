"""Drum one-shots, synthesised once when a generator is built.

Each sound comes in :data:`DECAY_VARIANTS` lengths so ``sharpness`` can pick
long/legato or short/staccato hits without any work at render time.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

import numpy as np

from .dsp import TWO_PI, butter_filter

#: Decay-time multipliers of the pre-rendered variants, from legato to staccato.
DECAY_VARIANTS: tuple[float, ...] = (1.4, 1.0, 0.62)
#: Extra transient (click) gain per variant: sharper hits are harder.
CLICK_VARIANTS: tuple[float, ...] = (0.6, 1.0, 1.5)
#: Longest one-shot in seconds (longer decays are faded out at this length).
MAX_ONESHOT_S = 3.0
#: Seconds of linear fade at the very end of every one-shot (no truncation clicks).
END_FADE_S = 0.004

#: Length (s) and gain of the kick's broadband beater click. Its broadband
#: transient is what makes kicks as salient as snares to onset detectors
#: (librosa's median-over-bands flux), keeping beat trackers on the beat, not
#: on the half-time backbeat.
KICK_CLICK_S = 0.03
KICK_CLICK_GAIN = 2.5

# 808-style inharmonic square-wave frequencies for cymbals.
_METAL_HZ = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def _finish(x: np.ndarray, sr: int, peak: float = 1.0) -> np.ndarray:
    """Normalise to ``peak``, fade the last samples to exactly zero, make read-only."""
    x = np.asarray(x, dtype=np.float32)
    m = float(np.max(np.abs(x))) or 1.0
    x = x * np.float32(peak / m)
    n_fade = min(len(x), max(2, int(END_FADE_S * sr)))
    x[-n_fade:] *= np.linspace(1.0, 0.0, n_fade, dtype=np.float32)
    x.flags.writeable = False
    return x


def _t(sr: int, seconds: float) -> np.ndarray:
    return np.arange(int(min(seconds, MAX_ONESHOT_S) * sr), dtype=np.float64) / sr


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n).astype(np.float32)


def _metal(sr: int, n: int, scale: float = 1.0) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / sr
    return sum(np.sign(np.sin(TWO_PI * f * scale * t + i)) for i, f in enumerate(_METAL_HZ)).astype(np.float32)


def kick(sr, rng, d, c, *, f_start=150.0, f_end=50.0, sweep=0.035, decay=0.3, click=0.3, drive=1.5,
         body_noise=0.0):
    """Pitch-swept sine with a beater click, saturated with ``tanh``."""
    t = _t(sr, decay * d * 4.0 + 0.02)
    f = f_end + (f_start - f_end) * np.exp(-t / sweep)
    phase = TWO_PI * np.cumsum(f) / sr
    amp = np.exp(-t / (decay * d))
    amp *= np.minimum(1.0, t / 0.0015)
    x = np.sin(phase) * amp
    n_click = int(KICK_CLICK_S * sr)
    tc = t[:n_click]
    cl = butter_filter(_noise(rng, n_click), [400.0, 14000.0], sr, "bandpass") * np.exp(-tc / 0.007)
    knock = np.sin(TWO_PI * 1200.0 * tc) * np.exp(-tc / 0.004)
    x[:n_click] += click * c * (KICK_CLICK_GAIN * cl + 0.5 * knock)
    if body_noise:
        nb = butter_filter(_noise(rng, len(t)), [200.0, 2500.0], sr, "bandpass")
        x += body_noise * nb * np.exp(-t / (0.03 * d))
    x = np.tanh(drive * x) / np.tanh(drive)
    return _finish(x, sr)


def snare(sr, rng, d, c, *, tone_hz=190.0, tone_decay=0.06, noise_decay=0.16, noise_hp=1200.0,
          tone_mix=0.55, drive=1.2):
    """Two detuned sine drum-heads plus high-passed noise (the wires)."""
    t = _t(sr, noise_decay * d * 5.0 + 0.02)
    f = tone_hz * (1.0 + 0.4 * np.exp(-t / 0.01))
    tone = (np.sin(TWO_PI * np.cumsum(f) / sr) + 0.5 * np.sin(TWO_PI * np.cumsum(f * 1.77) / sr))
    tone *= np.exp(-t / (tone_decay * d))
    wires = butter_filter(_noise(rng, len(t)), noise_hp, sr, "highpass") * np.exp(-t / (noise_decay * d))
    x = tone_mix * tone / 1.5 + (1.0 - tone_mix) * wires * 1.6
    n_click = int(0.002 * sr)
    x[:n_click] += 0.5 * c * _noise(rng, n_click)
    x = np.tanh(drive * x) / np.tanh(drive)
    return _finish(x, sr)


def clap(sr, rng, d, c, *, decay=0.14, center=1300.0):
    """Three quick band-passed noise bursts followed by a diffuse tail."""
    t = _t(sr, decay * d * 5.0 + 0.05)
    noise = butter_filter(_noise(rng, len(t)), [center * 0.6, center * 2.4], sr, "bandpass")
    env = np.zeros_like(t)
    for k, delay in enumerate((0.0, 0.011, 0.022)):
        tt = t - delay
        env += np.where(tt >= 0, np.exp(-np.maximum(tt, 0) / 0.006), 0.0) * (0.8 + 0.1 * k)
    tail = t - 0.03
    env += np.where(tail >= 0, np.exp(-np.maximum(tail, 0) / (decay * d)), 0.0) * 0.75
    return _finish(noise * env * (0.85 + 0.15 * c), sr)


def hat(sr, rng, d, c, *, decay=0.045, hp=7000.0, metal=0.6):
    """High-passed noise plus 808 metallic squares."""
    t = _t(sr, decay * d * 5.0 + 0.01)
    src = (1.0 - metal) * _noise(rng, len(t)) + metal * _metal(sr, len(t)) / 3.0
    x = butter_filter(src, hp, sr, "highpass", order=2)
    env = np.exp(-t / (decay * d)) * np.minimum(1.0, t / 0.0005)
    return _finish(x * env, sr)


def ride(sr, rng, d, c, *, decay=0.6):
    t = _t(sr, decay * d * 4.0)
    src = 0.5 * _noise(rng, len(t)) + 0.5 * _metal(sr, len(t), 1.9) / 3.0
    x = butter_filter(src, [3500.0, 12000.0], sr, "bandpass")
    ping = np.sin(TWO_PI * 4200.0 * t) * np.exp(-t / 0.12) * 0.3
    return _finish((x + ping) * np.exp(-t / (decay * d)), sr)


def crash(sr, rng, d, c, *, decay=0.6):
    t = _t(sr, decay * d * 4.0)
    src = 0.7 * _noise(rng, len(t)) + 0.3 * _metal(sr, len(t), 1.3) / 3.0
    x = butter_filter(src, 3000.0, sr, "highpass")
    env = np.exp(-t / (decay * d)) * np.minimum(1.0, t / 0.002)
    return _finish(x * env, sr)


def brush(sr, rng, d, c, *, decay=0.18):
    """Brush snare: soft-attack band-passed noise swish."""
    t = _t(sr, decay * d * 5.0)
    x = butter_filter(_noise(rng, len(t)), [1500.0, 9000.0], sr, "bandpass")
    env = np.minimum(1.0, t / 0.012) * np.exp(-t / (decay * d))
    thump = np.sin(TWO_PI * 180.0 * t) * np.exp(-t / 0.04) * 0.35
    return _finish(x * env + thump, sr)


def tom(sr, rng, d, c, *, hz=110.0, decay=0.22):
    t = _t(sr, decay * d * 5.0)
    f = hz * (1.0 + 0.6 * np.exp(-t / 0.02))
    x = np.sin(TWO_PI * np.cumsum(f) / sr) * np.exp(-t / (decay * d))
    x += 0.15 * butter_filter(_noise(rng, len(t)), 2000.0, sr, "lowpass") * np.exp(-t / 0.02)
    return _finish(np.tanh(1.4 * x), sr)


def rim(sr, rng, d, c, *, hz=1700.0, decay=0.025):
    t = _t(sr, decay * d * 6.0)
    x = (np.sin(TWO_PI * hz * t) + 0.6 * np.sin(TWO_PI * hz * 0.53 * t)) * np.exp(-t / (decay * d))
    x[: int(0.001 * sr)] += c * 0.5
    return _finish(x, sr)


def shaker(sr, rng, d, c, *, decay=0.05):
    t = _t(sr, decay * d * 5.0 + 0.02)
    x = butter_filter(_noise(rng, len(t)), [5000.0, 14000.0], sr, "bandpass")
    env = np.minimum(1.0, t / 0.012) * np.exp(-t / (decay * d))
    return _finish(x * env, sr)


def tambourine(sr, rng, d, c, *, decay=0.12):
    t = _t(sr, decay * d * 5.0)
    jingles = butter_filter(_noise(rng, len(t)) + _metal(sr, len(t), 4.1) / 4.0, 6000.0, sr, "highpass")
    env = np.exp(-t / (decay * d)) * (1.0 + 0.5 * np.exp(-t / 0.01))
    return _finish(jingles * env, sr)


def cowbell(sr, rng, d, c, *, decay=0.12):
    t = _t(sr, decay * d * 5.0)
    x = np.sign(np.sin(TWO_PI * 540.0 * t)) + np.sign(np.sin(TWO_PI * 800.0 * t))
    x = butter_filter(x, [500.0, 3000.0], sr, "bandpass") * np.exp(-t / (decay * d))
    return _finish(x, sr)


def conga(sr, rng, d, c, *, hz=220.0, decay=0.14):
    t = _t(sr, decay * d * 5.0)
    f = hz * (1.0 + 0.25 * np.exp(-t / 0.015))
    x = np.sin(TWO_PI * np.cumsum(f) / sr) * np.exp(-t / (decay * d))
    x[: int(0.002 * sr)] += 0.4 * c * _noise(rng, int(0.002 * sr))
    return _finish(x, sr)


def snap(sr, rng, d, c, *, decay=0.035):
    """Finger snap: a very short band-passed noise crack."""
    t = _t(sr, decay * d * 6.0 + 0.01)
    x = butter_filter(_noise(rng, len(t)), [1800.0, 5500.0], sr, "bandpass")
    env = np.exp(-t / (decay * d)) * np.minimum(1.0, t / 0.0008)
    return _finish(x * env, sr)


def _layer(*parts):
    """A sound made of several weighted sounds (e.g. a snare with a clap on top)."""

    def make(sr, rng, d, c):
        xs = [w * fn(sr, rng, d, c) for fn, w in parts]
        out = np.zeros(max(len(x) for x in xs), dtype=np.float32)
        for x in xs:
            out[: len(x)] += x
        return _finish(out, sr)

    return make


def _with(fn, **kwargs):
    return lambda sr, rng, d, c: fn(sr, rng, d, c, **kwargs)


#: Every drum sound a preset can name.
SOUNDS: dict[str, Callable] = {
    "kick_house": _with(kick, f_start=170.0, f_end=50.0, sweep=0.03, decay=0.26, click=0.8, drive=1.8),
    "kick_disco": _with(kick, f_start=140.0, f_end=58.0, sweep=0.025, decay=0.2, click=0.9, drive=1.4),
    "kick_break": _with(kick, f_start=150.0, f_end=62.0, sweep=0.02, decay=0.16, click=1.1, drive=1.6,
                        body_noise=0.25),
    "kick_boom": _with(kick, f_start=130.0, f_end=52.0, sweep=0.03, decay=0.25, click=1.0, drive=2.0,
                       body_noise=0.15),
    "kick_808": _with(kick, f_start=120.0, f_end=46.0, sweep=0.05, decay=0.55, click=0.6, drive=2.2),
    "kick_808_hard": _with(kick, f_start=180.0, f_end=44.0, sweep=0.04, decay=0.3, click=1.0, drive=3.0),
    "kick_electro": _with(kick, f_start=200.0, f_end=52.0, sweep=0.02, decay=0.3, click=0.8, drive=1.6),
    "kick_soft": _with(kick, f_start=95.0, f_end=58.0, sweep=0.03, decay=0.16, click=0.4, drive=1.1),
    "snare_tight": _with(snare, tone_hz=200.0, tone_decay=0.05, noise_decay=0.12, noise_hp=1800.0),
    "snare_break": _with(snare, tone_hz=185.0, tone_decay=0.07, noise_decay=0.17, noise_hp=1000.0, drive=1.8),
    "snare_boom": _with(snare, tone_hz=170.0, tone_decay=0.08, noise_decay=0.2, noise_hp=900.0, drive=2.0),
    "snare_fat": _with(snare, tone_hz=160.0, tone_decay=0.1, noise_decay=0.26, noise_hp=700.0, drive=2.6),
    "snare_disco": _with(snare, tone_hz=210.0, tone_decay=0.06, noise_decay=0.14, noise_hp=1500.0, drive=1.3),
    "brush": brush,
    "clap": clap,
    "clap_big": _with(clap, decay=0.22, center=1100.0),
    "snap": snap,
    "hat": hat,
    "hat_bright": _with(hat, decay=0.035, hp=8500.0, metal=0.8),
    "hat_soft": _with(hat, decay=0.05, hp=6000.0, metal=0.3),
    "open_hat": _with(hat, decay=0.22, hp=6500.0, metal=0.6),
    "ride": ride,
    "crash": crash,
    "tom_low": _with(tom, hz=95.0),
    "tom_mid": _with(tom, hz=135.0, decay=0.18),
    "rim": rim,
    "shaker": shaker,
    "tambourine": tambourine,
    "cowbell": cowbell,
    "conga": conga,
    "snare_clap": _layer((_with(snare, tone_hz=180.0, noise_decay=0.16), 0.7), (clap, 0.6)),
    "krump_snare": _layer((_with(snare, tone_hz=150.0, tone_decay=0.1, noise_decay=0.28, drive=3.0), 0.8),
                          (_with(clap, decay=0.25, center=1000.0), 0.7)),
}


#: Ghost-note variants of every kick: the same drum without its beater click.
GHOST_SUFFIX = "_ghost"
for _name in [n for n in SOUNDS if n.startswith("kick_")]:
    SOUNDS[_name + GHOST_SUFFIX] = (lambda fn: lambda sr, rng, d, c: fn(sr, rng, d, 0.0))(SOUNDS[_name])


class DrumKit:
    """Pre-rendered, read-only one-shots: ``kit.get(name, sharpness)``."""

    def __init__(self, sample_rate: int, seed: int = 0):
        self.sample_rate = sample_rate
        self._sounds = _render_all(sample_rate, seed)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._sounds))

    def get(self, name: str, sharpness: float = 0.5) -> np.ndarray:
        """One-shot ``name`` in the decay variant for ``sharpness`` (0 legato .. 1 staccato)."""
        variants = self._sounds[name]
        i = min(len(variants) - 1, int(np.clip(sharpness, 0.0, 1.0) * len(variants)))
        return variants[i]


@lru_cache(maxsize=4)
def _render_all(sample_rate: int, seed: int) -> dict[str, tuple[np.ndarray, ...]]:
    """Render every sound once per (rate, seed); shared by all kits (arrays are read-only)."""
    out = {}
    for k, (name, fn) in enumerate(sorted(SOUNDS.items())):
        rng = np.random.default_rng([seed & 0xFFFFFFFF, k, 0xD2])
        out[name] = tuple(fn(sample_rate, rng, d, c) for d, c in zip(DECAY_VARIANTS, CLICK_VARIANTS))
    return out
