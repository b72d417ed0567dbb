"""The autoregressive tab's engine. No Gradio here; bad input raises ValueError with a message for the user.

There is no library twin to run beside ours: the references are the mathematics (tests/autoregressive)
and the published likelihoods, which the training report sets beside ours. What the tab shows:
- digits sampled pixel by pixel from the shipped NADE, MADE and PixelCNN, streamed as they fill in;
- "complete the digit": the top rows of a held-out digit kept, the rest sampled;
- every pixel's conditional probability p(x_d = 1 | x_<d) for a held-out or uploaded digit, and its
  surprise -log p(x_d | x_<d) (they add up to the digit's negative log-likelihood);
- MADE's masks as a connectivity picture for a small MADE, in the natural or a random ordering;
- PixelCNN's receptive field for a chosen pixel, plain (with its blind spot) or gated.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from apps.autoregressive.model import (
    ARCHITECTURES,
    IMAGE_SIDE,
    MADE,
    AutoregressiveModel,
    PixelCNN,
    bits_per_dim,
    conditional_probabilities,
    made_degrees,
    receptive_field,
)
from apps.autoregressive.train import CHECKPOINT_DIR, REPORT_FILE, SHIPPED, TRAIN_COMMAND, binarised_digits
from shared.checkpoint import CheckpointError, load_model
from shared.images import image_grid

MODELS = {architecture.name: key for key, architecture in ARCHITECTURES.items()}  # "NADE" -> "nade", ...
MAX_SAMPLES = 36
HELD_OUT_DIGITS = 500
UNDRAWN = 0.5  # grey: a pixel not drawn yet
UPLOAD_THRESHOLD = 0.5  # an uploaded picture's grey levels are binarised at this level
MADE_PICTURE_INPUTS, MADE_PICTURE_HIDDEN = 6, (8, 8)
ORDERINGS = ("natural", "random")
PIXELCNN_VERSIONS = ("plain (masked convolutions)", "gated (vertical + horizontal stacks)")


def whole_number(value, name: str, low: int, high: int) -> int:
    """`value` as an int if it is a whole number in [low, high], else a ValueError that says so."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {value!r}.")
    if not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}; got {int(value)}.")
    return int(value)


def check_seed(seed) -> int:
    return whole_number(seed, "The seed", 0, 2**31 - 1)


