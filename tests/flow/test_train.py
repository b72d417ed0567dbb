"""The training script end to end on tiny models, and the shipped checkpoints against their report."""

import json

import pytest
import torch

from apps.diffusion.model import UNetConfig
from apps.flow import train
from apps.flow.model import UNetVelocity
from shared.checkpoint import load_model
from shared.data import mnist5k

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_RUN = [
    "--tiny",
    "--nice-steps",
    "2",
    "--realnvp-steps",
    "2",
    "--glow-steps",
    "2",
    "--rectified-steps",
    "2",
    "--reflow-pairs",
    "6",
    "--reflow-ode-steps",
    "2",
    "--reflow-steps",
    "2",
    "--quality-samples",
    "4",
    "--flow-batch-size",
    "8",
    "--rectified-batch-size",
    "8",
]


def test_tiny_training_run_writes_loadable_checkpoints_and_a_report(tmp_path):
    report = train.main([*TINY_RUN, "--out", str(tmp_path)])
    assert json.loads((tmp_path / train.REPORT_FILE).read_text())["command"] == report["command"]
    for name in train.NORMALIZING_FLOWS:
        model_class, config_class = train.FLOW_CLASSES[name]
        flow = load_model(model_class, config_class, tmp_path / name)
        assert sum(p.numel() for p in flow.parameters()) == report[name]["parameters"]
        assert 0 < report[name]["held_out_bits_per_dim"] < 20 and (tmp_path / name / "samples.png").stat().st_size > 100
    rectified = report["rectified_flow"]
    assert set(rectified["rectified"]["quality"]) == {f"euler-{steps}" for steps in train.QUALITY_STEPS}
    assert rectified["reflow"]["pairs"] == 6 and len(rectified["reflow"]["log"]) == 2
    first, second = (load_model(UNetVelocity, UNetConfig, tmp_path / folder) for folder in train.RECTIFIED_FOLDERS)
    assert not torch.equal(first.unet.conv_out.weight, second.unet.conv_out.weight)  # reflow trained a copy further
    assert (tmp_path / "rectified_vs_reflow_steps.png").stat().st_size > 100


def test_only_retrains_the_named_models_and_keeps_the_rest_of_the_report(tmp_path):
    (tmp_path / train.REPORT_FILE).write_text(json.dumps({"glow": {"held_out_bits_per_dim": 1.0}}))
    report = train.main([*TINY_RUN, "--only", "nice", "--out", str(tmp_path)])
    assert report["glow"] == {"held_out_bits_per_dim": 1.0} and "nice" in report and "rectified_flow" not in report
    assert not (tmp_path / "realnvp").exists()


def test_rectified_flow_data_are_in_minus_one_to_one():
    pixels = torch.zeros(2, 28, 28, dtype=torch.uint8)
    pixels[:, 3, 3] = 255
    x = train.digits_in_model_range(pixels.numpy())
    assert x.shape == (2, 1, 28, 28) and x.min() == -1 and x[0, 0, 3, 3] == 1


@pytest.mark.parametrize("name", train.NORMALIZING_FLOWS)
def test_shipped_flow_bits_per_dim_recomputed_on_the_held_out_digits_match_the_report(name):
    report = json.loads((train.CHECKPOINT_DIR / train.REPORT_FILE).read_text())
    model_class, config_class = train.FLOW_CLASSES[name]
    flow = load_model(model_class, config_class, train.CHECKPOINT_DIR / name)
    assert (train.CHECKPOINT_DIR / name / "model.safetensors").stat().st_size < 10_000_000
    measured = train.held_out_bits_per_dim(flow, mnist5k().validation_images)
    assert abs(measured - report[name]["held_out_bits_per_dim"]) < 0.01
    # another dequantization draw moves the figure by far less than the gaps between the models
    assert abs(train.held_out_bits_per_dim(flow, mnist5k().validation_images, seed=99) - measured) < 0.02
    assert measured < 8  # better than a uniform model of the pixels


def test_shipped_rectified_flows_match_their_report():
    report = json.loads((train.CHECKPOINT_DIR / train.REPORT_FILE).read_text())["rectified_flow"]
    for folder in train.RECTIFIED_FOLDERS:
        model = load_model(UNetVelocity, UNetConfig, train.CHECKPOINT_DIR / folder)
        assert sum(p.numel() for p in model.parameters()) == report["parameters"]
        assert report[folder]["quality"]["euler-50"]["classes present"] in ("9/10", "10/10")
