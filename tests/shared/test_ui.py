"""The UI helpers every tab uses: whole-number fields keep their value and refuse fractions."""

import gradio as gr
import pytest

from shared.ui import WholeNumber


@pytest.mark.parametrize(
    "make", [lambda: WholeNumber(5, minimum=0, label="n"), lambda: WholeNumber(value=5, label="n")]
)
def test_a_whole_number_field_shows_its_starting_value_however_it_is_given(make):
    with gr.Blocks():
        field = make()
    assert field.value == 5 and field.get_config()["value"] == 5


def test_a_whole_number_field_refuses_a_fraction_and_keeps_whole_numbers():
    with gr.Blocks():
        field = WholeNumber(1, label="Steps")
    assert field.preprocess(3) == 3
    with pytest.raises(gr.Error, match="Steps"):
        field.preprocess(3.5)
