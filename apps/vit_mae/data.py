"""
Images in and out of the ViT and the MAE: MNIST digits for training (with small random shifts and
rotations), and any picture a user brings, turned into the model's input the way Hugging Face's
`ViTImageProcessor` does it (resize, rescale to [0, 1], normalise by a mean and a standard deviation).

Our digit models read one channel, 28 x 28, in [0, 1] (mean 0, standard deviation 1: no normalisation),
white strokes on black as in MNIST. A photo or a scan is usually dark on bright, so for those models a
bright background is inverted (with a note). Uploads are read by shared/uploads.py (Pillow only: an
upload is never unpickled or executed, and anything Pillow cannot decode is refused with a ValueError).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from shared.uploads import MAX_PIXELS, picture_to_pixels, read_image  # noqa: F401 - read_image and MAX_PIXELS are part of this module's interface

IMAGE_PROCESSOR_FILE = "preprocessor_config.json"


@dataclass(frozen=True)
class Preprocessing:
    """How a picture becomes a model's pixel_values (1, C, S, S): what ViTImageProcessor does, plus
    MNIST's white-on-black convention for our digit models."""

    image_size: int  # S
    num_channels: int  # 1 (grayscale) or 3 (RGB)
    mean: tuple[float, ...] = (0.0,)  # per channel, after rescaling to [0, 1]; one value serves every channel
    std: tuple[float, ...] = (1.0,)
    white_on_black: bool = False  # invert pictures with a bright background (MNIST digits are white on black)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> model input."""
        return (pixels - self.channel_vector(self.mean)) / self.channel_vector(self.std)

    def to_unit(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Model input (B, C, S, S) -> pixels in [0, 1] (not clipped: a reconstruction may overshoot)."""
        return pixel_values * self.channel_vector(self.std) + self.channel_vector(self.mean)

    def channel_vector(self, values: tuple[float, ...]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1)  # broadcasts over (B, C, S, S)


def preprocessing_for_hub(
    folder: str | os.PathLike, image_size: int, num_channels: int
) -> tuple[Preprocessing, list[str]]:
    """The mean and standard deviation a Hub checkpoint was trained with, read from its
    preprocessor_config.json (plain JSON); ViTImageProcessor's defaults (0.5, 0.5) when it has none."""
    path = Path(folder) / IMAGE_PROCESSOR_FILE
    settings, notes = {}, []
    if path.exists():
        try:
            settings = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from error
    else:
        notes.append(
            (
                f"{Path(folder).name} has no {IMAGE_PROCESSOR_FILE}: pixels normalised with ViTImageProcessor's "
                "defaults (mean 0.5, std 0.5)."
            )
        )
    if settings.get("do_normalize", True):
        mean, std = settings.get("image_mean", [0.5]), settings.get("image_std", [0.5])
    else:
        mean, std = [0.0], [1.0]
    mean, std = tuple(float(v) for v in np.atleast_1d(mean)), tuple(float(v) for v in np.atleast_1d(std))
    if len(mean) not in (1, num_channels) or len(std) not in (1, num_channels) or min(std) <= 0:
        raise ValueError(
            f"{path} gives image_mean {mean} and image_std {std}, which do not fit a {num_channels}-channel model."
        )
    return Preprocessing(image_size, num_channels, mean, std), notes


# -----------------------------------------------------------------------------
# Training digits (pixel_values in [0, 1]: shared.images.to_unit_batch)


def random_affine(
    pixel_values: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 10.0,
    shift: float = 2.0,
    scale: tuple[float, float] = (0.9, 1.1),
) -> torch.Tensor:
    """
    Each image (B, C, S, S) rotated by up to `degrees`, shifted by up to `shift` pixels along each axis
    and zoomed by a factor within `scale`, all drawn independently per image; uncovered pixels are 0
    (black, MNIST's background). With 4,500 digits a ViT overfits within a few epochs; these small
    distortions keep the label and multiply the data (the ViT paper's own small-data remedy is
    more data; DeiT, Touvron et al. 2021, showed strong augmentation does the job instead).
    """
    B, _, S, _ = pixel_values.shape
    angle = (torch.rand(B, generator=generator) * 2 - 1) * math.radians(degrees)
    zoom = scale[0] + torch.rand(B, generator=generator) * (scale[1] - scale[0])
    offset = (torch.rand(B, 2, generator=generator) * 2 - 1) * shift * 2 / S  # pixels -> affine_grid's [-1, 1] units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # theta maps each output position to where it is read from in the input, (B, 2, 3)
    theta = torch.stack(
        (torch.stack((cos, -sin, offset[:, 0]), dim=1), torch.stack((sin, cos, offset[:, 1]), dim=1)), dim=1
    )
    grid = F.affine_grid(theta.to(pixel_values.device), list(pixel_values.shape), align_corners=False)
    return F.grid_sample(pixel_values, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# -----------------------------------------------------------------------------
# Any picture -> the model's input


@dataclass
class PreparedImage:
    pixel_values: torch.Tensor  # (1, C, S, S), what the model reads
    pixels: np.ndarray  # (S, S, C) in [0, 1], the same image for display
    notes: list[str] = field(default_factory=list)  # what was converted, told to the user


def prepare_image(image: Image.Image, preprocessing: Preprocessing) -> PreparedImage:
    """Any Pillow image -> the model's input, with a note for every conversion (shared.uploads.picture_to_pixels:
    resized to S x S, aspect ratio not kept, as ViTImageProcessor does; for digit models a bright
    background inverted)."""
    pixels, notes = picture_to_pixels(
        image,
        preprocessing.image_size,
        preprocessing.num_channels,
        preprocessing.white_on_black,
        ", as ViTImageProcessor does",
    )
    unit = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).unsqueeze(0)  # (1, C, S, S)
    return PreparedImage(preprocessing.normalise(unit), pixels, notes)
