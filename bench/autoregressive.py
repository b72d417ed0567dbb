"""Autoregressive models on the shipped binarised MNIST-5k checkpoints (checkpoints/autoregressive/):

- likelihood: exact held-out negative log-likelihood of NADE, MADE and PixelCNN on the 500 held-out
  digits (nats per image and bits per pixel), recomputed here, beside the papers' numbers on binarised
  MNIST and pytorch-generative's reproductions;
- sampling time per image: NADE's running sum (784 steps of O(H)), MADE's 784 network passes, PixelCNN's
  784 passes on the strip of rows each pixel can see and on the whole image, against one pass of the
  shipped Glow and NICE flows (apps/flow) for the same number of digits;
- quality: the shared digit metric (shared/image_metric.py) on samples of each model, beside the same
  number of binarised real digits (the classifier was trained on grey digits, so binarisation alone costs
  something) and a grid of samples in bench/results/autoregressive_samples.png.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from apps.autoregressive import side_by_side as sbs
from apps.autoregressive.model import ARCHITECTURES
from apps.autoregressive.train import CHECKPOINT_DIR, REPORT_FILE, binarised_digits, mean_nll
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
QUALITY_SAMPLES = 200
SPEED_IMAGES = 16
REPEATS = 3


def seconds_of(run, repeats: int = REPEATS) -> float:
    """Median wall time of `run()` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def likelihood_rows(report: dict, held_out: torch.Tensor) -> tuple[list[list], dict[str, float]]:
    rows, measured = [], {}
    for key, architecture in ARCHITECTURES.items():
        entry = report[key]
        nats = mean_nll(sbs.shipped_model(architecture.name), held_out)
        measured[architecture.name] = nats
        rows.append(
            [
                architecture.name,
                f"{entry['parameters']:,}",
                f"{entry['recipe']['steps']} x {entry['recipe']['batch_size']}",
                f"{entry['training_wall_minutes']:.1f} / {entry['training_cpu_minutes']:.1f}",
                f"{entry['train_nll']:.1f}",
                f"{nats:.2f}",
                f"{nats / (784 * 0.6931471805599453):.4f}",
                f"{architecture.published_nats} ({architecture.paper})",
                f"{architecture.reproduction_nats}",
            ]
        )
    return rows, measured


@torch.no_grad()
def sampling_rows() -> tuple[list[list], dict[str, float]]:
    """Seconds per image for SPEED_IMAGES digits drawn together, median of REPEATS."""
    rows, per_image = [], {}
    generator = torch.Generator()

    def add(name: str, calls: str, seconds: float) -> None:
        per_image[name] = seconds / SPEED_IMAGES
        rows.append([name, calls, f"{seconds / SPEED_IMAGES * 1000:.1f} ms"])

    for name in sbs.MODELS:
        model = sbs.shipped_model(name)
        calls = {
            "NADE": "784 running-sum steps, O(H) each",
            "MADE": "784 passes",
            "PixelCNN": "784 passes on the rows each pixel sees",
        }[name]
        add(name, calls, seconds_of(lambda: model.sample(SPEED_IMAGES, generator.manual_seed(SEED))))
    pixelcnn = sbs.shipped_model("PixelCNN")
    images = torch.zeros(SPEED_IMAGES, 1, 28, 28)

    def whole_image_passes() -> None:  # the generic sampler's cost: every pixel re-runs the whole image
        for index in range(784):
            pixels = images.view(SPEED_IMAGES, -1)
            pixels[:, index] = torch.bernoulli(torch.sigmoid(pixelcnn.conditional_logits(images).flatten(1)[:, index]))

    add("PixelCNN, whole-image passes", "784 passes on 28 x 28", seconds_of(whole_image_passes, repeats=1))
    from apps.flow import side_by_side as flows
    from apps.flow.model import sample_pixels

    for label in ("NICE", "Glow"):
        flow = flows.flow_model(label)
        seconds = seconds_of(lambda: sample_pixels(flow, SPEED_IMAGES, 1.0, generator.manual_seed(SEED)))
        add(f"{label} (apps/flow, for comparison)", "1 inverse pass", seconds)
    return rows, per_image


