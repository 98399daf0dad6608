"""The learned encoders of the dual-path textual inversion (torch).

* :class:`RhythmEncoder` (``*``): fixed rhythm window ``(channels, frames)`` ->
  per-frame positional term, LayerNorm, Linear(frames -> d), SiLU, Linear,
  then a small attention block that pools the channel tokens into one
  T5-width vector.
* :class:`GenreEncoder` (``@``): genre probabilities over the ten genres ->
  LayerNorm, Linear(10 -> d), SiLU, Linear(d -> d).
* :class:`MotionGenreClassifier`: rhythm window -> genre logits, so ``@`` has
  probabilities when nobody set a genre.

:class:`PseudoWordEncoders` holds all three; :meth:`PseudoWordEncoders.save`
writes only these weights (safetensors, with the configuration as metadata).
Both encoders end in a fixed scale equal to the RMS of T5's token embeddings,
so the injected vectors start in the range the frozen T5 expects.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from . import deps
from .rhythm import DEFAULT_WINDOW_FRAMES, MOTION_RATE, RHYTHM_CHANNELS

deps.require()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from ..genres import GENRES  # noqa: E402

#: File name of the encoders' weights inside a checkpoint directory.
ENCODERS_FILE = "encoders.safetensors"
#: Metadata key holding the JSON configuration in the safetensors header.
CONFIG_KEY = "d2m_encoders_config"
#: Format version written into checkpoints.
FORMAT_VERSION = 1


class EncoderCheckpointError(ValueError):
    """An encoders checkpoint is missing, unreadable or does not fit the model."""


@dataclass(frozen=True)
class EncoderConfig:
    """Shapes of the encoders; saved with every checkpoint."""

    width: int                                  #: T5 width (768 for musicgen-small)
    window_frames: int = DEFAULT_WINDOW_FRAMES  #: rhythm window length in motion frames
    motion_rate: float = MOTION_RATE            #: motion frames per second
    channels: int = RHYTHM_CHANNELS             #: rhythm feature channels (peaks, envelope)
    heads: int = 4                              #: attention heads of the rhythm block (divides width)
    n_genres: int = len(GENRES)                 #: genre vector length
    classifier_hidden: int = 64                 #: hidden units of the motion genre classifier
    embed_scale: float = 1.0                    #: RMS of T5's token embeddings (output scale)
    format: int = FORMAT_VERSION

    def __post_init__(self):
        if self.width <= 0 or self.window_frames <= 1 or self.channels <= 0:
            raise ValueError(f"invalid encoder shape: {self}")
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")
        if self.n_genres != len(GENRES):
            raise ValueError(f"n_genres must be {len(GENRES)} (d2m.genres.GENRES)")

    @property
    def window_s(self) -> float:
        return self.window_frames / self.motion_rate


class RhythmEncoder(nn.Module):
    """Rhythm window ``(B, channels, frames)`` -> ``(B, width)`` pseudo-word embedding."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d, f, c = cfg.width, cfg.window_frames, cfg.channels
        self.position = nn.Parameter(torch.zeros(c, f))        # per-frame positional term
        self.norm = nn.LayerNorm(f)
        self.project = nn.Sequential(nn.Linear(f, d), nn.SiLU(), nn.Linear(d, d))
        self.channel_embed = nn.Parameter(torch.randn(c, d) * 0.02)
        self.query = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, cfg.heads, batch_first=True)
        self.ff_norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))
        self.out_norm = nn.LayerNorm(d)
        self.register_buffer("scale", torch.tensor(float(cfg.embed_scale)), persistent=False)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        tokens = self.project(self.norm(window + self.position)) + self.channel_embed
        x = torch.cat([self.query.expand(window.shape[0], -1, -1), tokens], dim=1)
        h = self.attn_norm(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.ff(self.ff_norm(x))
        return self.out_norm(x[:, 0]) * self.scale


class GenreEncoder(nn.Module):
    """Genre probabilities ``(B, 10)`` -> ``(B, width)`` pseudo-word embedding."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(cfg.n_genres), nn.Linear(cfg.n_genres, cfg.width), nn.SiLU(),
            nn.Linear(cfg.width, cfg.width),
        )
        self.register_buffer("scale", torch.tensor(float(cfg.embed_scale)), persistent=False)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return self.net(probs) * self.scale


class MotionGenreClassifier(nn.Module):
    """Rhythm window -> genre logits, from peaks, envelope and the envelope's autocorrelation."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        f = cfg.window_frames
        self.lags = f // 2
        n_in = cfg.channels * f + self.lags
        self.net = nn.Sequential(
            nn.LayerNorm(n_in), nn.Linear(n_in, cfg.classifier_hidden), nn.SiLU(), nn.Dropout(0.1),
            nn.Linear(cfg.classifier_hidden, cfg.n_genres),
        )

    def features(self, window: torch.Tensor) -> torch.Tensor:
        env = window[:, -1]
        env = env - env.mean(dim=-1, keepdim=True)
        n = env.shape[-1]
        spec = torch.fft.rfft(env, n=2 * n)
        ac = torch.fft.irfft(spec.real ** 2 + spec.imag ** 2, n=2 * n)[:, : self.lags]
        ac = ac / (ac[:, :1].abs() + 1e-6)
        return torch.cat([window.flatten(1), ac], dim=1)

    def forward(self, window: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(window))


class PseudoWordEncoders(nn.Module):
    """The trainable part of the method: rhythm and genre encoders plus the genre classifier."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.config = cfg
        self.rhythm = RhythmEncoder(cfg)
        self.genre = GenreEncoder(cfg)
        self.classifier = MotionGenreClassifier(cfg)
        self.trained_classifier = False   # set from checkpoint metadata

    # -- construction -------------------------------------------------------
    @classmethod
    def for_model(cls, model, *, window_frames: int = DEFAULT_WINDOW_FRAMES, heads: int | None = None,
                  seed: int = 0, **kwargs) -> "PseudoWordEncoders":
        """Fresh encoders sized for a loaded ``MusicgenForConditionalGeneration``."""
        emb = model.text_encoder.get_input_embeddings().weight
        width = int(emb.shape[1])
        if heads is None:
            heads = next(h for h in (8, 4, 2, 1) if width % h == 0)
        scale = float(emb.detach().float().pow(2).mean().sqrt())
        cfg = EncoderConfig(width=width, window_frames=window_frames, heads=heads,
                            embed_scale=scale, **kwargs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(cfg)

    # -- inference helpers --------------------------------------------------
    def genre_probs(self, window: torch.Tensor) -> torch.Tensor:
        """Softmax of the motion genre classifier, ``(B, 10)``."""
        return torch.softmax(self.classifier(window), dim=-1)

    # -- persistence --------------------------------------------------------
    def save(self, path, *, extra: dict | None = None) -> Path:
        """Write the weights (safetensors) with the config as metadata; returns the file path.

        ``path`` may be a directory (``encoders.safetensors`` is written in it) or a file.
        """
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != ".safetensors":
            path.mkdir(parents=True, exist_ok=True)
            path = path / ENCODERS_FILE
        meta = {CONFIG_KEY: json.dumps(asdict(self.config)),
                "trained_classifier": json.dumps(bool(self.trained_classifier)),
                "extra": json.dumps(extra or {})}
        state = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        tmp = path.with_name(path.name + ".tmp")
        save_file(state, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path, *, map_location: str = "cpu") -> "PseudoWordEncoders":
        """Read a checkpoint written by :meth:`save` (a file or a directory holding one)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if path.is_dir():
            path = path / ENCODERS_FILE
        if not path.is_file():
            raise EncoderCheckpointError(
                f"no encoders checkpoint at {path}; train one with `d2m train --data DIR --model MODEL "
                f"--out DIR` or leave encoders unset to use the text fallback"
            )
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
            cfg = EncoderConfig(**json.loads(meta[CONFIG_KEY]))
            state = load_file(str(path), device=map_location)
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise EncoderCheckpointError(f"{path} is not a d2m encoders checkpoint: {exc}") from None
        enc = cls(cfg)
        missing, unexpected = enc.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise EncoderCheckpointError(
                f"{path} does not match the encoders (missing {missing}, unexpected {unexpected})")
        enc.trained_classifier = json.loads(meta.get("trained_classifier", "false"))
        return enc

    def check_model(self, model) -> None:
        """Raise :class:`EncoderCheckpointError` if the T5 width differs from the model's."""
        width = int(model.text_encoder.get_input_embeddings().weight.shape[1])
        if width != self.config.width:
            raise EncoderCheckpointError(
                f"encoders were trained for T5 width {self.config.width}, the model's is {width}; "
                f"use encoders trained on this model")
