"""`python -m apps.metric.train` reproduces checkpoints/metric/ on MNIST-5k (4,500 training digits, 500 held out):

1. margin losses: the CNN with a 2-D and a 3-D embedding, trained with plain softmax, SphereFace, CosFace and
   ArcFace; held-out accuracy and verification on held-out pairs (ROC AUC, TAR at FAR 1%);
2. SimCLR: the CNN pre-trained without labels by NT-Xent on pairs of augmented views, then a linear probe and
   k-NN with 10, 100 and all labels per class, beside the same CNN trained from scratch on those labels and
   beside raw pixels; the InfoNCE bound log N - L along training;
3. siamese: the CNN trained by Hadsell et al.'s contrastive loss; distances of same- and different-digit
   pairs before and after.

Every training goes through Accelerate (shared/training.py), seeded. `--steps-factor 0.01` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from apps.metric import evaluation
from apps.metric.model import MetricConfig, MetricModel, simclr_augment
from shared.checkpoint import save_model
from shared.data import mnist5k
from shared.image_metric import random_affine
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "metric"
REPORT_FILE = "training_report.json"
TRAIN_COMMAND = "python -m apps.metric.train"

# the margin losses as trained, per embedding size: loss -> (margin, scale), with s = 16, a scale that suits 10 classes
# (s = 64 is for thousands of identities). On the 3-D sphere CosFace uses the paper's margin 0.35; ArcFace's 0.5
# reached 97.6% held-out accuracy in our full run (99.0% in a 700-step trial: runs differ by a point on 500 digits),
# 0.3 reached 98.0% (so did 0.5 with s = 32), and 0.3 is shipped. On the
# 2-D circle ten classes are only 36 degrees apart, and the papers' margins ask for more than fits: in our first run
# they reached 78% (CosFace 0.35) and 87% (ArcFace 0.5) held-out accuracy against 97.8% and 96.4% with margins of
# 0.1. SphereFace uses m = 2: in a trial on the 3-D embedding, the paper's m = 4 without its softmax annealing
# reached 97.2% held-out accuracy against 99.0% at m = 2.
MARGIN_LOSSES = {
    3: {"softmax": (0.0, 1.0), "sphereface": (2, 1.0), "cosface": (0.35, 16.0), "arcface": (0.3, 16.0)},
    2: {"softmax": (0.0, 1.0), "sphereface": (2, 1.0), "cosface": (0.1, 16.0), "arcface": (0.1, 16.0)},
}
EMBEDDING_SIZES = tuple(sorted(MARGIN_LOSSES))
SUPERVISED_RECIPE = OptimizerRecipe(steps=900, batch_size=128, learning_rate=3e-3, warmup_steps=50, weight_decay=5e-4)
SIMCLR_RECIPE = OptimizerRecipe(steps=500, batch_size=256, learning_rate=3e-3, warmup_steps=50, weight_decay=1e-4)
SIMCLR_CONFIG = MetricConfig(embedding_size=128, loss="simclr", temperature=0.5, projection_size=64)
SIAMESE_RECIPE = OptimizerRecipe(steps=400, batch_size=128, learning_rate=3e-3, warmup_steps=30, weight_decay=5e-4)
SIAMESE_CONFIG = MetricConfig(embedding_size=16, loss="contrastive", margin=1.0)
LABELS_PER_CLASS = (10, 100, None)  # None: all 450
SCRATCH_STEPS = {10: 300, 100: 500, None: 900}


def folder_name(loss: str, embedding_size: int) -> str:
    return f"{loss}-{embedding_size}d"


def random_batches(count: int, batch_size: int, generator: torch.Generator):
    """Endless index batches: a fresh permutation of range(count) each epoch."""
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def fit(model: MetricModel, make_batch, recipe: OptimizerRecipe, description: str, on_step=None, seed: int = 0) -> dict:
    """AdamW, warmup then cosine decay, gradient clipping, through Accelerate. `make_batch()` -> (images,
    labels) for `model.training_loss`; `on_step(step, loss)` sees every loss. Returns the timing and last loss."""
    accelerator = seeded_accelerator(seed=seed)
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(model, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    wall, cpu = time.perf_counter(), time.process_time()
    losses = []
    for step in (bar := tqdm(range(recipe.steps), desc=description, mininterval=2)):
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        images, labels = make_batch()
        loss = accelerator.unwrap_model(model).training_loss(
            images.to(accelerator.device), labels.to(accelerator.device)
        )
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
        if step % 20 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return {
        "steps": recipe.steps,
        "batch_size": recipe.batch_size,
        "final_loss": round(float(np.mean(losses[-20:])), 4),
        "wall_seconds": round(time.perf_counter() - wall, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
    }


def scaled(recipe: OptimizerRecipe, factor: float) -> OptimizerRecipe:
    steps = max(2, round(recipe.steps * factor))
    return replace(recipe, steps=steps, warmup_steps=max(1, min(recipe.warmup_steps, steps // 2)))


def supervised_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
    """Labelled batches with small random shifts and rotations (the shared digit augmentation)."""
    batches = random_batches(len(images), batch_size, torch.Generator().manual_seed(seed))
    return lambda: (random_affine(images[(index := next(batches))]), labels[index])


def train_margin_model(loss: str, embedding_size: int, factor: float = 1.0, seed: int = 0) -> tuple[MetricModel, dict]:
    """The CNN and a margin loss's class weights, trained together on the 4,500 labelled digits."""
    split = mnist5k()
    margin, scale = MARGIN_LOSSES[embedding_size][loss]
    config = MetricConfig(embedding_size=embedding_size, loss=loss, margin=margin, scale=scale)
    torch.manual_seed(seed)
    model = MetricModel(config)
    recipe = scaled(SUPERVISED_RECIPE, factor)
    images, labels = evaluation.pixels(split.train_images), torch.from_numpy(split.train_labels)
    timing = fit(
        model, supervised_batches(images, labels, recipe.batch_size, seed), recipe, folder_name(loss, embedding_size)
    )
    model.eval()
    held_out = evaluation.embed(model, split.validation_images)
    entry = {
        "config": asdict(config),
        **timing,
        "held_out_accuracy": evaluation.held_out_accuracy(model, split.validation_images, split.validation_labels),
        "verification": evaluation.verification(held_out, split.validation_labels),
    }
    return model, entry


