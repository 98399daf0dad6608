"""Training the pseudo-word encoders (and the motion genre classifier) against a frozen MusicGen.

Recipe of the reference method, with batch size as a parameter:
MusicGen (T5, decoder, EnCodec) frozen; the music of each clip is encoded by
EnCodec to codes; the decoder is teacher-forced on the delayed codes with the
injected prompt ``a @ music with * as the rhythm``; the loss is the mean over
codebooks of the cross-entropy (pads ignored). AdamW (lr 1e-4, betas 0.9/0.95,
weight decay 0.01), linear warm-up then cosine decay, gradient clipping 1.0,
fp16 autocast on CUDA. The motion genre classifier is trained alongside with
its own cross-entropy (weight ``classifier_weight``); it does not touch MusicGen.

Checkpoints: ``OUT/encoders.safetensors`` holds only the encoders (what
inference needs); ``OUT/trainer_state.pt`` holds optimizer, scheduler, step and
RNG state so training resumes where it stopped; ``OUT/train_log.jsonl`` has
one line per logged step.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import deps
from .prompts import DEFAULT_TEMPLATE
from .rhythm import DEFAULT_WINDOW_S

deps.require()

import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from .conditioning import PromptConditioner  # noqa: E402
from .dataset import DanceMusicDataset  # noqa: E402
from .encoders import ENCODERS_FILE, PseudoWordEncoders  # noqa: E402
from .loading import load_musicgen  # noqa: E402
from .sampler import codebook_delays, delay_for_training  # noqa: E402

#: File of the resumable trainer state inside the output directory.
STATE_FILE = "trainer_state.pt"
#: File of the per-step log inside the output directory.
LOG_FILE = "train_log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``d2m train`` can set; defaults are the reference recipe."""

    data: str                                   #: AIST++-style directory (docs/training.md)
    model: str                                  #: MusicGen directory or cached hub id
    out: str                                    #: checkpoint directory
    steps: int = 30000                          #: optimizer steps in total (resume continues to this)
    batch_size: int = 1                         #: clips per step
    lr: float = 1e-4                            #: peak learning rate
    betas: tuple[float, float] = (0.9, 0.95)    #: AdamW betas
    weight_decay: float = 0.01                  #: AdamW weight decay
    warmup_steps: int = 3000                    #: linear warm-up steps before the cosine decay
    grad_clip: float = 1.0                      #: max gradient norm
    window_s: float = DEFAULT_WINDOW_S          #: clip and rhythm-window length (s)
    hop_s: float = DEFAULT_WINDOW_S / 2         #: clip hop (s)
    classifier_weight: float = 1.0              #: weight of the genre classifier's loss (0: do not train it)
    save_every: int = 1000                      #: steps between checkpoints
    log_every: int = 10                         #: steps between log lines
    seed: int = 0                               #: data order and initialisation
    device: str = "auto"                        #: auto, cpu or cuda
    amp: bool = True                            #: fp16 autocast on CUDA (ignored on CPU)
    resume: bool = True                         #: continue from OUT/trainer_state.pt when present
    view: int = 0                               #: camera view of multi-view keypoints
    split: str | None = None                    #: file listing the sequence names to use
    prompt: str = DEFAULT_TEMPLATE              #: training prompt (must hold * and @)
    allow_download: bool = False                #: fetch a hub model that is not cached

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0 or self.save_every < 1:
            raise ValueError("steps >= 0, batch_size >= 1, lr > 0 and save_every >= 1 are required")
        if "*" not in self.prompt or "@" not in self.prompt:
            raise ValueError(f"the training prompt must contain both pseudo-words * and @: {self.prompt!r}")


@dataclass
class TrainResult:
    step: int                                   #: steps done in total
    losses: list[float] = field(default_factory=list)   #: codebook cross-entropy per step run now
    classifier_losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    resumed_from: int = 0