@functools.lru_cache(maxsize=4)
def shipped_model(name: str) -> AutoregressiveModel:
    """A shipped checkpoint by its label: NADE, MADE or PixelCNN."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}.")
    architecture = ARCHITECTURES[MODELS[name]]
    try:
        return load_model(
            architecture.model_class.from_config,
            architecture.config_class,
            CHECKPOINT_DIR / MODELS[name],
            TRAIN_COMMAND,
        )
    except CheckpointError as error:
        raise ValueError(str(error)) from error


def training_report() -> dict:
    path = CHECKPOINT_DIR / REPORT_FILE
    if not path.exists():
        raise ValueError(
            f"The shipped checkpoints are missing from {CHECKPOINT_DIR}; create them with `{TRAIN_COMMAND}`."
        )
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=1)
def held_out_digits() -> torch.Tensor:
    """(500, 784) the binarised held-out digits (the same fixed binarisation as the training report's)."""
    return binarised_digits()["held_out"]


def held_out_digit(index) -> torch.Tensor:
    index = whole_number(index, "The held-out digit number", 0, HELD_OUT_DIGITS - 1)
    return held_out_digits()[index]


def as_images(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 784) or (N, 1, 28, 28) -> (N, 1, 28, 28) floats."""
    return pixels.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE).float()


def grid_of(images: torch.Tensor, columns: int | None = None, scale: int = 3) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> a uint8 picture."""
    return image_grid(images, columns=columns or math.ceil(math.sqrt(len(images))), scale=scale)


@dataclass
class Frame:
    """One picture of a stream: the images so far and where the sampler stands."""

    picture: np.ndarray
    pixels_drawn: int
    pixels_to_draw: int
    seconds: float = 0.0
    images: torch.Tensor | None = None  # the finished images, on the last frame only
    notes: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.images is not None


def _stream(
    model: AutoregressiveModel, count: int, seed: int, every_rows: int, given=None, start: int = 0, prefix=None
) -> Iterator[Frame]:
    """Run the ancestral sampler and yield a Frame every `every_rows` rows: undrawn pixels in grey.
    `prefix` (K, 1, 28, 28) images are shown first in every frame (the digit being completed)."""
    import time

    total = model.dims - start
    order = model.sampling_order
    undrawn = torch.zeros(model.dims, dtype=torch.bool)
    undrawn[order[start:]] = True
    began = time.perf_counter()
    steps = model.sampling_steps(count, torch.Generator().manual_seed(seed), given, start)
    every = every_rows * IMAGE_SIDE
    for done, images in steps:
        drawn_here = done - start
        if drawn_here % every and drawn_here != total:
            continue
        undrawn[order[start:done]] = False
        flat = images.reshape(count, -1).float().clone()
        flat[:, undrawn] = UNDRAWN
        shown = as_images(flat) if prefix is None else torch.cat([prefix, as_images(flat)])
        frame = Frame(grid_of(shown), drawn_here, total, time.perf_counter() - began)
        if drawn_here == total:
            frame.images = as_images(images)
        yield frame


def sample_stream(name: str, count, seed, every_rows: int = 2) -> Iterator[Frame]:
    """`count` digits from the shipped model, drawn pixel by pixel; a frame every `every_rows` rows."""
    model = shipped_model(name)
    count = whole_number(count, "The number of samples", 1, MAX_SAMPLES)
    seed = check_seed(seed)
    yield from _stream(model, count, seed, every_rows)


def completion_stream(name: str, digit_index, rows_kept, count, seed, every_rows: int = 2) -> Iterator[Frame]:
    """The top `rows_kept` rows of held-out digit `digit_index` kept, the rest drawn `count` times. The
    first tile of every frame is the whole digit, the second what the model is given."""
    model = shipped_model(name)
    digit = held_out_digit(digit_index)
    rows_kept = whole_number(rows_kept, "The number of rows kept", 1, IMAGE_SIDE - 1)
    count = whole_number(count, "The number of completions", 1, MAX_SAMPLES - 2)
    seed = check_seed(seed)
    start = rows_kept * IMAGE_SIDE
    if not torch.equal(model.sampling_order[:start], torch.arange(start)):
        raise ValueError(f"{name} does not draw the pixels in raster order, so it cannot complete the top rows.")
    given_part = digit.clone()
    given_part[start:] = UNDRAWN
    prefix = as_images(torch.stack([digit, given_part]))
    yield from _stream(model, count, seed, every_rows, given=digit[None], start=start, prefix=prefix)


def upload_to_digit(path: str) -> tuple[torch.Tensor, list[str]]:
    """An uploaded picture -> (784,) binary digit (white strokes on black, 28 x 28, threshold 0.5)."""
    from shared.uploads import picture_to_pixels, read_image

    pixels, notes = picture_to_pixels(read_image(path), IMAGE_SIDE, 1, white_on_black=True)
    notes.append(
        f"Grey levels binarised at {UPLOAD_THRESHOLD}: the models read black-and-white digits, trained on "
        "randomly binarised ones."
    )
    return torch.from_numpy((pixels[..., 0] >= UPLOAD_THRESHOLD).astype(np.float32)).flatten(), notes


@dataclass
class Surprise:
    digit: np.ndarray  # (28, 28) in {0, 1}
    probability_of_white: np.ndarray  # (28, 28): p(x_d = 1 | x_<d)
    surprise: np.ndarray  # (28, 28): -log p(x_d | x_<d) in nats
    nats: float
    bits_per_dim: float
    notes: list[str] = field(default_factory=list)


def surprise_of(name: str, source: str, digit_index, upload_path: str | None) -> Surprise:
    """Every pixel's conditional probability and surprise for a held-out digit or an uploaded picture."""
    model = shipped_model(name)
    notes = []
    if source == "upload":
        if not upload_path:
            raise ValueError("Upload a picture of a digit first, or choose a held-out digit.")
        digit, notes = upload_to_digit(upload_path)
    elif source == "held-out digit":
        digit = held_out_digit(digit_index)
    else:
        raise ValueError(f"Unknown source {source!r}; choose 'held-out digit' or 'upload'.")
    x = digit.reshape(1, *model.data_shape)
    probability, surprise = conditional_probabilities(model, x)
    nats = surprise.sum().item()
    side = (IMAGE_SIDE, IMAGE_SIDE)
    return Surprise(
        digit.reshape(side).numpy(),
        probability.reshape(side).numpy(),
        surprise.reshape(side).numpy(),
        nats,
        bits_per_dim(nats, model.dims),
        notes,
    )


@dataclass
class MadePicture:
    degrees: list[np.ndarray]  # per layer, inputs first: each unit's degree
    masks: list[np.ndarray]  # per weight matrix (out, in), 0/1
    dependence: np.ndarray  # (D, D): 1 where output d can depend on input j (a path of unmasked weights)
    ordering: np.ndarray  # (D,) inputs in the order they are drawn


def made_picture(ordering: str, seed) -> MadePicture:
    """A small MADE (6 inputs, two hidden layers of 8) with the chosen ordering; its masks and degrees."""
    if ordering not in ORDERINGS:
        raise ValueError(f"Unknown ordering {ordering!r}; choose one of {', '.join(ORDERINGS)}.")
    seed = check_seed(seed)
    made = MADE(MADE_PICTURE_INPUTS, MADE_PICTURE_HIDDEN, None if ordering == "natural" else seed, seed)
    degrees = made_degrees(MADE_PICTURE_INPUTS, MADE_PICTURE_HIDDEN, made.config.ordering_seed, seed)
    dependence = torch.eye(MADE_PICTURE_INPUTS)
    for mask in made.masks:
        dependence = mask @ dependence  # (out, D): number of paths from each input
    return MadePicture(
        [d.numpy() for d in degrees],
        [m.numpy() for m in made.masks],
        (dependence > 0).numpy(),
        made.sampling_order.numpy(),
    )


@dataclass
class ReceptiveField:
    field: np.ndarray  # (28, 28) bool: pixels the chosen pixel's conditional reads
    earlier: np.ndarray  # (28, 28) bool: pixels before it in raster order (all of them may be read)
    row: int
    column: int
    digit: np.ndarray  # (28, 28): a held-out digit to draw the field over

    @property
    def unseen_earlier(self) -> int:
        return int((self.earlier & ~self.field).sum())


def receptive_field_of(version: str, row, column) -> ReceptiveField:
    """The receptive field of pixel (row, column) in a PixelCNN of the shipped depth, plain or gated."""
    if version not in PIXELCNN_VERSIONS:
        raise ValueError(f"Unknown PixelCNN version {version!r}; choose one of {', '.join(PIXELCNN_VERSIONS)}.")
    row = whole_number(row, "The row", 0, IMAGE_SIDE - 1)
    column = whole_number(column, "The column", 0, IMAGE_SIDE - 1)
    shipped = SHIPPED["pixelcnn"]
    # the field depends on the kernels and the depth only: a narrow network of the same shape draws it fast
    network = PixelCNN(
        channels=2,
        layers=shipped.layers,
        gated=version == PIXELCNN_VERSIONS[1],
        first_kernel_size=shipped.first_kernel_size,
        kernel_size=shipped.kernel_size,
        output_channels=2,
    )
    earlier = torch.zeros(IMAGE_SIDE * IMAGE_SIDE, dtype=torch.bool)
    earlier[: row * IMAGE_SIDE + column] = True
    digit = held_out_digits()[0].reshape(IMAGE_SIDE, IMAGE_SIDE).numpy()
    return ReceptiveField(
        receptive_field(network, row, column).numpy(),
        earlier.reshape(IMAGE_SIDE, IMAGE_SIDE).numpy(),
        row,
        column,
        digit,
    )


def likelihood_rows() -> list[list]:
    """Rows of the held-out NLL table from the training report, beside the published numbers."""
    report = training_report()
    rows = []
    for key, architecture in ARCHITECTURES.items():
        if key not in report:
            continue
        entry = report[key]
        rows.append(
            [
                architecture.name,
                f"{entry['parameters']:,}",
                f"{entry['held_out_nll']:.1f}",
                f"{entry['held_out_bits_per_dim']:.3f}",
                f"{entry['train_nll']:.1f}",
                f"{architecture.published_nats:.1f} ({architecture.paper})",
                f"{architecture.reproduction_nats:.1f}",
            ]
        )
    return rows


LIKELIHOOD_COLUMNS = [
    "model",
    "parameters",
    "held-out NLL (nats/image)",
    "bits/dim",
    "train NLL",
    "published (binarised MNIST)",
    "pytorch-generative",
]
