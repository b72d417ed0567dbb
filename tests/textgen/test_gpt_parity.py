"""
Our GPT (apps/textgen/model.py) against Hugging Face's GPT2LMHeadModel holding the same weights.

Tiny random configs with odd sizes, no downloads (the LLMs-from-scratch recipe): equal logits, equal
loss, identical greedy tokens (ours with and without the KV cache, and HF generate), lossless weight
conversion both ways, loading a save_pretrained folder, and the sampling options.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


import huggingface_hub.constants
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from apps.textgen.fast_layers import FastLinear, Int8Linear, quantize_int8, use_fast_linears
from apps.textgen.model import (
    GPT,
    GPTConfig,
    KVCache,
    apply_rope,
    rope_tables,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)
from apps.textgen.reference import (
    gpt_config_from_hf,
    gpt_config_to_hf,
    gpt_from_hf,
    gpt_to_hf,
    load_hub_gpt,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# (n_embd, n_head, n_layer, vocab_size): head sizes 16, 16 and 6; vocabularies that are not powers of 2
SIZES = [(48, 3, 1, 97), (64, 4, 2, 300), (36, 6, 3, 151)]
BLOCK_SIZE = 64


def make_pair(n_embd, n_head, n_layer, vocab_size, seed=0):
    """A random HF GPT-2 and our GPT holding the same weights, both in eval mode."""
    torch.manual_seed(seed)
    hf_config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=BLOCK_SIZE,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=vocab_size - 1,
        eos_token_id=vocab_size - 1,
    )
    hf_model = GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for p in hf_model.parameters():
            if p.dim() == 2:  # GPT-2's init (std 0.02) makes greedy decoding repeat one token forever;
                p.normal_(0.0, 0.2)  # larger weights give varied tokens, so a cache bug would show
            else:  # LayerNorm gains/biases and biases: random too, so a swapped gain/bias would show
                p.add_(0.1 * torch.randn_like(p))
    return hf_model, gpt_from_hf(hf_model)


@pytest.fixture(params=SIZES, ids=lambda s: "embd{}-heads{}-layers{}-vocab{}".format(*s))
def pair(request):
    return make_pair(*request.param)


def hf_greedy(hf_model, idx, n):
    out = hf_model.generate(
        idx, do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=hf_model.config.eos_token_id
    )
    return out


# -----------------------------------------------------------------------------
# Parity with Hugging Face


def test_logits_match_hf(pair):
    hf_model, ours = pair
    idx = torch.randint(0, ours.config.vocab_size, (3, 40))
    with torch.no_grad():
        expected = hf_model(idx).logits
        logits, loss = ours(idx)
    assert loss is None
    assert logits.shape == expected.shape == (3, 40, ours.config.vocab_size)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_loss_matches_hf(pair):
    hf_model, ours = pair
    idx = torch.randint(0, ours.config.vocab_size, (2, 33))
    with torch.no_grad():
        expected = hf_model(idx, labels=idx).loss  # HF shifts the labels inside
        _, loss = ours(idx[:, :-1], targets=idx[:, 1:])  # ours takes them already shifted
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_greedy_tokens_match_hf_with_and_without_cache(pair):
    hf_model, ours = pair
    idx = torch.randint(0, ours.config.vocab_size, (1, 7))
    with_cache = ours.generate(idx, 30, temperature=0.0, use_cache=True)
    without_cache = ours.generate(idx, 30, temperature=0.0, use_cache=False)
    with torch.no_grad():
        expected = hf_greedy(hf_model, idx, 30)
    assert with_cache.shape == (1, 37)
    assert torch.equal(with_cache[:, :7], idx)
    assert torch.equal(with_cache, without_cache)
    assert torch.equal(with_cache, expected)


def test_greedy_batch_matches_hf():
    hf_model, ours = make_pair(64, 4, 2, 300, seed=1)
    idx = torch.randint(0, 300, (4, 5))
    with torch.no_grad():
        expected = hf_greedy(hf_model, idx, 12)
    assert torch.equal(ours.generate(idx, 12, temperature=0.0), expected)


def test_cache_logits_match_full_forward():
    _, ours = make_pair(48, 3, 1, 97)
    idx = torch.randint(0, 97, (2, 20))
    with torch.no_grad():
        full, _ = ours(idx)
        cache = ours.new_cache(batch_size=2)
        prefill, _ = ours(idx[:, :8], cache=cache)  # prompt at once ...
        chunk, _ = ours(idx[:, 8:12], cache=cache)  # ... a chunk after cached positions (shifted mask) ...
        steps = [ours(idx[:, t : t + 1], cache=cache)[0] for t in range(12, 20)]  # ... then one at a time
    assert isinstance(cache, KVCache) and cache.length == 20
    torch.testing.assert_close(prefill[:, 0], full[:, 7], atol=1e-5, rtol=0)
    torch.testing.assert_close(chunk[:, 0], full[:, 11], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(steps, dim=1), full[:, 12:], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="context"):
        ours(torch.zeros(2, BLOCK_SIZE, dtype=torch.long), cache=cache)  # would run past block_size


# -----------------------------------------------------------------------------
# Weight conversion, saving and loading


def test_ours_to_hf_to_ours_is_lossless(pair):
    _, ours = pair
    back = gpt_from_hf(gpt_to_hf(ours))
    a, b = ours.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert back.lm_head.weight is back.transformer.wte.weight  # still tied


def test_hf_to_ours_to_hf_is_lossless(pair):
    hf_model, _ = pair
    back = gpt_to_hf(gpt_from_hf(hf_model))
    a, b = hf_model.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_configs_round_trip():
    config = GPTConfig(vocab_size=97, block_size=64, n_layer=3, n_head=6, n_embd=36, dropout=0.1)
    hf_config = gpt_config_to_hf(config)
    assert hf_config.bos_token_id == hf_config.eos_token_id == 96
    assert hf_config.activation_function == "gelu_new" and hf_config.n_positions == 64
    assert hf_config.resid_pdrop == hf_config.embd_pdrop == 0.1 and hf_config.attn_pdrop == 0.0
    assert gpt_config_from_hf(hf_config) == config
    with pytest.raises(ValueError, match="learned position"):
        gpt_config_to_hf(
            GPTConfig(vocab_size=97, block_size=64, n_layer=1, n_head=2, n_embd=16, position_encoding="rope")
        )
    with pytest.raises(ValueError, match="activation_function"):
        gpt_config_from_hf(GPT2Config(n_embd=16, n_head=2, n_layer=1, activation_function="relu"))


def test_save_pretrained_folder_loads(tmp_path):
    hf_model, _ = make_pair(36, 6, 3, 151)
    hf_model.save_pretrained(tmp_path)
    loaded = load_hub_gpt(tmp_path)
    idx = torch.randint(0, 151, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx)[0], hf_model(idx).logits, atol=1e-5, rtol=0)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No checkpoint folder"):
        load_hub_gpt(tmp_path / "not-there")
    with pytest.raises(ValueError, match="save_pretrained"):
        load_hub_gpt(tmp_path)  # exists, but holds no checkpoint


def test_hub_id_offline_fails_without_trying_the_network(monkeypatch, network_attempts):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", "/nonexistent-hub-cache")  # never use a cached copy
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", "/nonexistent-hub-cache")
    with pytest.raises(ValueError, match="Hub is unavailable"):
        load_hub_gpt("gpt2")
    assert network_attempts == []


# -----------------------------------------------------------------------------
# Sampling


@pytest.fixture(scope="module")
def small():
    return make_pair(48, 3, 1, 97, seed=3)[1]


def test_seeded_sampling_is_reproducible(small):
    idx = torch.randint(0, 97, (2, 4))
    kwargs = dict(temperature=1.3, top_k=50, top_p=0.95)
    a = small.generate(idx, 25, seed=123, **kwargs)
    b = small.generate(idx, 25, seed=123, **kwargs)
    c = small.generate(idx, 25, seed=124, **kwargs)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    streamed = torch.stack(list(small.stream(idx, 25, seed=123, **kwargs)), dim=1)
    assert torch.equal(streamed, a[:, 4:])


def test_degenerate_sampling_settings_are_greedy(small):
    idx = torch.randint(0, 97, (2, 4))
    greedy = small.generate(idx, 20, temperature=0.0)
    assert torch.equal(small.generate(idx, 20, temperature=1.0, top_k=1, seed=0), greedy)
    assert torch.equal(small.generate(idx, 20, temperature=0.7, top_p=1e-6, seed=0), greedy)
    assert torch.equal(small.generate(idx, 20, temperature=0.7, top_p=0.0, seed=0), greedy)
    assert torch.equal(small.generate(idx, 20, temperature=0.0, top_k=5, top_p=0.5, seed=0), greedy)


def test_filters_keep_the_right_tokens():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, 4.0]])
    kept = top_k_filter(logits, 2).isfinite()
    assert kept.tolist() == [[False, True, True, False], [False, False, True, True]]
    # probabilities of row 0 ~ [0.09, 0.67, 0.24, 0.03]: p=0.7 needs the two most likely tokens
    kept = top_p_filter(logits[:1], 0.7).isfinite()
    assert kept.tolist() == [[False, True, True, False]]
    kept = top_p_filter(logits[:1], 0.5).isfinite()
    assert kept.tolist() == [[False, True, False, False]]
    draws = torch.stack(
        [sample_next_token(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(s)) for s in range(50)]
    )  # (50, 2)
    assert set(draws[:, 0].tolist()) == {1, 2} and set(draws[:, 1].tolist()) == {2, 3}


def test_bad_sampling_arguments_raise(small):
    idx = torch.zeros(1, 3, dtype=torch.long)
    for kwargs in (dict(temperature=-1.0), dict(top_p=1.5), dict(top_k=-2)):
        with pytest.raises(ValueError):
            small.generate(idx, 2, **kwargs)


def test_eos_stops_generation(small):
    idx = torch.randint(0, 97, (1, 4))
    greedy = small.generate(idx, 10, temperature=0.0)
    eos = int(greedy[0, 6])  # the third generated token
    first = int((greedy[0, 4:] == eos).nonzero()[0])
    out = small.generate(idx, 10, temperature=0.0, eos_id=eos)
    assert torch.equal(out, greedy[:, : 4 + first + 1])


def test_eos_in_a_batch_pads_finished_rows(small):
    torch.manual_seed(7)
    idx = torch.randint(0, 97, (2, 4))
    greedy = small.generate(idx, 12, temperature=0.0)[:, 4:]  # rows decode independently
    eos = next(int(t) for t in greedy[0] if t not in greedy[1, :6])  # row 0 meets it before row 1 does
    out = small.generate(idx, 12, temperature=0.0, eos_id=eos)[:, 4:]
    stops = [int((row == eos).nonzero()[0]) + 1 if (row == eos).any() else 12 for row in greedy]
    assert out.shape == (2, max(stops))
    for row, stop in enumerate(stops):
        assert torch.equal(out[row, :stop], greedy[row, :stop])
        assert (out[row, stop:] == eos).all()  # a finished row keeps emitting eos


def test_prompt_longer_than_block_size(small):
    idx = torch.randint(0, 97, (1, BLOCK_SIZE + 10))
    for use_cache in (True, False):
        out = small.generate(idx, 5, temperature=0.0, use_cache=use_cache)
        assert out.shape == (1, BLOCK_SIZE + 5)  # trimmed to the last block_size tokens
        assert torch.equal(out[:, :BLOCK_SIZE], idx[:, -BLOCK_SIZE:])
    with torch.no_grad():  # the continuation is that of the last block_size tokens
        first = small(idx[:, -BLOCK_SIZE:])[0][0, -1].argmax()
    assert int(out[0, BLOCK_SIZE]) == int(first)


def test_cached_generation_slides_its_window_past_block_size(small):
    """Past block_size the cached path keeps the last 3/4 of the window and re-prefills it."""
    idx = torch.randint(0, 97, (1, 50))
    out = small.generate(idx, 60, temperature=0.0, use_cache=True)
    assert out.shape == (1, 110)
    # the documented policy, computed without a cache: a window [start, n) that slides when full
    keep = BLOCK_SIZE - BLOCK_SIZE // 4
    start, tokens = 0, idx
    with torch.no_grad():
        for _ in range(60):
            if tokens.size(1) - start > BLOCK_SIZE:  # the window would not fit: keep its newest 3/4
                start = tokens.size(1) - keep
            next_token = small(tokens[:, start:])[0][:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat((tokens, next_token), dim=1)
    assert torch.equal(out, tokens)
    # without a cache, every step sees exactly the last block_size tokens (nanoGPT's crop)
    out = small.generate(idx, 60, temperature=0.0, use_cache=False)
    tokens = idx
    with torch.no_grad():
        for _ in range(60):
            next_token = small(tokens[:, -BLOCK_SIZE:])[0][:, -1].argmax(-1, keepdim=True)
            tokens = torch.cat((tokens, next_token), dim=1)
    assert torch.equal(out, tokens)


def test_next_token_probabilities(small):
    idx = torch.randint(0, 97, (1, 9))
    probs = small.next_token_probabilities(idx)
    assert probs.shape == (97,)
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))
    assert int(probs.argmax()) == int(small.generate(idx, 1, temperature=0.0)[0, -1])
    torch.testing.assert_close(small.next_token_probabilities(idx[0]), probs)


# -----------------------------------------------------------------------------
# Config validation and the RoPE option


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=3, n_embd=16)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(vocab_size=10, block_size=8, n_layer=0, n_head=2, n_embd=16)
    with pytest.raises(ValueError, match="position_encoding"):
        GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=16, position_encoding="alibi")


def test_rope_rotates_pairs_like_complex_numbers():
    # RoFormer eq. 34: (x_i + j x_{i + hs/2}) * exp(j * m * theta^(-2i/hs)) at position m
    config = GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=16, position_encoding="rope")
    cos, sin = rope_tables(config)  # (16, 8)
    x = torch.randn(1, 2, 16, 8)
    hs = 8
    angles = torch.outer(torch.arange(16.0), 10000.0 ** (-torch.arange(0, hs, 2) / hs))  # (16, 4)
    expected = torch.view_as_complex(torch.stack((x[..., :4], x[..., 4:]), dim=-1)) * torch.polar(
        torch.ones_like(angles), angles
    )
    expected = torch.cat((expected.real, expected.imag), dim=-1)
    torch.testing.assert_close(apply_rope(x, cos, sin), expected, atol=1e-5, rtol=1e-5)


def test_rope_option():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=97, block_size=BLOCK_SIZE, n_layer=2, n_head=4, n_embd=64, position_encoding="rope")
    model = GPT(config).eval()
    assert "transformer.wpe.weight" not in model.state_dict()
    idx = torch.randint(0, 97, (2, 10))
    logits, loss = model(idx, targets=idx)
    assert logits.shape == (2, 10, 97) and torch.isfinite(loss)
    loss.backward()  # trainable
    a = model.generate(idx, 30, temperature=0.0, use_cache=True)
    b = model.generate(idx, 30, temperature=0.0, use_cache=False)
    assert torch.equal(a, b)
    # positions matter: the same tokens shuffled give different last-position logits
    with torch.no_grad():
        x = torch.tensor([[5, 6, 7, 8]])
        assert not torch.allclose(model(x)[0][0, -1], model(x.flip(1))[0][0, -1])


def test_init_and_parameter_count():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=300, block_size=64, n_layer=2, n_head=4, n_embd=64)
    model = GPT(config)
    hf_model = GPT2LMHeadModel(gpt_config_to_hf(config))
    assert model.num_parameters() == hf_model.num_parameters()
    std = 0.02 / (2 * config.n_layer) ** 0.5
    assert abs(model.transformer.h[0].mlp.c_proj.weight.std().item() - std) < 0.2 * std  # scaled residual init
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002


# -----------------------------------------------------------------------------
# Speed devices (fast_layers.py): the column-major weight copy and the int8 fast mode


def test_plain_model_holds_only_plain_linears():
    _, ours = make_pair(48, 3, 1, 97)
    assert all(type(m) is torch.nn.Linear for m in ours.modules() if isinstance(m, torch.nn.Linear))


def test_fast_linears_keep_the_weights_and_match_hf_exactly(pair):
    hf_model, ours = pair
    before = {name: tensor.clone() for name, tensor in ours.state_dict().items()}
    idx = torch.randint(0, ours.config.vocab_size, (2, 9))
    with torch.no_grad():
        plain_logits = ours(idx)[0]
    fast = use_fast_linears(ours)
    assert fast is ours and fast.lm_head.weight is fast.transformer.wte.weight  # in place, the head still tied
    wide = [m for m in fast.modules() if isinstance(m, FastLinear)]
    assert len(wide) == 2 * fast.config.n_layer + 1  # c_attn and c_fc of every block, and the head
    assert fast.state_dict().keys() == before.keys()
    assert all(torch.equal(before[name], tensor) for name, tensor in fast.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(fast(idx)[0], plain_logits, atol=1e-5, rtol=1e-5)
        expected = hf_greedy(hf_model, idx[:1, :7], 30)
    assert torch.equal(fast.generate(idx[:1, :7], 30, temperature=0.0), expected)


def test_fast_linear_follows_weight_updates():
    torch.manual_seed(0)
    layer = FastLinear(32, 96)  # wide: uses its (in, out) copy when no gradient is needed
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        layer.weight.mul_(2.0)  # in place, as an optimizer step does
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
        layer.load_state_dict({"weight": torch.randn(96, 32), "bias": torch.randn(96)})
        torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))
    y = layer(x)  # with gradients: the plain nn.Linear path, so training sees the parameters
    y.sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize("n_embd, n_head", [(64, 4), (36, 6)])  # int8 kernel / fallback for in % 16 != 0
def test_int8_fast_mode_is_close_to_fp32(n_embd, n_head):
    _, ours = make_pair(n_embd, n_head, 2, 211, seed=5)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    fast = quantize_int8(ours)
    assert not any(isinstance(m, torch.nn.Linear) for m in fast.modules())
    int8_layers = [m for m in fast.modules() if isinstance(m, Int8Linear)]
    assert len(int8_layers) == 4 * 2 + 1  # 4 per block + the head
    assert all(torch.equal(before[k], v) for k, v in ours.state_dict().items())  # original untouched
    linear_weights = sum(m.weight.numel() for m in ours.modules() if isinstance(m, torch.nn.Linear))
    assert sum(m.weight.numel() for m in int8_layers) == linear_weights  # every weight quantized, none dropped
    with pytest.raises(ValueError, match="int8"):
        gpt_to_hf(fast)
    idx = torch.randint(0, 211, (2, 30))
    with torch.no_grad():
        exact, approx = ours(idx)[0], fast(idx)[0]
    error = (approx - exact).abs().max() / exact.abs().max()
    assert 0 < error < 0.06  # quantized (not a copy), but close
    a = fast.generate(idx[:1, :5], 20, temperature=0.0, use_cache=True)
    b = fast.generate(idx[:1, :5], 20, temperature=0.0, use_cache=False)
    assert torch.equal(a, b)
