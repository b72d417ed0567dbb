"""The VQ-VAE / VQGAN tab through its API, as a remote user or the browser calls it (examples, uploads of every
kind, bad input answered with clear messages, never Gradio's generic error), and the engine below it."""

import numpy as np
import pytest
import torch
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from apps.vqgan import side_by_side as sbs
from shared.uploads import MAX_PIXELS
from tests.uploads import UPLOAD_CASES, save_image

DIGIT = "held-out digit 3"


def reconstruct(client, example=DIGIT, upload=None):
    return client.predict(example, handle_file(str(upload)) if upload else None, api_name="/vqgan_reconstruct")


def test_reconstruction_of_a_digit_by_both_codecs_beside_diffusers(client):
    notes, original, vqvae_ours, vqvae_reference, vqgan_ours, vqgan_reference, code_maps, badges, usage = reconstruct(
        client
    )
    assert badges.count("code indices identical") == 2 and "code indices differ" not in badges
    assert "max |difference|" in badges and "smaller</b>" in badges and "PSNR" in badges
    assert code_maps is not None and usage is not None
    for path in (original, vqvae_ours, vqvae_reference, vqgan_ours, vqgan_reference):
        assert Image.open(path).size[0] >= 200  # 28 pixels enlarged for the screen
    assert not np.array_equal(
        np.asarray(Image.open(vqvae_ours)), np.asarray(Image.open(vqgan_ours))
    )  # two different codecs


@pytest.mark.parametrize(
    "name, make, expected",
    UPLOAD_CASES
    + [
        ("grey_28.png", lambda: np.tri(28, dtype=np.uint8) * 255, ["digits only"]),
        (
            "huge.png",
            lambda: np.tile(np.eye(64, dtype=np.uint8) * 255, (50, 60)),
            ["Resized from 3840 x 3200 to 28 x 28"],
        ),
    ],
)
def test_uploads_of_any_size_and_mode_are_converted_with_notes(client, tmp_path, name, make, expected):
    notes, *_, badges, _ = reconstruct(client, sbs.UPLOAD, save_image(tmp_path, name, make()))
    assert badges.count("code indices identical") == 2
    for text in expected:
        assert text in notes


ENORMOUS_SIDE = int(MAX_PIXELS**0.5) + 100  # just past what the shared reader decodes


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda path: path.write_bytes(b"this is not an image\n"), "not an image file"),
        (
            lambda path: path.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."),
            "not an image file",
        ),  # a pickle: never loaded
        (lambda path: path.write_bytes(b""), "not an image file"),
        (lambda path: Image.new("1", (ENORMOUS_SIDE, ENORMOUS_SIDE)).save(path, format="PNG"), "megapixels"),
    ],
    ids=["text", "pickle", "empty", "beyond-the-decoding-limit"],
)
def test_files_that_cannot_be_read_are_refused_with_the_reason(client, tmp_path, write, message):
    path = tmp_path / "upload.png"
    write(path)
    with pytest.raises(AppError, match=message):
        reconstruct(client, sbs.UPLOAD, path)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("held-out digit 12", None), "not in the list of choices"),
        ((sbs.UPLOAD, None), "Upload an image first"),
    ],
)
def test_bad_reconstruction_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/vqgan_reconstruct")


def test_generation_decodes_the_same_codes_on_both_sides(client):
    notes, ours, reference, badges, code = client.predict(1.0, 0, 7, 6, api_name="/vqgan_generate")
    assert "max |difference|" in badges and "digit classifier reads" in badges and "def sample_codes" in code
    assert np.asarray(Image.open(ours)).std() > 0
    same = client.predict(1.0, 0, 7, 6, api_name="/vqgan_generate")[1]
    assert np.array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(same)))  # the seed decides


def test_greedy_generation_says_every_image_is_the_same(client):
    notes, *_ = client.predict(0.0, 0, 0, 2, api_name="/vqgan_generate")
    assert "every image is the same" in notes


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((-0.5, 0, 0, 4), "less than minimum value 0"),
        ((1.0, 500, 0, 4), "greater than maximum value 128"),
        ((1.0, 0, 0, 0), "less than minimum value 1"),
        ((1.0, 0, 0, 65), "greater than maximum value 64"),
        ((None, 0, 0, 4), "'Temperature .*' is empty"),
        ((1.0, 0, -3, 4), "less than minimum value 0"),
    ],
)
def test_bad_generation_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/vqgan_generate")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("temperature", 9.0, "temperature must be"),
        ("temperature", float("nan"), "temperature must be"),
        ("top_k", 129, "top-k must be"),
        ("top_k", 2.5, "top-k must be"),
        ("count", 0, "number of images"),
        ("seed", -1, "seed must be"),
    ],
)
def test_engine_validates_what_the_ui_cannot(field, value, message):
    request = sbs.GenerationRequest(**{**dict(temperature=1.0, top_k=0, seed=0, count=2), field: value})
    with pytest.raises(ValueError, match=message):
        request.validate(128)


def test_engine_reconstruction_on_the_shipped_codecs():
    image = sbs.prepare("held-out digit 5", None)
    for name in sbs.CODECS:
        result = sbs.reconstruct(sbs.codec(name), image.x)
        assert result.indices_identical and result.max_abs_difference < 1e-4
        assert result.indices.shape == (7, 7) and result.mse < 0.02
    assert sbs.compression(sbs.codec("VQGAN").config) == (6272, 343, pytest.approx(6272 / 343))
    usage = sbs.codebook_usage("VQGAN")
    assert usage.counts.sum() == 500 * 49 and 1 < usage.perplexity <= usage.used <= 128


def test_engine_generation_shapes():
    result = sbs.generate(sbs.GenerationRequest(1.0, 20, 3, 5))
    assert result.codes.shape == (5, 7, 7) and result.ours.shape == (5, 1, 28, 28)
    assert result.max_abs_difference < 1e-4 and 0 <= result.ours.min() and result.ours.max() <= 1
    assert torch.isfinite(result.reference).all()
