"""
Pictures a user uploads, read safely and turned into a model's pixels: one reader for every topic
that takes an image (ViT and MAE, VQ-VAE and VQGAN).

Files are decoded by Pillow only: an upload is never unpickled or executed, and anything Pillow cannot
decode is refused with a ValueError that says what was wrong. `picture_to_pixels` then turns any
Pillow image (animations, transparency, 16-bit or float pixels, colour or grayscale, any size) into
an S x S array in [0, 1] with one or three channels, with a note for the user about every conversion;
for digit models (white strokes on black, as in MNIST) a bright background is inverted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Largest upload decoded (a 24-megapixel camera photo fits); bigger files are refused before decoding.
MAX_PIXELS = 25_000_000
ORIENTATION = 0x0112  # the EXIF tag saying how a photo must be turned to be upright


def read_image(path: str | os.PathLike) -> Image.Image:
    """An uploaded file decoded by Pillow, upright (EXIF orientation applied); ValueError for a file that
    is not an image, is corrupt, or is larger than MAX_PIXELS."""
    name = Path(path).name
    try:
        image = Image.open(path)  # reads the header only
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(
            f"{name!r} is not an image file Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...)."
        ) from error
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ValueError(
            (
                f"{name!r} is {width:,} x {height:,} pixels ({width * height / 1e6:.0f} megapixels); images up to "
                f"{MAX_PIXELS / 1e6:.0f} megapixels are read. Downscale it first."
            )
        )
    try:
        image.load()
        if image.getexif().get(ORIENTATION, 1) != 1:  # a phone photo stored sideways
            image = ImageOps.exif_transpose(image)
        return image
    except (OSError, ValueError, SyntaxError) as error:  # Pillow raises all three for damaged files
        raise ValueError(f"{name!r} could not be decoded (truncated or corrupt image): {error}") from error


def picture_to_pixels(
    image: Image.Image, size: int, num_channels: int, white_on_black: bool = False, resize_remark: str = ""
) -> tuple[np.ndarray, list[str]]:
    """Any Pillow image -> (S, S, C) float32 pixels in [0, 1] and notes on every conversion: first frame of
    an animation, transparency flattened onto white, 16-bit or float pixels rescaled, colour <-> grayscale,
    resizing to S x S (aspect ratio not kept; `resize_remark` may say whose convention that is), and, with
    `white_on_black`, the inversion of a bright background."""
    notes = []
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
        notes.append(f"An animation of {image.n_frames} frames: the first frame is used.")
    image = flat_8_bit(image, notes)
    if num_channels == 1 and image.mode == "RGB":
        image = image.convert("L")  # ITU-R 601 luma
        notes.append("Colour image converted to grayscale (the model reads one channel).")
    elif num_channels == 3 and image.mode == "L":
        image = image.convert("RGB")
        notes.append("Grayscale image copied into 3 channels (the model reads RGB).")
    elif num_channels not in (1, 3):
        raise ValueError(
            f"This model reads {num_channels}-channel images; only 1 (grayscale) and 3 (RGB) can be made from a picture."
        )
    if image.size != (size, size):
        kept = "" if image.width == image.height else f", aspect ratio not kept{resize_remark}"
        notes.append(f"Resized from {image.width} x {image.height} to {size} x {size} pixels{kept}.")
        image = image.resize((size, size), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32).reshape(size, size, -1) / 255  # (S, S, C)
    if white_on_black and border_brightness(pixels) > 0.5:
        pixels = 1 - pixels
        notes.append("Bright background: the image was inverted, since MNIST digits are white on black.")
    return pixels, notes


def flat_8_bit(image: Image.Image, notes: list[str]) -> Image.Image:
    """Any Pillow mode -> "L" (grayscale) or "RGB", 8 bits per channel."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float grayscale: rescale its own range
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        notes.append(f"{image.mode} pixels from {low:g} to {high:g} rescaled to 0-255.")
        return Image.fromarray(np.round((values - low) / max(high - low, 1e-12) * 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        notes.append("Transparent pixels were put on a white background.")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        return flat.convert("L" if image.mode in ("LA", "L") else "RGB")
    return image.convert("L" if image.mode in ("1", "L") else "RGB")


def border_brightness(pixels: np.ndarray) -> float:
    """Mean of the outermost ring of pixels (S, S, C), which is background in a centred picture."""
    ring = np.concatenate((pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]))
    return float(ring.mean())
