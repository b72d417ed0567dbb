"""Flows on the shipped MNIST-5k checkpoints (checkpoints/flow/):

- likelihood: held-out bits/dim of NICE, RealNVP and Glow on the 500 held-out digits (uniform
  dequantization, one fixed draw), beside the figure pytorch-generative reports for NICE on full MNIST;
- quality: the shared digit metric (shared/image_metric.py) on 1,000 rectified-flow samples at 1, 2, 4, 8
  and 50 Euler steps, before and after reflow, all from the same noise;
- parity and speed: our Euler sampler against diffusers' FlowMatchEulerDiscreteScheduler loop on the same
  velocity model and noise (median of 3 runs, both in this process), with the largest pixel difference.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from apps.flow import side_by_side as sbs
from apps.flow.model import sample_ode, sample_pixels
from apps.flow.reference import diffusers_euler_loop
from apps.flow.train import CHECKPOINT_DIR, QUALITY_STEPS, REPORT_FILE, held_out_bits_per_dim
from shared.data import mnist5k
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
QUALITY_SAMPLES = 1000
SPEED_RUNS = ((1, 16), (8, 16), (50, 16), (8, 64))  # (Euler steps, images)
REPEATS = 3


def bits_per_dim_rows(report: dict) -> tuple[list[list], dict[str, float]]:
    validation = mnist5k().validation_images
    rows, measured = [], {}
    for label, folder in sbs.FLOWS.items():
        bits = held_out_bits_per_dim(sbs.flow_model(label), validation)
        measured[label] = bits
        entry = report[folder]
        rows.append(
            [
                label,
                f"{entry['parameters']:,}",
                entry["recipe"]["steps"],
                f"{entry['training_minutes']:.1f}",
                f"{entry['train_bits_per_dim']:.3f}",
                f"{bits:.3f}",
                f"{sbs.REFERENCE_BITS_PER_DIM} (NICE, full MNIST)" if label == "NICE" else "-",
            ]
        )
    return rows, measured


def quality_rows() -> tuple[list[list], dict]:
    noise = torch.randn(QUALITY_SAMPLES, 1, 28, 28, generator=torch.Generator().manual_seed(SEED))
    rows, reports, grids = [], {}, []
    for label, folder in sbs.RECTIFIED.items():
        velocity = sbs.shipped_model(folder)
        for steps in QUALITY_STEPS:
            start = time.perf_counter()
            images = torch.cat([sample_ode(velocity, chunk, steps) for chunk in noise.split(250)])
            seconds = time.perf_counter() - start
            images = sbs.to_unit(images)
            report = image_quality(images)
            reports[(label, steps)] = report
            grids.append(images[:16])
            row = report.as_row()
            rows.append(
                [
                    label,
                    steps,
                    row["samples"],
                    row["Fréchet distance"],
                    row["real digits' FD"],
                    row["mean confidence"],
                    row["real digits' confidence"],
                    f"{report.confident_fraction:.0%}",
                    row["classes present"],
                    f"{seconds / QUALITY_SAMPLES * 1000:.1f} ms",
                ]
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(grids), RESULTS / "flow_rectified_steps.png", columns=16, scale=2)
    return rows, reports


def timed_pair(folder: str, steps: int, count: int) -> tuple[float, float, float]:
    velocity = sbs.shipped_model(folder)
    noise = torch.randn(count, 1, 28, 28, generator=torch.Generator().manual_seed(SEED))
    ours_seconds, reference_seconds, difference = [], [], 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        ours = sample_ode(velocity, noise, steps)
        ours_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = diffusers_euler_loop(velocity, noise, steps)
        reference_seconds.append(time.perf_counter() - start)
        difference = max(difference, (sbs.to_unit(ours) - sbs.to_unit(reference)).abs().max().item())
    return statistics.median(ours_seconds), statistics.median(reference_seconds), difference


def run() -> dict:
    torch.manual_seed(0)
    report = json.loads((CHECKPOINT_DIR / REPORT_FILE).read_text())
    likelihood_rows, measured = bits_per_dim_rows(report)
    samples = [
        sample_pixels(sbs.flow_model(label), 16, temperature, torch.Generator().manual_seed(SEED))
        for label in sbs.FLOWS
        for temperature in (1.0, 0.7)
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    save_grid(torch.cat(samples), RESULTS / "flow_nf_samples.png", columns=16, scale=2)
    rows, reports = quality_rows()

    speed_rows, differences, ratios = [], [], []
    for folder_label, folder in sbs.RECTIFIED.items():
        for steps, count in SPEED_RUNS:
            ours, reference, difference = timed_pair(folder, steps, count)
            differences.append(difference)
            ratios.append(reference / ours)
            speed_rows.append(
                [
                    folder_label,
                    steps,
                    count,
                    f"{ours / count * 1000:.2f} ms",
                    f"{reference / count * 1000:.2f} ms",
                    f"{reference / ours:.2f}x",
                    f"{difference:.1e}",
                ]
            )

    first, second = list(sbs.RECTIFIED)
    one_step = (reports[(first, 1)], reports[(second, 1)])
    best = min(measured.items(), key=lambda item: item[1])
    return {
        "topic": "flow",
        "title": "Flows (NICE, RealNVP, Glow, rectified flow)",
        "summary": [
            {
                "model": "rectified flow, Euler sampler (ours); NICE / RealNVP / Glow",
                "reference": (
                    "diffusers FlowMatchEulerDiscreteScheduler loop; normalizing flows have no HF twin (exact "
                    "inverse and autograd Jacobian tests)"
                ),
                "parity": (
                    f"max pixel difference {max(differences):.1e} over {len(speed_rows)} runs (same velocity model "
                    "and noise)"
                ),
                "speed": f"{min(ratios):.2f}-{max(ratios):.2f}x the diffusers loop's speed",
                "quality": "held-out bits/dim: "
                + ", ".join(f"{label} {value:.2f}" for label, value in measured.items())
                + (
                    f" (best {best[0]}); 1-step FD {one_step[0].frechet_distance:.0f} -> "
                    f"{one_step[1].frechet_distance:.0f} after reflow"
                ),
            }
        ],
        "tables": [
            {
                "title": (
                    "Held-out bits/dim on the 500 held-out MNIST-5k digits (uniform dequantization, lower is "
                    "better), trained on 4,500 digits for a few CPU minutes each"
                ),
                "columns": [
                    "flow",
                    "parameters",
                    "steps (batch 64)",
                    "training minutes",
                    "train bits/dim",
                    "held-out bits/dim",
                    "published reference",
                ],
                "rows": likelihood_rows,
            },
            {
                "title": f"Rectified-flow sample quality by the shared digit metric, {QUALITY_SAMPLES} samples per row "
                "from the same noise, Euler steps; "
                '"real digits\' FD" is what as many real training digits score against the held-out ones',
                "columns": [
                    "model",
                    "Euler steps",
                    "samples",
                    "FD",
                    "real digits' FD",
                    "mean confidence",
                    "real digits' confidence",
                    "confident (> 0.9)",
                    "digits present",
                    "time per image (ours)",
                ],
                "rows": rows,
            },
            {
                "title": (
                    "Time per image, our Euler loop vs diffusers' FlowMatchEulerDiscreteScheduler loop, same "
                    f"velocity model, times and noise (median of {REPEATS})"
                ),
                "columns": [
                    "model",
                    "Euler steps",
                    "images",
                    "ours",
                    "diffusers",
                    "ours speed / diffusers",
                    "max pixel difference",
                ],
                "rows": speed_rows,
            },
        ],
        "images": [
            {
                "caption": "NICE, RealNVP and Glow samples (two rows each: temperature 1.0, then 0.7)",
                "path": "bench/results/flow_nf_samples.png",
            },
            {
                "caption": (
                    "Rectified flow from the same 16 noises at 1, 2, 4, 8 and 50 Euler steps (rows), before reflow "
                    "(top five rows) and after"
                ),
                "path": "bench/results/flow_rectified_steps.png",
            },
        ],
    }
