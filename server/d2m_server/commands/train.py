"""``d2m train``: train the MusicGen pseudo-word encoders on AIST++-style data (docs/training.md)."""

from __future__ import annotations

import sys


def register(sub) -> None:
    from d2m.musicgen.rhythm import DEFAULT_WINDOW_S

    p = sub.add_parser(
        "train", help="train the MusicGen rhythm/genre encoders on dance + music data",
        description="Train the encoders of the * (rhythm) and @ (genre) pseudo-words, and the motion "
                    "genre classifier, against a frozen MusicGen. Resumes from OUT when it holds a "
                    "checkpoint. Data layout: docs/training.md.")
    p.add_argument("--data", required=True, help="AIST++-style directory (keypoints2d/, music/)")
    p.add_argument("--model", required=True, help="MusicGen directory or cached hub id (facebook/musicgen-small)")
    p.add_argument("--out", required=True, help="checkpoint directory (encoders.safetensors, trainer_state.pt)")
    p.add_argument("--steps", type=int, default=30000, help="total optimizer steps (default 30000)")
    p.add_argument("--batch-size", type=int, default=1, help="clips per step (default 1)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    p.add_argument("--warmup", type=int, default=3000, help="warm-up steps (default 3000)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--window", type=float, default=DEFAULT_WINDOW_S,
                   help=f"clip/rhythm window in seconds (default {DEFAULT_WINDOW_S})")
    p.add_argument("--hop", type=float, default=None, help="clip hop in seconds (default window/2)")
    p.add_argument("--classifier-weight", type=float, default=1.0,
                   help="loss weight of the motion genre classifier (0: do not train it)")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-amp", action="store_true", help="no fp16 autocast on CUDA")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    p.add_argument("--view", type=int, default=0, help="camera view of multi-view keypoints (AIST++: 0-8)")
    p.add_argument("--split", default=None, help="file listing the sequence names to train on")
    p.add_argument("--prompt", default=None, help="training prompt (default 'a @ music with * as the rhythm')")
    p.add_argument("--download", action="store_true", help="download a hub model that is not cached")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from d2m.musicgen import MusicGenUnavailable

    try:
        from d2m.musicgen.dataset import DatasetError
        from d2m.musicgen.encoders import EncoderCheckpointError
        from d2m.musicgen.loading import ModelNotFound
        from d2m.musicgen.prompts import DEFAULT_TEMPLATE
        from d2m.musicgen.train import TrainConfig, train
    except MusicGenUnavailable as exc:
        raise SystemExit(f"d2m: {exc}") from None
    try:
        config = TrainConfig(
            data=args.data, model=args.model, out=args.out, steps=args.steps, batch_size=args.batch_size,
            lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup,
            grad_clip=args.grad_clip, window_s=args.window, hop_s=args.hop or args.window / 2,
            classifier_weight=args.classifier_weight, save_every=args.save_every,
            log_every=args.log_every, seed=args.seed, device=args.device, amp=not args.no_amp,
            resume=not args.no_resume, view=args.view, split=args.split,
            prompt=args.prompt or DEFAULT_TEMPLATE, allow_download=args.download)
        result = train(config, progress=not args.no_progress)
    except (ValueError, ModelNotFound, DatasetError, EncoderCheckpointError, RuntimeError) as exc:
        raise SystemExit(f"d2m: {exc}") from None
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    print(f"trained to step {result.step} (resumed from {result.resumed_from}); last loss {last}; "
          f"encoders in {result.checkpoint}", file=sys.stderr)
    return 0
