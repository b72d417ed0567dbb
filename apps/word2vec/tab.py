"""word2vec tab: neighbours, analogies, a 2-D map and the standard evaluations, from our vectors and
gensim's (same text, same hyperparameters) side by side. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.word2vec import ARCHITECTURE_NAMES, MAX_NEIGHBOURS
from shared.ui import Slider, code_panel, comparison_badges, notes_markdown, pyplot, source_of, user_errors

INTRODUCTION = """
## word2vec: our skip-gram and CBOW beside gensim
Both sides were trained by `python -m apps.word2vec.train` on the same word tokens of the gensim
Wikipedia sample (about 450,000 words, 9,002-word vocabulary) with the same hyperparameters: 100
dimensions, window 5, 5 negative samples, subsampling 1e-3, 10 epochs. Ours is
`apps/word2vec/model.py` (PyTorch, batched SGD written out by hand); the other column is gensim's
`Word2Vec`, queried with gensim's own `KeyedVectors`. Two separate training runs never give the same
vectors, so the columns are expected to *agree in kind*, not digit by digit. Similarity is the cosine.
On so little text, neighbours are good for common words (try *music*, *war*, *river*) and most
analogies fail (*father - man + woman* works); the same vectors loaded into both libraries give
identical answers (tested in `tests/word2vec/test_reference.py`).
"""
ARCHITECTURES = list(ARCHITECTURE_NAMES)
VECTORS = "apps.word2vec.vectors:WordVectors."
EXAMPLE_MAP_WORDS = "king queen man woman prince princess france paris germany berlin italy rome one two three four"


def neighbour_table(rows: list[tuple[str, float]]):
    """(word, cosine) rows as a DataFrame."""
    import pandas as pd

    return pd.DataFrame({"word": [word for word, _ in rows], "cosine": [round(score, 3) for word, score in rows]})


def shared_badge(
    ours: list[tuple[str, float]], theirs: list[tuple[str, float]], ours_seconds: float, gensim_seconds: float
) -> str:
    shared = len({word for word, _ in ours} & {word for word, _ in theirs})
    return (
        comparison_badges(ours_seconds, gensim_seconds)
        + f"<div>{shared} of {len(ours)} words appear in both lists.</div>"
    )


@user_errors
def find_neighbours(architecture, word, topn):
    from apps.word2vec import side_by_side as sbs

    ours, theirs, ours_seconds, gensim_seconds, notes = sbs.neighbours(architecture, word, int(topn))
    return (
        neighbour_table(ours),
        neighbour_table(theirs),
        shared_badge(ours, theirs, ours_seconds, gensim_seconds),
        notes_markdown(notes),
        source_of(VECTORS + "most_similar", VECTORS + "nearest"),
    )


@user_errors
def solve_analogy(architecture, a, b, c):
    from apps.word2vec import side_by_side as sbs

    ours, theirs, ours_seconds, gensim_seconds, notes = sbs.analogy(architecture, a, b, c)
    heading = (
        f"**{a.strip()} - {b.strip()} + {c.strip()}**: ours says **{ours[0][0]}**, gensim says **{theirs[0][0]}**."
    )
    return (
        neighbour_table(ours),
        neighbour_table(theirs),
        shared_badge(ours, theirs, ours_seconds, gensim_seconds),
        notes_markdown([heading, *notes]),
        source_of(VECTORS + "analogy"),
    )


def map_figure(words: list[str], ours, theirs, method: str):
    plt = pyplot()

    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    for axis, points, title in ((axes[0], ours, "ours"), (axes[1], theirs, "gensim")):
        axis.scatter(points[:, 0], points[:, 1], s=18, color="#4063d8")
        for word, (x, y) in zip(words, points):
            axis.annotate(word, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=9)
        axis.set_title(f"{title} ({method} of the unit vectors)")
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def draw_map(architecture, text, method, progress=gr.Progress()):
    from apps.word2vec import side_by_side as sbs

    progress(0.2, desc=f"{method} of the chosen words")
    words, ours, theirs, notes = sbs.map_words(architecture, text or "", method)
    return map_figure(words, ours, theirs, method), notes_markdown(notes)


def evaluation_figure(rows):
    plt = pyplot()

    labels = [name.replace("Analogy: ", "").replace(" Spearman", "\nSpearman") for name, *_ in rows]
    positions = range(len(rows))
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.bar([p - 0.2 for p in positions], [ours for _, ours, _, _ in rows], width=0.4, label="ours")
    axis.bar([p + 0.2 for p in positions], [theirs for _, _, theirs, _ in rows], width=0.4, label="gensim")
    axis.set_xticks(list(positions))
    axis.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    axis.set_ylabel("Spearman / accuracy")
    axis.legend()
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def evaluate(architecture, progress=gr.Progress()):
    import pandas as pd

    from apps.word2vec import side_by_side as sbs

    progress(0.1, desc="WordSim-353, SimLex-999 and 19,544 analogy questions, ours and gensim")
    rows = sbs.evaluation(architecture)
    table = pd.DataFrame(
        [(name, round(ours, 3), round(theirs, 3), what) for name, ours, theirs, what in rows],
        columns=["measure", "ours", "gensim", "counted"],
    )
    return table, evaluation_figure(rows)


def side_by_side_outputs():
    """Notes, our word list beside gensim's, and the timing badges."""
    notes = gr.Markdown()
    with gr.Row():
        ours = gr.Dataframe(label="ours", interactive=False)
        theirs = gr.Dataframe(label="gensim", interactive=False)
    return notes, ours, theirs, gr.HTML()


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    architecture = gr.Radio(ARCHITECTURES, value=ARCHITECTURES[0], label="Architecture")
    with gr.Tab("Neighbours"):
        with gr.Row():
            word = gr.Textbox(label="Word", value="music", scale=3)
            topn = Slider(1, MAX_NEIGHBOURS, value=10, step=1, label="Neighbours", scale=2)
            neighbours_button = gr.Button("Find neighbours", variant="primary", scale=1)
        neighbour_notes, ours_neighbours, gensim_neighbours, neighbour_badges = side_by_side_outputs()
    with gr.Tab("Analogies"):
        with gr.Row():
            a = gr.Textbox(label="a", value="father")
            b = gr.Textbox(label="- b", value="man")
            c = gr.Textbox(label="+ c", value="woman")
            analogy_button = gr.Button("Solve a - b + c", variant="primary")
        analogy_notes, ours_analogy, gensim_analogy, analogy_badges = side_by_side_outputs()
    with gr.Tab("Map"):
        with gr.Row():
            map_words = gr.Textbox(
                label="Words (3 to 60, separated by spaces or commas)", value=EXAMPLE_MAP_WORDS, scale=4
            )
            method = gr.Radio(["PCA", "t-SNE"], value="PCA", label="Projection", scale=1)
            map_button = gr.Button("Draw the map", variant="primary", scale=1)
        map_notes = gr.Markdown()
        map_plot = gr.Plot(label="Words in 2-D")
    with gr.Tab("Evaluation"):
        gr.Markdown(
            (
                "Ours is scored by `apps/word2vec/vectors.py`, gensim's vectors by gensim's own "
                "`evaluate_word_pairs` / `evaluate_word_analogies`. A corpus of 450,000 words is small: analogy "
                "scores are low for both (the 3-billion-word Google News vectors reach over 70%)."
            )
        )
        evaluate_button = gr.Button("Evaluate both", variant="primary")
        evaluation_table = gr.Dataframe(label="Evaluation", interactive=False)
        evaluation_plot = gr.Plot(label="Ours and gensim")
    code = code_panel(
        VECTORS + "most_similar",
        "apps.word2vec.model:Word2Vec.output_step",
        label="Read the code (the query that just ran, and the training step)",
    )

    neighbours_button.click(
        find_neighbours,
        inputs=[architecture, word, topn],
        outputs=[ours_neighbours, gensim_neighbours, neighbour_badges, neighbour_notes, code],
        api_name="word2vec_neighbours",
    )
    word.submit(
        find_neighbours,
        inputs=[architecture, word, topn],
        outputs=[ours_neighbours, gensim_neighbours, neighbour_badges, neighbour_notes, code],
        api_name=False,
    )
    analogy_button.click(
        solve_analogy,
        inputs=[architecture, a, b, c],
        outputs=[ours_analogy, gensim_analogy, analogy_badges, analogy_notes, code],
        api_name="word2vec_analogy",
    )
    map_button.click(
        draw_map, inputs=[architecture, map_words, method], outputs=[map_plot, map_notes], api_name="word2vec_map"
    )
    evaluate_button.click(
        evaluate, inputs=[architecture], outputs=[evaluation_table, evaluation_plot], api_name="word2vec_evaluate"
    )


API_EXAMPLES = {
    "word2vec_neighbours": ("skip-gram", "music", 10),
    "word2vec_analogy": ("skip-gram", "father", "man", "woman"),
    "word2vec_map": ("CBOW", "king queen man woman paris france", "PCA"),
    "word2vec_evaluate": ("skip-gram",),
}
BROWSER_CHECK = {"button": "Find neighbours", "expect_text": "words appear in both lists"}
