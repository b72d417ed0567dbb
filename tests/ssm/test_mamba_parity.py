"""Our Mamba against `transformers`' MambaForCausalLM on the same weights: logits, greedy tokens, configs."""

import pytest
import torch
from transformers import MambaConfig as HFMambaConfig
from transformers import MambaForCausalLM

from apps.ssm.model import MambaConfig, MambaLM
from apps.ssm.reference import hf_generate, mamba_config_from_hf, mamba_from_hf, mamba_to_hf, quiet_fallback

pytestmark = pytest.mark.usefixtures("one_thread")

# (hidden size, state size, conv kernel, layers, expand, conv bias, linear bias): odd widths on purpose
RANDOM_CONFIGS = [(17, 4, 2, 2, 2, True, False), (23, 16, 4, 3, 1, False, True), (32, 7, 3, 4, 2, True, True)]


def random_reference(seed, hidden, state, kernel, layers, expand, conv_bias, bias, vocab=61):
    torch.manual_seed(seed)
    config = HFMambaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        state_size=state,
        conv_kernel=kernel,
        num_hidden_layers=layers,
        expand=expand,
        use_conv_bias=conv_bias,
        use_bias=bias,
        pad_token_id=vocab - 1,
        bos_token_id=vocab - 1,
        eos_token_id=vocab - 1,
    )
    hf_model = MambaForCausalLM(config).eval()
    with torch.no_grad():  # A_log, D and the norms start at constants: move them so that a mix-up shows
        for name, parameter in hf_model.named_parameters():
            if name.endswith(("A_log", ".D", "norm.weight", "norm_f.weight")):
                parameter.add_(0.3 * torch.randn_like(parameter))
    return hf_model


@pytest.mark.parametrize("seed, shape", list(enumerate(RANDOM_CONFIGS)))
def test_logits_match_transformers(seed, shape):
    hf_model = random_reference(seed, *shape)
    ours = mamba_from_hf(hf_model)
    ids = torch.randint(0, 61, (3, 19))
    with torch.no_grad(), quiet_fallback():
        expected = hf_model(ids).logits
    actual = ours(ids)[0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed, shape", list(enumerate(RANDOM_CONFIGS)))
def test_greedy_tokens_equal_transformers_generate(seed, shape):
    hf_model = random_reference(seed, *shape)
    ours = mamba_from_hf(hf_model)
    ids = torch.randint(0, 60, (2, 5))
    expected = hf_generate(hf_model, ids, 24)
    assert torch.equal(ours.generate(ids, 24, temperature=0), expected)


def test_state_carried_over_equals_one_long_pass():
    """Feeding a sequence in pieces with the returned state gives the logits of one pass (what generation relies on)."""
    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=50, d_model=24, n_layer=2, d_state=6, d_conv=3)).eval()
    ids = torch.randint(0, 50, (2, 15))
    whole = model(ids)[0]
    first, _, state = model(ids[:, :7])
    second, _, state = model(ids[:, 7:8], state=state)
    third, _, _ = model(ids[:, 8:], state=state)
    torch.testing.assert_close(torch.cat([first, second, third], dim=1), whole, atol=1e-5, rtol=1e-5)


def test_round_trip_through_transformers_keeps_every_weight():
    torch.manual_seed(1)
    ours = MambaLM(MambaConfig(vocab_size=40, d_model=19, n_layer=2, d_state=5, d_conv=2, dt_rank=3))
    back = mamba_from_hf(mamba_to_hf(ours))
    assert back.config == ours.config
    for (name, expected), (_, actual) in zip(ours.state_dict().items(), back.state_dict().items()):
        assert torch.equal(expected, actual), name


@pytest.mark.parametrize(
    "option, value", [("hidden_act", "gelu"), ("residual_in_fp32", False), ("tie_word_embeddings", False)]
)
def test_unsupported_reference_options_are_refused_by_name(option, value):
    config = HFMambaConfig(vocab_size=10, hidden_size=8, num_hidden_layers=1, **{option: value})
    with pytest.raises(ValueError, match=option):
        mamba_config_from_hf(config)
