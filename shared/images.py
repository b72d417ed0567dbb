"""Batches of small images: one reader for tensors and arrays, and sample grids for display.

Generators hand back images in several conventions (uint8 0-255, floats in [0, 1], floats in [-1, 1],
with or without a channel axis). `to_unit_batch` turns any of them into one float tensor in [0, 1],
so the grids here and the quality metric in `shared.image_metric` read images the same way.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

ImageBatch = torch.Tensor | np.ndarray


def to_unit_batch(images: ImageBatch, value_range: tuple[float, float] = (0, 1)) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W), uint8 or float -> float32 CPU tensor (N, C, H, W) in [0, 1].

    uint8 is always read as 0..255; floats are mapped from `value_range` (e.g. (-1, 1) for the usual
    output of a diffusion model). Values slightly outside the range are clipped, because samples
    overshoot a little; values far outside it mean the wrong range was given, and raise.
    """
    batch = torch.from_numpy(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(batch, torch.Tensor):
        raise ValueError(f"Expected a torch tensor or a numpy array of images, got {type(images).__name__}.")
    if batch.ndim not in (3, 4):
        raise ValueError(
            (
                f"Expected images of shape (N, H, W) or (N, C, H, W), got shape {tuple(batch.shape)}; a single "
                "image needs a batch axis (images[None])."
            )
        )
    if batch.shape[0] == 0:
        raise ValueError("Expected at least one image, got an empty batch.")
    batch = batch.detach().cpu()
    if batch.ndim == 3:
        batch = batch[:, None]  # (N, 1, H, W)
    if batch.dtype == torch.uint8:
        return batch.float() / 255
    if not batch.is_floating_point():
        raise ValueError(f"Expected uint8 (0-255) or floating-point images, got {batch.dtype}.")
    low, high = value_range
    if not high > low:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    batch = (batch.float() - low) / (high - low)
    if not torch.isfinite(batch).all():
        raise ValueError("The images contain NaN or infinite values.")
    smallest, largest = batch.min().item(), batch.max().item()
    if smallest < -0.5 or largest > 1.5:  # half a range beyond either end: not overshoot, a wrong range
        found = (low + smallest * (high - low), low + largest * (high - low))
        raise ValueError(
            (
                f"Float images span {found[0]:.3g}..{found[1]:.3g}, far outside value_range={value_range}; pass the "
                "range they use (uint8 for 0-255, value_range=(-1, 1) for [-1, 1])."
            )
        )
    return batch.clamp(0, 1)


def image_grid(
    images: ImageBatch,
    columns: int | None = None,
    padding: int = 2,
    value_range: tuple[float, float] = (0, 1),
    scale: int = 1,
    pad_value: float = 0.5,
) -> np.ndarray:
    """Tile a batch into one uint8 picture: (H, W) for grayscale images, (H, W, 3) for RGB.

    `columns` defaults to a near-square layout; `padding` pixels of grey (`pad_value`, in [0, 1]) frame
    every tile, so white-on-black digits stay apart; `scale` enlarges the grid by pixel repetition
    (nearest neighbour), which keeps 28-pixel digits crisp on screen.
    """
    batch = to_unit_batch(images, value_range)  # (N, C, H, W)
    count, channels, height, width = batch.shape
    if channels not in (1, 3):
        raise ValueError(f"Expected 1 (grayscale) or 3 (RGB) channels, got {channels}.")
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1 or padding < 0 or scale < 1:
        raise ValueError(
            f"Need columns >= 1, padding >= 0 and scale >= 1; got columns={columns}, padding={padding}, scale={scale}."
        )
    rows = math.ceil(count / columns)
    grid = torch.full(
        (channels, rows * (height + padding) + padding, columns * (width + padding) + padding), float(pad_value)
    )
    for index, image in enumerate(batch):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[:, top : top + height, left : left + width] = image
    pixels = (grid * 255).round().to(torch.uint8).numpy()  # (C, H, W)
    pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
    return pixels[0] if channels == 1 else pixels.transpose(1, 2, 0)


def save_grid(images: ImageBatch, path: str | os.PathLike, **grid_options) -> Path:
    """Write `image_grid(images, **grid_options)` as a PNG (parent folders are created)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(images, **grid_options)).save(path)
    return path
