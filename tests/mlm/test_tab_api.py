"""The masked language model tab through its API, as a remote user or the browser calls it."""

import pytest
from gradio_client.exceptions import AppError

from apps.mlm import tab


@pytest.mark.parametrize("kind", list(tab.KIND_LABELS))
def test_fill_returns_both_columns_and_the_verdict(client, kind):
    badges, table, attention, code = client.predict(tab.EXAMPLE_SENTENCE, kind, 5, api_name="/mlm_fill")
    assert "top-k ranking identical" in badges and "ms" in badges
    rows = table["data"]
    assert len(rows) == 10 and rows[0][:2] == [1, 1]  # two masks, five fillers each
    assert all(row[2] == row[4] for row in rows)  # same token in both columns, rank by rank
    assert attention is not None and "def forward" in code


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("", "rotary (RoFormer)", 5), "empty"),
        (("No mask at all.", "rotary (RoFormer)", 5), "no \\[MASK\\]"),
        (("[MASK] " * 9, "rotary (RoFormer)", 5), "at most 5"),
        (("word " * 300 + "[MASK]", "learned absolute (BERT)", 5), "tokens long"),
        ((tab.EXAMPLE_SENTENCE, "rotary (RoFormer)", 3.5), "whole number"),
        ((tab.EXAMPLE_SENTENCE, "rotary (RoFormer)", 50), "20"),
        ((tab.EXAMPLE_SENTENCE, "ALiBi", 5), "not in the list of choices"),
    ],
)
def test_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/mlm_fill")


def test_positions_and_figures(client):
    encodings, code = client.predict(api_name="/mlm_positions")
    assert encodings is not None and "def rotate_pairs" in code
    extrapolation, tables, code = client.predict(api_name="/mlm_figures")
    assert extrapolation is not None and "| rotary |" in tables and "refused" in tables
