"""The text generation tab through its API, as a remote user or the browser calls it."""

import pytest
from gradio_client.exceptions import AppError

from apps.textgen import tab


def test_generate_returns_both_columns_and_the_verdict(client):
    notes, ours, reference, badges, pieces, chart, code = client.predict(
        "The history of mathematics", tab.GPT_CHOICE, 16, 0, 0, 0.95, 0, api_name="/textgen_generate"
    )
    assert ours.startswith("The history of mathematics") and ours == reference
    assert "greedy tokens identical" in badges and "tokens/s" in badges
    assert "def stream" in code and chart is not None
    assert pieces[0]["token"] == "The" and pieces[0]["class_or_confidence"].startswith("#")


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("hi", tab.GPT_CHOICE, 0, 0.8, 0, 0.95, 0), "less than minimum value 1"),
        (("hi", tab.GPT_CHOICE, 10**6, 0.8, 0, 0.95, 0), "greater than maximum value 512"),
        (("hi", tab.GPT_CHOICE, None, 0.8, 0, 0.95, 0), "'Max new tokens' is empty"),
        (("hi", tab.GPT_CHOICE, 8, None, 0, 0.95, 0), r"'Temperature \(0 = greedy\)' is empty"),
        (("hi", tab.GPT_CHOICE, 8, 0.8, -3, 0.95, 0), "less than minimum value 0"),
        (("hi", "GPT-5", 8, 0.8, 0, 0.95, 0), "not in the list of choices"),
    ],
)
def test_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/textgen_generate")


def test_empty_number_fields_mean_no_top_k_and_no_seed(client):
    notes, ours, reference, badges, *_ = client.predict(
        "The", tab.GPT_CHOICE, 6, 0.8, None, 0.95, None, api_name="/textgen_generate"
    )
    assert ours.startswith("The") and "tokens/s" in badges


def test_offline_hub_id_gives_a_clear_message(client):
    with pytest.raises(AppError, match="(?i)network|offline|internet"):
        client.predict("gpt2", api_name="/textgen_load")


@pytest.mark.parametrize("choice", [tab.LSTM_CHOICE, tab.NGRAM_CHOICE])
def test_baselines_through_the_api(client, choice):
    notes, ours, reference, badges, *_ = client.predict("", choice, 10, 0.8, 0, 0.95, 1, api_name="/textgen_generate")
    assert "Empty prompt" in notes and ours and "tokens/s" in badges
