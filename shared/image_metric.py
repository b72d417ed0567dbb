"""One quality metric for generated MNIST-like digits: a Fréchet distance and a classifier's verdict.

The Fréchet Inception Distance (FID; Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium") embeds real and generated images with a pretrained network,
fits a Gaussian to each set of embeddings and measures the Fréchet (2-Wasserstein) distance between
the two Gaussians N(mu1, S1) and N(mu2, S2):

    FD = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))

The Inception-v3 weights FID uses cannot be downloaded here (no network), and an ImageNet network
is a poor judge of 28x28 digits anyway. So we train a small MNIST classifier (`DigitClassifier`, a
few hundred kilobytes shipped in `checkpoints/image_metric/`) and use its 128 penultimate
activations as the embedding: the same formula, on features that know what digits look like.
Numbers are therefore comparable with each other, never with published FIDs.

The classifier also gives a second, easier-to-read view: its mean confidence (top softmax
probability) on the samples, the fraction it is sure about (> 0.9), and how many of the ten digits
it sees at all (a generator that collapses onto a few digits covers few classes). Confidence alone
is easily fooled: like most classifiers, ours is sure of itself far from its training data (uniform
noise gets a top probability of 1.00, all for one class), so read it beside the FD and the coverage.

Sample size matters. The FD estimated from N samples is biased upwards, roughly in proportion to
1/N (Chong & Forsyth 2020, "Effectively Unbiased FID"): 100 perfect samples score worse than
1,000. Compare FDs only at equal sample counts. Each report therefore carries a reference for its
own count: the FD that the same number of real training digits (a fixed random subset) scores
against the 500 held-out digits, which is what a generator that samples the training distribution
perfectly would get.

    python -m shared.image_metric        # trains and writes the shipped classifier, about a minute
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from shared.checkpoint import load_model, save_model
from shared.conv_blocks import pooling_conv_stack
from shared.data import mnist5k
from shared.images import ImageBatch, to_unit_batch
from shared.training import seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "image_metric"
TRAIN_COMMAND = "python -m shared.image_metric"
IMAGE_SIZE = 28
CONFIDENT = 0.9  # a sample counts as a clear digit when the classifier's top probability exceeds this
PRESENT_SHARE = 0.01  # a digit counts as generated when at least 1% of the samples (and one) are read as it
NUM_CLASSES = 10
REFERENCE_SEED = 0


# ---------------------------------------------------------------------------------------------
# The classifier whose features we compare
# ---------------------------------------------------------------------------------------------


@dataclass
class DigitClassifierConfig:
    """The shape of `DigitClassifier`, stored as the checkpoint's config.json."""

    channels: tuple[int, ...] = (32, 64, 64)  # one conv block per entry; each halves the resolution
    feature_dim: int = 128  # size of the embedding the Fréchet distance is computed on
    dropout: float = 0.3


class DigitClassifier(nn.Module):
    """(conv-BatchNorm-ReLU-pool) x3 (28 -> 14 -> 7 -> 3 pixels) -> linear to `feature_dim` -> linear to 10.

    BatchNorm adds about half a point of held-out accuracy here (98.6% against 98.2% in our runs); in
    eval mode, always used by the metric, it is a fixed affine map, so features do not depend on the batch."""

    def __init__(self, config: DigitClassifierConfig):
        super().__init__()
        self.convolutions = pooling_conv_stack(config.channels)
        side = IMAGE_SIZE // 2 ** len(config.channels)
        self.penultimate = nn.Linear(config.channels[-1] * side * side, config.feature_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, NUM_CLASSES)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, feature_dim) penultimate activations (after the ReLU,
        like the pooled Inception features FID uses)."""
        return F.relu(self.penultimate(self.convolutions(images).flatten(1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, 10) logits."""
        return self.head(self.dropout(self.features(images)))


# ---------------------------------------------------------------------------------------------
# Reading generated images
# ---------------------------------------------------------------------------------------------


