"""Our word2vec pieces against their formulas and against gensim's own vocabulary tables."""

import numpy as np
import pytest
import torch
from gensim.models import Word2Vec as GensimWord2Vec

from apps.word2vec.model import Vocabulary, Word2Vec, Word2VecConfig, context_slots, train
from apps.word2vec.vectors import WordVectors
from shared.data import wiki_word_tokens


@pytest.fixture(scope="module")
def documents():
    return wiki_word_tokens()


@pytest.fixture(scope="module")
def gensim_vocabulary(documents):
    model = GensimWord2Vec(vector_size=8, min_count=5, sample=1e-3, negative=5, hs=1, workers=1)
    model.build_vocab(documents)
    return model


def test_vocabulary_matches_gensim(documents, gensim_vocabulary):
    ours = Vocabulary.build(documents, min_count=5)
    assert set(ours.words) == set(gensim_vocabulary.wv.index_to_key)
    assert ours.counts[0] == max(gensim_vocabulary.wv.get_vecattr(word, "count") for word in ours.words)
    assert all(
        ours.counts[i] == gensim_vocabulary.wv.get_vecattr(word, "count") for i, word in enumerate(ours.words[:500])
    )


def test_subsampling_keep_probability_matches_gensim_and_formula(documents, gensim_vocabulary):
    vocabulary = Vocabulary.build(documents, min_count=5)
    keep = vocabulary.keep_probabilities(1e-3)
    gensim_keep = np.array(
        [gensim_vocabulary.wv.get_vecattr(word, "sample_int") / (2**32 - 1) for word in vocabulary.words]
    )
    np.testing.assert_allclose(keep, gensim_keep, atol=1e-6)
    frequency = vocabulary.counts / vocabulary.counts.sum()
    np.testing.assert_allclose(keep, np.minimum(1, (np.sqrt(frequency / 1e-3) + 1) * 1e-3 / frequency))
    assert keep[0] < 0.2 and keep[-1] == 1.0  # "the" is mostly dropped, rare words always kept


def test_subsampling_keeps_words_at_their_probability(documents):
    vocabulary = Vocabulary.build(documents, min_count=5)
    ids, document_of_token = vocabulary.encode(documents)
    keep = vocabulary.keep_probabilities(1e-3)
    centres, _, _ = context_slots(ids, document_of_token, keep, 5, np.random.default_rng(0))
    kept_counts = np.bincount(centres, minlength=len(vocabulary))
    for word in range(5):  # the most frequent words, each seen thousands of times
        expected = vocabulary.counts[word] * keep[word]
        assert abs(kept_counts[word] - expected) < 5 * np.sqrt(expected)


def test_noise_distribution_matches_gensim_cumulative_table(documents, gensim_vocabulary):
    vocabulary = Vocabulary.build(documents, min_count=5)
    order = [gensim_vocabulary.wv.key_to_index[word] for word in vocabulary.words]
    cumulative = gensim_vocabulary.cum_table.astype(np.float64)
    gensim_probability = np.diff(np.concatenate([[0.0], cumulative])) / cumulative[-1]
    np.testing.assert_allclose(vocabulary.noise_distribution(0.75), gensim_probability[order], atol=1e-6)


def test_sampled_noise_follows_unigram_to_the_three_quarters(documents):
    model = Word2Vec(Word2VecConfig(), Vocabulary.build(documents, min_count=5))
    samples = model.sample_noise((2_000_000,), torch.Generator().manual_seed(0))
    observed = torch.bincount(samples, minlength=len(model.vocabulary)).numpy() / len(samples)
    expected = model.vocabulary.noise_distribution(0.75)
    sigma = np.sqrt(expected * (1 - expected) / len(samples))
    assert np.all(np.abs(observed - expected) < 6 * sigma + 1e-7)


def test_huffman_tree_is_optimal_and_prefix_free(documents, gensim_vocabulary):
    vocabulary = Vocabulary.build(documents, min_count=5)
    points, codes, lengths = vocabulary.huffman_paths()
    gensim_lengths = np.array([len(gensim_vocabulary.wv.get_vecattr(word, "code")) for word in vocabulary.words])
    assert (vocabulary.counts * lengths).sum() == (vocabulary.counts * gensim_lengths).sum()  # both optimal
    as_strings = {"".join(map(str, codes[word, : lengths[word]])) for word in range(len(vocabulary))}
    assert len(as_strings) == len(vocabulary)
    assert all(not other.startswith(code) for code in list(as_strings)[:200] for other in as_strings if other != code)
    assert (points[:, 0] == len(vocabulary) - 2).all()  # every path starts at the root


def test_context_slots_respect_windows_and_documents():
    ids = np.arange(40) % 7
    document_of_token = np.repeat([0, 1], 20)
    centres, contexts, valid = context_slots(ids, document_of_token, np.ones(7), window=3, rng=np.random.default_rng(1))
    offsets = np.array([-3, -2, -1, 1, 2, 3])
    for i in range(40):
        for slot in np.nonzero(valid[i])[0]:
            j = i + offsets[slot]
            assert 0 <= j < 40 and document_of_token[j] == document_of_token[i] and contexts[i, slot] == ids[j]
    assert not valid[19, 3:].any() and not valid[20, :3].any()  # no window crosses the document boundary


def test_dynamic_window_weights_distance_d_by_window_minus_d_plus_one():
    ids = np.zeros(200_000, dtype=np.int64)
    _, _, valid = context_slots(ids, np.zeros_like(ids), np.ones(1), window=5, rng=np.random.default_rng(0))
    per_distance = valid[:, 5:].mean(0)  # offsets 1..5
    np.testing.assert_allclose(per_distance, [(5 - d + 1) / 5 for d in range(1, 6)], atol=0.01)


