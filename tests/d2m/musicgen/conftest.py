"""Shared fixtures: one tiny random MusicGen per test session, written with make_tiny."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

SR = 48000


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from d2m.musicgen.loading import quiet_transformers
    from d2m.musicgen.tiny import make_tiny

    with quiet_transformers():
        return make_tiny(tmp_path_factory.mktemp("musicgen") / "tiny")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """``(model, tokenizer)`` loaded the way the backend loads them (CPU, frozen)."""
    from d2m.musicgen.loading import load_musicgen

    model, tokenizer, _ = load_musicgen(tiny_dir, device="cpu")
    return model, tokenizer


@pytest.fixture(scope="session")
def encoders_path(tiny, tmp_path_factory):
    """Freshly initialised (untrained) encoders saved as a checkpoint."""
    from d2m.musicgen.encoders import PseudoWordEncoders

    enc = PseudoWordEncoders.for_model(tiny[0], seed=1)
    return enc.save(tmp_path_factory.mktemp("encoders"))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    from d2m.musicgen.dataset import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("aist") / "data", seconds=3.0)


@pytest.fixture(scope="session")
def make_plan():
    """Factory of test plans (see :func:`music_plan`)."""
    return music_plan


def music_plan(index=0, *, bar_s=1.0, bpm=240.0, start=None, seed=3, genre="house", prompt="",
               n_samples=None, kind="music", genre_probs=(), motion=True):
    """A 4-beat music plan of ``bar_s`` seconds (kinetic onsets at the tempo when ``motion``)."""
    from d2m.plan import SegmentPlan

    n = int(round(bar_s * SR)) if n_samples is None else n_samples
    beats = tuple(int(round(i * n / 4)) for i in range(4))
    env = peaks = None
    if motion:
        t = np.arange(307) / 60.0
        env = np.abs(np.sin(np.pi * bpm / 60.0 * t)) ** 4
        peaks = np.zeros(307)
        peaks[(np.arange(0, 307, 60.0 * 60.0 / bpm)).astype(int)] = 1.0
    return SegmentPlan(index=index, kind=kind, start_sample=index * n if start is None else start,
                       n_samples=n, sample_rate=SR, bar=index, beat_offsets=beats, bpm=bpm,
                       genre=genre, prompt=prompt, seed=seed, genre_probs=tuple(genre_probs),
                       motion_envelope=env, motion_peaks=peaks)