def prepare_images(images: ImageBatch, value_range: tuple[float, float] = (0, 1)) -> torch.Tensor:
    """Any batch of grayscale digits -> float32 tensor (N, 1, 28, 28) in [0, 1], as the classifier saw in training.

    Accepts a tensor or array of shape (N, H, W) or (N, 1, H, W), uint8 (0-255) or float in
    `value_range` ((0, 1) by default; pass (-1, 1) for samples in [-1, 1]). 32x32 images are
    center-cropped: our generators pad the 28x28 MNIST digits by 2 pixels on each side to get a
    size that halves cleanly, so the crop gives back the original frame exactly. Other sizes are
    resized (bilinear, antialiased).
    """
    batch = to_unit_batch(images, value_range)  # (N, C, H, W)
    if batch.shape[1] != 1:
        raise ValueError(
            f"Expected grayscale images with 1 channel, got {batch.shape[1]} channels (shape {tuple(batch.shape)})."
        )
    height, width = batch.shape[-2:]
    if (height, width) == (IMAGE_SIZE + 4, IMAGE_SIZE + 4):
        return batch[:, :, 2:-2, 2:-2].contiguous()
    if (height, width) != (IMAGE_SIZE, IMAGE_SIZE):
        batch = F.interpolate(
            batch, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False
        ).clamp(0, 1)
    return batch


# ---------------------------------------------------------------------------------------------
# The Fréchet distance between two Gaussians
# ---------------------------------------------------------------------------------------------


def gaussian_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"A covariance needs at least 2 feature vectors of shape (N, D), got shape {features.shape}.")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the Fréchet distance of N(mu1, S1) and N(mu2, S2).

    S1 S2 is not symmetric, but it is similar to the positive semi-definite S1^(1/2) S2 S1^(1/2), so
    its principal square root exists and has a real, non-negative trace. Numerically, `sqrtm` can
    return small imaginary parts (dropped) or, for singular covariances (fewer samples than feature
    dimensions), non-finite values; then `eps` is added to both diagonals, as pytorch-fid does.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, dtype=np.float64)),
        np.atleast_2d(np.asarray(sigma2, dtype=np.float64)),
    )
    dimension = mu1.shape[0]
    if (
        mu1.shape != (dimension,)
        or mu2.shape != (dimension,)
        or sigma1.shape != (dimension, dimension)
        or sigma2.shape != (dimension, dimension)
    ):
        raise ValueError(
            (
                f"Expected two means of shape (D,) and two covariances of shape (D, D), got {mu1.shape}, "
                f"{sigma1.shape}, {mu2.shape}, {sigma2.shape}."
            )
        )
    # One BLAS thread: a 128x128 problem is too small to share, and on a busy machine OpenBLAS's
    # waiting threads made it tens of times slower in our tests.
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", scipy.linalg.LinAlgWarning
        )  # singular covariances (N <= D) are expected; checked below
        covariance_root = scipy.linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covariance_root).all():
            offset = eps * np.eye(dimension)
            covariance_root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covariance_root):
        largest_imaginary = np.abs(np.diagonal(covariance_root).imag).max()
        if largest_imaginary > 1e-3:
            raise ValueError(
                (
                    f"The matrix square root has an imaginary part of {largest_imaginary:.3g}; are both covariances "
                    "positive semi-definite?"
                )
            )
        covariance_root = covariance_root.real
    difference = mu1 - mu2
    distance = difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covariance_root)
    return max(0.0, float(distance))  # never negative; rounding leaves about -1e-10 for identical Gaussians


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


