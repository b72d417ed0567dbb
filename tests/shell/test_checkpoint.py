"""Checkpoint folders: save and load round trip, fp16 storage, and clear errors within a second."""

from dataclasses import dataclass

import pytest
import torch

from shared import checkpoint
from shared.checkpoint import CheckpointError, load_model, save_model


@dataclass
class TinyConfig:
    width: int = 5


class Tiny(torch.nn.Module):
    def __init__(self, config: TinyConfig):
        super().__init__()
        self.embedding = torch.nn.Embedding(7, config.width)
        self.head = torch.nn.Linear(config.width, 7, bias=False)
        self.head.weight = self.embedding.weight  # tied, stored once


def test_round_trip_keeps_config_and_weights(tmp_path):
    model = Tiny(TinyConfig(width=6))
    save_model(model, TinyConfig(width=6), tmp_path / "tiny", extra_config={"note": "ignored on load"})
    loaded = load_model(Tiny, TinyConfig, tmp_path / "tiny")
    assert loaded.embedding.weight.shape == (7, 6)
    assert torch.equal(loaded.embedding.weight, model.embedding.weight)
    assert loaded.head.weight.data_ptr() == loaded.embedding.weight.data_ptr()


def test_fp16_storage_loads_back_as_fp32(tmp_path):
    model = Tiny(TinyConfig())
    save_model(model, TinyConfig(), tmp_path, dtype=torch.float16)
    loaded = load_model(Tiny, TinyConfig, tmp_path)
    assert loaded.embedding.weight.dtype == torch.float32
    assert torch.allclose(loaded.embedding.weight, model.embedding.weight, atol=1e-3)
    assert model.embedding.weight.dtype == torch.float32  # the caller's model is untouched


def test_missing_folder_names_the_train_command(tmp_path, network_attempts):
    with pytest.raises(CheckpointError, match="python -m apps.x.train"):
        load_model(Tiny, TinyConfig, tmp_path / "nothing_here", train_command="python -m apps.x.train")
    assert network_attempts == []


def test_hub_id_while_offline_fails_without_trying_the_network(monkeypatch, network_attempts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="Hub is unavailable.*HF_HUB_OFFLINE"):
        load_model(Tiny, TinyConfig, "someone/some-model", train_command="python -m apps.x.train")
    assert network_attempts == []


def test_unreachable_hub_is_detected(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    assert checkpoint.hub_offline_reason() is not None


def test_mismatched_weights_are_reported(tmp_path):
    save_model(torch.nn.Linear(3, 3), TinyConfig(), tmp_path)
    with pytest.raises(CheckpointError, match="does not match Tiny"):
        load_model(Tiny, TinyConfig, tmp_path)


def test_folder_without_config_is_reported(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not really")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(Tiny, TinyConfig, tmp_path)


@pytest.mark.parametrize(
    "name, is_hub",
    [("gpt2", True), ("user/model-1", True), ("./checkpoints/x", False), ("/abs/path", False), ("~/x", False)],
)
def test_hub_ids_are_told_apart_from_paths(name, is_hub):
    assert checkpoint.looks_like_hub_id(name) is is_hub
