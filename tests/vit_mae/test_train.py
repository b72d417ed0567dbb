"""The training script runs end to end on a tiny model and writes loadable checkpoints; the shipped
classifier reaches the accuracy its report claims (at least 97% of the held-out digits)."""

import json

import pytest
import torch

from apps.vit_mae import train
from apps.vit_mae.model import MAE, MAEConfig, ViT, ViTConfig
from apps.vit_mae.reference import mae_to_hf, vit_to_hf
from shared.checkpoint import load_model
from shared.data import mnist5k
from shared.images import to_unit_batch

pytestmark = pytest.mark.usefixtures("one_thread")
TARGET_ACCURACY = 0.97


def test_tiny_training_run_writes_loadable_checkpoints(tmp_path):
    report = train.main(["--tiny", "--mae-epochs", "2", "--epochs", "1", "--batch-size", "500", "--out", str(tmp_path)])
    assert (
        json.loads((tmp_path / "training_report.json").read_text())["held_out_accuracy"] == report["held_out_accuracy"]
    )
    assert [entry["epoch"] for entry in report["logs"]["MAE"]] == [1, 2]
    assert set(report["held_out_accuracy"]) == {"fine-tuned from MAE", "from scratch"}
    assert all(0 <= accuracy <= 1 for accuracy in report["held_out_accuracy"].values())
    mse = report["held_out_reconstruction_mse"]
    assert mse["mask_ratio"] == 0.75 and 0 < mse["mae"] < 1 and 0 < mse["average_digit_baseline"] < 1
    assert (tmp_path / "training_curves.png").stat().st_size > 1000

    mae = load_model(MAE, MAEConfig, tmp_path / "mae")
    vit = load_model(ViT, ViTConfig, tmp_path / "vit")
    scratch = load_model(ViT, ViTConfig, tmp_path / "vit_scratch")
    assert vit.config == scratch.config and vit.config.label_names == tuple("0123456789")
    images, noise = torch.rand(2, 1, 28, 28), torch.rand(2, mae.config.num_patches)
    with torch.no_grad():
        assert torch.allclose(mae(images, noise)[1], mae_to_hf(mae)(images, noise=noise).logits, atol=1e-5)
        assert torch.allclose(vit(images), vit_to_hf(vit)(images).logits, atol=1e-5)
    # the fine-tuned ViT started from the MAE's encoder and, after 9 steps, is still near it; the other started elsewhere
    encoder = mae.blocks[0].mlp.fc1.weight
    assert (vit.blocks[0].mlp.fc1.weight - encoder).abs().mean() < 0.2 * (
        scratch.blocks[0].mlp.fc1.weight - encoder
    ).abs().mean()


def test_learning_rate_warms_up_over_5_percent_then_decays():
    recipe = train.recipe_for(
        epochs=10, steps_per_epoch=20, batch_size=64, learning_rate=1.0, weight_decay=0.05, betas=(0.9, 0.999)
    )
    rates = [recipe.learning_rate_at(step) for step in range(recipe.steps)]
    assert recipe.warmup_steps == 10 and rates[9] == 1.0
    assert all(a <= b for a, b in zip(rates[:10], rates[1:10]))
    assert all(a >= b for a, b in zip(rates[9:], rates[10:])) and rates[-1] < 0.02


# -----------------------------------------------------------------------------
# The shipped checkpoint


def test_shipped_classifier_reaches_the_target_on_held_out_digits():
    report = json.loads((train.CHECKPOINT_DIR / "training_report.json").read_text())
    claimed = report["held_out_accuracy"]["fine-tuned from MAE"]
    assert claimed >= TARGET_ACCURACY, f"the report claims {claimed:.1%}; rerun `{train.TRAIN_COMMAND}`"
    digits = mnist5k()
    vit = load_model(ViT, ViTConfig, train.CHECKPOINT_DIR / "vit")
    with torch.no_grad():
        predicted = vit(to_unit_batch(digits.validation_images)).argmax(dim=-1)
    accuracy = (predicted == torch.from_numpy(digits.validation_labels)).float().mean().item()
    assert len(predicted) == 500 and accuracy >= TARGET_ACCURACY
    assert round(accuracy, 4) == claimed
