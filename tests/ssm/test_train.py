"""The training loop (the text generation topic's, through Accelerate) runs on our Mamba, and held-out
scoring reads every token once whatever the chunk length."""

import math

import pytest
import torch

from apps.ssm.model import MambaConfig, MambaLM
from apps.textgen.train import train_language_model
from shared.training import OptimizerRecipe, seeded_accelerator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_short_training_run_learns_a_repeating_pattern():
    accelerator = seeded_accelerator("no", seed=0)
    model = MambaLM(MambaConfig(vocab_size=12, d_model=16, n_layer=1, d_state=4, block_size=16))
    tokens = torch.arange(12).repeat(40)  # 0, 1, ..., 11, 0, 1, ...: each token fixes the next
    recipe = OptimizerRecipe(steps=60, batch_size=4, learning_rate=1e-2, warmup_steps=5)
    log = train_language_model("Mamba", model, recipe, tokens, tokens, 16, accelerator, seed=0)
    assert log[0]["validation_loss"] > 0.9 * math.log(12)  # starts near uniform
    assert log[-1]["validation_loss"] < 0.5  # and learns the cycle


@pytest.mark.parametrize("chunk_length", [1, 7, 1000])
def test_total_nll_scores_every_token_once(chunk_length):
    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=30, d_model=16, n_layer=2, d_state=4)).eval()
    tokens = torch.randint(0, 29, (40,))
    with torch.no_grad():
        logits = model(torch.cat([torch.tensor([29]), tokens[:-1]])[None])[0][0]  # after <eot> = 29
    expected = torch.nn.functional.cross_entropy(logits.double(), tokens, reduction="sum").item()
    assert model.total_nll(tokens, start_id=29, chunk_length=chunk_length) == pytest.approx(expected, rel=1e-6)
