"""The VAE and GAN tab through its API, as a remote user or the browser calls it: every event with its
example arguments, bad input answered with clear messages (never Gradio's generic error), uploads."""

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from apps.vae_gan import SAMPLERS
from apps.vae_gan import side_by_side as sbs
from apps.vae_gan.tab import API_EXAMPLES
from tests.uploads import save_image


def call(client, name, *arguments):
    return client.predict(*arguments, api_name="/" + name)


def test_parity_with_autoencoder_kl_within_tolerance(client):
    originals, reconstructions, badges, code = call(client, "vae_gan_parity", 4, 0)
    assert "max |difference|" in badges and "tolerance 1e-05" in badges
    assert "#d7f5dd" in badges.split("max |difference|")[0].rsplit("<span", 1)[1]  # the green badge
    assert "seeded posterior sample" in badges and "def encode" in code
    assert Image.open(originals).size == Image.open(reconstructions).size


@pytest.mark.parametrize("model", list(SAMPLERS))
def test_every_shipped_model_samples_and_is_scored(client, model):
    grid, text, _ = call(client, "vae_gan_sample", model, 4, 1)
    assert "digit classifier reads" in text
    first, again = np.asarray(Image.open(grid)), np.asarray(Image.open(call(client, "vae_gan_sample", model, 4, 1)[0]))
    assert np.array_equal(first, again)  # seeded


def test_latent_map_interpolation_gumbel_and_toy(client):
    plot, _ = call(client, "vae_gan_latent_map", *API_EXAMPLES["vae_gan_latent_map"])
    assert plot is not None
    notes, strip, _ = call(client, "vae_gan_interpolate", *API_EXAMPLES["vae_gan_interpolate"])
    assert Image.open(strip).size[0] > 3 * Image.open(strip).size[1]  # one row of 4 digits
    soft, hard, text, _ = call(client, "vae_gan_gumbel", 0.5, 4, 0)
    assert "largest class probability" in text and not np.array_equal(
        np.asarray(Image.open(soft)), np.asarray(Image.open(hard))
    )
    plot, text, _ = call(client, "vae_gan_toy", "rings", "WGAN (weight clipping)", 10, 0)
    assert "exact W1" in text


def test_interpolation_from_an_upload_says_what_was_done(client, tmp_path):
    picture = np.full((40, 40), 255, dtype=np.uint8)
    picture[8:32, 18:22] = 0  # a dark "1" on white paper
    path = save_image(tmp_path, "white_background.png", picture)
    notes, strip, _ = call(client, "vae_gan_interpolate", list(SAMPLERS)[0], 3, 8, 4, handle_file(str(path)))
    assert "inverted" in notes and "binarised" in notes


@pytest.mark.parametrize(
    "name, arguments, message",
    [  # sliders and bounded number fields answer out-of-range values themselves, with the bound
        ("vae_gan_gumbel", (0.0, 4, 0), "less than minimum value 0.05"),
        ("vae_gan_gumbel", (-1.0, 4, 0), "less than minimum value 0.05"),
        ("vae_gan_latent_map", (7.5, 0.0), "greater than maximum value 4"),
        ("vae_gan_latent_map", (0.0, -4.5), "less than minimum value -4"),
        ("vae_gan_sample", (list(SAMPLERS)[0], 3.5, 0), "whole number"),
        ("vae_gan_sample", (list(SAMPLERS)[0], 0, 0), "less than minimum value 1"),
        ("vae_gan_sample", (list(SAMPLERS)[0], 65, 0), "greater than maximum value 64"),
        ("vae_gan_sample", (list(SAMPLERS)[0], 4, 2.5), "whole number"),
        ("vae_gan_sample", ("PixelCNN", 4, 0), "not in the list of choices"),
        ("vae_gan_interpolate", (list(SAMPLERS)[2], 3, 8, 4, None), "not in the list of choices"),
        ("vae_gan_interpolate", (list(SAMPLERS)[0], 3, 12, 4, None), "greater than maximum value 9"),
        ("vae_gan_toy", ("spiral", "WGAN-GP", 10, 0), "not in the list of choices"),
        ("vae_gan_toy", ("rings", "least squares", 10, 0), "not in the list of choices"),
        ("vae_gan_toy", ("rings", "WGAN-GP", 10**6, 0), "greater than maximum value 3000"),
        ("vae_gan_parity", (100, 0), "greater than maximum value 64"),
    ],
)
def test_bad_input_gives_a_clear_message(client, name, arguments, message):
    with pytest.raises(AppError, match=message):
        call(client, name, *arguments)


@pytest.mark.parametrize(
    "call_engine, message",
    [  # what the engine says to a caller that bypasses the UI's bounds
        (lambda: sbs.gumbel_samples(0.0, 4, 0), "must be positive"),
        (lambda: sbs.gumbel_samples(-2, 4, 0), "must be positive"),
        (lambda: sbs.gumbel_samples(float("nan"), 4, 0), "positive number"),
        (lambda: sbs.latent_map(4.5, 0.0), "outside the map"),
        (lambda: sbs.latent_map(0.0, None), "z2 must be a number"),
        (lambda: sbs.samples(list(SAMPLERS)[0], 65, 0), "from 1 to 64"),
        (lambda: sbs.samples(list(SAMPLERS)[0], 3.5, 0), "whole number"),
        (lambda: sbs.interpolate(list(SAMPLERS)[0], 3, 8, 1), "from 2 to 16"),
        (lambda: sbs.toy_run("rings", "WGAN-GP", 0, 0), "from 1 to 3,000"),
        (lambda: sbs.toy_run("spiral", "WGAN-GP", 10, 0), "Unknown toy density"),
        (lambda: sbs.toy_run("rings", "least squares", 10, 0), "Unknown loss"),
        (lambda: sbs.samples("PixelCNN", 4, 0), "Unknown model"),
        (lambda: sbs.interpolate(list(SAMPLERS)[2], 3, 8, 4), "Gaussian VAEs"),
    ],
)
def test_engine_validates_what_the_ui_cannot(call_engine, message):
    with pytest.raises(ValueError, match=message):
        call_engine()


def test_a_file_that_is_not_an_image_is_refused(client, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a picture")
    with pytest.raises(AppError, match="not an image"):
        call(client, "vae_gan_interpolate", list(SAMPLERS)[0], 3, 8, 4, handle_file(str(path)))