def tiny_model(architecture, negative, hierarchical_softmax):
    words = [f"w{i}" for i in range(12)]
    vocabulary = Vocabulary(words, np.arange(60, 0, -5))
    config = Word2VecConfig(
        architecture=architecture, vector_size=6, window=2, negative=negative, hierarchical_softmax=hierarchical_softmax
    )
    model = Word2Vec(config, vocabulary)
    with torch.no_grad():
        for table in model.parameters():
            table.copy_(torch.randn_like(table) * 0.5)
    return model


@pytest.mark.parametrize("architecture", ["skipgram", "cbow"])
@pytest.mark.parametrize("negative, hierarchical_softmax", [(3, False), (0, True), (2, True)])
def test_sgd_step_is_minus_learning_rate_times_the_autograd_gradient(architecture, negative, hierarchical_softmax):
    """One centre word: our hand-written update equals SGD on the negative-sampling / hierarchical
    softmax loss differentiated by autograd."""
    model = tiny_model(architecture, negative, hierarchical_softmax)
    centres, contexts, valid = (
        torch.tensor([4]),
        torch.tensor([[1, 7, 9, 2]]),
        torch.tensor([[True, True, False, True]]),
    )
    before = {name: table.detach().clone() for name, table in model.named_parameters()}
    learning_rate = 0.1
    step = model.skipgram_step if architecture == "skipgram" else model.cbow_step
    step(centres, contexts, valid, generator=torch.Generator().manual_seed(5), learning_rate=learning_rate)
    noise = model.sample_noise((1, negative), torch.Generator().manual_seed(5))[0] if negative else None

    tables = {name: table.clone().requires_grad_(True) for name, table in before.items()}
    context_words = contexts[valid]
    hidden = tables["input_vectors"][context_words]  # skip-gram: each context word predicts the centre
    if architecture == "cbow":
        hidden = hidden.mean(0, keepdim=True)
    loss = 0
    if negative:
        positive = hidden @ tables["output_vectors"][centres[0]]
        negatives = hidden @ tables["output_vectors"][noise].T
        mask = (noise != centres[0]).float()
        loss = (
            loss
            - torch.nn.functional.logsigmoid(positive).sum()
            - (torch.nn.functional.logsigmoid(-negatives) * mask).sum()
        )
    if hierarchical_softmax:
        length = int(model.path_mask[centres[0]].sum())
        nodes, codes = model.points[centres[0], :length], model.codes[centres[0], :length]
        scores = hidden @ tables["node_vectors"][nodes].T
        loss = loss - (torch.nn.functional.logsigmoid(scores * (1 - 2 * codes))).sum()  # label 1 - code
    loss.backward()
    for name, table in model.named_parameters():
        expected = before[name] - learning_rate * tables[name].grad
        if architecture == "cbow" and name == "input_vectors":
            # CBOW gives each context word the whole step of the mean (C code, gensim cbow_mean=1):
            # autograd's gradient through the mean is divided by the count, so scale it back.
            expected = before[name] - learning_rate * tables[name].grad * len(context_words)
        torch.testing.assert_close(table.detach(), expected, atol=1e-6, rtol=1e-5)


def test_config_rejects_impossible_settings():
    with pytest.raises(ValueError, match="architecture"):
        Word2VecConfig(architecture="glove")
    with pytest.raises(ValueError, match="negative sampling"):
        Word2VecConfig(negative=0, hierarchical_softmax=False)
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build([["a", "b"]], min_count=5)


@pytest.mark.parametrize(
    "architecture, hierarchical_softmax", [("skipgram", False), ("cbow", False), ("skipgram", True)]
)
def test_training_puts_words_of_one_topic_together(architecture, hierarchical_softmax):
    rng = np.random.default_rng(0)
    topics = [[f"fruit{i}" for i in range(8)], [f"metal{i}" for i in range(8)]]
    documents = [list(rng.choice(topics[k % 2], size=300)) for k in range(40)]
    config = Word2VecConfig(
        architecture=architecture,
        vector_size=16,
        window=3,
        min_count=1,
        sample=0,
        epochs=5,
        negative=0 if hierarchical_softmax else 5,
        hierarchical_softmax=hierarchical_softmax,
        batch_size=64,
        workers=1,
    )
    model, report = train(documents, config)
    vectors = WordVectors.from_model(model)
    for word in ("fruit0", "metal3"):
        assert all(neighbour[:5] == word[:5] for neighbour, _ in vectors.most_similar(word, topn=5))
    assert report.examples > 0 and report.words_per_second > 0


def test_one_worker_repeats_a_run_exactly():
    documents = [["a", "b", "c", "d", "e", "f"] * 30, ["f", "e", "d", "c", "b", "a"] * 30]
    config = Word2VecConfig(vector_size=8, window=2, min_count=1, sample=0, epochs=2, workers=1, batch_size=16)
    first, _ = train(documents, config)
    second, _ = train(documents, config)
    assert torch.equal(first.input_vectors, second.input_vectors)
    assert not torch.equal(first.input_vectors, Word2Vec(config, first.vocabulary).input_vectors)  # it trained


def test_divergence_is_reported_not_returned():
    documents = [["a", "b", "c", "d"] * 50]
    with pytest.raises(ValueError, match="Training diverged.*Lower batch_size, alpha or workers"):
        train(
            documents, Word2VecConfig(vector_size=8, min_count=1, sample=0, epochs=2, alpha=1e30, workers=1)
        )  # a learning rate far too large