def lr_factor(step: int, *, warmup: int, total: int) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Clip indices of a step: consecutive draws from per-epoch seeded permutations."""
    out = []
    for i in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(i, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perm[pos]))
    return out


def codebook_loss(model, hidden: torch.Tensor, mask: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Mean over codebooks of the teacher-forced cross-entropy on delayed codes ``(B, K, T)``."""
    pad = int(model.generation_config.decoder_start_token_id)
    delays = codebook_delays(codes.shape[1], int(getattr(model.decoder.config, "audio_channels", 1)))
    inputs, target = delay_for_training(codes, pad, delays)
    b, k, s = inputs.shape
    out = model.decoder(input_ids=inputs.reshape(b * k, s), encoder_hidden_states=hidden,
                        encoder_attention_mask=mask, use_cache=False)
    logits = out.logits.reshape(b, k, s, -1).float()
    losses = []
    for cb in range(k):
        tgt = target[:, cb].reshape(-1)
        valid = tgt != pad
        losses.append(F.cross_entropy(logits[:, cb].reshape(-1, logits.shape[-1])[valid], tgt[valid]))
    return torch.stack(losses).mean()


class EncoderTrainer:
    """Holds model, data, encoders and optimizer; :meth:`run` trains to ``config.steps``."""

    def __init__(self, config: TrainConfig, *, model=None, tokenizer=None, encoders=None):
        self.config = config
        if model is None:
            model, tokenizer, dev = load_musicgen(config.model, device=config.device, half=False,
                                                  allow_download=config.allow_download)
        else:
            dev = str(next(model.parameters()).device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.eval()
        self.device = dev
        self.conditioner = PromptConditioner(model, tokenizer)
        audio_cfg = model.config.audio_encoder
        self.data = DanceMusicDataset(config.data, sample_rate=int(audio_cfg.sampling_rate),
                                      window_s=config.window_s, hop_s=config.hop_s, view=config.view,
                                      split=config.split)
        self.out = Path(config.out)
        self.out.mkdir(parents=True, exist_ok=True)
        state_path = self.out / STATE_FILE
        self.step = 0
        resume_state = None
        if config.resume and state_path.is_file() and (self.out / ENCODERS_FILE).is_file():
            resume_state = torch.load(state_path, map_location="cpu", weights_only=True)
            encoders = PseudoWordEncoders.load(self.out)
            self.step = int(resume_state["step"])
        if encoders is None:
            encoders = PseudoWordEncoders.for_model(model, window_frames=self.data.frames, seed=config.seed)
        if encoders.config.window_frames != self.data.frames:
            raise ValueError(f"encoders expect {encoders.config.window_frames} frames but window_s gives "
                             f"{self.data.frames}")
        encoders.check_model(model)
        self.encoders = encoders.to(dev).train()
        params = [p for p in self.encoders.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, betas=tuple(config.betas),
                                           weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup=config.warmup_steps, total=config.steps))
        self.use_amp = bool(config.amp and dev.startswith("cuda"))
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        if resume_state is not None:
            self.optimizer.load_state_dict(resume_state["optimizer"])
            self.scheduler.load_state_dict(resume_state["scheduler"])
            torch.set_rng_state(resume_state["torch_rng"])
            if self.scaler is not None and "scaler" in resume_state:
                self.scaler.load_state_dict(resume_state["scaler"])
        else:
            torch.manual_seed(config.seed)     # classifier dropout: reproducible runs
        self.resumed_from = self.step
        self._codes: dict[int, torch.Tensor] = {}
        self._tokens = self.conditioner.tokenize([config.prompt])

    # -- data -----------------------------------------------------------------
    @torch.no_grad()
    def codes_of(self, i: int) -> torch.Tensor:
        """EnCodec codes ``(K, T)`` of clip ``i`` (computed once, kept on the CPU)."""
        if i not in self._codes:
            enc = self.model.audio_encoder
            x = torch.from_numpy(self.data.audio(i))[None, None].to(self.device)
            bw = self.model.config.audio_encoder.target_bandwidths[0]
            codes = enc.encode(x.to(next(enc.parameters()).dtype), bandwidth=bw).audio_codes[0, 0]
            if getattr(self.model.config.decoder, "audio_channels", 1) == 2:
                codes = codes.repeat_interleave(2, dim=0)   # mono music for a stereo model
            self._codes[i] = codes.cpu()
        return self._codes[i]

    def batch(self, step: int):
        """``(windows, genres, codes)`` tensors of a step's clips."""
        return self.stack(batch_indices(step, self.config.batch_size, len(self.data), self.config.seed))

    def stack(self, idx):
        """``(windows (B, 2, F), genres (B,), codes (B, K, T))`` of clips ``idx``."""
        windows = torch.from_numpy(np.stack([self.data.window(i) for i in idx])).to(self.device)
        genres = torch.tensor([self.data.clips[i].genre for i in idx], device=self.device)
        codes = torch.stack([self.codes_of(i) for i in idx]).to(self.device)
        return windows, genres, codes

    # -- one step -------------------------------------------------------------
    def loss(self, windows, genres, codes):
        """``(codebook cross-entropy, classifier cross-entropy)`` of a batch."""
        b = windows.shape[0]
        onehot = F.one_hot(genres, self.encoders.config.n_genres).float()
        tokens = type(self._tokens)(*(t.expand(b, -1) for t in (
            self._tokens.input_ids, self._tokens.attention_mask, self._tokens.rhythm_mask,
            self._tokens.genre_mask)))
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.use_amp):
            rhythm = self.encoders.rhythm(windows)
            genre = self.encoders.genre(onehot)
            cond = self.conditioner.encode(tokens, rhythm, genre)
            ce = codebook_loss(self.model, cond.hidden, cond.mask, codes)
        cls = F.cross_entropy(self.encoders.classifier(windows).float(), genres)
        return ce, cls

    def train_step(self) -> tuple[float, float]:
        cfg = self.config
        windows, genres, codes = self.batch(self.step)
        ce, cls = self.loss(windows, genres, codes)
        total = ce + cfg.classifier_weight * cls
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.unscale_(self.optimizer)
            self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self._clip()
            self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return float(ce.detach()), float(cls.detach())

    def _clip(self) -> None:
        """Clip the pseudo-word encoders' gradients (norm ``grad_clip``) and, separately, the
        classifier's, so the classifier never rescales the encoders' update."""
        enc = self.encoders
        torch.nn.utils.clip_grad_norm_([*enc.rhythm.parameters(), *enc.genre.parameters()],
                                       self.config.grad_clip)
        torch.nn.utils.clip_grad_norm_(enc.classifier.parameters(), self.config.grad_clip)

    @torch.no_grad()
    def evaluate(self, indices=None) -> float:
        """Mean codebook cross-entropy over clips (all by default), encoders in eval mode."""
        indices = list(range(len(self.data))) if indices is None else list(indices)
        was_training = self.encoders.training
        self.encoders.eval()
        try:
            losses = []
            for lo in range(0, len(indices), self.config.batch_size):
                idx = indices[lo:lo + self.config.batch_size]
                ce, _ = self.loss(*self.stack(idx))
                losses.append(float(ce) * len(idx))
            return sum(losses) / len(indices)
        finally:
            self.encoders.train(was_training)

    # -- checkpoints ----------------------------------------------------------
    def save(self, last_loss: float | None = None) -> Path:
        """Write the encoders (safetensors) and the resumable trainer state."""
        self.encoders.trained_classifier = self.config.classifier_weight > 0 and self.step > 0
        extra = {"step": self.step, "model": str(self.config.model), "prompt": self.config.prompt,
                 "loss": last_loss, "config": {k: v for k, v in asdict(self.config).items()
                                                if k not in ("data", "out")}}
        path = self.encoders.save(self.out, extra=extra)
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        tmp = self.out / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(self.out / STATE_FILE)
        return path

    def run(self, *, progress: bool = True, until: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or stop early at step ``until``, as an interruption
        would); checkpoint every ``save_every`` steps and at the end."""
        from tqdm import tqdm

        cfg = self.config
        stop = cfg.steps if until is None else min(int(until), cfg.steps)
        result = TrainResult(step=self.step, resumed_from=self.resumed_from)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc="d2m train",
                   unit="step", dynamic_ncols=True)
        log = open(self.out / LOG_FILE, "a")
        try:
            while self.step < stop:
                ce, cls = self.train_step()
                result.losses.append(ce)
                result.classifier_losses.append(cls)
                bar.update(1)
                bar.set_postfix(loss=f"{ce:.3f}", cls=f"{cls:.3f}",
                                lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    log.write(json.dumps({"step": self.step, "loss": ce, "classifier_loss": cls,
                                          "lr": self.scheduler.get_last_lr()[0]}) + "\n")
                    log.flush()
                if self.step % cfg.save_every == 0:
                    result.checkpoint = self.save(ce)
        finally:
            bar.close()
            log.close()
        result.checkpoint = self.save(result.losses[-1] if result.losses else None)
        result.step = self.step
        return result


def train(config: TrainConfig, *, progress: bool = True, model=None, tokenizer=None) -> TrainResult:
    """Train (or resume training) the encoders; see :class:`TrainConfig`."""
    return EncoderTrainer(config, model=model, tokenizer=tokenizer).run(progress=progress)
