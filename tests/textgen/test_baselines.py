"""Tests of the n-gram and LSTM baselines: a slow dictionary Kneser-Ney as the reference for the fast
array one, normalisation on seen/unseen contexts, and the LSTM's carried state against one pass."""

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from apps.textgen.baselines import (
    MIN_DISCOUNT,
    KneserNeyNGram,
    LSTMConfig,
    LSTMLanguageModel,
    NGramConfig,
    bits_per_character,
    choose_order,
    modified_kneser_ney_discounts,
)


@pytest.fixture(scope="module")
def wiki_bytes() -> list[int]:
    from shared.data import wiki_text_split

    return list(wiki_text_split().train[:50_000].encode())


def markov_sequence(length: int, vocab_size: int, order: int, noise: float, seed: int) -> list[int]:
    """Tokens mostly determined by the previous order-1 tokens (a fixed random rule), sometimes random."""
    rng = np.random.default_rng(seed)
    rule = {}
    tokens = list(rng.integers(vocab_size, size=order - 1))
    while len(tokens) < length:
        context = tuple(tokens[len(tokens) - order + 1 :])
        if context not in rule:
            rule[context] = int(rng.integers(vocab_size))
        tokens.append(int(rng.integers(vocab_size)) if rng.random() < noise else rule[context])
    return [int(t) for t in tokens]


# ---------------------------------------------------------------------------------------------
# A slow, direct Kneser-Ney: dictionaries of tuples, the equations as written in the module
# ---------------------------------------------------------------------------------------------


class ReferenceKneserNey:
    def __init__(self, tokens: list[int], order: int, vocab_size: int):
        self.order, self.vocab_size = order, vocab_size
        self.counts = {}
        for k in range(1, order + 1):
            grams = [tuple(tokens[i : i + k]) for i in range(len(tokens) - k + 1)]
            if k == order:
                self.counts[k] = Counter(grams)
            else:
                left_neighbours = defaultdict(set)
                for i in range(1, len(grams)):
                    left_neighbours[grams[i]].add(tokens[i - 1])
                self.counts[k] = {g: len(left_neighbours[g]) + (g == grams[0]) for g in set(grams)}
        self.discounts = {k: modified_kneser_ney_discounts(np.array(list(c.values()))) for k, c in self.counts.items()}
        self.by_context = {k: defaultdict(dict) for k in self.counts}
        for k, counts in self.counts.items():
            for gram, count in counts.items():
                self.by_context[k][gram[:-1]][gram[-1]] = count

    def probability(self, history: tuple, token: int) -> float:
        history = history[-(self.order - 1) :] if self.order > 1 else ()
        return self._p(history, token, len(history) + 1)

    def _p(self, history: tuple, token: int, k: int) -> float:
        if k == 0:
            return 1.0 / self.vocab_size
        lower = self._p(history[1:], token, k - 1)
        followers = self.by_context[k].get(history, {})
        total = sum(followers.values())
        if total == 0:
            return lower
        discount = self.discounts[k]
        count = followers.get(token, 0)
        mass = (count - discount[min(count, 3) - 1]) / total if count else 0.0
        gamma = sum(discount[min(c, 3) - 1] for c in followers.values()) / total
        return mass + gamma * lower


# ---------------------------------------------------------------------------------------------
# Kneser-Ney
# ---------------------------------------------------------------------------------------------


