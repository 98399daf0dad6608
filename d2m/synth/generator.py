"""``SynthGenerator``: the built-in procedural band behind the Generator interface."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..generator import CHANNELS, Rendered
from ..plan import IDLE, MUSIC, SegmentPlan
from .arranger import Arranger, Score
from .drums import DrumKit
from .fx import render_riser
from .dsp import pan_gains
from .pad import PadState, render_pad
from .presets import GenrePreset, preset_for
from .voices import ToneCache, render_bass, render_chord, render_lead

#: Longest ringing sound (seconds) that may spill from one segment into the next.
MAX_TAIL_S = 4.0
#: Gain of the whole mix before the soft limiter.
MASTER_GAIN = 0.75
#: Gain of the drum bus relative to the pitched instruments (drum one-shots peak at 1.0).
DRUM_BUS_GAIN = 0.5
#: The soft limiter's ceiling: output peaks never exceed it.
PEAK_CEILING = 0.95
#: Pan of the lead's dry signal; its echoes alternate right/left of centre.
LEAD_PAN = -0.15
ECHO_PANS = (0.55, -0.45, 0.35)


@dataclass(frozen=True)
class SynthState:
    """What carries from one segment to the next (bounded: at most ``MAX_TAIL_S`` of audio)."""

    carry: np.ndarray      # (CHANNELS, m) pre-limiter audio ringing past the last segment
    pad: PadState
    last_kind: str         # kind of the previous segment ("" before the first)


class SynthGenerator:
    """Procedural drums, bass, chords, pad and lead on the plan's beat grid.

    Implements :class:`d2m.generator.Generator`. Deterministic: the same plans
    from :meth:`initial_state` give bit-identical audio. Segments join
    sample-continuously (ringing notes are carried in the state), so every
    :class:`Rendered` has ``continues=True`` and no tail.
    """

    name = "synth"

    def __init__(self, sample_rate: int = 48000, seed: int = 0):
        if sample_rate < 8000:
            raise ValueError(f"sample_rate must be at least 8000 Hz, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.kit = DrumKit(self.sample_rate, self.seed)
        self.arranger = Arranger()
        self.tones = ToneCache()  # raw tones reused between notes; never changes the audio
        self.max_tail = int(MAX_TAIL_S * self.sample_rate)
        longest = max(len(self.kit.get(s, 0.0)) for s in self.kit.names())
        if longest >= self.max_tail:  # pragma: no cover - guards edits to drums.py
            raise RuntimeError(f"a drum sound is longer ({longest} samples) than MAX_TAIL_S allows")

    # -- Generator interface ---------------------------------------------------

    def initial_state(self) -> SynthState:
        return SynthState(carry=np.zeros((CHANNELS, 0), np.float32), pad=PadState.initial(), last_kind="")

    def render(self, plan: SegmentPlan, state: SynthState | None) -> tuple[Rendered, SynthState]:
        if plan.sample_rate != self.sample_rate:
            raise ValueError(f"plan is at {plan.sample_rate} Hz but the synth renders at {self.sample_rate} Hz; "
                             f"build SynthGenerator(sample_rate={plan.sample_rate})")
        if state is None:
            state = self.initial_state()
        n = int(plan.n_samples)
        if n < 0:
            raise ValueError(f"segment {plan.index} has a negative length ({n} samples)")
        preset = preset_for(plan.genre)
        if plan.kind == MUSIC and plan.beat_offsets:
            score = self.arranger.music(plan, preset, after_break=state.last_kind != MUSIC)
        elif plan.kind == IDLE:
            score = self.arranger.idle(plan, preset)
        else:  # silence (or a music plan without beats): let everything ring out
            score = Score(pad_midis=(), pad_level=0.0)

        buf = np.zeros((CHANNELS, n + self.max_tail), np.float32)
        m = state.carry.shape[1]
        buf[:, :m] += state.carry
        end = max(n, m)
        end = max(end, self._play_hits(buf, score))
        end = max(end, self._play_notes(buf, score, preset))
        if score.riser is not None:     # a build's riser (d2m.form), on the drum bus, centred
            p0, p1, level = score.riser
            x = render_riser(n, self.sample_rate, p0, p1, level * DRUM_BUS_GAIN, score.riser_seed)
            end = max(end, self._add(buf, 0, x, 0.7, 0.7))

        if score.pad_midis or state.pad.level > 0.0:
            midis = score.pad_midis or _hold_midis(state)
            left, right, pad_state = render_pad(state.pad, midis, score.pad_level, n, self.sample_rate,
                                                bright=score.bright)
            g = np.float32(preset.pad_gain)
            buf[0, :n] += left * g
            buf[1, :n] += right * g
        else:
            pad_state = state.pad

        audio = _master(buf, n, MASTER_GAIN * preset.mix_gain)
        carry = buf[:, n:end].copy()
        new_state = SynthState(carry=carry, pad=pad_state, last_kind=plan.kind)
        return Rendered(audio=audio, tail=None, continues=True, score=score), new_state

    # -- mixing ------------------------------------------------------------------

    def _add(self, buf: np.ndarray, offset: int, x: np.ndarray, gl: float, gr: float) -> int:
        """Add mono ``x`` at ``offset`` with channel gains; returns the end sample written."""
        stop = min(offset + len(x), buf.shape[1])
        k = stop - offset
        if k <= 0:
            return offset
        buf[0, offset:stop] += x[:k] * np.float32(gl)
        buf[1, offset:stop] += x[:k] * np.float32(gr)
        return stop

    def _play_hits(self, buf: np.ndarray, score: Score) -> int:
        end = 0
        for hit in score.hits:
            x = self.kit.get(hit.sound, score.sharp)
            gl, gr = pan_gains(hit.pan)
            g = hit.velocity * DRUM_BUS_GAIN
            end = max(end, self._add(buf, hit.offset, x, gl * g, gr * g))
        return end

    def _play_notes(self, buf: np.ndarray, score: Score, preset: GenrePreset) -> int:
        sr = self.sample_rate
        end = 0
        lead_bus = None
        lead_end = 0
        for note in score.notes:
            if note.part == "bass":
                x = render_bass(preset.bass_kind, note.midi, note.length, sr, vel=note.velocity,
                                bright=score.bright, sharp=score.sharp, cache=self.tones)
                end = max(end, self._add(buf, note.offset, x, preset.bass_gain, preset.bass_gain))
            elif note.part == "chord":
                left, right = render_chord(preset.chord_kind, note.midi, note.length, sr, vel=note.velocity,
                                           bright=score.bright, sharp=score.sharp, cache=self.tones)
                g = np.float32(preset.chord_gain)
                stop = min(note.offset + len(left), buf.shape[1])
                k = stop - note.offset
                buf[0, note.offset:stop] += left[:k] * g
                buf[1, note.offset:stop] += right[:k] * g
                end = max(end, stop)
            elif note.part == "lead":
                if lead_bus is None:
                    lead_bus = np.zeros(buf.shape[1], np.float32)
                x = render_lead(preset.lead_kind, note.midi, note.length, sr, vel=note.velocity,
                                bright=score.bright, sharp=score.sharp, glide_from=note.glide_from)
                stop = min(note.offset + len(x), len(lead_bus))
                lead_bus[note.offset:stop] += x[:stop - note.offset]
                lead_end = max(lead_end, stop)
        if lead_bus is not None:
            dry = lead_bus[:lead_end]
            gl, gr = pan_gains(LEAD_PAN)
            end = max(end, self._add(buf, 0, dry, gl * preset.lead_gain, gr * preset.lead_gain))
            if score.echo_delay > 0:
                for i, g in enumerate(preset.echo_gains):
                    gl, gr = pan_gains(ECHO_PANS[i % len(ECHO_PANS)])
                    g *= preset.lead_gain
                    end = max(end, self._add(buf, score.echo_delay * (i + 1), dry, gl * g, gr * g))
        return end


#: Pad chord used if a pad must fade out before it ever played a chord (A minor).
FALLBACK_PAD_MIDIS = (57, 60, 64, 69)


def _hold_midis(state: SynthState) -> tuple[int, ...]:
    """Keep the pad's last chord while it fades out (silence has no chord of its own)."""
    return state.pad.midis or FALLBACK_PAD_MIDIS


def _master(buf: np.ndarray, n: int, gain: float) -> np.ndarray:
    """Gain and soft limiter (``ceiling * tanh(x / ceiling)``) into an ``(n, CHANNELS)`` block."""
    out = np.empty((n, CHANNELS), dtype=np.float32)
    scale = np.float32(gain / PEAK_CEILING)
    for ch in range(CHANNELS):
        y = buf[ch, :n] * scale
        np.tanh(y, out=y)
        y *= np.float32(PEAK_CEILING)
        out[:, ch] = y
    return out