@dataclass
class QualityReport:
    """How digit-like a batch of generated images is, beside what real digits score.

    frechet_distance: FD between the classifier features of the samples and of the 500 held-out
        real digits (lower is better; 0 only for the held-out set itself).
    real_frechet_distance: the FD that `sample_count` real training digits score against the same
        held-out digits (mean of a few fixed random subsets, at most all 4,500): "as good as real" at
        this sample count. FD grows as the count shrinks, so read the two numbers side by side.
        The classifier has trained on these digits, yet they are not measurably more typical to it:
        250 training digits against 250 held-out ones score like two held-out halves (see the
        "reference_check" in checkpoints/image_metric/training_report.json).
    mean_confidence: mean top softmax probability over the samples.
    confident_fraction: fraction of samples whose top probability exceeds 0.9.
    classes_present: how many of the 10 digits are predicted for at least 1% of the samples (and at
        least one), so that a stray misreading does not count as covering a digit.
    class_histogram: how many samples are predicted as 0, 1, ..., 9.
    real_mean_confidence: mean top probability on the 500 held-out real digits.
    """

    frechet_distance: float
    mean_confidence: float
    confident_fraction: float
    classes_present: int
    class_histogram: list[int]
    sample_count: int
    real_mean_confidence: float
    real_frechet_distance: float

    def as_row(self) -> dict[str, float | int | str]:
        """The numbers for one row of a comparison table (the histogram is left to `class_histogram`)."""
        return {
            "samples": self.sample_count,
            "Fréchet distance": round(self.frechet_distance, 2),
            "real digits' FD": round(self.real_frechet_distance, 2),
            "mean confidence": round(self.mean_confidence, 3),
            "real digits' confidence": round(self.real_mean_confidence, 3),
            "confident (> 0.9)": round(self.confident_fraction, 3),
            "classes present": f"{self.classes_present}/{NUM_CLASSES}",
        }

    def reading(self, what: str = "the samples") -> str:
        """One sentence for a tab: how many digits the classifier reads in `what`, and how sure it is."""
        return (
            f"The digit classifier reads {self.classes_present}/{NUM_CLASSES} digits in {what}, mean confidence "
            f"{self.mean_confidence:.2f} (real digits: {self.real_mean_confidence:.2f})."
        )

    def summary(self) -> str:
        return (
            f"FD {self.frechet_distance:.2f} (real digits: {self.real_frechet_distance:.2f}) · "
            f"confidence {self.mean_confidence:.3f} (real: {self.real_mean_confidence:.3f}) · "
            f"{self.confident_fraction:.0%} confident · {self.classes_present}/{NUM_CLASSES} classes · "
            f"{self.sample_count} samples"
        )


