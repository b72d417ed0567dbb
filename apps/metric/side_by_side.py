"""The metric tab's engine. No Gradio here; bad input raises ValueError with a message for the user.

- the shipped margin-loss networks: held-out embeddings on the plane or the sphere, and the loss at a chosen
  margin and scale computed by our module and by pytorch-metric-learning's on the same embeddings and weights;
- a drawn or uploaded digit: where it lands, the class it gets, its nearest training digits;
- SimCLR: nearest neighbours in its feature space beside raw pixels, and the probe table.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from apps.metric import evaluation
from apps.metric import model as ours
from apps.metric.train import CHECKPOINT_DIR, MARGIN_LOSSES, REPORT_FILE, TRAIN_COMMAND, folder_name
from shared.checkpoint import load_model
from shared.data import mnist5k
from shared.timing import fastest_run
from shared.uploads import border_brightness, flat_8_bit, read_image

# what the tab offers -> (checkpoint loss, our loss class); L-Softmax is evaluated on the softmax network, since
# with m = 1 it IS that softmax
LOSS_CHOICES = {
    "Softmax": "softmax",
    "L-Softmax": "softmax",
    "SphereFace": "sphereface",
    "CosFace": "cosface",
    "ArcFace": "arcface",
}
DIMENSIONS = {"2-D (plane)": 2, "3-D (sphere)": 3}
PARITY_TOLERANCE = 1e-5  # float64 on both sides
NEIGHBOURS = 8
TIMED_EVALUATIONS = 100  # the badges time this many loss evaluations on each side


def report() -> dict:
    path = CHECKPOINT_DIR / REPORT_FILE
    if not path.exists():
        raise ValueError(f"No training report at {path}; create the checkpoints with `{TRAIN_COMMAND}`.")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=16)
def shipped_model(folder: str) -> ours.MetricModel:
    return load_model(ours.MetricModel, ours.MetricConfig, CHECKPOINT_DIR / folder, TRAIN_COMMAND)


@functools.lru_cache(maxsize=16)
def training_embeddings(folder: str) -> np.ndarray:
    return evaluation.embed(shipped_model(folder), mnist5k().train_images)


def check_choice(value, choices, what: str):
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.")
    return choices[value]


def loss_at(loss: str, embedding_size: int, margin, scale) -> torch.nn.Module:
    """Our loss module for the tab's choice with the given margin and scale (the constructors check both)."""
    if margin is None or scale is None or not (math.isfinite(margin) and math.isfinite(scale)):
        raise ValueError("Give a margin and a scale (numbers).")
    if loss == "Softmax":
        return ours.SoftmaxLoss(10, embedding_size)
    if loss == "L-Softmax":
        return ours.LargeMarginSoftmaxLoss(10, embedding_size, margin)
    if loss == "SphereFace":
        return ours.SphereFaceLoss(10, embedding_size, ours.check_integer_margin(margin), scale)
    if loss == "CosFace":
        return ours.CosFaceLoss(10, embedding_size, margin, scale)
    return ours.ArcFaceLoss(10, embedding_size, margin, scale)


@dataclass
class EmbeddingView:
    loss: str
    embedding_size: int
    embeddings: np.ndarray  # (500, D) the held-out digits
    labels: np.ndarray  # (500,)
    class_weights: np.ndarray  # (10, D)
    our_loss: float
    pml_loss: float
    our_seconds: float  # for TIMED_EVALUATIONS evaluations
    pml_seconds: float
    accuracy: float
    verification: dict
    notes: list[str] = field(default_factory=list)

    @property
    def difference(self) -> float:
        return abs(self.our_loss - self.pml_loss)