def test_discounts_follow_chen_goodman_formula():
    counts = np.array([1, 1, 1, 2, 2, 3, 4, 4, 7])  # n1=3, n2=2, n3=1, n4=2
    y = 3 / (3 + 2 * 2)
    d1, d2, d3 = modified_kneser_ney_discounts(counts)
    assert d1 == pytest.approx(1 - 2 * y * 2 / 3)
    assert d2 == pytest.approx(2 - 3 * y * 1 / 2)
    assert d3 == pytest.approx(MIN_DISCOUNT)  # the formula gives 3 - 24/7 < 0: clipped


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_matches_reference_implementation(order):
    train = markov_sequence(600, vocab_size=7, order=3, noise=0.3, seed=1)
    held_out = markov_sequence(80, vocab_size=7, order=3, noise=0.5, seed=2)
    model = KneserNeyNGram(NGramConfig(order=order, vocab_size=7)).fit(train)
    reference = ReferenceKneserNey(train, order, 7)
    for k in range(1, order + 1):
        np.testing.assert_allclose(model.discounts[k - 1], reference.discounts[k])
    expected = [reference.probability(tuple(held_out[:t]), held_out[t]) for t in range(len(held_out))]
    assert model.total_nll(held_out) == pytest.approx(-sum(math.log(p) for p in expected), rel=1e-12)
    for context in ([], held_out[:1], held_out[:5], [6, 6, 6, 6]):
        expected_distribution = [reference.probability(tuple(context), w) for w in range(7)]
        np.testing.assert_allclose(model.next_token_distribution(context), expected_distribution, rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_distribution_sums_to_one(order, wiki_bytes):
    model = KneserNeyNGram(NGramConfig(order=order, vocab_size=256)).fit(wiki_bytes)
    contexts = {
        "empty": [],
        "seen": wiki_bytes[100:110],
        "unseen": [0, 1, 2, 3],  # control bytes never occur in the text
        "partly seen": [0, 1] + list(b" th"),  # the recent tokens are common, the older ones not
        "short": list(b"e"),
    }
    for name, context in contexts.items():
        distribution = model.next_token_distribution(context)
        assert distribution.shape == (256,)
        assert abs(distribution.sum() - 1.0) < 1e-9, name
        assert (distribution > 0).all(), name
        assert model.log_prob(context, 101) == pytest.approx(math.log(distribution[101]), rel=1e-12)


def test_distribution_sums_to_one_on_a_large_sparse_vocabulary():
    # BPE-like: 4,096 ids of which only a few dozen occur
    tokens = [t * 97 % 4096 for t in markov_sequence(3000, vocab_size=40, order=3, noise=0.2, seed=3)]
    model = KneserNeyNGram(NGramConfig(order=4, vocab_size=4096)).fit(tokens)
    for context in ([], tokens[:3], tokens[10:13], [4095, 4094, 4093], [4095] + tokens[:2]):
        assert abs(model.next_token_distribution(context).sum() - 1.0) < 1e-9


def test_repeating_sequence_is_predicted():
    pattern = list(range(10))
    model = KneserNeyNGram(NGramConfig(order=3, vocab_size=16)).fit(pattern * 30)
    for t in range(2, 12):
        context = (pattern * 2)[:t]
        assert math.exp(model.log_prob(context, pattern[t % 10])) > 0.9
    assert model.generate([3, 4], 12, temperature=0) == [3, 4] + [5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6]


def test_discounts_lie_in_their_count_ranges(wiki_bytes):
    model = KneserNeyNGram(NGramConfig(order=5, vocab_size=256)).fit(wiki_bytes)
    for d1, d2, d3 in model.discounts:
        assert 0 <= d1 <= 1 and 0 <= d2 <= 2 and 0 <= d3 <= 3
    for counts in model.counts:
        assert counts.min() >= 1


def test_total_nll_is_the_sum_of_log_probs(wiki_bytes):
    model = KneserNeyNGram(NGramConfig(order=4, vocab_size=256)).fit(wiki_bytes[:40_000])
    held_out = wiki_bytes[45_000:45_300]
    expected = -sum(model.log_prob(held_out[:t], held_out[t]) for t in range(len(held_out)))
    assert model.total_nll(held_out) == pytest.approx(expected, rel=1e-12)


def test_higher_order_beats_unigram_on_a_patterned_sequence():
    tokens = markov_sequence(6000, vocab_size=20, order=3, noise=0.1, seed=4)
    train, held_out = tokens[:5000], tokens[5000:]
    nll = {n: KneserNeyNGram(NGramConfig(order=n, vocab_size=20)).fit(train).total_nll(held_out) for n in (1, 3)}
    assert nll[3] < 0.5 * nll[1]
    best_order, per_token = choose_order(train, held_out, orders=(1, 2, 3), vocab_size=20)
    assert best_order == 3 and set(per_token) == {1, 2, 3}
    assert per_token[3] == pytest.approx(nll[3] / len(held_out))


def test_save_load_round_trip(tmp_path, wiki_bytes):
    model = KneserNeyNGram(NGramConfig(order=3, vocab_size=256)).fit(wiki_bytes[:20_000])
    path = model.save(tmp_path / "ngram.npz")
    loaded = KneserNeyNGram.load(path)
    assert loaded.config == model.config
    for context in ([], wiki_bytes[:2], [0, 1]):
        np.testing.assert_array_equal(loaded.next_token_distribution(context), model.next_token_distribution(context))
    assert loaded.total_nll(wiki_bytes[30_000:31_000]) == model.total_nll(wiki_bytes[30_000:31_000])


def test_seeded_sampling_and_errors(wiki_bytes):
    model = KneserNeyNGram(NGramConfig(order=3, vocab_size=256)).fit(wiki_bytes[:20_000])
    prompt = list(b"The ")
    first = model.generate(prompt, 30, temperature=0.8, top_k=20, seed=7)
    assert first == model.generate(prompt, 30, temperature=0.8, top_k=20, seed=7)
    assert first[:4] == prompt and len(first) == 34
    with pytest.raises(ValueError, match="token ids"):
        model.log_prob([300], 1)
    with pytest.raises(ValueError, match="not fitted"):
        KneserNeyNGram(NGramConfig()).total_nll([1, 2])


def test_bits_per_character():
    assert bits_per_character(10 * math.log(2), 10) == pytest.approx(1.0)
    assert bits_per_character(3.0, 2) == pytest.approx(1.5 / math.log(2))
    with pytest.raises(ValueError):
        bits_per_character(1.0, 0)


# ---------------------------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------------------------


def tiny_lstm(**overrides) -> LSTMLanguageModel:
    torch.manual_seed(0)
    config = dict(vocab_size=50, n_embd=16, hidden_size=24, n_layers=2, dropout=0.1, tie_weights=True)
    config.update(overrides)
    return LSTMLanguageModel(LSTMConfig(**config))


def history_dependent_lstm() -> LSTMLanguageModel:
    """At its initialisation an LSTM predicts an almost uniform distribution whatever it has read;
    large random weights make its predictions depend strongly on the history instead."""
    model = tiny_lstm()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.7)
    return model


