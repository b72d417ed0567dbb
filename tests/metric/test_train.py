"""Smoke runs of every training in apps/metric/train.py (a few steps each), and the checkpoint round trip."""

import json

import pytest
import torch

from apps.metric import evaluation, train
from apps.metric.model import MetricConfig, MetricModel
from shared.checkpoint import load_model, save_model

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = 0.003  # a few optimizer steps per training


def test_margin_network_trains_and_reports_accuracy_and_verification(tmp_path):
    model, entry = train.train_margin_model("arcface", 3, factor=TINY)
    assert entry["steps"] == 3 and 0 <= entry["held_out_accuracy"] <= 1
    assert set(entry["verification"]) == {"roc_auc", "tar_at_far", "threshold"}
    save_model(model, model.config, tmp_path / "arcface")
    loaded = load_model(MetricModel, MetricConfig, tmp_path / "arcface")
    images = torch.rand(3, 1, 28, 28)
    assert torch.equal(loaded(images), model.eval()(images))
    assert torch.equal(loaded.loss.weight, model.loss.weight)


def test_simclr_logs_the_infonce_bound_every_step():
    model, entry = train.train_simclr(factor=TINY)
    assert len(entry["infonce_bound"]) == entry["steps"] == 2
    assert entry["candidates"] == 2 * train.SIMCLR_RECIPE.batch_size - 1
    assert all(bound <= entry["log_candidates"] + 1e-6 for bound in entry["infonce_bound"])  # since L >= 0


def test_siamese_records_distance_histograms_before_and_after():
    model, entry = train.train_siamese(factor=TINY)
    held_out_pairs = 500 * 499 // 2
    assert sum(entry["before"]["same"]) + sum(entry["before"]["different"]) == held_out_pairs
    assert sum(entry["after"]["same"]) + sum(entry["after"]["different"]) == held_out_pairs


def test_from_scratch_on_ten_labels_per_class_uses_only_those_labels():
    _, entry = train.train_from_scratch(10, factor=TINY)
    assert entry["batch_size"] == 100 and 0 <= entry["held_out_accuracy"] <= 1
    assert len(evaluation.labelled_subset(train.mnist5k().train_labels, 10)) == 100


def test_command_line_trains_the_named_parts_and_merges_them_into_the_report(tmp_path):
    train.main(["--output", str(tmp_path), "--steps-factor", str(TINY), "--only", "cosface-3d"])
    train.main(["--output", str(tmp_path), "--steps-factor", str(TINY), "--only", "siamese"])
    report = json.loads((tmp_path / train.REPORT_FILE).read_text())
    assert set(report["margin"]) == {"cosface-3d"} and "siamese" in report
    assert (tmp_path / "cosface-3d" / "model.safetensors").exists() and (tmp_path / "siamese" / "config.json").exists()
