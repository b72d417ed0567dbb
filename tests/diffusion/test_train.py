"""The training script end to end on a tiny UNet, and the shipped checkpoint it produced."""

import json

import torch
from diffusers import DDPMPipeline

from apps.diffusion import train
from apps.diffusion.model import UNet, UNetConfig
from shared.checkpoint import load_model


def test_tiny_training_run_writes_a_loadable_checkpoint_and_a_diffusers_folder(tmp_path):
    report = train.main(
        [
            "--tiny",
            "--steps",
            "3",
            "--batch-size",
            "8",
            "--samples",
            "4",
            "--mixed-precision",
            "no",
            "--out",
            str(tmp_path / "ours"),
            "--export-diffusers",
            str(tmp_path / "diffusers"),
        ]
    )
    model = load_model(UNet, UNetConfig, tmp_path / "ours")
    assert model.config.block_out_channels == (8, 16)
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["schedule"]["num_train_timesteps"] == 1000
    assert (tmp_path / "ours" / "samples_ddim20.png").stat().st_size > 100
    assert report["ddim20_quality"]["samples"] == 4 and len(report["log"]) == 2
    pipeline = DDPMPipeline.from_pretrained(tmp_path / "diffusers")
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert (pipeline.unet(x, 10).sample - model(x, 10)).abs().max().item() < 1e-5


def test_padding_keeps_black_borders_in_the_model_range():
    digits = torch.zeros(2, 28, 28, dtype=torch.uint8)
    digits[:, 10, 10] = 255
    padded = train.mnist_padded(digits.numpy())
    assert padded.shape == (2, 1, 32, 32) and padded.min() == -1 and padded[0, 0, 12, 12] == 1


def test_shipped_checkpoint_is_small_and_matches_its_report():
    folder = train.CHECKPOINT_DIR
    assert (folder / "model.safetensors").stat().st_size < 5_000_000
    report = json.loads((folder / "training_report.json").read_text())
    model = load_model(UNet, UNetConfig, folder)
    assert sum(p.numel() for p in model.parameters()) == report["parameters"]
    assert report["ddim20_quality"]["classes present"] == "10/10"


def test_conditional_training_starts_from_the_unconditional_checkpoint(tmp_path):
    """With the class embedding at zero and no update (learning rate 0), every label gives the unconditional
    model's prediction; the report says how often each requested digit is read."""
    common = ["--tiny", "--batch-size", "4", "--mixed-precision", "no"]
    train.main([*common, "--steps", "2", "--samples", "2", "--out", str(tmp_path / "plain")])
    report = train.main(
        [*common, "--conditional", "--init", str(tmp_path / "plain"), "--steps", "1", "--learning-rate", "0"]
        + ["--samples", "10", "--out", str(tmp_path / "conditional")]
    )
    plain = load_model(UNet, UNetConfig, tmp_path / "plain")
    conditional = load_model(UNet, UNetConfig, tmp_path / "conditional")
    assert conditional.config.num_class_embeds == 11 and len(report["requested_digit_read"]) == 10
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        expected = plain(x, 500)
        assert (conditional(x, 500, torch.tensor([0, 7, 10])) - expected).abs().max().item() < 1e-3  # fp16 storage


def test_conditional_training_from_scratch_writes_its_report(tmp_path):
    common = ["--tiny", "--batch-size", "4", "--mixed-precision", "no", "--steps", "1", "--samples", "10"]
    report = train.main([*common, "--conditional", "--out", str(tmp_path / "scratch")])
    assert report["initialised_from"] == "scratch" and len(report["requested_digit_read"]) == 10
    assert (tmp_path / "scratch" / "training_report.json").exists()


def test_shipped_conditional_checkpoint_matches_its_report():
    folder = train.CHECKPOINT_DIR / "conditional"
    report = json.loads((folder / "training_report.json").read_text())
    model = load_model(UNet, UNetConfig, folder)
    assert model.config.num_class_embeds == 11 and sum(p.numel() for p in model.parameters()) == report["parameters"]
    assert report["initialised_from"] == "scratch" and report["ddim20_quality"]["classes present"] == "10/10"
    assert sum(report["requested_digit_read"]) / 10 > 0.9  # the requested digit, far above chance (0.1)
