"""The app builds light, serves a home page and one page per family, and every event of every tab is
callable by its api_name."""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from apps import FAMILIES, TOPICS, topics_by_family

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("torch", "transformers", "diffusers", "sklearn", "gensim", "xgboost", "lightgbm", "matplotlib", "scipy")


def test_building_the_app_loads_no_engine():
    """A fresh interpreter builds the whole app; no engine library is imported until a topic's first event."""
    script = f"import json, sys, app; app.demo; print(json.dumps([m for m in {ENGINES!r} if m in sys.modules]))"
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert json.loads(output[-1]) == []


@pytest.mark.parametrize("path", ["", *topics_by_family()])
def test_home_and_every_family_page_answer(served_app, path):
    response = requests.get(served_app + path, timeout=30)
    assert response.status_code == 200 and "gradio" in response.text.lower()


def test_every_family_with_a_topic_is_a_page_and_only_those():
    from app import demo

    pages = {path: name for path, name, _ in demo.pages}
    assert pages == {"": "Home", **{family: FAMILIES[family] for family in topics_by_family()}}
    assert {topic.family for topic in TOPICS} <= set(FAMILIES)


def test_every_registered_topic_has_a_tab_on_its_family_page():
    from app import demo

    topic_tabs = {
        block.elem_id: block
        for block in demo.blocks.values()
        if type(block).__name__ == "Tab" and (block.elem_id or "").startswith("tab-")
    }
    assert sorted(topic_tabs) == sorted(topic.element_id for topic in TOPICS)  # topics may nest sub-tabs
    for topic in TOPICS:
        tab = topic_tabs[topic.element_id]
        assert tab.label == topic.title and tab.id == topic.slug and tab.page == topic.family


def test_a_topic_link_selects_its_tab():
    import gradio as gr

    from app import family_page_opener

    diffusion = next(topic for topic in TOPICS if topic.slug == "diffusion")
    family = topics_by_family()[diffusion.family]
    opener = family_page_opener(family)

    class Request:
        def __init__(self, **query):
            self.query_params = query

    assert opener(Request(topic="diffusion")).selected == "diffusion"
    assert opener(Request(topic="no-such-topic")) == gr.skip()  # an unknown link keeps the first tab
    assert opener(Request()) == gr.skip()


def test_opening_a_family_page_loads_its_engines_in_the_background():
    script = (
        "import sys, threading, app\n"
        "from apps import TOPICS, Topic\n"
        "word2vec = next(topic for topic in TOPICS if topic.slug == 'word2vec')\n"
        "app.warm_up([word2vec, Topic('No engine', 'apps.about.tab', 'language')])  # no side_by_side: skipped\n"
        "[thread.join() for thread in threading.enumerate() if thread.name == 'warm-up']\n"
        "print('apps.word2vec.side_by_side' in sys.modules, 'torch' in sys.modules)\n"
    )
    output = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert output.stdout.split() == ["True", "True"]  # the engine and what it imports (torch), off the main thread


def test_the_home_page_links_every_topic():
    from apps.about import tab as home

    text = home.pages_markdown() + home.comparison_markdown()
    for topic in TOPICS:
        assert f"]({home.link(topic)})" in text and home.link(topic) == topic.link.lstrip("/")


def test_every_event_has_an_api_name_and_an_example(served_app):
    """Each tab module lists example arguments for each of its events; nothing is left out."""
    from app import demo

    api_names = {
        dependency["api_name"]
        for dependency in demo.config["dependencies"]
        if dependency.get("api_visibility", "public") != "private"
    }
    assert None not in api_names and False not in api_names
    examples = dict(importlib.import_module("apps.about.tab").API_EXAMPLES)
    for topic in TOPICS:
        examples.update(importlib.import_module(topic.tab_module).API_EXAMPLES)
    assert api_names == set(examples)
    for topic in TOPICS:
        assert all(name.startswith(topic.slug) for name in importlib.import_module(topic.tab_module).API_EXAMPLES)


def test_every_code_panel_names_code_that_exists():
    """The code shown before a topic's engine loads is read from the source files by name."""
    from shared.ui import source_of

    for topic in TOPICS:
        shown = getattr(importlib.import_module(topic.tab_module), "CODE_SHOWN", {})
        for code in shown.values():
            assert "def " in source_of(*code) or "class " in source_of(*code)


def test_every_event_answers_through_gradio_client(client):
    for topic in TOPICS:
        for api_name, arguments in importlib.import_module(topic.tab_module).API_EXAMPLES.items():
            result = client.predict(*arguments, api_name=f"/{api_name}")
            assert result is not None and result != "", api_name


def test_home_shows_environment_and_generated_table(client):
    environment, comparison = client.predict(api_name="/about_refresh")
    assert "torch" in environment and "device" in environment
    assert comparison.startswith("## Ours vs reference")
    assert "![" not in comparison  # repository-relative images would be broken links in the app