def quality_rows() -> tuple[list[list], dict]:
    rows, reports, grids = [], {}, []
    for name in sbs.MODELS:
        model = sbs.shipped_model(name)
        samples = model.sample(QUALITY_SAMPLES, torch.Generator().manual_seed(SEED))
        images = samples.reshape(-1, 1, 28, 28).float()
        grids.append(images[:16])
        reports[name] = image_quality(images)
    real = binarised_digits()["train"][torch.randperm(4500, generator=torch.Generator().manual_seed(SEED))]
    reports["binarised training digits"] = image_quality(real[:QUALITY_SAMPLES].reshape(-1, 1, 28, 28))
    grids.append(real[:16].reshape(-1, 1, 28, 28))
    for name, report in reports.items():
        row = report.as_row()
        rows.append(
            [
                name,
                row["samples"],
                row["Fréchet distance"],
                row["real digits' FD"],
                row["mean confidence"],
                f"{report.confident_fraction:.0%}",
                row["classes present"],
            ]
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(grids), RESULTS / "autoregressive_samples.png", columns=16, scale=2)
    return rows, reports


def run() -> dict:
    torch.manual_seed(0)
    report = json.loads((CHECKPOINT_DIR / REPORT_FILE).read_text())
    nll_rows, measured = likelihood_rows(report, binarised_digits()["held_out"])
    speed_rows, per_image = sampling_rows()
    rows, reports = quality_rows()
    best = min(measured, key=measured.get)
    return {
        "topic": "autoregressive",
        "title": "Autoregressive models (NADE, MADE, PixelCNN)",
        "summary": [
            {
                "model": "NADE, MADE, PixelCNN (ours, exact likelihoods)",
                "reference": (
                    "no library twin: the mathematics (2^10 probabilities sum to 1, zero Jacobian on later pixels, "
                    "sample frequencies; tests) and the papers' NLLs"
                ),
                "parity": "sum of the 1,024 probabilities of 10 pixels = 1 within 1e-5 for all three (tests)",
                "speed": (
                    "sampling "
                    + ", ".join(f"{name} {per_image[name] * 1000:.0f} ms" for name in sbs.MODELS)
                    + f" per digit; a Glow flow {per_image['Glow (apps/flow, for comparison)'] * 1000:.1f} ms"
                ),
                "quality": (
                    "held-out NLL "
                    + ", ".join(f"{name} {value:.1f}" for name, value in measured.items())
                    + f" nats (best {best}; papers 88.9 / 88.0 / 81.3 on full binarised MNIST); "
                    + f"samples' FD {reports[best].frechet_distance:.0f}"
                ),
            }
        ],
        "tables": [
            {
                "title": (
                    "Exact held-out NLL on the 500 held-out MNIST-5k digits, binarised once (Bernoulli(grey / 255), "
                    "fixed seed); trained on 4,000 digits, steps chosen on 500 validation digits. Papers: 10,000 "
                    "test digits after training on 50,000"
                ),
                "columns": [
                    "model",
                    "parameters",
                    "steps x batch",
                    "training wall / CPU minutes",
                    "train NLL",
                    "held-out NLL (nats/image)",
                    "bits/dim",
                    "paper (binarised MNIST)",
                    "pytorch-generative",
                ],
                "rows": nll_rows,
            },
            {
                "title": (
                    f"Sampling time per digit ({SPEED_IMAGES} digits drawn together, median of {REPEATS}): one pixel "
                    "per network call against a flow's single pass"
                ),
                "columns": ["sampler", "network calls per batch", "time per digit"],
                "rows": speed_rows,
            },
            {
                "title": (
                    f"Samples scored by the shared digit metric, {QUALITY_SAMPLES} per row; the classifier was "
                    "trained on grey digits, so the binarised real digits in the last row are the ceiling here"
                ),
                "columns": [
                    "samples of",
                    "samples",
                    "FD",
                    "real digits' FD",
                    "mean confidence",
                    "confident (> 0.9)",
                    "digits present",
                ],
                "rows": rows,
            },
        ],
        "images": [
            {
                "caption": "16 samples each of NADE, MADE and PixelCNN (rows), then 16 binarised training digits",
                "path": "bench/results/autoregressive_samples.png",
            }
        ],
    }
