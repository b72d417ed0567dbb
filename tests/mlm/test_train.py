"""The training loop and the held-out measurements on a tiny encoder and a synthetic token stream."""

import pytest
import torch

from apps.mlm.model import EncoderConfig
from apps.mlm.tokenizer import MaskedTokenizer
from apps.mlm.train import extrapolation, held_out_metrics, train_encoder, unigram_baseline
from shared.training import OptimizerRecipe

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_few_steps_lower_the_loss_and_learned_positions_refuse_then_clamp():
    names = MaskedTokenizer.shipped()
    # a stream with a pattern to learn: a short repeated sentence
    tokens = torch.tensor(names.encode_text("The cat sat on the mat. " * 3000))
    config = EncoderConfig(
        vocab_size=names.vocab_size,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_positions=128,
        dropout=0.0,
        pad_token_id=names.pad_id,
    )
    recipe = OptimizerRecipe(steps=40, batch_size=8, learning_rate=3e-3, warmup_steps=2)
    model, log, wall, cpu = train_encoder(config, recipe, tokens, names, seed=0)
    assert log[-1]["train_loss"] < log[0]["train_loss"] - 1 and wall > 0 and cpu > 0
    rows = extrapolation(model, tokens, names)
    assert 0 <= rows["128"]["accuracy"] <= 1 and rows["128"]["perplexity"] > 1
    assert "Learned positions stop at 128" in rows["256"]["refused"]
    assert rows["512"]["clamped"]["masked_tokens"] > 0 and "accuracy_beyond_train_length" in rows["512"]["clamped"]
    baseline = unigram_baseline(tokens, tokens, names)
    assert rows["128"]["accuracy"] > baseline["accuracy"]  # the context helps on a repeated sentence
    same = held_out_metrics(model, tokens, 128, names)
    assert same == rows["128"]  # the same masks every time
