"""The offline data sets load, have the documented sizes, and split the same way every time."""

import numpy as np

from shared import data


def test_wiki_split_holds_out_whole_articles():
    split = data.wiki_text_split()
    assert len(split.validation_titles) == data.VALIDATION_ARTICLES
    assert not set(split.validation_titles) & set(split.train_titles)
    assert len(split.train_titles) + len(split.validation_titles) > 100
    assert 2_000_000 < len(split.train) and 100_000 < len(split.validation)
    assert "'''" not in split.train and "==" not in split.train  # wiki markup is cleaned


def test_wiki_split_is_deterministic():
    data.wiki_text_split.cache_clear()
    first = data.wiki_text_split().validation_titles
    data.wiki_text_split.cache_clear()
    assert data.wiki_text_split().validation_titles == first


def test_mnist5k_is_balanced_and_split():
    split = data.mnist5k()
    assert split.train_images.shape == (4500, 28, 28) and split.validation_images.shape == (500, 28, 28)
    assert split.train_images.dtype == np.uint8 and split.train_images.max() > 200
    assert np.bincount(split.validation_labels).tolist() == [50] * 10


def test_word2vec_evaluation_files_exist():
    for name in data.WORD2VEC_EVAL_SETS:
        with open(data.word2vec_eval_file(name), encoding="utf-8", errors="replace") as handle:
            assert handle.readline()


def test_wiki_word_tokens_are_lowercase_words():
    documents = data.wiki_word_tokens()
    assert len(documents) > 100
    words = [word for document in documents[:5] for word in document]
    assert all(word == word.lower() for word in words) and len(words) > 1000
