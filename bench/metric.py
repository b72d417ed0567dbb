"""Metric learning: our losses against pytorch-metric-learning (PML), and what the shipped networks learnt.

- parity: the largest difference in loss value and in the gradients (embeddings and class weights) between our
  module and `to_pml(ours)` on random float64 inputs, every loss at two or more settings;
- speed: forward + backward of each loss, ours and PML on the same float32 inputs in this process, alternating,
  median of the runs, as a ratio;
- quality: held-out accuracy and verification (ROC AUC, TAR at FAR 1%) of the 2-D and 3-D margin-loss networks,
  the SimCLR probe table, the siamese network's pair distances, from checkpoints/metric/training_report.json and
  measured again on the shipped checkpoints; the pictures.
"""

from __future__ import annotations

import math
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from apps.metric import evaluation, plots
from apps.metric import model as ours
from apps.metric import side_by_side as sbs
from apps.metric.reference import to_pml
from apps.metric.train import EMBEDDING_SIZES, MARGIN_LOSSES, folder_name
from shared.data import mnist5k

RESULTS = Path(__file__).resolve().parent / "results"
BATCH, EMBEDDING, CLASSES = 256, 64, 100  # a face-recognition-like setting for the timings
REPEATS = 30
THREADS = 1
SETTINGS = {
    "Softmax (PML L-Softmax m=1)": [lambda: ours.SoftmaxLoss(CLASSES, EMBEDDING)],
    "L-Softmax": [lambda m=m: ours.LargeMarginSoftmaxLoss(CLASSES, EMBEDDING, m) for m in (2, 4)],
    "SphereFace": [lambda m=m, s=s: ours.SphereFaceLoss(CLASSES, EMBEDDING, m, s) for m, s in ((2, 1.0), (4, 8.0))],
    "CosFace": [lambda m=m, s=s: ours.CosFaceLoss(CLASSES, EMBEDDING, m, s) for m, s in ((0.35, 64.0), (0.2, 16.0))],
    "ArcFace": [lambda m=m, s=s: ours.ArcFaceLoss(CLASSES, EMBEDDING, m, s) for m, s in ((0.5, 64.0), (0.2, 16.0))],
    "InfoNCE / NT-Xent": [lambda t=t: ours.InfoNCELoss(t) for t in (0.07, 0.5)],
    "Contrastive (PML form)": [
        lambda m=m, p=p: ours.ContrastiveLoss(m, p, squared=False) for m, p in ((1.0, 0.0), (0.8, 0.2))
    ],
}


def describe(loss: torch.nn.Module) -> str:
    fields = [
        f"{name}={getattr(loss, name):g}"
        for name in ("margin", "positive_margin", "scale_factor", "temperature")
        if hasattr(loss, name)
    ]
    return ", ".join(fields).replace("scale_factor", "scale") or "-"