@pytest.mark.parametrize("hidden_size, tie_weights", [(24, True), (16, True), (24, False)])
def test_lstm_shapes_and_parameters(hidden_size, tie_weights):
    model = tiny_lstm(hidden_size=hidden_size, tie_weights=tie_weights)
    idx = torch.randint(0, 50, (3, 7))
    logits, loss, (h, c) = model(idx, targets=idx)
    assert logits.shape == (3, 7, 50) and loss.dim() == 0
    assert h.shape == c.shape == (2, 3, hidden_size)
    assert (model.head.weight is model.embedding.weight) == tie_weights
    assert (model.projection is not None) == (tie_weights and hidden_size != 16)
    lstm = sum(p.numel() for p in model.lstm.parameters())
    head_inputs = 16 if tie_weights else hidden_size
    expected = 50 * 16 + lstm + (0 if tie_weights else 50 * hidden_size) + 50  # embedding, LSTM, head
    expected += hidden_size * 16 if model.projection is not None else 0
    assert model.num_parameters() == expected and model.head.in_features == head_inputs


def test_lstm_loss_decreases_on_a_repeating_sequence():
    model = tiny_lstm(vocab_size=10, n_layers=1, dropout=0.0)
    sequence = torch.tensor(list(range(10)) * 6)
    inputs, targets = sequence[None, :-1], sequence[None, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(40):
        _, loss, _ = model(inputs, targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def test_lstm_generation_seeded_and_greedy():
    model = history_dependent_lstm()
    prompt = torch.tensor([[1, 2, 3]])
    first = model.generate(prompt, 15, temperature=1.5, top_k=30, seed=3)
    assert first.shape == (1, 18) and torch.equal(first[:, :3], prompt)
    assert torch.equal(first, model.generate(prompt, 15, temperature=1.5, top_k=30, seed=3))
    assert not torch.equal(first, model.generate(prompt, 15, temperature=1.5, top_k=30, seed=4))
    # temperature 0: argmax at every step, recomputed here by re-running the whole prefix
    greedy = model.generate(prompt, 10, temperature=0)
    tokens = prompt
    for _ in range(10):
        probabilities = model.next_token_probabilities(tokens)
        assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-5)
        tokens = torch.cat([tokens, probabilities.argmax().view(1, 1)], dim=1)
    assert torch.equal(greedy, tokens)
    assert model.training  # generation restores the mode it found


def test_lstm_generation_carries_the_state():
    # Sampling with the carried state must draw what sampling from a re-run of the whole prefix draws.
    from apps.textgen.model import sample_next_token

    model = history_dependent_lstm()
    prompt = torch.tensor([[4, 5]])
    sampled = model.generate(prompt, 40, temperature=2.0, seed=11)
    generator = torch.Generator().manual_seed(11)
    tokens = prompt
    for _ in range(40):
        logits = model.next_token_probabilities(tokens).log()[None]  # (1, V), from the full prefix
        tokens = torch.cat([tokens, sample_next_token(logits, 2.0, generator=generator)[:, None]], dim=1)
    assert torch.equal(sampled, tokens)


def test_lstm_total_nll_with_carried_state_equals_one_pass():
    model = history_dependent_lstm().double().eval()
    tokens = torch.randint(0, 50, (61,), generator=torch.Generator().manual_seed(0))
    logits, _, _ = model(tokens[None, :-1])
    one_pass = F.cross_entropy(logits[0], tokens[1:], reduction="sum").item()
    one_pass -= F.log_softmax(model.head.bias, dim=-1)[tokens[0]].item()  # the zero-state prediction
    for chunk_length in (1, 7, 60, 256):
        assert model.total_nll(tokens, chunk_length=chunk_length) == pytest.approx(one_pass, abs=1e-4)
    assert torch.allclose(model.next_token_probabilities(tokens[:0]), F.softmax(model.head.bias.float(), dim=-1))
