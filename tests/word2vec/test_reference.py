"""Our vectors in gensim and gensim's in ours: the word2vec file formats, and our evaluations
against gensim's on the same vectors (the shipped checkpoints)."""

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors

from apps.word2vec.model import Word2VecConfig
from apps.word2vec.reference import (
    from_keyed_vectors,
    gensim_arguments,
    load_word2vec_format,
    save_word2vec_format,
    to_keyed_vectors,
)
from apps.word2vec.side_by_side import CHECKPOINT_DIR
from apps.word2vec.vectors import WordVectors
from shared.data import word2vec_eval_file

PROBES = ["king", "war", "music", "french", "water", "three"]


@pytest.fixture(scope="module")
def ours():
    return WordVectors.load(CHECKPOINT_DIR / "skipgram")


@pytest.mark.parametrize("binary", [False, True])
def test_exported_vectors_load_in_gensim_with_the_same_neighbours(ours, tmp_path, binary):
    path = save_word2vec_format(ours, tmp_path / "vectors.bin", binary=binary)
    keyed = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert keyed.index_to_key == ours.words
    np.testing.assert_allclose(keyed.vectors, ours.vectors.numpy(), atol=1e-6 if not binary else 0)
    for word in PROBES:
        assert [w for w, _ in keyed.most_similar(word, topn=10)] == [w for w, _ in ours.most_similar(word, topn=10)]
        np.testing.assert_allclose(
            [s for _, s in keyed.most_similar(word, topn=10)],
            [s for _, s in ours.most_similar(word, topn=10)],
            atol=1e-5,
        )


@pytest.mark.parametrize("binary", [False, True])
def test_files_written_by_gensim_read_into_ours(ours, tmp_path, binary):
    keyed = to_keyed_vectors(ours)
    keyed.save_word2vec_format(str(tmp_path / "gensim.w2v"), binary=binary)
    back = load_word2vec_format(tmp_path / "gensim.w2v", binary=binary)
    assert back.words == ours.words
    torch.testing.assert_close(back.vectors, ours.vectors, atol=1e-6, rtol=0)


def test_keyed_vectors_round_trip(ours):
    back = from_keyed_vectors(to_keyed_vectors(ours))
    assert back.words == ours.words and np.array_equal(back.counts, ours.counts)
    assert torch.equal(back.vectors, ours.vectors)


def test_a_malformed_text_file_gives_a_clear_message(tmp_path):
    (tmp_path / "bad.txt").write_text("2 3\nking 0.1 0.2 0.3\nqueen 0.1 0.2\n")
    with pytest.raises(ValueError, match="Line 3 .* 2 numbers; the header says 3"):
        load_word2vec_format(tmp_path / "bad.txt")


@pytest.mark.parametrize("file", ["wordsim353.tsv", "simlex999.txt"])
def test_pair_evaluation_equals_gensims(ours, file):
    score = ours.evaluate_pairs(word2vec_eval_file(file))
    pearson, spearman, oov_percent = to_keyed_vectors(ours).evaluate_word_pairs(word2vec_eval_file(file))
    assert score.spearman == pytest.approx(spearman.statistic, abs=1e-9)
    assert score.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert 100 * (1 - score.pairs_used / score.pairs_total) == pytest.approx(oov_percent, abs=1e-9)


def test_analogy_evaluation_equals_gensims(ours):
    sections = ours.evaluate_analogies(word2vec_eval_file("questions-words.txt"))
    total, gensim_sections = to_keyed_vectors(ours).evaluate_word_analogies(word2vec_eval_file("questions-words.txt"))
    by_name = {section["section"]: section for section in gensim_sections}
    for section in sections:
        assert section.correct == len(by_name[section.name]["correct"]), section.name
        assert section.total == len(by_name[section.name]["correct"]) + len(by_name[section.name]["incorrect"])
    assert sum(s.correct for s in sections) / sum(s.total for s in sections) == pytest.approx(total)


def test_analogy_equals_gensim_most_similar(ours):
    keyed = to_keyed_vectors(ours)
    for a, b, c in [("king", "man", "woman"), ("paris", "france", "germany"), ("walking", "walk", "swim")]:
        assert [w for w, _ in ours.analogy(a, b, c)] == [
            w for w, _ in keyed.most_similar(positive=[a, c], negative=[b], topn=5)
        ]


def test_gensim_gets_the_same_hyperparameters():
    arguments = gensim_arguments(Word2VecConfig(architecture="cbow", window=7, negative=3, epochs=4, workers=3))
    assert (
        arguments | {"sg": 0, "window": 7, "negative": 3, "epochs": 4, "hs": 0, "cbow_mean": 1, "workers": 3}
        == arguments
    )


@pytest.mark.parametrize(
    "word, message",
    [
        ("", "Type a word"),
        ("new york", "Type one word, not 2"),
        ("kinng", "not in the vocabulary.*Close words in the vocabulary: .*king"),
        ("qwxzjv", "not in the vocabulary.*more common word"),
    ],
)
def test_lookup_messages(ours, word, message):
    with pytest.raises(ValueError, match=message):
        ours.lookup(word)


def test_lookup_is_case_insensitive(ours):
    assert ours.lookup("King") == ours.lookup("king")
