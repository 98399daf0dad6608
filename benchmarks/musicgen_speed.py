"""Speed of the musicgen backend, printed as JSON.

For each model and device: decoder steps per second of the token loop with
classifier-free guidance (batch = conditional + null), and the real-time
factor (seconds of compute per second of audio) of the token loop alone and
of a whole ``MusicGenGenerator.render`` (conditioning, audio prompt, sampling,
EnCodec decode, resampling, beat tracking and warp). Medians over ``--runs``.

Models (random weights, nothing downloaded):
* ``tiny``  — the model of ``d2m musicgen make-tiny``;
* ``small`` — the musicgen-small architecture (24-layer 1024-wide decoder,
  t5-base, EnCodec 32 kHz) built from its published hyper-parameters.
Speed does not depend on the weights' values, so the figures stand for
musicgen-small (sampled tokens differ, the work per step does not).

Usage: python benchmarks/musicgen_speed.py [--models tiny,small] [--device auto|cpu|cuda|all]
       [--seconds-small 1] [--runs 3] [--static-cache] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

SR = 48000


def plan(index: int, seconds: float, bpm: float = 120.0):
    from d2m.plan import SegmentPlan

    n = int(round(seconds * SR))
    period = SR * 60.0 / bpm
    beats = tuple(int(round(i * period)) for i in range(int(seconds / (60.0 / bpm)) + 1) if i * period < n)
    t = np.arange(307) / 60.0
    env = np.abs(np.sin(np.pi * bpm / 60.0 * t)) ** 4
    return SegmentPlan(index=index, kind="music", start_sample=index * n, n_samples=n, sample_rate=SR,
                       bar=index, beat_offsets=beats, bpm=bpm, genre="house", seed=1,
                       motion_envelope=env)


def build(name: str, device: str, half: bool):
    """``(model, tokenizer, decoder parameter count)`` for a model name."""
    import torch

    from d2m.musicgen.loading import quiet_transformers
    from d2m.musicgen.tiny import build_tokenizer, make_tiny, musicgen_small_config, random_model

    with quiet_transformers():
        if name == "tiny":
            from d2m.musicgen.loading import load_musicgen

            tmp = tempfile.mkdtemp(prefix="d2m-tiny-")
            make_tiny(tmp)
            model, tok, _ = load_musicgen(tmp, device=device, half=half)
        elif name == "small":
            model = random_model(musicgen_small_config())
            tok = build_tokenizer()
            model = model.to(device)
            if half:
                model = model.half()
            for p in model.parameters():
                p.requires_grad_(False)
        else:
            raise SystemExit(f"unknown model {name!r} (tiny, small)")
    n_dec = sum(p.numel() for p in model.decoder.parameters())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return model.eval(), tok, n_dec


def sync(device: str):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(name: str, device: str, seconds: float, runs: int, *, static_cache: bool, compile_: bool):
    import torch

    from d2m.musicgen.backend import MusicGenGenerator
    from d2m.musicgen.conditioning import PromptConditioner
    from d2m.musicgen.encoders import PseudoWordEncoders
    from d2m.musicgen.sampler import sample_codes

    half = device.startswith("cuda")
    t0 = time.perf_counter()
    model, tok, n_dec = build(name, device, half)
    build_s = time.perf_counter() - t0
    frames = int(round(seconds * 50))

    # token loop alone (guidance 3: conditional + null in one batch)
    pc = PromptConditioner(model, tok)
    with torch.inference_mode():
        cond = pc.encode(pc.tokenize(["a house music with a 120 bpm beat as the rhythm"]))
    step_decoder = None
    if compile_:
        step_decoder = torch.compile(model.decoder, mode="reduce-overhead" if half else "default",
                                     dynamic=False)
    # warm-up: first-call allocations (and compilation) are not part of the steady state
    sample_codes(model, cond, 5, guidance=3.0, use_static_cache=static_cache or compile_,
                 step_decoder=step_decoder)
    loop_times, calls = [], 0
    for r in range(runs + (1 if compile_ else 0)):
        gen = torch.Generator(device=device).manual_seed(r)
        sync(device)
        t = time.perf_counter()
        res = sample_codes(model, cond, frames, guidance=3.0, top_k=250, generator=gen,
                           use_static_cache=static_cache or compile_, step_decoder=step_decoder)
        sync(device)
        if compile_ and r == 0:
            continue                      # compilation run
        loop_times.append(time.perf_counter() - t)
        calls = res.decoder_calls
    loop_s = statistics.median(loop_times)

    # whole render, continuing from an audio prompt (the second segment onwards)
    enc = PseudoWordEncoders.for_model(model)
    g = MusicGenGenerator(model=model, tokenizer=tok, device=device, encoders=enc,
                          static_cache=static_cache, compile_decoder=compile_)
    state = g.initial_state()
    # warm-up: librosa's JIT, and the first calls with new tensor shapes (first segment without,
    # second with an audio prompt), which on CPU cost several times the steady state
    warmup_times = []
    for r in range(2):
        _, state = g.render(plan(r, seconds), state)
        warmup_times.append(g.last_timing.seconds)
    render_times, prompt_frames = [], 0
    for r in range(runs):
        _, state = g.render(plan(r + 2, seconds), state)
        render_times.append(g.last_timing.seconds)
        prompt_frames = g.last_timing.prompt_frames
    render_s = statistics.median(render_times)
    return {
        "model": name,
        "architecture": "musicgen-small (random weights)" if name == "small" else "d2m tiny (random)",
        "device": device,
        "dtype": "float16" if half else "float32",
        "decoder_params_m": round(n_dec / 1e6, 1),
        "audio_seconds": seconds,
        "code_frames": frames,
        "guidance": 3.0,
        "static_cache": bool(static_cache or compile_),
        "compiled": bool(compile_),
        "runs": runs,
        "build_s": round(build_s, 2),
        "loop": {
            "decoder_steps": calls,
            "median_s": round(loop_s, 4),
            "steps_per_s": round(calls / loop_s, 2),
            "realtime_factor": round(loop_s / seconds, 3),
        },
        "render": {
            "prompt_frames": prompt_frames,
            "median_s": round(render_s, 4),
            "realtime_factor": round(render_s / seconds, 3),
            "all_s": [round(x, 4) for x in render_times],
            "warmup_s": [round(x, 4) for x in warmup_times],
        },
    }


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="tiny,small")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "all"))
    ap.add_argument("--seconds-tiny", type=float, default=4.0, help="audio per run, tiny model")
    ap.add_argument("--seconds-small", type=float, default=None,
                    help="audio per run, small model (default 1 s on CPU, 8 s on CUDA)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measurement (tiny; small on CUDA)")
    ap.add_argument("--runs-small-cpu", type=int, default=1, help="runs of the small model on CPU")
    ap.add_argument("--static-cache", action="store_true", help="fixed-size self-attention KV cache")
    ap.add_argument("--compile", action="store_true", help="torch.compile the one-token decoder step")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    if args.device == "all":
        devices = ["cpu"] + (["cuda"] if cuda else [])
    elif args.device == "auto":
        devices = ["cuda"] if cuda else ["cpu"]
    else:
        devices = [args.device]
    if "cuda" in devices and not cuda:
        raise SystemExit("d2m: --device cuda but torch sees no CUDA GPU")
    results = []
    for device in devices:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name == "small":
                seconds = args.seconds_small or (1.0 if device == "cpu" else 8.0)
                runs = args.runs_small_cpu if device == "cpu" else args.runs
            else:
                seconds, runs = args.seconds_tiny, args.runs
            results.append(bench(name, device, seconds, runs, static_cache=args.static_cache,
                                 compile_=args.compile))
    out = {
        "benchmark": "musicgen_speed",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "cpu_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "note": ("realtime_factor = compute seconds per audio second (< 1 keeps up live); "
                 "steps_per_s counts decoder forward passes of the guided batch (cond + null)"
                 + ("" if cuda else "; no CUDA GPU in this run: CPU figures only")
                 + "; CPU figures swing with other load on the machine (see loadavg)"),
        "results": results,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