class ImageQualityMetric:
    """The shipped classifier plus the feature statistics of real digits, computed once on creation."""

    def __init__(
        self,
        checkpoint: str | os.PathLike = CHECKPOINT_DIR,
        device: torch.device | str = "cpu",
        batch_size: int = 500,
        reference_draws: int = 5,
    ):
        self.model = load_model(DigitClassifier, DigitClassifierConfig, checkpoint, TRAIN_COMMAND, device)
        self.device, self.batch_size, self.reference_draws = torch.device(device), batch_size, reference_draws
        split = mnist5k()
        self.train_features, _ = self.embed(split.train_images)  # (4500, D): drawn from for the reference FD
        held_out_features, held_out_probabilities = self.embed(split.validation_images)  # (500, D), (500, 10)
        self.real_mu, self.real_sigma = gaussian_statistics(held_out_features)
        self.real_mean_confidence = float(held_out_probabilities.max(axis=1).mean())

    @torch.no_grad()
    def embed(self, images: ImageBatch, value_range: tuple[float, float] = (0, 1)) -> tuple[np.ndarray, np.ndarray]:
        """Features (N, D) and class probabilities (N, 10) of a batch, in chunks of `batch_size`."""
        batch = prepare_images(images, value_range)  # (N, 1, 28, 28)
        features, probabilities = [], []
        for chunk in batch.split(self.batch_size):
            chunk_features = self.model.features(chunk.to(self.device))  # (B, D)
            features.append(chunk_features.double().cpu().numpy())
            probabilities.append(self.model.head(chunk_features).softmax(dim=-1).double().cpu().numpy())
        return np.concatenate(features), np.concatenate(probabilities)

    def real_frechet_distance(self, count: int) -> float:
        """Mean FD of `count` training digits (fixed random subsets; at most all of them) against the held-out digits."""
        count = min(count, len(self.train_features))
        generator = np.random.default_rng(REFERENCE_SEED)
        draws = 1 if count == len(self.train_features) else self.reference_draws
        distances = [
            frechet_distance(
                *gaussian_statistics(
                    self.train_features[generator.choice(len(self.train_features), count, replace=False)]
                ),
                self.real_mu,
                self.real_sigma,
            )
            for _ in range(draws)
        ]
        return float(np.mean(distances))

    def report(self, images: ImageBatch, value_range: tuple[float, float] = (0, 1)) -> QualityReport:
        """Score a batch of at least 2 generated digits (any shape and range `prepare_images` reads)."""
        features, probabilities = self.embed(images, value_range)
        if len(features) < 2:
            raise ValueError("The Fréchet distance needs at least 2 images (it compares covariances); got 1.")
        confidence = probabilities.max(axis=1)  # (N,)
        histogram = np.bincount(probabilities.argmax(axis=1), minlength=NUM_CLASSES)
        return QualityReport(
            frechet_distance=frechet_distance(*gaussian_statistics(features), self.real_mu, self.real_sigma),
            mean_confidence=float(confidence.mean()),
            confident_fraction=float((confidence > CONFIDENT).mean()),
            classes_present=int((histogram >= max(1.0, PRESENT_SHARE * len(features))).sum()),
            class_histogram=histogram.tolist(),
            sample_count=len(features),
            real_mean_confidence=self.real_mean_confidence,
            real_frechet_distance=self.real_frechet_distance(len(features)),
        )


@functools.lru_cache(maxsize=1)
def default_metric() -> ImageQualityMetric:
    """The metric on the shipped checkpoint, built once per process (a few seconds on a CPU: it
    embeds the 5,000 real digits)."""
    return ImageQualityMetric()


def image_quality(images: ImageBatch, value_range: tuple[float, float] = (0, 1)) -> QualityReport:
    """`QualityReport` of a batch of generated digits against the real MNIST-5k digits."""
    return default_metric().report(images, value_range)


# ---------------------------------------------------------------------------------------------
# Training the classifier: python -m shared.image_metric
# ---------------------------------------------------------------------------------------------


def random_affine(images: torch.Tensor, max_shift: float = 2.0, max_degrees: float = 10.0) -> torch.Tensor:
    """(B, 1, H, W) -> the same digits shifted by up to `max_shift` pixels and rotated by up to
    `max_degrees` each way: generated digits are rarely centred as exactly as MNIST's."""
    count, _, height, width = images.shape
    angle = (torch.rand(count, device=images.device) * 2 - 1) * np.deg2rad(max_degrees)  # (B,)
    # affine_grid measures translations in half-widths: a shift of s pixels is 2 s / width
    shift = (
        (torch.rand(count, 2, device=images.device) * 2 - 1)
        * max_shift
        * 2
        / torch.tensor([width, height], device=images.device)
    )  # (B, 2)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False)


@torch.no_grad()
def accuracy(model: DigitClassifier, images: ImageBatch, labels: np.ndarray) -> float:
    """Fraction of `images` the model labels correctly."""
    model.eval()
    device = next(model.parameters()).device
    predictions = model(prepare_images(images).to(device)).argmax(dim=-1).cpu().numpy()
    return float((predictions == np.asarray(labels)).mean())


