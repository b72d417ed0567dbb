"""The metric tab's engine on the shipped checkpoints, its answers to bad input, and a few calls through the
served app's API (as a remote user or the browser makes them)."""

import math
import sys

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from apps.metric import side_by_side as sbs
from apps.metric import tab, train

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = ("ArcFace", tab.DIMENSIONS[1], 0.3, 16.0)


def test_tab_constants_agree_with_the_engine():
    assert tuple(sbs.LOSS_CHOICES) == tab.LOSS_CHOICES and tuple(sbs.DIMENSIONS) == tab.DIMENSIONS
    assert sbs.TIMED_EVALUATIONS == tab.TIMED_EVALUATIONS and sbs.PARITY_TOLERANCE == tab.PARITY_TOLERANCE
    for loss, (margin, scale) in tab.DEFAULT_SETTINGS.items():
        sbs.loss_at(loss, 3, margin, scale)  # every default is a valid setting
        if loss != "L-Softmax":
            assert (margin, scale) == train.MARGIN_LOSSES[3][sbs.LOSS_CHOICES[loss]]


@pytest.mark.parametrize("loss", tab.LOSS_CHOICES)
def test_our_loss_equals_pml_on_the_shipped_embeddings(loss):
    margin, scale = tab.DEFAULT_SETTINGS[loss]
    view = sbs.embedding_view(loss, tab.DIMENSIONS[1], margin, scale)
    assert view.embeddings.shape == (500, 3) and view.class_weights.shape == (10, 3)
    assert view.difference < sbs.PARITY_TOLERANCE and view.our_loss > 0
    assert view.accuracy > 0.9 and view.verification["roc_auc"] > 0.9


def test_a_margin_changes_the_loss_not_the_embeddings():
    small = sbs.embedding_view("CosFace", tab.DIMENSIONS[0], 0.1, 16.0)
    large = sbs.embedding_view("CosFace", tab.DIMENSIONS[0], 0.6, 16.0)
    assert np.array_equal(small.embeddings, large.embeddings) and large.our_loss > small.our_loss


def drawn_seven(background=255, stroke=0, size=140) -> Image.Image:
    return (
        Image.open(tab.EXAMPLE_DIGIT)
        .convert("L")
        .resize((size, size))
        .point(lambda value: stroke if value < 128 else background)
    )


def test_a_drawn_seven_is_read_as_seven_and_its_neighbours_are_sevens():
    sketch = np.zeros((280, 280, 4), dtype=np.uint8)  # the pad: black strokes on a transparent canvas
    strokes = np.asarray(drawn_seven(size=280)) < 128
    sketch[strokes, 3] = 255
    pixels, notes = sbs.sketch_pixels({"composite": sketch})
    assert pixels.shape == (28, 28) and pixels[0].max() < 0.1  # white on black, with an empty border as MNIST
    placed = sbs.place_digit(pixels, notes, *SETTINGS)
    assert placed.predicted == 7 and (placed.neighbour_labels == 7).sum() >= 6


def test_upload_white_on_black_and_black_on_white_give_the_same_digit(tmp_path):
    drawn_seven().save(tmp_path / "dark.png")
    drawn_seven(background=0, stroke=255).convert("RGB").save(tmp_path / "light.jpg")
    dark, notes = sbs.upload_pixels(tmp_path / "dark.png")
    light, _ = sbs.upload_pixels(tmp_path / "light.jpg")
    assert any("inverted" in note for note in notes)
    assert np.abs(dark - light).mean() < 0.05


def test_simclr_neighbours_and_probe_table():
    found = sbs.simclr_neighbours(3)
    assert found.simclr.shape == (sbs.NEIGHBOURS, 28, 28)
    assert (found.simclr_labels == found.query_label).sum() >= 5
    table = sbs.probe_markdown()
    assert "SimCLR + linear probe" in table and len(table.splitlines()) == 5


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sbs.embedding_view("ArcFace", tab.DIMENSIONS[1], math.pi / 2, 16), "below pi/2"),
        (lambda: sbs.embedding_view("ArcFace", tab.DIMENSIONS[1], 2.0, 16), "below pi/2"),
        (lambda: sbs.embedding_view("L-Softmax", tab.DIMENSIONS[0], 2.5, 1), "whole number from 1 to 10"),
        (lambda: sbs.embedding_view("SphereFace", tab.DIMENSIONS[0], 1.5, 1), "whole number from 1 to 10"),
        (lambda: sbs.embedding_view("CosFace", tab.DIMENSIONS[0], 0.35, 0), "scale s"),
        (lambda: sbs.embedding_view("CosFace", tab.DIMENSIONS[0], None, 16), "Give a margin and a scale"),
        (lambda: sbs.embedding_view("CosFace", tab.DIMENSIONS[0], 0.35, math.inf), "Give a margin and a scale"),
        (lambda: sbs.embedding_view("Triplet", tab.DIMENSIONS[0], 0.35, 16), "Unknown loss 'Triplet'"),
        (lambda: sbs.embedding_view("CosFace", "4-D", 0.35, 16), "Unknown embedding '4-D'"),
        (lambda: sbs.sketch_pixels(None), "sketch is empty"),
        (lambda: sbs.sketch_pixels({"composite": None}), "sketch is empty"),
        (lambda: sbs.sketch_pixels({"composite": np.zeros((280, 280, 4), np.uint8)}), "sketch is empty"),
        (lambda: sbs.sketch_pixels({"composite": np.full((280, 280, 3), 255, np.uint8)}), "picture is empty"),
        (lambda: sbs.upload_pixels(None), "Upload a picture"),
        (lambda: sbs.simclr_neighbours(2.5), "whole number from 0 to 499"),
        (lambda: sbs.simclr_neighbours(500), "whole number from 0 to 499"),
    ],
)
def test_bad_input_gives_a_clear_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image file"):
        sbs.upload_pixels(tmp_path / "notes.png")


def test_building_the_tab_imports_no_heavy_library():
    import subprocess

    code = (
        "import sys, gradio as gr\n"
        "from apps.metric import tab\n"
        "with gr.Blocks():\n    tab.build_tab()\n"
        "heavy = [m for m in ('torch', 'pytorch_metric_learning', 'sklearn', 'matplotlib') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_embeddings_through_the_api(client):
    notes, plot, badges, code = client.predict(*SETTINGS, api_name="/metric_embeddings")
    assert plot and "max |difference|" in badges and "class ArcFaceLoss" in code


def test_upload_and_simclr_through_the_api(client):
    notes, plot, grid, summary = client.predict(handle_file(tab.EXAMPLE_DIGIT), *SETTINGS, api_name="/metric_upload")
    assert plot and grid and "reads **7**" in summary
    grid, summary = client.predict(11, api_name="/metric_simclr")
    assert grid and "SimCLR + linear probe" in summary


@pytest.mark.parametrize(
    "api_name, arguments, message",
    [
        ("/metric_embeddings", ("ArcFace", tab.DIMENSIONS[1], 1.6, 16.0), "below pi/2"),
        ("/metric_embeddings", ("L-Softmax", tab.DIMENSIONS[1], 3.5, 1.0), "whole number from 1 to 10"),
        ("/metric_embeddings", ("ArcFace", tab.DIMENSIONS[1], None, 16.0), "Give a margin and a scale"),
        ("/metric_defaults", ("Triplet",), "not in the list of choices"),
        ("/metric_upload", (None, *SETTINGS), "Upload a picture"),
        ("/metric_simclr", (-1,), "less than minimum value 0"),
    ],
)
def test_bad_input_through_the_api_gives_a_clear_message(client, api_name, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name=api_name)
