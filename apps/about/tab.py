"""The home page: what the app is, the family pages and their topics, the comparison table of all topics
(each row linking to its topic), and the detailed numbers and this app's environment folded away. The
tables are generated from `bench/results/*.json`."""

from __future__ import annotations

import gradio as gr

from apps import FAMILIES, TOPICS, topics_by_family

INTRODUCTION = """
# Side by Side
Classic models of modern machine learning, implemented from scratch in plain PyTorch / NumPy, each
running next to its reference library (`transformers`, `diffusers`, `scikit-learn`, `gensim`,
`xgboost` / `lightgbm`) with **the same weights** and **the same inputs**. Every topic shows both
outputs, how far apart they are, how fast each one is, and the code that produced them.
"""


def link(topic) -> str:
    """The topic's address relative to the home page (so links hold behind a proxy's path prefix too)."""
    return topic.link.lstrip("/")


def pages_markdown() -> str:
    """One line per family page, with links that open each of its topics."""
    lines = []
    for family, topics in topics_by_family().items():
        links = " · ".join(f"[{topic.title}]({link(topic)})" for topic in topics)
        lines.append(f"- **[{FAMILIES[family]}]({family})**: {links}")
    return "\n".join(lines)


def comparison_markdown() -> str:
    """One row per benchmarked topic (ours vs reference), read fresh from bench/results/, each linking to
    its topic; topics without results yet are listed under the table."""
    from shared import results

    loaded = {result["topic"]: result for result in results.load_results()}
    benchmarked = [loaded[topic.slug] for topic in TOPICS if topic.slug in loaded]
    table = results.summary_table(benchmarked, links={topic.slug: link(topic) for topic in TOPICS})
    waiting = [f"[{topic.title}]({link(topic)})" for topic in TOPICS if topic.slug not in loaded]
    if waiting:
        table += "\n\nNot benchmarked yet: " + ", ".join(waiting) + "."
    return "## Ours vs reference\n\n" + table


def generative_markdown() -> str:
    """The table of every generative family (bench/generative.py), when it has been measured."""
    from shared import results

    loaded = {result["topic"]: result for result in results.load_results()}
    if "generative" not in loaded:
        return ""
    table = loaded["generative"]["tables"][0]
    return (
        "## Every generative family on one table\n\n"
        + table["title"]
        + ".\n\n"
        + results.markdown_table(table["columns"], table["rows"])
    )


def details_markdown() -> str:
    """Every result's detail tables (the app's start-up and first clicks included)."""
    from shared import results

    return results.details_markdown(results.load_results(), with_images=False)


def environment_markdown() -> str:
    """The device and library versions of this running app."""
    from shared import device
    from shared.results import markdown_table

    return markdown_table(["", "this app runs on"], [[key, value] for key, value in device.describe().items()])


def refresh() -> tuple[str, str]:
    return environment_markdown(), comparison_markdown()


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    gr.Markdown(pages_markdown())
    comparison = gr.Markdown(comparison_markdown())
    gr.Markdown(generative_markdown())
    with gr.Accordion("Details: every measurement, where and when it was made", open=False):
        gr.Markdown(details_markdown())
    with gr.Accordion("This app's environment (device and library versions)", open=False):
        environment = gr.Markdown("Press Refresh to read the device and the library versions.")
        refresh_button = gr.Button("Refresh", variant="primary")
    refresh_button.click(refresh, outputs=[environment, comparison], api_name="about_refresh")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {"about_refresh": ()}
BROWSER_CHECK = {"button": "Refresh", "expect_text": "this app runs on"}
