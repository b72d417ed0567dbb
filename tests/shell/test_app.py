"""The app builds, serves, and every event of every tab is callable by its api_name."""

import importlib

import requests

from apps import TOPICS


def test_app_serves_the_page(served_app):
    response = requests.get(served_app, timeout=10)
    assert response.status_code == 200
    assert "gradio" in response.text.lower()


def test_every_registered_topic_has_a_tab(served_app):
    from app import demo

    topic_tabs = [
        block
        for block in demo.blocks.values()
        if type(block).__name__ == "Tab" and (block.elem_id or "").startswith("tab-")
    ]
    assert [tab.label for tab in topic_tabs] == [topic.title for topic in TOPICS]  # topics may nest their own sub-tabs
    assert [tab.elem_id for tab in topic_tabs] == [topic.element_id for topic in TOPICS]


def test_every_event_has_an_api_name_and_an_example(served_app):
    """Each tab module lists example arguments for each of its events; nothing is left out."""
    from app import demo

    api_names = {
        dependency["api_name"]
        for dependency in demo.config["dependencies"]
        if dependency.get("api_visibility", "public") != "private"
    }
    assert None not in api_names and False not in api_names
    examples = {}
    for topic in TOPICS:
        examples.update(importlib.import_module(topic.tab_module).API_EXAMPLES)
    assert api_names == set(examples)


def test_every_event_answers_through_gradio_client(client):
    for topic in TOPICS:
        for api_name, arguments in importlib.import_module(topic.tab_module).API_EXAMPLES.items():
            result = client.predict(*arguments, api_name=f"/{api_name}")
            assert result is not None and result != "", api_name


def test_about_shows_environment_and_generated_table(client):
    environment, comparison = client.predict(api_name="/about_refresh")
    assert "torch" in environment and "device" in environment
    assert comparison.startswith("## Ours vs reference")
    assert "![" not in comparison  # repository-relative images would be broken links in the app
