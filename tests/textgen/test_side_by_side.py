"""The tab's engine on the shipped checkpoint: same tokens as transformers, bounded bad input."""

import pytest
import torch

from apps.textgen import side_by_side as sbs


@pytest.fixture(scope="module")
def models():
    return sbs.text_models(sbs.SHIPPED)


def generate_both(models, request):
    ids = sbs.prompt_ids(models, request)
    ours = list(sbs.stream_ours(models, ids, request))[-1]
    return ours, sbs.run_reference(models, ids, request)


def test_greedy_tokens_identical_to_transformers(models):
    ours, reference = generate_both(
        models, sbs.GenerationRequest("The history of mathematics", max_new_tokens=40, temperature=0)
    )
    assert len(ours.ids) == 40 or ours.ids[-1] == models.eot_id
    assert ours.ids == reference.ids


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_tokens_identical_with_the_same_seed(models, seed):
    request = sbs.GenerationRequest("Alaska is", max_new_tokens=30, temperature=0.9, top_k=50, top_p=0.9, seed=seed)
    ours, reference = generate_both(models, request)
    assert ours.ids == reference.ids


def test_next_token_probabilities_match_transformers(models):
    rows = sbs.next_token_table("gpt", models, models.encode("The capital of"), top=5)
    ours = [p for _, _, who, p in rows if who == "ours"]
    theirs = [p for _, _, who, p in rows if who == "transformers"]
    assert len(ours) == len(theirs) == 5 and ours == sorted(ours, reverse=True)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-5


@pytest.mark.parametrize("kind", ["lstm", "ngram"])
def test_baselines_generate_and_rank(models, kind):
    request = sbs.GenerationRequest("The river", max_new_tokens=12, temperature=0.8, seed=3)
    runs = list(sbs.stream_baseline(kind, sbs.prompt_ids(models, request), request))
    assert len(runs) == 12 and runs[-1].seconds > 0
    assert models.decode(runs[-1].ids)
    rows = sbs.next_token_table(kind, models, models.encode("The river"), top=3)
    assert [who for _, _, who, _ in rows] == ["ours"] * 3


@pytest.mark.parametrize("max_new_tokens", [0, -5, None])
def test_max_new_tokens_below_one_is_refused(max_new_tokens):
    with pytest.raises(ValueError, match="at least 1"):
        sbs.GenerationRequest("hi", max_new_tokens=max_new_tokens)


def test_huge_max_new_tokens_is_bounded_with_a_note():
    request = sbs.GenerationRequest("hi", max_new_tokens=10**6)
    assert request.max_new_tokens == sbs.MAX_NEW_TOKENS and "lowered" in request.notes[0]


@pytest.mark.parametrize("temperature, top_p", [(0, 0.9), (0.7, 0)])
def test_temperature_zero_and_top_p_zero_are_greedy(models, temperature, top_p):
    request = sbs.GenerationRequest("Art is", max_new_tokens=10, temperature=temperature, top_p=top_p, seed=5)
    assert request.greedy and "Greedy" in request.notes[0]
    greedy = sbs.GenerationRequest("Art is", max_new_tokens=10, temperature=0)
    assert generate_both(models, request)[0].ids == generate_both(models, greedy)[0].ids


@pytest.mark.parametrize(
    "temperature, top_p, message", [(-1, 0.9, "temperature"), (None, 0.9, "Temperature is empty"), (0.8, 1.5, "top_p")]
)
def test_invalid_sampling_settings_are_refused(temperature, top_p, message):
    with pytest.raises(ValueError, match=message):
        sbs.GenerationRequest("hi", temperature=temperature, top_p=top_p)


def test_empty_prompt_starts_a_document(models):
    request = sbs.GenerationRequest("   ", max_new_tokens=5, temperature=0)
    assert sbs.prompt_ids(models, request) == [models.eot_id] and "Empty prompt" in request.notes[-1]


def test_long_prompt_is_trimmed_to_fit_the_context(models):
    request = sbs.GenerationRequest("word " * 5000, max_new_tokens=64, temperature=0)
    ids = sbs.prompt_ids(models, request)
    block = models.gpt.config.block_size
    assert len(ids) == block - 64 and ids == models.encode("word " * 5000)[-len(ids) :]
    assert "only its last" in request.notes[-1]
    ours, reference = generate_both(models, request)
    assert ours.ids == reference.ids and len(ids) + len(ours.ids) <= block


def test_hub_id_offline_fails_with_advice_without_trying_the_network(monkeypatch, network_attempts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="(?i)network|offline|internet"):
        sbs.text_models("distilgpt2")
    assert network_attempts == []


def test_local_save_pretrained_folder_loads_into_both(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = sbs.shipped_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.eot_id,
        eos_token_id=tokenizer.eot_id,
    )
    GPT2LMHeadModel(config).save_pretrained(tmp_path)
    tokenizer.hf_tokenizer().save_pretrained(tmp_path)
    models = sbs.text_models(str(tmp_path))
    assert models.tokenizer is None and models.gpt.config.n_embd == 32
    ours, reference = generate_both(models, sbs.GenerationRequest("Hello", max_new_tokens=10, temperature=0))
    assert ours.ids == reference.ids
