"""The About tab: what the app is, the device and library versions it runs on, and the comparison
table of all topics, generated from `bench/results/*.json`."""

import gradio as gr

from shared import device, results
from shared.results import markdown_table

INTRODUCTION = """
# Side by Side
Every classic model of modern machine learning, implemented from scratch in plain PyTorch / NumPy,
running next to the reference library's implementation (`transformers`, `diffusers`, `scikit-learn`,
`gensim`, `xgboost`/`lightgbm`) with **the same weights** and **the same inputs**. Each tab shows
both outputs, how far apart they are, how fast each one is, and the code that produced them.
The numbers below come from `python -m bench` on the machine named in each result.
"""


def environment_markdown() -> str:
    """The device and library versions of this running app."""
    info = device.describe()
    return markdown_table(["", "this app runs on"], [[key, value] for key, value in info.items()])


def comparison_markdown() -> str:
    """All topics' benchmark results as Markdown, read fresh from bench/results/."""
    loaded = results.load_results()
    return (
        "## Ours vs reference\n\n"
        + results.summary_table(loaded)
        + "\n\n"
        + results.details_markdown(loaded, with_images=False)
    )


def refresh() -> tuple[str, str]:
    return environment_markdown(), comparison_markdown()


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1):
            environment = gr.Markdown(environment_markdown(), label="Environment")
            refresh_button = gr.Button("Refresh", variant="primary")
        with gr.Column(scale=3):
            comparison = gr.Markdown(comparison_markdown(), label="Comparison")
    refresh_button.click(refresh, outputs=[environment, comparison], api_name="about_refresh")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {"about_refresh": ()}
BROWSER_CHECK = {"button": "Refresh", "expect_text": "Ours vs reference"}
