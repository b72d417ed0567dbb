"""Images into the ViT and the MAE: augmentation of the training digits, and any file a user uploads
turned into the model's input with a note per conversion, or refused with a clear message."""

import numpy as np
import pytest
import torch
from PIL import Image

from apps.vit_mae.data import MAX_PIXELS, Preprocessing, prepare_image, preprocessing_for_hub, random_affine, read_image

DIGITS = Preprocessing(image_size=28, num_channels=1, white_on_black=True)
RGB_224 = Preprocessing(image_size=224, num_channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def test_random_affine_without_distortion_is_the_identity():
    images = torch.rand(4, 1, 28, 28)
    same = random_affine(images, torch.Generator().manual_seed(0), degrees=0, shift=0, scale=(1, 1))
    assert torch.allclose(same, images, atol=1e-5)


def test_random_affine_moves_digits_a_little_and_keeps_them():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 10:18, 12:16] = 1  # a bar in the middle
    moved = random_affine(images, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and moved.min() >= 0 and moved.max() <= 1
    assert not torch.allclose(moved, images)
    assert torch.allclose(
        moved.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)), rtol=0.3
    )  # zoom 0.9-1.1: ink kept, roughly
    assert moved[:, :, :3].sum() == 0 and moved[:, :, :, :3].sum() == 0  # nothing pushed to the border
    again = random_affine(images, torch.Generator().manual_seed(0))
    assert torch.equal(moved, again)  # the generator decides


def test_an_mnist_digit_passes_unchanged():
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[5:23, 12:16] = 255
    image = prepare_image(Image.fromarray(digit, "L"), DIGITS)
    assert image.notes == []
    assert image.pixel_values.shape == (1, 1, 28, 28)
    assert torch.equal(image.pixel_values[0, 0], torch.from_numpy(digit).float() / 255)


def test_a_dark_digit_on_white_is_resized_and_inverted():
    drawing = np.full((120, 90), 255, dtype=np.uint8)
    drawing[20:100, 40:50] = 0  # a black stroke on white paper
    image = prepare_image(Image.fromarray(drawing, "L"), DIGITS)
    assert any("Resized from 90 x 120 to 28 x 28" in note and "aspect ratio" in note for note in image.notes)
    assert any("inverted" in note for note in image.notes)
    assert image.pixel_values[0, 0, 0, 0] == 0 and image.pixel_values.max() > 0.9  # white on black now


def test_rgba_is_put_on_white_then_made_grey():
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent ...
    rgba[6:22, 12:16] = (200, 30, 30, 255)  # ... but for an opaque red bar
    image = prepare_image(Image.fromarray(rgba, "RGBA"), DIGITS)
    notes = " ".join(image.notes)
    assert "Transparent" in notes and "grayscale" in notes and "inverted" in notes
    assert image.pixel_values[0, 0, 0, 0] == 0 and image.pixel_values[0, 0, 10, 13] > 0.5


@pytest.mark.parametrize(
    "mode, values",
    [
        ("I;16", np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)),
        ("F", np.array([[-1.5, 0.0], [0.5, 2.5]], dtype=np.float32)),
    ],
)
def test_16_bit_and_float_pixels_are_rescaled(mode, values):
    image = prepare_image(Image.fromarray(values, mode), DIGITS)
    assert any("rescaled to 0-255" in note for note in image.notes)
    assert image.pixel_values.min() >= 0 and image.pixel_values.max() <= 1


def test_grey_for_an_rgb_model_with_its_normalisation():
    image = prepare_image(Image.new("L", (50, 50), 128), RGB_224)
    assert image.pixel_values.shape == (1, 3, 224, 224) and image.pixels.shape == (224, 224, 3)
    assert any("3 channels" in note for note in image.notes) and not any("inverted" in note for note in image.notes)
    expected = (128 / 255 - torch.tensor(RGB_224.mean)) / torch.tensor(RGB_224.std)
    assert torch.allclose(image.pixel_values[0, :, 100, 100], expected, atol=1e-5)
    assert torch.allclose(RGB_224.to_unit(image.pixel_values), torch.full((1, 3, 224, 224), 128 / 255), atol=1e-5)


def test_animations_use_their_first_frame(tmp_path):
    frames = [Image.new("L", (28, 28), value) for value in (0, 255)]
    frames[0].save(tmp_path / "blink.gif", save_all=True, append_images=frames[1:])
    image = prepare_image(read_image(tmp_path / "blink.gif"), DIGITS)
    assert any("first frame" in note for note in image.notes) and image.pixel_values.max() == 0


def test_exif_orientation_is_applied(tmp_path):
    tall = Image.new("L", (20, 40))
    exif = tall.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    tall.save(tmp_path / "phone.jpg", exif=exif)
    assert read_image(tmp_path / "phone.jpg").size == (40, 20)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"name,value\n1,2\n", "not an image file"),
        (b"\x80\x04\x95pickle", "not an image file"),
        (b"", "not an image file"),
    ],
)
def test_files_that_are_not_images_are_refused(tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_image(path)


def test_a_truncated_image_is_refused(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:400])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_image(tmp_path / "cut.png")


def test_a_huge_image_is_refused_before_decoding(tmp_path):
    side = int(MAX_PIXELS**0.5) + 100
    Image.new("1", (side, side)).save(tmp_path / "huge.png")
    with pytest.raises(ValueError, match="megapixels"):
        read_image(tmp_path / "huge.png")


def test_hub_preprocessing_is_read_from_its_json(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(
        '{"do_normalize": true, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}'
    )
    preprocessing, notes = preprocessing_for_hub(tmp_path, 224, 3)
    assert preprocessing == RGB_224 and notes == []
    preprocessing, notes = preprocessing_for_hub(tmp_path / "missing", 224, 3)
    assert preprocessing.mean == (0.5,) and "defaults" in notes[0]