def train_digit_classifier(
    config: DigitClassifierConfig | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 3e-3,
    seed: int = 0,
    mixed_precision: str = "no",
) -> tuple[DigitClassifier, list[dict]]:
    """Train on the 4,500 MNIST-5k training digits with random shifts and rotations; Adam with a
    one-cycle learning-rate schedule (Smith & Topin 2017). Returns the model (CPU, eval mode) and a
    per-epoch log with the held-out accuracy."""
    accelerator = seeded_accelerator(mixed_precision, seed)  # the same weights on every run on one machine
    split = mnist5k()
    train_set = torch.utils.data.TensorDataset(prepare_images(split.train_images), torch.from_numpy(split.train_labels))
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    model = DigitClassifier(config or DigitClassifierConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=epochs * len(loader))
    model, optimizer, loader, schedule = accelerator.prepare(model, optimizer, loader, schedule)
    log, started = [], time.perf_counter()
    progress = tqdm(range(epochs), desc="training the digit classifier", disable=not accelerator.is_local_main_process)
    for epoch in progress:
        model.train()
        for images, labels in loader:  # (B, 1, 28, 28), (B,)
            with accelerator.autocast():
                loss = F.cross_entropy(model(random_affine(images)), labels)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        held_out = accuracy(accelerator.unwrap_model(model), split.validation_images, split.validation_labels)
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(loss.item(), 4),
                "held_out_accuracy": held_out,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        progress.set_postfix(loss=log[-1]["train_loss"], held_out=f"{held_out:.3f}")
    return accelerator.unwrap_model(model).cpu().float().eval(), log


def seen_versus_unseen(metric: ImageQualityMetric, draws: int = 5) -> dict[str, float]:
    """Are the training digits, which the classifier has seen, more typical to it than new digits?
    Mean FD of 250 training digits vs 250 held-out digits, beside that of two held-out halves."""
    held_out_features, _ = metric.embed(mnist5k().validation_images)  # (500, D)
    half, generator = len(held_out_features) // 2, np.random.default_rng(REFERENCE_SEED)
    seen, unseen = [], []
    for _ in range(draws):
        order = generator.permutation(len(held_out_features))
        training = metric.train_features[generator.choice(len(metric.train_features), half, replace=False)]
        seen.append(
            frechet_distance(*gaussian_statistics(training), *gaussian_statistics(held_out_features[order[:half]]))
        )
        unseen.append(
            frechet_distance(
                *gaussian_statistics(held_out_features[order[half:]]),
                *gaussian_statistics(held_out_features[order[:half]]),
            )
        )
    return {
        "training_vs_held_out": round(float(np.mean(seen)), 2),
        "held_out_vs_held_out": round(float(np.mean(unseen)), 2),
        "digits_per_side": half,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description="Train the digit classifier behind shared.image_metric and write its checkpoint."
    )
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    argv = sys.argv[1:] if argv is None else argv
    arguments = parser.parse_args(argv)
    started = time.perf_counter()
    config = DigitClassifierConfig()
    model, log = train_digit_classifier(
        config,
        arguments.epochs,
        arguments.batch_size,
        arguments.learning_rate,
        arguments.seed,
        arguments.mixed_precision,
    )
    save_model(model, config, arguments.out, dtype=torch.float16)  # 260 kB instead of 520 kB
    metric = ImageQualityMetric(arguments.out)  # measure what users get: the fp16 weights read back as fp32
    split = mnist5k()
    report = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "seconds": round(time.perf_counter() - started, 1),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "held_out_accuracy": accuracy(metric.model, split.validation_images, split.validation_labels),
        "real_mean_confidence": round(metric.real_mean_confidence, 4),
        "real_frechet_distance": {
            str(count): round(metric.real_frechet_distance(count), 3) for count in (100, 500, 1000, 4500)
        },
        "reference_check": seen_versus_unseen(metric),
        "config": asdict(config),
        "log": log,
    }
    (arguments.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                key: report[key]
                for key in (
                    "seconds",
                    "held_out_accuracy",
                    "real_mean_confidence",
                    "real_frechet_distance",
                    "reference_check",
                )
            }
        )
    )
    return report


if __name__ == "__main__":
    main()