def embedding_view(loss: str, dimensions: str, margin, scale) -> EmbeddingView:
    """The shipped network of `loss` at `dimensions`; our loss and PML's at (margin, scale) on its 500 held-out
    embeddings and its class weights, both in float64."""
    from apps.metric.reference import to_pml

    checkpoint_loss = check_choice(loss, LOSS_CHOICES, "loss")
    embedding_size = check_choice(dimensions, DIMENSIONS, "embedding")
    measured = loss_at(loss, embedding_size, margin, scale)
    folder = folder_name(checkpoint_loss, embedding_size)
    network = shipped_model(folder)
    split = mnist5k()
    embeddings = evaluation.embed(network, split.validation_images)
    with torch.no_grad():
        measured.weight.copy_(network.loss.weight)
    measured = measured.double()
    reference = to_pml(measured).double()
    inputs = (torch.from_numpy(embeddings).double(), torch.from_numpy(split.validation_labels))
    # one evaluation takes well under a millisecond: time TIMED_EVALUATIONS of them, fastest of three
    our_value, our_seconds = fastest_run(lambda: [measured(*inputs).item() for _ in range(TIMED_EVALUATIONS)][0])
    pml_value, pml_seconds = fastest_run(lambda: [reference(*inputs).item() for _ in range(TIMED_EVALUATIONS)][0])
    trained = MARGIN_LOSSES[embedding_size][checkpoint_loss]
    notes = [
        f"The network was trained with {checkpoint_loss} (margin {trained[0]}, scale {trained[1]}); the margin and "
        "scale you choose change the loss measured on its embeddings, not the embeddings."
    ]
    if loss == "L-Softmax":
        notes.append("L-Softmax is measured on the softmax network: with m = 1 it is exactly that softmax.")
    if loss in ("Softmax", "L-Softmax"):
        notes.append("Softmax has no scale; L-Softmax's logits are |W_j| |x| cos, so its scale is 1.")
    if loss == "Softmax":
        notes.append("Plain softmax has no margin: the margin box is ignored.")
    return EmbeddingView(
        loss,
        embedding_size,
        embeddings,
        split.validation_labels,
        network.loss.weight.detach().numpy().copy(),
        our_value,
        pml_value,
        our_seconds,
        pml_seconds,
        evaluation.held_out_accuracy(network, split.validation_images, split.validation_labels),
        evaluation.verification(embeddings, split.validation_labels),
        notes,
    )


# --- a digit of the user's -------------------------------------------------------------------------


def centred_like_mnist(pixels: np.ndarray) -> np.ndarray:
    """(H, W) white-on-black in [0, 1] -> (28, 28) as MNIST digits are made: the stroke's bounding box scaled
    to fit 20 x 20 pixels, then placed so that its centre of mass is the image's centre."""
    if pixels.max() - pixels.min() < 0.05:
        raise ValueError("The picture is empty (one flat colour): draw or upload a digit.")
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    rows, columns = np.nonzero(pixels > 0.2)
    box = pixels[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    ratio = 20 / max(box.shape)
    size = (max(1, round(box.shape[1] * ratio)), max(1, round(box.shape[0] * ratio)))  # PIL's (width, height)
    small = (
        np.asarray(Image.fromarray((box * 255).astype(np.uint8)).resize(size, Image.LANCZOS), dtype=np.float32) / 255
    )
    canvas = np.zeros((28, 28), dtype=np.float32)
    total = small.sum()
    centre_row = (small.sum(1) * np.arange(small.shape[0])).sum() / total
    centre_column = (small.sum(0) * np.arange(small.shape[1])).sum() / total
    top = int(np.clip(round(14 - centre_row), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - centre_column), 0, 28 - small.shape[1]))
    canvas[top : top + small.shape[0], left : left + small.shape[1]] = small
    return canvas


def sketch_pixels(sketch) -> tuple[np.ndarray, list[str]]:
    """A gr.Sketchpad value (a dict whose "composite" is an (H, W, 4) or (H, W) array) -> (28, 28) in [0, 1]."""
    composite = sketch.get("composite") if isinstance(sketch, dict) else sketch
    if composite is None:
        raise ValueError("The sketch is empty: draw a digit on the pad first.")
    array = np.asarray(composite)
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"Expected a drawing (an image array), got an array of shape {array.shape}.")
    if array.ndim == 3 and array.shape[2] == 4 and array[..., 3].max() == 0:
        raise ValueError("The sketch is empty: draw a digit on the pad first.")
    image = Image.fromarray(array.astype(np.uint8))
    if image.mode == "RGBA":  # the pad's strokes lie on a transparent canvas: put them on white
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    return digit_pixels(image.convert("L"))


def upload_pixels(path) -> tuple[np.ndarray, list[str]]:
    """An uploaded file (decoded by Pillow only, never unpickled) -> (28, 28) in [0, 1]."""
    if not path:
        raise ValueError("Upload a picture of a digit first.")
    return digit_pixels(read_image(path))


