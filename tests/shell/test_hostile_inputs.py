"""Every endpoint of every tab, fed a fraction where it takes a whole number and a 200,000-character text
where it takes text, one argument at a time (the others valid, from the tab's API_EXAMPLES): each call
gives a result or a clear message, never Gradio's generic "upstream app has raised an exception"."""

import importlib

import pytest
from gradio_client.exceptions import AppError

from apps import TOPICS

GENERIC = "upstream Gradio app has raised an exception"
LONG_TEXT = "x" * 200_000


def hostile_calls():
    for topic in TOPICS:
        for api_name, example in importlib.import_module(topic.tab_module).API_EXAMPLES.items():
            for position, value in enumerate(example):
                if isinstance(value, bool):
                    continue
                if isinstance(value, int):
                    hostile = value + 0.5
                elif isinstance(value, str):
                    hostile = LONG_TEXT
                else:
                    continue
                arguments = (*example[:position], hostile, *example[position + 1 :])
                label = f"{api_name}[{position}]={'long text' if hostile is LONG_TEXT else hostile}"
                yield pytest.param(api_name, arguments, id=label)


@pytest.mark.parametrize("api_name, arguments", hostile_calls())
def test_hostile_value_gets_a_result_or_a_clear_message(client, api_name, arguments):
    try:
        client.predict(*arguments, api_name=f"/{api_name}")
    except AppError as error:
        message = str(error)
        assert GENERIC not in message and len(message) > 10, message
