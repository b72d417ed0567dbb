"""The shipped checkpoint: the same logits and greedy tokens in ours and in transformers (also after a
save_pretrained / from_pretrained round trip), and the held-out score its report claims."""

import json

import pytest
import torch
from transformers import MambaForCausalLM

from apps.ssm import side_by_side as sbs
from apps.ssm.reference import hf_generate, mamba_from_hf, quiet_fallback

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    ours, hf_model = sbs.shipped_models()
    folder = tmp_path_factory.mktemp("mamba")
    hf_model.save_pretrained(folder)
    return ours, MambaForCausalLM.from_pretrained(folder).eval()


def test_shipped_logits_match_transformers(shipped):
    ours, hf_model = shipped
    ids = torch.tensor([sbs.textgen.shipped_tokenizer().encode("The history of mathematics is long")])
    with torch.no_grad(), quiet_fallback():
        expected = hf_model(ids).logits
        actual = ours(ids)[0]
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_shipped_greedy_tokens_equal_transformers_generate(shipped):
    ours, hf_model = shipped
    tokenizer = sbs.textgen.shipped_tokenizer()
    prompts = ["The history of mathematics", "In 1905 the city of"]
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt)])
        assert torch.equal(ours.generate(ids, 40, temperature=0), hf_generate(hf_model, ids, 40))


def test_loading_back_from_transformers_gives_our_weights(shipped):
    ours, hf_model = shipped
    back = mamba_from_hf(hf_model, block_size=ours.config.block_size)
    assert back.config == ours.config
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), back.state_dict().values()))


def test_training_report_matches_the_checkpoint():
    report = json.loads((sbs.CHECKPOINT_DIR / "training_report.json").read_text())
    ours, _ = sbs.shipped_models()
    assert report["parameters"] == ours.num_parameters()
    assert report["config"] == json.loads((sbs.CHECKPOINT_DIR / "config.json").read_text())
