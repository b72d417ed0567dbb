"""The state-space tab through its API, as a remote user or the browser calls it, good and bad inputs."""

import pytest
from gradio_client.exceptions import AppError

from apps.ssm import tab


def test_generate_returns_three_columns_and_the_verdict(client):
    notes, ours, reference, gpt, badges, code = client.predict(
        "The history of mathematics", 12, 0, 0, api_name="/ssm_generate"
    )
    assert ours.startswith("The history of mathematics") and ours == reference
    assert gpt.startswith("The history of mathematics") and len(gpt) > len("The history of mathematics")
    assert "greedy tokens identical" in badges and badges.count("tokens/s") == 3
    assert "def selective_scan" in code


def test_empty_prompt_starts_a_document(client):
    notes, ours, reference, gpt, badges, _ = client.predict("", 6, 0.8, 3, api_name="/ssm_generate")
    assert "Empty prompt" in notes and ours and "tokens/s" in badges


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("hi", 0, 0, 0), "less than minimum value 1"),
        (("hi", 10**6, 0, 0), f"greater than maximum value {tab.MAX_NEW_TOKENS}"),
        (("hi", 2.5, 0, 0), "whole number"),
        (("hi", None, 0, 0), "'Max new tokens' is empty"),
        (("hi", 8, -1, 0), "less than minimum value 0"),
        (("hi", 8, 0, 1.5), "whole number"),
        (("x" * (tab.MAX_PROMPT_CHARACTERS + 1), 8, 0, 0), "at most 20,000"),
    ],
)
def test_bad_generation_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/ssm_generate")


def test_s4d_modes_agree_through_the_api(client):
    plot, badges, code = client.predict("S4D-Inv", 32, 0.02, 300, 1, api_name="/ssm_s4d")
    assert "tolerance 1e-05" in badges and "#d7f5dd" in badges  # the green badge: within tolerance
    assert plot is not None and "def kernel" in code


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("S4D-Legs", 16, 0.05, 256, 0), "not in the list of choices"),
        (("S4D-Lin", 15, 0.05, 256, 0), "even number"),
        (("S4D-Lin", 16, 0.05, 10**7, 0), "Sequence length"),
        (("S4D-Lin", 16, 0.05, 3.5, 0), "whole number"),
        (("S4D-Lin", None, 0.05, 256, 0), "required"),
    ],
)
def test_bad_s4d_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/ssm_s4d")


def test_memory_plot_and_bad_lengths(client):
    plot, text = client.predict(4096, api_name="/ssm_memory")
    assert plot is not None and "per token" in text
    for bad, message in ((5, "from 16"), (10**9, "from 16"), (7.5, "whole number"), (None, "required")):
        with pytest.raises(AppError, match=message):
            client.predict(bad, api_name="/ssm_memory")