def batch_for(loss: torch.nn.Module, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(BATCH, EMBEDDING, generator=generator, dtype=dtype)
    if isinstance(loss, ours.InfoNCELoss):  # SimCLR's batches: two views of each image
        return embeddings, torch.arange(BATCH // 2).repeat(2)
    classes = 16 if isinstance(loss, ours.ContrastiveLoss) else CLASSES
    return embeddings, torch.randint(0, classes, (BATCH,), generator=generator)


def gradients(loss, weight, embeddings, labels):
    embeddings = embeddings.clone().requires_grad_(True)
    value = loss(embeddings, labels)
    inputs = [embeddings] + ([weight] if weight is not None else [])
    return value.detach(), torch.autograd.grad(value, inputs)


def parity(make) -> tuple[float, float]:
    """(|value difference|, largest gradient difference) in float64."""
    torch.manual_seed(0)
    mine = make().double()
    theirs = to_pml(mine).double()
    embeddings, labels = batch_for(mine, torch.float64)
    our_value, our_grads = gradients(mine, getattr(mine, "weight", None), embeddings, labels)
    pml_value, pml_grads = gradients(theirs, getattr(theirs, "W", None), embeddings, labels)
    gap = (our_grads[0] - pml_grads[0]).abs().max().item()
    if len(our_grads) > 1:
        gap = max(gap, (our_grads[1] - pml_grads[1].T).abs().max().item())
    return abs(our_value - pml_value).item(), gap


def timed(loss, embeddings, labels) -> float:
    embeddings = embeddings.clone().requires_grad_(True)
    start = time.perf_counter()
    loss(embeddings, labels).backward()
    return time.perf_counter() - start


def speed(make) -> tuple[float, float]:
    """Median seconds of forward + backward, ours and PML alternating on the same float32 inputs."""
    torch.manual_seed(0)
    mine = make()
    theirs = to_pml(mine)
    embeddings, labels = batch_for(mine, torch.float32)
    for _ in range(3):  # warm-up
        timed(mine, embeddings, labels), timed(theirs, embeddings, labels)
    our_times, pml_times = [], []
    for _ in range(REPEATS):
        our_times.append(timed(mine, embeddings, labels))
        pml_times.append(timed(theirs, embeddings, labels))
    return statistics.median(our_times), statistics.median(pml_times)


def loss_rows() -> tuple[list[list], list[float], list[float]]:
    rows, errors, ratios = [], [], []
    for name, makers in SETTINGS.items():
        for make in makers:
            value_gap, gradient_gap = parity(make)
            our_seconds, pml_seconds = speed(make)
            errors.append(max(value_gap, gradient_gap))
            ratios.append(pml_seconds / our_seconds)
            rows.append(
                [
                    name,
                    describe(make()),
                    f"{value_gap:.1e}",
                    f"{gradient_gap:.1e}",
                    f"{our_seconds * 1000:.2f} ms",
                    f"{pml_seconds * 1000:.2f} ms",
                    f"{pml_seconds / our_seconds:.2f}x",
                ]
            )
    return rows, errors, ratios


def margin_rows(report: dict) -> tuple[list[list], list]:
    split = mnist5k()
    rows, panels = [], []
    for embedding_size in EMBEDDING_SIZES:
        for loss, (margin, scale) in MARGIN_LOSSES[embedding_size].items():
            folder = folder_name(loss, embedding_size)
            network = sbs.shipped_model(folder)
            held_out = evaluation.embed(network, split.validation_images)
            accuracy = evaluation.held_out_accuracy(network, split.validation_images, split.validation_labels)
            verification = evaluation.verification(held_out, split.validation_labels)
            entry = report["margin"][folder]
            rows.append(
                [
                    loss,
                    f"{embedding_size}-D",
                    "-" if loss == "softmax" else f"m={margin}, s={scale}",
                    f"{accuracy:.1%}",
                    f"{verification['roc_auc']:.4f}",
                    f"{verification['tar_at_far']:.1%}",
                    f"{entry['wall_seconds']:.0f} s / {entry['cpu_seconds']:.0f} s",
                ]
            )
            weights = network.loss.weight.detach().numpy()
            panels.append((held_out, split.validation_labels, weights, f"{loss} {embedding_size}-D: {accuracy:.1%}"))
    return rows, panels


def probe_rows(report: dict) -> list[list]:
    return [
        [str(row["labels_per_class"])] + [f"{row[key]:.1%}" for key in list(sbs.PROBE_COLUMNS)[1:]]
        for row in report["probe"]
    ]


def run() -> dict:
    torch.set_num_threads(THREADS)
    report = sbs.report()
    rows, errors, ratios = loss_rows()
    accuracy_rows, panels = margin_rows(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    pictures = {
        "metric_embeddings.png": plots.embedding_grid(panels),
        "metric_siamese_distances.png": plots.distance_histograms(report["siamese"]),
        "metric_infonce_bound.png": plots.infonce_bound_curve(report["simclr"]),
    }
    for name, figure in pictures.items():
        figure.savefig(RESULTS / name, dpi=90)
    siamese = report["siamese"]
    simclr = report["simclr"]
    ten = report["probe"][0]
    by_loss = {row[0] + row[1]: row for row in accuracy_rows}
    training = [
        [
            "all of `python -m apps.metric.train`",
            f"{report['total_wall_seconds'] / 60:.1f} min",
            f"{report['total_cpu_seconds'] / 60:.1f} min",
        ]
    ]
    training += [
        [name, f"{entry['wall_seconds']:.0f} s", f"{entry['cpu_seconds']:.0f} s"]
        for name, entry in (
            [(f"margin network {key}", value) for key, value in report["margin"].items()]
            + [("SimCLR pre-training", simclr)]
            + [(f"from scratch, {key} labels per class", value) for key, value in report["scratch"].items()]
            + [("siamese (contrastive)", siamese)]
        )
    ]
    return {
        "topic": "metric",
        "title": "Metric learning (contrastive, InfoNCE/SimCLR, L-Softmax, SphereFace, CosFace, ArcFace)",
        "summary": [
            {
                "model": "7 losses (contrastive, NT-Xent, softmax, L-Softmax, SphereFace, CosFace, ArcFace); CNN on MNIST-5k",
                "reference": "pytorch-metric-learning 2.9.0 losses, same class weights",
                "parity": f"value and gradients within {max(errors):.0e} (float64, {len(errors)} settings)",
                "speed": f"{min(ratios):.2f}-{max(ratios):.2f}x PML's speed (forward + backward)",
                "quality": (
                    f"3-D held-out accuracy ArcFace {by_loss['arcface3-D'][3]}, CosFace {by_loss['cosface3-D'][3]}; "
                    f"TAR@FAR1% ArcFace {by_loss['arcface3-D'][5]} vs softmax {by_loss['softmax3-D'][5]}; SimCLR probe "
                    f"with 10 labels/class {ten['simclr_linear_probe']:.1%} vs {ten['scratch_classifier']:.1%} from scratch"
                ),
            }
        ],
        "tables": [
            {
                "title": (
                    f"Ours vs pytorch-metric-learning: largest |difference| in float64 (value; gradients w.r.t. embeddings "
                    f"and class weights), and forward + backward time on float32 inputs ({BATCH} x {EMBEDDING} embeddings, "
                    f"{CLASSES} classes, {THREADS} thread, median of {REPEATS} alternating runs)"
                ),
                "columns": ["loss", "setting", "value diff", "gradient diff", "ours", "PML", "ours speed / PML"],
                "rows": rows,
            },
            {
                "title": (
                    "Margin losses on MNIST-5k: held-out accuracy (500 digits) and verification on all 124,750 held-out "
                    "pairs by cosine similarity (same digit = genuine), measured on the shipped checkpoints"
                ),
                "columns": [
                    "loss",
                    "embedding",
                    "margin, scale",
                    "accuracy",
                    "ROC AUC",
                    "TAR at FAR 1%",
                    "training wall / CPU",
                ],
                "rows": accuracy_rows,
            },
            {
                "title": (
                    "SimCLR (NT-Xent pre-training without labels) vs the same CNN from scratch vs raw pixels: held-out "
                    "accuracy with few labels per class"
                ),
                "columns": list(sbs.PROBE_COLUMNS.values()),
                "rows": probe_rows(report),
            },
            {
                "title": (
                    "Siamese network, Hadsell et al.'s contrastive loss (margin 1 on unit embeddings): held-out pair "
                    "distances"
                ),
                "columns": ["", "same-digit mean distance", "different-digit mean distance"],
                "rows": [
                    [moment, f"{siamese[moment]['same_mean']:.3f}", f"{siamese[moment]['different_mean']:.3f}"]
                    for moment in ("before", "after")
                ]
                + [
                    [
                        "verification after",
                        f"ROC AUC {siamese['verification']['roc_auc']:.4f}",
                        f"TAR@FAR1% {siamese['verification']['tar_at_far']:.1%}",
                    ]
                ],
            },
            {
                "title": (
                    f"Training time (one thread, on a 2-core machine shared with other jobs, so wall > CPU); SimCLR's final "
                    f"InfoNCE bound {np.mean(simclr['infonce_bound'][-20:]):.2f} of log N = "
                    f"{math.log(simclr['candidates']):.2f} nats"
                ),
                "columns": ["what", "wall", "CPU"],
                "rows": training,
            },
        ],
        "images": [
            {
                "caption": (
                    "Held-out digits in the 2-D (top) and 3-D (bottom) embeddings of each loss, class weights as rays "
                    "/ stars"
                ),
                "path": "bench/results/metric_embeddings.png",
            },
            {
                "caption": "Siamese contrastive loss: distances of same- and different-digit pairs before and after training",
                "path": "bench/results/metric_siamese_distances.png",
            },
            {
                "caption": "SimCLR: the InfoNCE lower bound on the mutual information between two views along training",
                "path": "bench/results/metric_infonce_bound.png",
            },
        ],
    }
