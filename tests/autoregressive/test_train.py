"""The training script end to end on tiny models, and the shipped checkpoints against their report."""

import json

import pytest
import torch

from apps.autoregressive import train
from apps.autoregressive.model import ARCHITECTURES
from shared.checkpoint import load_model
from shared.data import mnist5k

pytestmark = pytest.mark.usefixtures("one_thread")
TINY_RUN = ["--tiny", "--eval-every", "2", "--samples", "2"] + [
    option for name in train.MODELS for option in (f"--{name}-steps", "3", f"--{name}-batch-size", "8")
]


def test_tiny_training_run_writes_loadable_checkpoints_and_a_report(tmp_path):
    report = train.main([*TINY_RUN, "--out", str(tmp_path)])
    assert json.loads((tmp_path / train.REPORT_FILE).read_text())["command"] == report["command"]
    for name in train.MODELS:
        architecture = ARCHITECTURES[name]
        model = load_model(architecture.model_class.from_config, architecture.config_class, tmp_path / name)
        assert sum(p.numel() for p in model.parameters()) == report[name]["parameters"]
        assert 0 < report[name]["held_out_nll"] < 784 * 1.5  # a few steps from a near-uniform start
        assert report[name]["chosen_step"] in (2, 3) and len(report[name]["log"]) == 2
        assert (tmp_path / name / "samples.png").stat().st_size > 100


def test_only_retrains_the_named_models_and_keeps_the_rest_of_the_report(tmp_path):
    (tmp_path / train.REPORT_FILE).write_text(json.dumps({"nade": {"held_out_nll": 1.0}}))
    report = train.main([*TINY_RUN, "--only", "made", "--out", str(tmp_path)])
    assert report["nade"] == {"held_out_nll": 1.0} and "made" in report and "pixelcnn" not in report


def test_binarisation_is_fixed_once_for_all():
    first, second = train.binarised_digits(), train.binarised_digits()
    assert first["train"].shape == (4500, 784) and first["held_out"].shape == (500, 784)
    assert torch.equal(first["train"], second["train"]) and torch.equal(first["held_out"], second["held_out"])
    assert set(first["train"].unique().tolist()) == {0.0, 1.0}


def test_validation_digits_are_a_random_subset_with_every_class():
    labels = torch.as_tensor(mnist5k().train_labels)  # sorted by class in the data set
    kept, validation = train.split_training_digits(torch.arange(4500))
    assert len(validation) == train.VALIDATION_DIGITS and len(set(kept.tolist()) | set(validation.tolist())) == 4500
    assert torch.bincount(labels[validation], minlength=10).min() >= 30  # about 50 of each digit


@pytest.mark.parametrize("name", train.MODELS)
def test_shipped_held_out_nll_recomputed_matches_the_report(name):
    report = json.loads((train.CHECKPOINT_DIR / train.REPORT_FILE).read_text())[name]
    architecture = ARCHITECTURES[name]
    folder = train.CHECKPOINT_DIR / name
    assert (folder / "model.safetensors").stat().st_size < 5_000_000
    model = load_model(architecture.model_class.from_config, architecture.config_class, folder)
    measured = train.mean_nll(model, train.binarised_digits()["held_out"])
    assert abs(measured - report["held_out_nll"]) < 0.01
    assert measured < 200  # far better than the 543 nats of a uniform model of the pixels
