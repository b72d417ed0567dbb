"""The ViT and MAE tab through its API, as a remote user or the browser calls it: examples, uploads of
every kind, and bad input answered with clear messages (never Gradio's generic error)."""

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from apps.vit_mae import side_by_side as sbs
from apps.vit_mae.data import MAX_PIXELS
from tests.uploads import UPLOAD_CASES, save_image

DIGIT = "held-out digit 7"


def reconstruct(client, example=DIGIT, upload=None, mask_ratio=0.75, seed=0):
    return client.predict(
        example, handle_file(str(upload)) if upload else None, mask_ratio, seed, api_name="/vit_mae_reconstruct"
    )


def classify(client, example=DIGIT, upload=None):
    return client.predict(example, handle_file(str(upload)) if upload else None, api_name="/vit_mae_classify")


def test_reconstruction_of_a_digit_beside_transformers(client):
    notes, original, masked, ours, reference, difference, badges, code = reconstruct(client)
    assert "masks identical" in badges and "max |difference|" in badges and "hidden patches" in badges
    assert "masks differ" not in badges
    for path in (original, masked, ours, reference, difference):
        assert Image.open(path).size[0] >= 200  # 28 pixels enlarged for the screen
    assert np.asarray(Image.open(original)).std() > 0 and "def random_masking" in code


def test_the_seed_decides_the_mask(client):
    first, second, third = (reconstruct(client, seed=seed)[2] for seed in (1, 1, 2))
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(second)))
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(third)))


def test_classification_with_attention_maps(client):
    notes, chart, badges, code = classify(client)
    assert chart is not None and "attention maps identical" in badges and "max |difference|" in badges
    assert "def attention_rollout" in code


def test_the_photo_example_comes_with_notes(client):
    notes, *_ = reconstruct(client, sbs.PHOTO)
    assert "Resized from 640 x 427" in notes and "grayscale" in notes and "digits only" in notes
    notes, chart, badges, _ = classify(client, sbs.PHOTO)
    assert "digits only" in notes and "attention maps identical" in badges


@pytest.mark.parametrize(
    "name, make, expected",
    UPLOAD_CASES
    + [
        (
            "rgb.jpg",
            lambda: np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8),
            ["grayscale", "aspect ratio not kept"],
        ),
        ("grey_28.png", lambda: np.tri(28, dtype=np.uint8) * 255, []),
    ],
)
def test_uploads_of_any_size_and_mode_are_converted_with_notes(client, tmp_path, name, make, expected):
    path = save_image(tmp_path, name, make())
    notes, original, *_, badges, _ = reconstruct(client, sbs.UPLOAD, path)
    assert "masks identical" in badges
    for text in expected:
        assert text in notes
    notes, chart, badges, _ = classify(client, sbs.UPLOAD, path)
    assert "attention maps identical" in badges


@pytest.mark.parametrize(
    "content", [b"this is not an image\n", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.", b""]
)
@pytest.mark.parametrize("suffix", [".png", ".txt"])
def test_a_file_that_is_not_an_image_is_refused(client, tmp_path, content, suffix):
    path = tmp_path / f"upload{suffix}"
    path.write_bytes(content)
    with pytest.raises(AppError, match="not an image file"):
        reconstruct(client, sbs.UPLOAD, path)


def test_a_huge_image_is_refused_with_its_size(client, tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    path = tmp_path / "huge.png"
    Image.new("1", (side, side)).save(path)
    with pytest.raises(AppError, match="megapixels"):
        classify(client, sbs.UPLOAD, path)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((DIGIT, None, 0, 0), "Mask ratio 0 hides no patch"),
        ((DIGIT, None, 1, 0), "Mask ratio 1 hides every patch"),
        ((DIGIT, None, 1.5, 0), "greater than maximum value 1"),
        ((DIGIT, None, -0.1, 0), "less than minimum value 0"),
        ((DIGIT, None, None, 0), "'Mask ratio .*' is empty"),
        ((DIGIT, None, 0.75, -1), "less than minimum value 0"),
        (("held-out digit 12", None, 0.75, 0), "not in the list of choices"),
        ((sbs.UPLOAD, None, 0.75, 0), "Upload an image first"),
    ],
)
def test_bad_input_gives_a_clear_message(client, arguments, message):
    with pytest.raises(AppError, match=message):
        client.predict(*arguments, api_name="/vit_mae_reconstruct")


def test_an_empty_seed_draws_one_and_says_which(client):
    notes, *_, badges, _ = reconstruct(client, seed=None)
    assert "No seed given: seed" in notes and "masks identical" in badges


def test_nearly_every_patch_hidden_is_allowed_with_a_note(client):
    notes, *_, badges, _ = reconstruct(client, mask_ratio=0.99)
    assert "no patch stays visible" in notes and "masks identical" in badges


@pytest.mark.parametrize("mae_name, vit_name", [("facebook/vit-mae-base", ""), ("", "google/vit-base-patch16-224")])
def test_offline_hub_ids_give_a_clear_message(client, mae_name, vit_name):
    with pytest.raises(AppError, match="(?i)network|offline|internet"):
        client.predict(mae_name, vit_name, api_name="/vit_mae_load")


def test_a_missing_local_folder_gives_a_clear_message(client, tmp_path):
    with pytest.raises(AppError, match="No checkpoint folder"):
        client.predict(str(tmp_path / "nothing-here"), "", api_name="/vit_mae_load")


def test_save_pretrained_folders_load_into_both_sides(client, tmp_path):
    """An RGB ViT-MAE and ViT of other sizes, as a Hub download would bring them (here random, saved locally)."""
    import transformers

    shared = dict(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
    )
    transformers.ViTMAEForPreTraining(
        transformers.ViTMAEConfig(
            **shared,
            decoder_hidden_size=16,
            decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2,
            decoder_intermediate_size=20,
            norm_pix_loss=True,
        )
    ).save_pretrained(tmp_path / "mae")
    transformers.ViTForImageClassification(
        transformers.ViTConfig(**shared, num_labels=3, id2label={0: "cat", 1: "dog", 2: "fox"})
    ).save_pretrained(tmp_path / "vit")
    try:
        status = client.predict(str(tmp_path / "mae"), str(tmp_path / "vit"), api_name="/vit_mae_load")
        assert "32 px, 16 patches" in status and "3 classes" in status
        notes, original, *_, badges, _ = reconstruct(client, sbs.PHOTO)
        assert "no preprocessor_config.json" in notes and "masks identical" in badges
        assert "digits only" not in notes and Image.open(original).mode == "RGB"
        notes, chart, badges, _ = classify(client, sbs.PHOTO)
        assert "attention maps identical" in badges
    finally:
        client.predict("", "", api_name="/vit_mae_load")  # back to the shipped models for the other tests