def simclr_batches(images: torch.Tensor, batch_size: int, seed: int):
    """Two augmented views of each of `batch_size` images; an image's index is the label its two views share."""
    batches = random_batches(len(images), batch_size, torch.Generator().manual_seed(seed))

    def make_batch():
        chosen = images[next(batches)]
        views = torch.cat([simclr_augment(chosen), simclr_augment(chosen)])  # (2B, 1, 28, 28)
        return views, torch.arange(len(chosen)).repeat(2)

    return make_batch


def train_simclr(factor: float = 1.0, seed: int = 0) -> tuple[MetricModel, dict]:
    """NT-Xent pre-training without labels; the InfoNCE bound log N - L is logged every step (N = 2B - 1
    candidates per anchor: its other view and the 2B - 2 views of the other images)."""
    split = mnist5k()
    torch.manual_seed(seed)
    model = MetricModel(SIMCLR_CONFIG)
    recipe = scaled(SIMCLR_RECIPE, factor)
    candidates = 2 * recipe.batch_size - 1
    bound = []
    timing = fit(
        model,
        simclr_batches(evaluation.pixels(split.train_images), recipe.batch_size, seed),
        recipe,
        "simclr",
        on_step=lambda step, loss: bound.append(round(math.log(candidates) - loss, 4)),
    )
    return model.eval(), {
        "config": asdict(SIMCLR_CONFIG),
        **timing,
        "candidates": candidates,
        "log_candidates": math.log(candidates),
        "infonce_bound": bound,
    }


def train_from_scratch(per_class: int | None, factor: float = 1.0, seed: int = 0) -> tuple[MetricModel, dict]:
    """SimCLR's encoder with a linear softmax head, trained from random weights on `per_class` labels per digit."""
    split = mnist5k()
    subset = evaluation.labelled_subset(split.train_labels, per_class, seed)
    config = replace(SIMCLR_CONFIG, loss="softmax", projection_size=0)
    torch.manual_seed(seed)
    model = MetricModel(config)
    batch_size = min(SUPERVISED_RECIPE.batch_size, len(subset))  # 10 labels per class: every step sees all 100
    recipe = scaled(replace(SUPERVISED_RECIPE, steps=SCRATCH_STEPS[per_class], batch_size=batch_size), factor)
    images = evaluation.pixels(split.train_images[subset])
    labels = torch.from_numpy(split.train_labels[subset])
    timing = fit(
        model, supervised_batches(images, labels, recipe.batch_size, seed), recipe, f"scratch {per_class or 'all'}"
    )
    return model.eval(), {
        **timing,
        "held_out_accuracy": evaluation.held_out_accuracy(model, split.validation_images, split.validation_labels),
    }


