"""The training script end to end on tiny models and a few steps: every checkpoint is written, loads back,
and the report holds the held-out bounds, the sample scores and the toy W1 curves."""

import json

import pytest
import torch

from apps.vae_gan import side_by_side as sbs
from apps.vae_gan import train
from shared.checkpoint import load_model

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tiny_training_run_writes_loadable_checkpoints_and_a_report(tmp_path):
    report = train.main(["--tiny", "--output", str(tmp_path)])
    assert json.loads((tmp_path / "training_report.json").read_text()) == json.loads(json.dumps(report))
    for folder, (model_class, config_class) in sbs.CLASSES.items():
        model = load_model(model_class, config_class, tmp_path / folder)
        assert model.generate(2, torch.Generator().manual_seed(0)).shape == (2, 1, 28, 28)
        assert report["models"][folder]["samples"]["samples"] == 8
    for name in train.VAES:
        bounds = report["models"][name]["held_out"]
        assert bounds["negative_iwae2_nats"] > 0 and bounds["negative_elbo_bits_per_dim"] > 0
    assert len(report["toys"]) == 9
    for toy in report["toys"]:
        assert len(toy["exact_w1"]) == len(toy["critic_estimate"]) == len(toy["steps"])
