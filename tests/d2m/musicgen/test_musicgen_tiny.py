"""make-tiny writes a real MusicGen that loads offline; missing weights give clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from d2m.musicgen.loading import ModelNotFound, resolve_model


def test_make_tiny_round_trip_loads_with_from_pretrained(tiny_dir):
    from transformers import AutoTokenizer, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    cfg = json.loads((tiny_dir / "config.json").read_text())
    assert cfg["model_type"] == "musicgen"
    assert model.decoder.num_codebooks == 4
    assert model.config.audio_encoder.sampling_rate == 32000
    assert model.config.text_encoder.vocab_size == len(tok)
    pieces = tok.convert_ids_to_tokens(tok("a @ music with * as the rhythm")["input_ids"])
    assert pieces == ["\u2581a", "\u2581@", "\u2581music", "\u2581with", "\u2581*", "\u2581as",
                      "\u2581the", "\u2581rhythm", "</s>"]
    assert "<unk>" not in tok.convert_ids_to_tokens(tok("Laid-back Jazz, 98 BPM!")["input_ids"])


def test_tiny_codebooks_depend_on_the_audio(tiny):
    import numpy as np
    import torch

    model, _ = tiny
    t = np.arange(32000) / 32000
    x = torch.from_numpy((0.3 * np.sin(2 * np.pi * 330 * t) * (t % 0.25 < 0.1)).astype(np.float32))
    codes = model.audio_encoder.encode(x[None, None], bandwidth=2.2).audio_codes[0, 0]
    assert codes.shape[0] == 4 and codes.shape[1] == 50
    assert len(torch.unique(codes[0])) > 1, "random EnCodec collapsed every frame to one code"


def test_cli_make_tiny_writes_a_model_directory(tmp_path):
    from d2m_server.cli import main

    assert main(["musicgen", "make-tiny", str(tmp_path / "m")]) == 0
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        assert (tmp_path / "m" / name).is_file()
    assert resolve_model(tmp_path / "m") == tmp_path / "m"


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFound) as err:
        resolve_model(tmp_path / "nowhere")
    assert "does not exist" in str(err.value) and "make-tiny" in str(err.value)


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFound, match="no config.json"):
        resolve_model(tmp_path)


def test_uncached_hub_id_is_not_downloaded(tmp_path):
    with pytest.raises(ModelNotFound) as err:
        resolve_model("facebook/musicgen-small", cache_dir=tmp_path / "hf")
    assert "not in the local Hugging Face cache" in str(err.value)
    assert "huggingface-cli download facebook/musicgen-small" in str(err.value)


def test_generator_for_missing_model_raises(tmp_path):
    from d2m.musicgen import make_musicgen_generator

    with pytest.raises(ModelNotFound):
        make_musicgen_generator(str(tmp_path / "absent"), device="cpu")


def test_import_d2m_musicgen_does_not_import_torch():
    code = "import sys, d2m, d2m.musicgen, d2m.musicgen.prompts, d2m.musicgen.rhythm, " \
           "d2m.musicgen.beatwarp; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_torch_names_the_install_command():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from d2m.musicgen import make_musicgen_generator, MusicGenUnavailable\n"
            "try:\n    make_musicgen_generator('x')\nexcept MusicGenUnavailable as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install -e .[musicgen]" in out.stdout and "torch" in out.stdout
