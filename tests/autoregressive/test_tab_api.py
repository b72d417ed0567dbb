"""The autoregressive tab: its engine on the shipped checkpoints, a few calls through the served app's API,
and bad input answered with messages."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from gradio_client.exceptions import AppError

from apps.autoregressive import side_by_side as sbs
from apps.autoregressive import tab
from tests.uploads import save_image

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_tab_names_what_the_engine_accepts():
    assert tab.MODEL_NAMES == tuple(sbs.MODELS) and tab.ORDERINGS == sbs.ORDERINGS
    assert tab.PIXELCNN_VERSIONS == sbs.PIXELCNN_VERSIONS and tab.MAX_SAMPLES == sbs.MAX_SAMPLES


def test_building_the_tab_imports_no_torch():
    code = (
        "import sys, gradio as gr\n"
        "from apps.autoregressive import tab\n"
        "with gr.Blocks():\n    tab.build_tab()\n"
        "heavy = ('torch', 'matplotlib', 'apps.autoregressive.model', 'apps.autoregressive.side_by_side')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip().splitlines()[-1] == "[]"


def test_sampling_streams_the_digits_filling_in_row_by_row():
    frames = list(sbs.sample_stream("MADE", 3, 0, every_rows=4))
    assert [frame.pixels_drawn for frame in frames] == list(range(112, 785, 112))
    assert np.any(frames[0].picture == round(sbs.UNDRAWN * 255))  # grey: pixels still to draw
    assert not frames[0].finished and frames[-1].finished
    images = frames[-1].images
    assert images.shape == (3, 1, 28, 28) and set(images.unique().tolist()) <= {0.0, 1.0}
    again = list(sbs.sample_stream("MADE", 3, 0, every_rows=4))[-1].images
    assert torch.equal(images, again)  # the seed fixes the draws


@pytest.mark.parametrize("name", list(sbs.MODELS))
def test_completion_keeps_the_top_rows_of_the_held_out_digit(name):
    frames = list(sbs.completion_stream(name, 7, 26, 2, 1))
    digit = sbs.held_out_digit(7).reshape(28, 28)
    completions = frames[-1].images[:, 0]
    assert frames[-1].pixels_to_draw == 2 * 28
    assert torch.equal(completions[:, :26], digit[:26].expand(2, 26, 28))


def test_surprise_maps_add_up_to_the_digits_negative_log_likelihood():
    result = sbs.surprise_of("PixelCNN", "held-out digit", 0, None)
    model = sbs.shipped_model("PixelCNN")
    digit = torch.from_numpy(result.digit).reshape(1, 1, 28, 28)
    assert abs(result.nats + model.log_prob(digit).item()) < 1e-3
    assert result.probability_of_white.shape == (28, 28) and 0 < result.bits_per_dim < 1
    assert tab.surprise_figure(result) is not None


def test_an_uploaded_dark_on_white_digit_is_inverted_and_binarised(tmp_path):
    picture = np.full((56, 56), 255, np.uint8)
    picture[10:46, 24:32] = 0  # a dark "1" on white paper
    result = sbs.surprise_of("NADE", "upload", 0, str(save_image(tmp_path, "one.png", picture)))
    assert set(np.unique(result.digit)) == {0.0, 1.0} and result.digit[14, 14] == 1 and result.digit[0, 0] == 0
    assert any("inverted" in note for note in result.notes) and any("binarised" in note for note in result.notes)


def test_made_picture_masks_let_each_output_see_only_earlier_inputs():
    picture = sbs.made_picture("random", 3)
    position = np.empty(len(picture.ordering), dtype=int)
    position[picture.ordering] = np.arange(len(picture.ordering))
    later_or_same = position[None, :] >= position[:, None]
    assert not picture.dependence[later_or_same].any() and picture.dependence.any()
    assert list(sbs.made_picture("natural", 3).ordering) == list(range(6))
    assert tab.made_figure(picture) is not None


def test_receptive_field_plain_has_a_blind_spot_gated_does_not():
    plain = sbs.receptive_field_of(sbs.PIXELCNN_VERSIONS[0], 14, 14)
    gated = sbs.receptive_field_of(sbs.PIXELCNN_VERSIONS[1], 14, 14)
    assert not plain.field[14, 14:].any() and not plain.field[15:].any()
    assert not plain.field[13, 18] and gated.field[13, 18]  # one row up, four to the right: the blind spot
    assert tab.field_picture(plain).shape == (336, 336, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: list(sbs.sample_stream("MADE", 3.5, 0)), "number of samples must be a whole number from 1 to 36"),
        (lambda: list(sbs.sample_stream("MADE", 0, 0)), "from 1 to 36; got 0"),
        (lambda: list(sbs.sample_stream("MADE", 37, 0)), "from 1 to 36; got 37"),
        (lambda: list(sbs.sample_stream("MADE", None, 0)), "whole number"),
        (lambda: list(sbs.sample_stream("MADE", 2, -1)), "seed must be"),
        (lambda: list(sbs.sample_stream("WaveNet", 2, 0)), "Unknown model 'WaveNet'"),
        (lambda: list(sbs.completion_stream("NADE", 3, 0, 2, 0)), "rows kept must be a whole number from 1 to 27"),
        (lambda: list(sbs.completion_stream("NADE", 3, 28, 2, 0)), "rows kept must be a whole number from 1 to 27"),
        (lambda: list(sbs.completion_stream("NADE", 3, 12.5, 2, 0)), "rows kept"),
        (lambda: list(sbs.completion_stream("NADE", 500, 12, 2, 0)), "held-out digit number must be"),
        (lambda: list(sbs.completion_stream("NADE", 3, 12, 35, 0)), "number of completions"),
        (lambda: sbs.surprise_of("MADE", "upload", 0, None), "Upload a picture"),
        (lambda: sbs.surprise_of("MADE", "camera", 0, None), "Unknown source"),
        (lambda: sbs.made_picture("reversed", 0), "Unknown ordering"),
        (lambda: sbs.made_picture("random", 1.5), "seed must be"),
        (lambda: sbs.receptive_field_of(sbs.PIXELCNN_VERSIONS[0], 28, 3), "row must be a whole number from 0 to 27"),
        (lambda: sbs.receptive_field_of("dilated", 3, 3), "Unknown PixelCNN version"),
    ],
)
def test_engine_answers_bad_input_with_a_message(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match="not an image"):
        sbs.surprise_of("MADE", "upload", 0, str(path))


def test_events_through_the_api(client):
    picture, summary, code = client.predict(
        sbs.PIXELCNN_VERSIONS[0], 14, 14, api_name="/autoregressive_receptive_field"
    )
    assert picture and "blind spot" in summary and "class MaskedConv2d" in code
    plot, summary, code = client.predict("random", 2, api_name="/autoregressive_made_masks")
    assert plot and "Drawing order" in summary and "def made_degrees" in code
    picture, status, code = client.predict("NADE", 2, 0, api_name="/autoregressive_sample")
    assert picture and "2 digits, 784 pixels each" in status and "classifier reads" in status
    assert "def sampling_steps" in code


@pytest.mark.parametrize(
    "api_name, arguments, message",
    [
        ("/autoregressive_sample", ("MADE", 2.5, 0), "whole number"),
        ("/autoregressive_complete", ("NADE", 3, 12, 2, 2**31), "seed must be"),
        ("/autoregressive_complete", ("NADE", 700, 12, 2, 0), "greater than maximum value 499"),
        ("/autoregressive_surprise", ("MADE", "upload", 0, None), "Upload a picture"),
    ],
)
def test_bad_input_through_the_api_gives_a_clear_message(client, api_name, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name=api_name)
