"""Training the encoders on the tiny model and synthetic AIST++-style data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

WINDOW_S = 1.28          # short clips keep the tests quick (64 code frames, 76 motion frames)


def config(data, model_dir, out, **kw):
    from d2m.musicgen.train import TrainConfig

    base = dict(data=str(data), model=str(model_dir), out=str(out), steps=24, batch_size=2, lr=3e-3,
                warmup_steps=4, window_s=WINDOW_S, hop_s=0.64, device="cpu", save_every=1000)
    base.update(kw)
    return TrainConfig(**base)


def test_dataset_reads_the_aist_layout(synthetic_data):
    from d2m.musicgen.dataset import DanceMusicDataset

    ds = DanceMusicDataset(synthetic_data, sample_rate=32000, window_s=WINDOW_S, hop_s=0.64)
    assert len(ds.sequences) == 4                       # 2 .pkl (9 views) + 2 .npy
    assert ds.genre_counts()["house"] > 0 and ds.genre_counts()["break"] > 0
    w = ds.window(0)
    assert w.shape == (2, 76) and w[0].sum() >= 1       # motion beats in every window
    assert ds.audio(0).shape == (int(WINDOW_S * 32000),)


def test_bad_layout_says_what_is_expected(tmp_path):
    from d2m.musicgen.dataset import DanceMusicDataset, DatasetError

    with pytest.raises(DatasetError, match="keypoints2d"):
        DanceMusicDataset(tmp_path, sample_rate=32000)


def test_training_lowers_the_loss_and_writes_only_encoders(tiny, synthetic_data, tmp_path):
    from safetensors import safe_open

    from d2m.musicgen.train import EncoderTrainer

    trainer = EncoderTrainer(config(synthetic_data, "unused", tmp_path / "ck"), model=tiny[0],
                             tokenizer=tiny[1])
    before = trainer.evaluate()
    result = trainer.run(progress=False)
    after = trainer.evaluate()
    assert result.step == 24 and len(result.losses) == 24
    assert after < before - 0.01, (before, after)
    assert np.mean(result.losses[-4:]) < np.mean(result.losses[:4])
    assert result.classifier_losses[-1] < result.classifier_losses[0]
    with safe_open(str(result.checkpoint), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.split(".")[0] in ("rhythm", "genre", "classifier") for k in keys)
    assert not any("decoder" in k or "text_encoder" in k for k in keys)
    log = [json.loads(x) for x in (tmp_path / "ck" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 24
    # MusicGen stayed frozen
    assert not any(p.requires_grad for p in tiny[0].parameters())


def test_resume_continues_exactly(tiny, synthetic_data, tmp_path):
    from d2m.musicgen.encoders import PseudoWordEncoders
    from d2m.musicgen.train import EncoderTrainer

    def run(out, until=None):
        t = EncoderTrainer(config(synthetic_data, "unused", out, steps=8, batch_size=3),
                           model=tiny[0], tokenizer=tiny[1])
        return t.run(progress=False, until=until)

    straight = run(tmp_path / "a")
    first = run(tmp_path / "b", until=4)        # interrupted half way
    resumed = run(tmp_path / "b")
    assert first.step == 4 and resumed.resumed_from == 4 and resumed.step == 8
    assert resumed.losses == straight.losses[4:]
    a = PseudoWordEncoders.load(tmp_path / "a").state_dict()
    b = PseudoWordEncoders.load(tmp_path / "b").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert PseudoWordEncoders.load(tmp_path / "b").trained_classifier is True


def test_trained_encoders_drive_the_generator(tiny, synthetic_data, tmp_path, make_plan):
    from d2m.musicgen.backend import MusicGenGenerator
    from d2m.musicgen.train import train

    result = train(config(synthetic_data, "unused", tmp_path / "ck", steps=2, batch_size=1),
                   progress=False, model=tiny[0], tokenizer=tiny[1])
    gen = MusicGenGenerator(model=tiny[0], tokenizer=tiny[1], device="cpu", encoders=result.checkpoint,
                            beat_lock=False)
    rendered, _ = gen.render(make_plan(0, n_samples=12000), gen.initial_state())
    assert rendered.audio.shape == (12000, 2)
    assert gen.encoders.config.window_frames == 76           # the plan's 307 frames are cropped
    assert gen.last_timing.genre_source == "classifier"   # no genre probs in the plan: motion decides


def test_cli_train_runs_and_resumes(tiny_dir, synthetic_data, tmp_path, capsys):
    from d2m_server.cli import main

    args = ["train", "--data", str(synthetic_data), "--model", str(tiny_dir), "--out",
            str(tmp_path / "ck"), "--window", str(WINDOW_S), "--warmup", "1", "--device", "cpu",
            "--no-progress"]
    assert main(args + ["--steps", "2"]) == 0
    assert main(args + ["--steps", "3"]) == 0
    err = capsys.readouterr().err
    assert "trained to step 3 (resumed from 2)" in err
    assert (tmp_path / "ck" / "encoders.safetensors").is_file()


def test_cli_train_reports_missing_model(synthetic_data, tmp_path):
    from d2m_server.cli import main

    with pytest.raises(SystemExit, match="make-tiny"):
        main(["train", "--data", str(synthetic_data), "--model", str(tmp_path / "none"), "--out",
              str(tmp_path / "ck"), "--no-progress"])