def digit_pixels(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Any Pillow image -> (28, 28) white-on-black digit in [0, 1], centred as MNIST's, and notes on conversions."""
    notes: list[str] = []
    pixels = np.asarray(flat_8_bit(image, notes).convert("L"), dtype=np.float32) / 255  # (H, W)
    if border_brightness(pixels[..., None]) > 0.5:
        pixels = 1 - pixels
        notes.append("Dark strokes on a light background: inverted, since MNIST digits are white on black.")
    return centred_like_mnist(pixels), notes


@dataclass
class PlacedDigit:
    pixels: np.ndarray  # (28, 28) what the network saw
    embedding: np.ndarray  # (D,)
    predicted: int
    probabilities: np.ndarray  # (10,) softmax of the logits without margin
    neighbours: np.ndarray  # (K, 28, 28) nearest training digits by cosine
    neighbour_labels: np.ndarray
    view: EmbeddingView
    notes: list[str]


def place_digit(pixels: np.ndarray, notes: list[str], loss: str, dimensions: str, margin, scale) -> PlacedDigit:
    view = embedding_view(loss, dimensions, margin, scale)
    folder = folder_name(LOSS_CHOICES[loss], view.embedding_size)
    network = shipped_model(folder)
    with torch.no_grad():
        embedding = network(torch.from_numpy(pixels)[None, None].float())[0]
        probabilities = torch.softmax(network.loss.logits(embedding[None]), dim=1)[0].numpy()
    train = training_embeddings(folder)
    similarity = evaluation.unit_rows(train) @ evaluation.unit_rows(embedding.numpy()[None])[0]
    nearest = np.argsort(-similarity)[:NEIGHBOURS]
    split = mnist5k()
    return PlacedDigit(
        pixels,
        embedding.numpy(),
        int(probabilities.argmax()),
        probabilities,
        split.train_images[nearest],
        split.train_labels[nearest],
        view,
        notes + view.notes,
    )


# --- SimCLR ---------------------------------------------------------------------------------------


@dataclass
class SimclrNeighbours:
    query: np.ndarray  # (28, 28) uint8
    query_label: int
    simclr: np.ndarray  # (K, 28, 28) nearest training digits in SimCLR's feature space
    simclr_labels: np.ndarray
    pixels: np.ndarray  # (K, 28, 28) nearest in raw pixel space
    pixel_labels: np.ndarray


def simclr_neighbours(index) -> SimclrNeighbours:
    """Nearest training digits (cosine) to held-out digit `index` in SimCLR's features (learnt without labels)
    and in raw pixels."""
    split = mnist5k()
    if index is None or not float(index).is_integer() or not 0 <= index < len(split.validation_images):
        raise ValueError(
            f"The held-out digit must be a whole number from 0 to {len(split.validation_images) - 1}; got {index}."
        )
    index = int(index)
    features = training_embeddings("simclr")
    query = evaluation.embed(shipped_model("simclr"), split.validation_images[index : index + 1])[0]
    by_features = np.argsort(-(evaluation.unit_rows(features) @ evaluation.unit_rows(query[None])[0]))[:NEIGHBOURS]
    flat = split.train_images.reshape(len(split.train_images), -1).astype(np.float32)
    by_pixels = np.argsort(
        -(
            evaluation.unit_rows(flat)
            @ evaluation.unit_rows(split.validation_images[index].reshape(1, -1).astype(np.float32))[0]
        )
    )[:NEIGHBOURS]
    return SimclrNeighbours(
        split.validation_images[index],
        int(split.validation_labels[index]),
        split.train_images[by_features],
        split.train_labels[by_features],
        split.train_images[by_pixels],
        split.train_labels[by_pixels],
    )


PROBE_COLUMNS = {
    "labels_per_class": "labels per class",
    "simclr_linear_probe": "SimCLR + linear probe",
    "simclr_knn": "SimCLR + 5-NN",
    "scratch_classifier": "same CNN from scratch",
    "scratch_knn": "from scratch + 5-NN",
    "pixels_logistic_regression": "pixels + logistic regression",
    "pixels_knn": "pixels + 5-NN",
}


def probe_markdown() -> str:
    rows = report()["probe"]
    lines = ["| " + " | ".join(PROBE_COLUMNS.values()) + " |", "|" + "---|" * len(PROBE_COLUMNS)]
    for row in rows:
        cells = [str(row["labels_per_class"])] + [f"{row[key]:.1%}" for key in list(PROBE_COLUMNS)[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
