"""Pictures of every awkward kind, for the tabs that take uploads (ViT and MAE, VQ-VAE and VQGAN): each case
is (file name, a function making its pixels, notes the tab must give about it)."""

import numpy as np
from PIL import Image

UPLOAD_CASES = [
    (
        "dark_on_white.png",
        lambda: np.pad(np.zeros((60, 12), np.uint8), 30, constant_values=255),
        ["Resized from 72 x 120", "inverted"],
    ),
    (
        "rgba.png",
        lambda: np.dstack([np.full((40, 40, 3), 200, np.uint8), np.tri(40, dtype=np.uint8) * 255]),
        ["Transparent", "grayscale"],
    ),
    ("sixteen_bit.png", lambda: np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60, ["rescaled to 0-255"]),
]


def save_image(folder, name, array, mode=None):
    """Write `array` as the image file `folder / name`; returns its path."""
    path = folder / name
    Image.fromarray(array, mode).save(path)
    return path
