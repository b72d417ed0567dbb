"""The training script end to end on a tiny codec and prior, and the shipped checkpoints it produced."""

import json

import pytest
import torch
from diffusers import VQModel as DiffusersVQModel

from apps.textgen.model import GPT, GPTConfig
from apps.vqgan import train
from apps.vqgan.model import VQConfig, VQModel, reconstruction_metrics
from shared.checkpoint import load_model


def test_tiny_training_run_writes_loadable_checkpoints_and_diffusers_folders(tmp_path):
    report = train.main(
        [
            "--tiny",
            "--codec-steps",
            "3",
            "--gan-steps",
            "2",
            "--prior-steps",
            "2",
            "--batch-size",
            "8",
            "--samples",
            "4",
            "--prior-augmentations",
            "1",
            "--mixed-precision",
            "no",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "ours"),
            "--export-diffusers",
            str(tmp_path / "diffusers"),
        ]
    )
    for name in ("vqvae", "vqgan"):
        model = load_model(VQModel, VQConfig, tmp_path / "ours" / name)
        assert model.config.block_out_channels == (8, 16, 16)
        vqmodel = DiffusersVQModel.from_pretrained(tmp_path / "diffusers" / name)
        x = torch.rand(2, 1, 28, 28) * 2 - 1
        with torch.no_grad():
            assert (vqmodel(x).sample - model(x).reconstruction).abs().max().item() < 1e-4
    gpt = load_model(GPT, GPTConfig, tmp_path / "ours" / "prior")
    assert (
        gpt.config.vocab_size == 17 and gpt.config.block_size == 50
    )  # 16 codes + the start token; 1 + 7 x 7 positions
    assert report["prior_samples_quality"]["samples"] == 4 and report["prior_codes"]["training_grids"] == 2 * 4500
    assert "adaptive_weight" in report["logs"]["vqgan"][-1] and "adaptive_weight" not in report["logs"]["vqvae"][-1]
    assert (tmp_path / "ours" / "reconstructions.png").stat().st_size > 100 and (
        tmp_path / "ours" / "prior_samples.png"
    ).exists()


@pytest.fixture(scope="module")
def shipped_report() -> dict:
    return json.loads((train.CHECKPOINT_DIR / "training_report.json").read_text())


@pytest.mark.parametrize("name", ["vqvae", "vqgan"])
def test_shipped_codec_reconstruction_mse_matches_its_report(shipped_report, name):
    folder = train.CHECKPOINT_DIR / name
    assert (folder / "model.safetensors").stat().st_size < 3_000_000
    model = load_model(VQModel, VQConfig, folder)
    assert sum(p.numel() for p in model.parameters()) == shipped_report["codec_parameters"]
    held_out = train.to_model_range(train.mnist5k().validation_images)
    metrics = reconstruction_metrics(model, held_out)
    reported = shipped_report["held_out"][name]
    assert metrics["mse"] == pytest.approx(reported["mse"], rel=1e-3)
    assert metrics["codes_used"] == reported["codes_used"] and metrics["perplexity"] == pytest.approx(
        reported["perplexity"], rel=1e-3
    )
    assert metrics["psnr_db"] > 20  # a 7x7 grid of 7-bit codes keeps a digit recognisable


def test_shipped_prior_matches_its_report(shipped_report):
    gpt = load_model(GPT, GPTConfig, train.CHECKPOINT_DIR / "prior")
    codec = load_model(VQModel, VQConfig, train.CHECKPOINT_DIR / "vqgan")
    codes = train.encode_codes(codec, train.to_model_range(train.mnist5k().validation_images))
    nats = train.held_out_nll(gpt, codes)
    assert nats == pytest.approx(shipped_report["held_out"]["prior_nats_per_code"], abs=1e-3)
    assert nats < shipped_report["logs"]["prior"][0]["held_out_nats_per_code"]  # it learned something
    assert shipped_report["prior_samples_quality"]["classes present"] == "10/10"
