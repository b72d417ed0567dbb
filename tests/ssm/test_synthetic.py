"""The synthetic tasks ask what they claim to ask, and the S4D sequence model is causal."""

import torch

from apps.ssm.model import S4DLM, S4DLMConfig
from apps.ssm.synthetic import COPY_TOKENS, SPECIAL, induction_heads, selective_copying


def test_selective_copying_asks_for_the_data_tokens_in_order():
    inputs, targets = selective_copying(16, 20, torch.Generator().manual_seed(0))
    assert inputs.shape == (16, 20 + COPY_TOKENS)
    for row_inputs, row_targets in zip(inputs, targets):
        data = row_inputs[:20][row_inputs[:20] != 0]
        assert torch.equal(row_targets[20:], data) and (row_inputs[20:] == SPECIAL).all()
        assert (row_targets[:20] == -100).all()


def test_induction_heads_answer_is_the_token_after_the_first_trigger():
    inputs, targets = induction_heads(16, 30, torch.Generator().manual_seed(0))
    for row_inputs, row_targets in zip(inputs, targets):
        triggers = (row_inputs == SPECIAL).nonzero().flatten().tolist()
        assert len(triggers) == 2 and triggers[1] == 29
        assert row_targets[-1] == row_inputs[triggers[0] + 1] and (row_targets[:-1] == -100).all()


def test_s4d_model_is_causal():
    torch.manual_seed(0)
    model = S4DLM(S4DLMConfig(vocab_size=10, d_model=8, state_size=8)).eval()
    ids = torch.randint(0, 10, (1, 12))
    changed = ids.clone()
    changed[0, 7:] = (changed[0, 7:] + 1) % 10
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0][:, :7], model(changed)[0][:, :7], atol=1e-5, rtol=1e-5)
