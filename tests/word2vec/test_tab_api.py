"""The word2vec tab through its API, as a remote user or the browser calls it."""

import pytest
from gradio_client.exceptions import AppError


def test_neighbours_show_both_columns(client):
    ours, gensim, badges, notes, code = client.predict("skip-gram", "King", 10, api_name="/word2vec_neighbours")
    assert len(ours["data"]) == 10 and len(gensim["data"]) == 10
    assert "words appear in both lists" in badges and "ours" in badges
    assert "lower-case" in notes and "def most_similar" in code


def test_analogy_shows_the_answers_of_both(client):
    ours, gensim, badges, notes, code = client.predict(
        "CBOW", "paris", "france", "germany", api_name="/word2vec_analogy"
    )
    assert len(ours["data"]) == 5 and "ours says" in notes and "def analogy" in code


def test_map_leaves_unknown_words_out_with_a_note(client):
    plot, notes = client.predict("skip-gram", "king, queen, man, woman, qwxzjv", "t-SNE", api_name="/word2vec_map")
    assert plot is not None and "qwxzjv" in notes


def test_evaluation_table_has_both_sides(client):
    table, plot = client.predict("CBOW", api_name="/word2vec_evaluate")
    measures = [row[0] for row in table["data"]]
    assert measures[:3] == ["WordSim-353 Spearman", "SimLex-999 Spearman", "Analogy accuracy, all sections"]
    assert all(isinstance(row[1], float) and isinstance(row[2], float) for row in table["data"][:3])


@pytest.mark.parametrize(
    "arguments, api_name, message",
    [
        (("skip-gram", "", 10), "/word2vec_neighbours", "Type a word"),
        (("skip-gram", "new york", 10), "/word2vec_neighbours", "Type one word"),
        (("skip-gram", "kinng", 10), "/word2vec_neighbours", "Close words in the vocabulary: .*king"),
        (("skip-gram", "king", 0), "/word2vec_neighbours", "less than minimum value 1"),
        (("skip-gram", "king", None), "/word2vec_neighbours", "'Neighbours' is empty"),
        (("GloVe", "king", 10), "/word2vec_neighbours", "not in the list of choices"),
        (("skip-gram", "king", "king", "woman"), "/word2vec_analogy", "three different words"),
        (("skip-gram", "king", "", "woman"), "/word2vec_analogy", "Type a word"),
        (("skip-gram", "king queen", "PCA"), "/word2vec_map", "at least 3 words"),
        (("skip-gram", " ".join(["king"] * 61), "PCA"), "/word2vec_map", "At most 60 words"),
    ],
)
def test_bad_input_gives_a_clear_message(client, arguments, api_name, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name=api_name)
