"""The ``musicgen`` generator: MusicGen steered by the dance through ``*`` and ``@``.

``MusicGenGenerator.render(plan, state)``:

1. builds the prompt (:mod:`d2m.musicgen.prompts`), the rhythm window from
   the plan's motion envelope/peaks and the genre probabilities (the plan's,
   else the trained motion classifier's, else one-hot of ``plan.genre``);
2. runs the trained encoders and injects their vectors at the pseudo-words
   of T5's input (:mod:`d2m.musicgen.conditioning`); without encoders the
   pseudo-words become plain words (genre name, tempo);
3. samples codes for the segment plus an overhang with classifier-free
   guidance, continuing the audio that ended the previous segment (kept in
   the state, encoded with EnCodec as an audio prompt) so the music flows;
4. decodes, resamples 32 kHz -> ``sample_rate`` (``resample_poly``),
   beat-tracks the result (librosa) and warps it so its beats land on
   ``plan.beat_offsets`` (:mod:`d2m.musicgen.beatwarp`);
5. returns exactly ``(plan.n_samples, 2)`` float32 plus a crossfade tail.

``idle`` and ``silence`` segments are silent and never call the model.

The generator is deterministic for a given device (randomness comes from a
private ``torch.Generator`` seeded from ``plan.seed`` and ``plan.index``),
keeps no hidden per-session state (everything is in the returned state) and
serialises calls with a lock, so one worker thread may drive it while other
threads read :attr:`MusicGenGenerator.last_timing`. The only clock it reads
is the optional profiling ``clock`` used for :class:`RenderTiming`; it never
influences the audio.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from math import gcd
from typing import Callable

import numpy as np

from ..generator import CHANNELS, CROSSFADE_S, Rendered
from ..genres import DISPLAY_NAMES, GENRES, parse_genre
from ..plan import MUSIC, SegmentPlan
from . import deps
from .prompts import DEFAULT_TEMPLATE, GENRE_WORD, RHYTHM_WORD, compose_prompt, text_fallback
from .rhythm import window_from_plan

#: Output sample rate of d2m (Hz).
SAMPLE_RATE = 48000
#: Classifier-free guidance of the reference method.
GUIDANCE = 3.0
#: Top-k sampling of the reference method.
TOP_K = 250
#: Seconds of the previous segment's end fed back as the audio prompt.
PROMPT_S = 1.0
#: Extra audio generated past the warp's need, so beats pulled late still have source (s).
WARP_MARGIN_S = 0.25
#: Where the genre probabilities come from: "auto" (plan, else classifier, else one-hot), "plan", "classifier".
GENRE_SOURCES = ("auto", "plan", "classifier")


@dataclass(frozen=True)
class MusicGenState:
    """What the next segment continues: the end of the last rendered music (or nothing)."""

    history: np.ndarray | None = field(default=None, repr=False)  #: (n, 2) float32 at the output rate
    segments: int = 0                                              #: segments rendered so far


@dataclass(frozen=True)
class RenderTiming:
    """Profile of the last :meth:`MusicGenGenerator.render` call."""

    index: int                  #: plan index
    kind: str                   #: plan kind
    seconds: float              #: wall time of the render (profiling clock)
    model_called: bool          #: False for idle/silence
    decoder_calls: int = 0      #: decoder forward passes
    new_frames: int = 0         #: code frames generated (50 Hz)
    prompt_frames: int = 0      #: code frames of the audio prompt
    audio_seconds: float = 0.0  #: seconds of audio delivered (segment)
    guided: bool = False        #: classifier-free guidance ran (null branch used)
    beats_matched: int = 0      #: grid beats a detected beat was warped onto
    genre_source: str = ""      #: "plan", "classifier" or "onehot"
    prompt: str = ""            #: the text MusicGen read (pseudo-words included)

    @property
    def steps_per_s(self) -> float:
        return self.decoder_calls / self.seconds if self.seconds > 0 else float("nan")

    @property
    def realtime_factor(self) -> float:
        """Render time divided by audio time (below 1 is faster than real time)."""
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else float("nan")


def derive_seed(seed: int, index: int) -> int:
    """Per-segment seed from the session seed and the segment index (63-bit)."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + 1) & ((1 << 63) - 1)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling along axis 0 (``scipy.signal.resample_poly``)."""
    if sr_in == sr_out or len(audio) == 0:
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    g = gcd(int(sr_in), int(sr_out))
    return resample_poly(audio, sr_out // g, sr_in // g, axis=0).astype(np.float32)


def target_beats(plan: SegmentPlan, n_out: int) -> list[float]:
    """The plan's beats plus the following ones (at its tempo) up to ``n_out`` samples."""
    beats = [float(o) for o in plan.beat_offsets]
    if plan.bpm > 0:
        period = plan.sample_rate * 60.0 / plan.bpm
        nxt = (beats[-1] + period) if beats else 0.0
        while nxt < n_out:
            beats.append(nxt)
            nxt += period
    return beats


def detect_beats(mono: np.ndarray, sr: int, bpm: float) -> np.ndarray:
    """Beat positions (samples) found by librosa's tracker, seeded with the plan's tempo."""
    import librosa

    if mono.size < sr // 4 or not np.any(mono):
        return np.zeros(0)
    hop = 512
    onset = librosa.onset.onset_strength(y=mono.astype(np.float32), sr=sr, hop_length=hop)
    _, frames = librosa.beat.beat_track(onset_envelope=onset, sr=sr, hop_length=hop,
                                        start_bpm=float(bpm) if bpm > 0 else 120.0,
                                        tightness=400, trim=False)
    return librosa.frames_to_samples(np.asarray(frames), hop_length=hop).astype(np.float64)


class MusicGenGenerator:
    """MusicGen behind :class:`d2m.generator.Generator` (``name = "musicgen"``).

    Parameters mirror the reference method's inference settings; every
    default is a module constant. ``model``/``tokenizer`` may be passed
    pre-loaded (then ``model_dir`` is only used for messages).

    ``prompt_s``: seconds of the previous segment's end used as the audio
    prompt; ``overhang_s``: length of the crossfade tail; ``warp_margin_s``:
    extra audio generated for the beat warp; ``genre_source``: see
    :data:`GENRE_SOURCES`; ``half``: float16 weights (default: on GPU);
    ``static_cache``: fixed-size KV cache; ``compile_decoder``:
    ``torch.compile`` the one-token decoder step (implies ``static_cache``;
    the first render compiles, later ones are faster, mainly on CUDA);
    ``clock``: profiling timer for :attr:`last_timing` (``None``: no timing).
    """

    name = "musicgen"

    def __init__(self, model_dir=None, *, device: str = "auto", encoders=None,
                 sample_rate: int = SAMPLE_RATE, guidance: float = GUIDANCE, top_k: int = TOP_K,
                 temperature: float = 1.0, prompt_s: float = PROMPT_S, overhang_s: float = CROSSFADE_S,
                 warp_margin_s: float = WARP_MARGIN_S, beat_lock: bool = True,
                 template: str = DEFAULT_TEMPLATE,
                 append_missing: tuple[str, ...] = (GENRE_WORD, RHYTHM_WORD),
                 genre_source: str = "auto", gain: float = 1.0, half: bool | None = None,
                 allow_download: bool = False, static_cache: bool = False,
                 compile_decoder: bool = False,
                 clock: Callable[[], float] | None = time.perf_counter, model=None, tokenizer=None):
        deps.require()
        import torch

        from .conditioning import PromptConditioner
        from .encoders import PseudoWordEncoders
        from .loading import load_musicgen, resolve_device

        if genre_source not in GENRE_SOURCES:
            raise ValueError(f"genre_source must be one of {GENRE_SOURCES}, got {genre_source!r}")
        if sample_rate <= 0 or prompt_s < 0 or overhang_s < 0 or warp_margin_s < 0:
            raise ValueError("sample_rate must be positive and prompt_s/overhang_s/warp_margin_s >= 0")
        if model is None:
            model, tokenizer, dev = load_musicgen(model_dir, device=device, half=half,
                                                  allow_download=allow_download)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer with a pre-loaded model")
            dev = str(next(model.parameters()).device) if device == "auto" else resolve_device(device)
            model = model.to(dev).eval()
        self.model = model
        self.tokenizer = tokenizer
        self.device = dev
        self.sample_rate = int(sample_rate)
        self.guidance = float(guidance)
        self.top_k = int(top_k)
        self.temperature = float(temperature)
        self.prompt_s = float(prompt_s)
        self.overhang_s = float(overhang_s)
        self.warp_margin_s = float(warp_margin_s)
        self.beat_lock = bool(beat_lock)
        self.template = template
        self.append_missing = tuple(append_missing)
        self.genre_source = genre_source
        self.gain = float(gain)
        self._clock = clock
        self._lock = threading.Lock()
        self.static_cache = bool(static_cache or compile_decoder)
        self._step_decoder = None
        if compile_decoder:   # one-token steps with a fixed-size cache: one graph (CUDA graphs on GPU)
            mode = "reduce-overhead" if str(dev).startswith("cuda") else "default"
            self._step_decoder = torch.compile(model.decoder, mode=mode, dynamic=False)
        self.last_timing: RenderTiming | None = None

        if encoders is not None and not isinstance(encoders, PseudoWordEncoders):
            encoders = PseudoWordEncoders.load(encoders)
        if encoders is not None:
            encoders.check_model(model)
            encoders = encoders.to(dev).eval()
        self.encoders = encoders
        self.conditioner = PromptConditioner(model, tokenizer)
        audio_cfg = model.config.audio_encoder
        self.model_rate = int(audio_cfg.sampling_rate)
        self.hop = int(np.prod(audio_cfg.upsampling_ratios))
        self.frame_rate = self.model_rate / self.hop
        self.model_channels = int(getattr(model.config.decoder, "audio_channels", 1))
        self._torch = torch

    # -- Generator protocol -------------------------------------------------
    def initial_state(self) -> MusicGenState:
        return MusicGenState()

    def render(self, plan: SegmentPlan, state: MusicGenState | None) -> tuple[Rendered, MusicGenState]:
        if state is None:
            state = self.initial_state()
        if plan.sample_rate != self.sample_rate:
            raise ValueError(f"plan is at {plan.sample_rate} Hz but the musicgen generator renders at "
                             f"{self.sample_rate} Hz; build it with sample_rate={plan.sample_rate}")
        with self._lock:
            t0 = self._clock() if self._clock else 0.0
            if plan.kind != MUSIC or plan.n_samples == 0:
                audio = np.zeros((plan.n_samples, CHANNELS), dtype=np.float32)
                self.last_timing = RenderTiming(plan.index, plan.kind, self._elapsed(t0), False,
                                                audio_seconds=plan.duration)
                return Rendered(audio), MusicGenState(None, state.segments + 1)
            rendered, new_state, info = self._render_music(plan, state)
            self.last_timing = RenderTiming(plan.index, plan.kind, self._elapsed(t0), True,
                                            audio_seconds=plan.duration, **info)
            return rendered, new_state

    def _elapsed(self, t0: float) -> float:
        return (self._clock() - t0) if self._clock else 0.0

    # -- conditioning -------------------------------------------------------
    def genre_probs(self, plan: SegmentPlan, window: np.ndarray) -> tuple[np.ndarray, str]:
        """Genre probabilities for ``@`` and where they came from."""
        probs = np.asarray(plan.genre_probs, dtype=np.float64)
        valid = (probs.size == len(GENRES) and bool(np.all(np.isfinite(probs)))
                 and float(np.clip(probs, 0, None).sum()) > 0)
        if self.genre_source != "classifier" and valid:
            probs = np.clip(probs, 0, None)
            return probs / probs.sum(), "plan"
        if self.genre_source != "plan" and self._classifier_wanted(plan):
            torch = self._torch
            with torch.inference_mode():
                x = torch.from_numpy(window[None]).to(self.device)
                p = self.encoders.genre_probs(x)[0].float().cpu().numpy()
            return p.astype(np.float64), "classifier"
        one = np.zeros(len(GENRES))
        try:
            one[GENRES.index(parse_genre(plan.genre))] = 1.0
        except ValueError:
            one[:] = 1.0 / len(GENRES)
        return one, "onehot"

    def _classifier_wanted(self, plan: SegmentPlan) -> bool:
        return (self.encoders is not None and bool(self.encoders.trained_classifier)
                and plan.motion_envelope is not None)

    def conditioning_for(self, plan: SegmentPlan):
        """``(Conditioning, prompt text, genre source)`` for a music plan."""
        torch = self._torch
        frames = self.encoders.config.window_frames if self.encoders is not None else None
        window = window_from_plan(plan, frames) if frames else window_from_plan(plan)
        probs, source = self.genre_probs(plan, window)
        prompt = compose_prompt(plan.prompt, template=self.template, append_missing=self.append_missing)
        with torch.inference_mode():
            if self.encoders is None:
                text = text_fallback(prompt, genre_name=DISPLAY_NAMES[GENRES[int(np.argmax(probs))]],
                                     bpm=plan.bpm)
                cond = self.conditioner.encode(self.conditioner.tokenize([text]))
                return cond, text, source
            tokens = self.conditioner.tokenize([prompt])
            rhythm = genre = None
            if bool(tokens.rhythm_mask.any()):
                rhythm = self.encoders.rhythm(torch.from_numpy(window[None]).to(self.device))
            if bool(tokens.genre_mask.any()):
                genre = self.encoders.genre(torch.from_numpy(probs[None].astype(np.float32)).to(self.device))
            cond = self.conditioner.encode(tokens, rhythm, genre)
        return cond, prompt, source

    # -- audio --------------------------------------------------------------
    def _prompt_codes(self, history: np.ndarray | None):
        """EnCodec codes ``(1, K, P)`` of the last ``prompt_s`` of ``history`` (None if none)."""
        torch = self._torch
        if history is None or self.prompt_s <= 0 or len(history) == 0:
            return None, None
        audio = resample(history, self.sample_rate, self.model_rate)
        frames = min(int(self.prompt_s * self.frame_rate), len(audio) // self.hop)
        if frames <= 0:
            return None, None
        audio = audio[len(audio) - frames * self.hop:]
        chans = audio.mean(axis=1, keepdims=True) if self.model_channels == 1 else audio[:, :2]
        x = torch.from_numpy(np.ascontiguousarray(chans.T[None])).to(self.device)
        dtype = next(self.model.audio_encoder.parameters()).dtype
        enc = self.model.audio_encoder
        bandwidth = self.model.config.audio_encoder.target_bandwidths[0]
        with torch.inference_mode():
            if self.model_channels == 1:
                codes = enc.encode(x.to(dtype), bandwidth=bandwidth).audio_codes[0]
            else:  # stereo models interleave left/right codebooks
                left = enc.encode(x[:, :1].to(dtype), bandwidth=bandwidth).audio_codes[0]
                right = enc.encode(x[:, 1:].to(dtype), bandwidth=bandwidth).audio_codes[0]
                codes = torch.stack([left, right], dim=2).flatten(1, 2)
        return codes[..., :frames], audio

    def _decode(self, codes) -> np.ndarray:
        """Codes ``(1, K, T)`` -> ``(n, channels)`` float32 at the model rate."""
        torch = self._torch
        enc = self.model.audio_encoder
        with torch.inference_mode():
            if self.model_channels == 1:
                wav = enc.decode(codes[None], audio_scales=[None]).audio_values[0]
            else:
                left = enc.decode(codes[None, :, ::2], audio_scales=[None]).audio_values[0]
                right = enc.decode(codes[None, :, 1::2], audio_scales=[None]).audio_values[0]
                wav = torch.cat([left, right], dim=0)
        return wav.float().cpu().numpy().T.astype(np.float32)

    def _render_music(self, plan: SegmentPlan, state: MusicGenState):
        from .beatwarp import beat_lock
        from .sampler import sample_codes

        torch = self._torch
        sr = self.sample_rate
        seg_n = plan.n_samples
        tail_n = int(round(self.overhang_s * sr))
        margin_n = int(round(self.warp_margin_s * sr)) if self.beat_lock else 0
        out_n = seg_n + tail_n
        need_s = (out_n + margin_n) / sr
        new_frames = int(math.ceil(need_s * self.frame_rate)) + 1

        cond, prompt_text, genre_source = self.conditioning_for(plan)
        prompt_codes, _ = self._prompt_codes(state.history)
        gen = torch.Generator(device=self.device).manual_seed(derive_seed(plan.seed, plan.index))
        result = sample_codes(self.model, cond, new_frames, prompt_codes=prompt_codes,
                              guidance=self.guidance, top_k=self.top_k, temperature=self.temperature,
                              generator=gen, use_static_cache=self.static_cache,
                              step_decoder=self._step_decoder)
        decoded = self._decode(result.codes)                       # (n32, ch)
        if decoded.shape[1] == 1:
            decoded = np.repeat(decoded, CHANNELS, axis=1)
        source = resample(decoded, self.model_rate, sr)            # whole prompt + new, at sr
        origin = int(round(result.prompt_frames * self.hop * sr / self.model_rate))
        if len(source) < origin + out_n:
            source = np.concatenate([source, np.zeros((origin + out_n - len(source), CHANNELS),
                                                      dtype=np.float32)])
        matched = 0
        if self.beat_lock and plan.beat_offsets and plan.bpm > 0:
            beats = detect_beats(source.mean(axis=1), sr, plan.bpm)
            out, anchors = beat_lock(source, beats, target_beats(plan, out_n), out_n, origin=origin,
                                     period=sr * 60.0 / plan.bpm)
            matched = len(anchors)
        else:
            out = source[origin:origin + out_n]
        out = np.clip(out * self.gain, -1.0, 1.0).astype(np.float32)
        audio = np.ascontiguousarray(out[:seg_n])
        tail = np.ascontiguousarray(out[seg_n:out_n]) if tail_n else None
        keep = int(round(self.prompt_s * sr))
        history = audio if state.history is None else np.concatenate([state.history, audio])
        history = history[-keep:] if keep else None
        info = dict(decoder_calls=result.decoder_calls, new_frames=new_frames,
                    prompt_frames=result.prompt_frames, guided=result.guided, beats_matched=matched,
                    genre_source=genre_source, prompt=prompt_text)
        return Rendered(audio, tail=tail, continues=False), MusicGenState(history, state.segments + 1), info