def probe_table(simclr: MetricModel, scratch: dict[int | None, tuple[MetricModel, dict]], seed: int = 0) -> list[dict]:
    """Held-out accuracy with 10, 100 and all labels per class: SimCLR features (linear probe, 5-NN), the same CNN
    from scratch (its own classifier, 5-NN on its features), raw pixels (logistic regression, 5-NN)."""
    split = mnist5k()
    flat_train = split.train_images.reshape(len(split.train_images), -1) / 255.0
    flat_test = split.validation_images.reshape(len(split.validation_images), -1) / 255.0
    simclr_train = evaluation.embed(simclr, split.train_images)
    simclr_test = evaluation.embed(simclr, split.validation_images)
    rows = []
    for per_class in LABELS_PER_CLASS:
        subset = evaluation.labelled_subset(split.train_labels, per_class, seed)
        labels = split.train_labels[subset]
        scratch_model, scratch_entry = scratch[per_class]

        def both(train, test):
            return (
                evaluation.linear_probe_accuracy(train[subset], labels, test, split.validation_labels),
                evaluation.knn_accuracy(train[subset], labels, test, split.validation_labels),
            )

        simclr_probe, simclr_knn = both(simclr_train, simclr_test)
        pixel_probe, pixel_knn = both(flat_train, flat_test)
        _, scratch_knn = both(
            evaluation.embed(scratch_model, split.train_images),
            evaluation.embed(scratch_model, split.validation_images),
        )
        rows.append(
            {
                "labels_per_class": per_class or int(np.bincount(split.train_labels).min()),
                "simclr_linear_probe": simclr_probe,
                "simclr_knn": simclr_knn,
                "scratch_classifier": scratch_entry["held_out_accuracy"],
                "scratch_knn": scratch_knn,
                "pixels_logistic_regression": pixel_probe,
                "pixels_knn": pixel_knn,
            }
        )
    return rows


def train_siamese(factor: float = 1.0, seed: int = 0) -> tuple[MetricModel, dict]:
    """Hadsell et al.'s squared contrastive loss on all pairs of each batch; held-out pair distances before and after."""
    split = mnist5k()
    torch.manual_seed(seed)
    model = MetricModel(SIAMESE_CONFIG)
    bins = np.linspace(0, 2, 41)

    def histograms() -> dict:
        same, different = evaluation.pair_distances(
            evaluation.embed(model, split.validation_images), split.validation_labels
        )
        return {
            "same": np.histogram(same, bins)[0].tolist(),
            "different": np.histogram(different, bins)[0].tolist(),
            "same_mean": float(same.mean()),
            "different_mean": float(different.mean()),
        }

    before = histograms()
    recipe = scaled(SIAMESE_RECIPE, factor)
    images, labels = evaluation.pixels(split.train_images), torch.from_numpy(split.train_labels)
    timing = fit(model, supervised_batches(images, labels, recipe.batch_size, seed), recipe, "siamese")
    model.eval()
    held_out = evaluation.embed(model, split.validation_images)
    return model, {
        "config": asdict(SIAMESE_CONFIG),
        **timing,
        "bins": bins.tolist(),
        "before": before,
        "after": histograms(),
        "verification": evaluation.verification(held_out, split.validation_labels),
    }


PARTS = tuple(folder_name(loss, size) for size in EMBEDDING_SIZES for loss in MARGIN_LOSSES[size]) + (
    "simclr",
    "siamese",
)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument(
        "--steps-factor", type=float, default=1.0, help="scale every training's steps (0.01: smoke run)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=PARTS, help="retrain these parts only and update their entries in the report"
    )
    arguments = parser.parse_args(argv)
    output, factor, parts = arguments.output, arguments.steps_factor, arguments.only or PARTS
    # one thread: on this shared 2-core machine a training step ran 5x slower on two threads than on one
    torch.set_num_threads(1)
    wall, cpu = time.perf_counter(), time.process_time()
    report_path = output / REPORT_FILE
    partial = arguments.only and report_path.exists()
    report: dict = json.loads(report_path.read_text()) if partial else {"margin": {}}
    report["threads"] = torch.get_num_threads()
    for embedding_size in EMBEDDING_SIZES:
        for loss in MARGIN_LOSSES[embedding_size]:
            if folder_name(loss, embedding_size) not in parts:
                continue
            model, entry = train_margin_model(loss, embedding_size, factor)
            save_model(model, model.config, output / folder_name(loss, embedding_size))
            report["margin"][folder_name(loss, embedding_size)] = entry
            print(
                f"{folder_name(loss, embedding_size)}: held-out accuracy {entry['held_out_accuracy']:.3f}, "
                f"TAR@FAR1% {entry['verification']['tar_at_far']:.3f}, {entry['wall_seconds']} s"
            )
    if "simclr" in parts:
        simclr, report["simclr"] = train_simclr(factor)
        save_model(simclr, simclr.config, output / "simclr")
        scratch = {per_class: train_from_scratch(per_class, factor) for per_class in LABELS_PER_CLASS}
        report["scratch"] = {str(per_class or "all"): entry for per_class, (_, entry) in scratch.items()}
        report["probe"] = probe_table(simclr, scratch)
        print(json.dumps(report["probe"], indent=1))
    if "siamese" in parts:
        siamese, report["siamese"] = train_siamese(factor)
        save_model(siamese, siamese.config, output / "siamese")
    if not arguments.only:
        report["total_wall_seconds"] = round(time.perf_counter() - wall, 1)
        report["total_cpu_seconds"] = round(time.process_time() - cpu, 1)
    output.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"{time.perf_counter() - wall:.1f} s wall, {time.process_time() - cpu:.1f} s CPU")
    return report


if __name__ == "__main__":
    main()
