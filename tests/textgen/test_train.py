"""The training script runs end to end on a tiny recipe and writes a loadable checkpoint."""

import json

import torch

from apps.textgen import train
from apps.textgen.baselines import LSTMConfig, LSTMLanguageModel
from apps.textgen.model import GPT, GPTConfig
from apps.textgen.tokenizer import BPETokenizer
from shared.checkpoint import load_model
from shared.training import OptimizerRecipe, decay_and_no_decay


def test_tiny_training_run_writes_a_loadable_checkpoint(tmp_path):
    report = train.main(
        [
            "--out",
            str(tmp_path),
            "--vocab-size",
            "300",
            "--block-size",
            "32",
            "--n-layer",
            "1",
            "--n-head",
            "2",
            "--n-embd",
            "16",
            "--lstm-hidden-size",
            "16",
            "--gpt-steps",
            "3",
            "--lstm-steps",
            "3",
            "--gpt-batch-size",
            "2",
            "--lstm-batch-size",
            "2",
            "--ngram-orders",
            "2",
            "--mixed-precision",
            "no",
        ]
    )
    bits = report["held_out_bits_per_character"]
    assert set(bits) == {"gpt", "lstm", "ngram"}
    # 3 steps leave the networks near uniform (log2 300 bits per token spread over ~2 characters);
    # the n-gram is fitted exactly and must already be far better.
    assert bits["ngram"] < bits["gpt"] and bits["ngram"] < 4
    assert json.loads((tmp_path / "training_report.json").read_text())["ngram_order"] == 2
    tokenizer = BPETokenizer.load(tmp_path)
    assert tokenizer.vocab_size == 300
    gpt = load_model(GPT, GPTConfig, tmp_path / "gpt")
    lstm = load_model(LSTMLanguageModel, LSTMConfig, tmp_path / "lstm")
    ids = torch.tensor([tokenizer.encode("Hello world")])
    assert gpt(ids)[0].shape == (1, ids.shape[1], 300)
    assert lstm(ids)[0].shape == (1, ids.shape[1], 300)
    assert (tmp_path / "loss_curve.png").stat().st_size > 1000
    assert (tmp_path / "tokenizer.json").exists()


def test_learning_rate_warms_up_then_decays():
    recipe = OptimizerRecipe(steps=100, batch_size=1, learning_rate=1.0, warmup_steps=10)
    rates = [recipe.learning_rate_at(step) for step in range(100)]
    assert rates[0] == 0.1 and rates[9] == 1.0
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert abs(rates[-1] - 0.1) < 0.01


def test_weight_decay_only_on_matrices():
    model = GPT(GPTConfig(vocab_size=50, block_size=8, n_layer=1, n_head=1, n_embd=4))
    decayed, plain = decay_and_no_decay(model, 0.1)
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() < 2 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len({id(p) for p in model.parameters()})
