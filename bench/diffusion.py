"""Diffusion, ours vs diffusers, on the shipped MNIST UNet (checkpoints/diffusion/):

- quality: the shared digit metric (shared/image_metric.py: Fréchet distance on a small MNIST
  classifier's features, its confidence and class coverage) on DDIM-20 and DDIM-50 samples (1,000 each)
  and DDPM-1000 samples (a smaller stated count: 1,000 DDPM-1000 samples are a million network calls,
  over an hour on this CPU). The first images of every sampler start from the same noise, so the rows
  are also compared at equal counts (the FD grows as the count shrinks);
- speed: seconds per image of our sampler and of diffusers' DDIMPipeline / DDPMPipeline on the same
  weights, steps, noise and generator (median of 3 runs, both in this process), with the largest pixel
  difference between the two outputs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from apps.diffusion import side_by_side as sbs
from apps.diffusion.model import sample
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
CHUNK = 200  # images per sampling batch; chunk i starts from the noise of seed SEED + i
QUALITY_RUNS = (("DDIM", 20, 1000), ("DDIM", 50, 1000), ("DDPM", 1000, 200))
SPEED_RUNS = (("DDIM", 50, 1), ("DDIM", 50, 16), ("DDIM", 20, 64), ("DDPM", 1000, 1))
REPEATS = 3


def generate(model: sbs.DiffusionModel, sampler: str, steps: int, count: int) -> tuple[torch.Tensor, float]:
    """`count` samples in chunks of CHUNK, each chunk seeded like the others' chunks; (images, seconds)."""
    config, images, start = model.unet.config, [], time.perf_counter()
    for index, first in enumerate(range(0, count, CHUNK)):
        generator = torch.Generator().manual_seed(SEED + index)
        noise = torch.randn(
            min(CHUNK, count - first), config.in_channels, config.sample_size, config.sample_size, generator=generator
        )
        images.append(sample(model.unet, model.schedule, noise, sampler.lower(), steps, 0.0, generator))
    return torch.cat(images), time.perf_counter() - start


def quality_row(name: str, report, seconds_per_image: float | None) -> list:
    row = report.as_row()
    time_per_image = "-" if seconds_per_image is None else f"{seconds_per_image * 1000:.0f} ms"
    return [
        name,
        row["samples"],
        row["Fréchet distance"],
        row["real digits' FD"],
        row["mean confidence"],
        row["real digits' confidence"],
        f"{report.confident_fraction:.0%}",
        row["classes present"],
        time_per_image,
    ]


def timed_pair(model: sbs.DiffusionModel, sampler: str, steps: int, count: int) -> tuple[float, float, float]:
    """Median seconds of ours and of the diffusers pipeline for one request, and the max pixel difference."""
    request = sbs.SamplingRequest(sampler, steps, 0.0, SEED, count)
    ours_seconds, reference_seconds, difference = [], [], 0.0
    for _ in range(REPEATS):
        ours, _ = sbs.run_ours(model, request)
        reference = sbs.run_reference(model, request)
        ours_seconds.append(ours.seconds)
        reference_seconds.append(reference.seconds)
        difference = max(difference, (ours.images - reference.images).abs().max().item())
    return statistics.median(ours_seconds), statistics.median(reference_seconds), difference


def run() -> dict:
    torch.manual_seed(0)
    model = sbs.diffusion_model(sbs.SHIPPED)
    for pipeline in sbs.reference_pipelines(sbs.SHIPPED).values():
        pipeline.set_progress_bar_config(disable=True)
    samples, quality_rows, reports = {}, [], {}
    for sampler, steps, count in QUALITY_RUNS:
        name = f"{sampler}-{steps}"
        images, seconds = generate(model, sampler, steps, count)
        samples[name] = images
        reports[name] = image_quality(images)
        quality_rows.append(quality_row(name, reports[name], seconds / count))
    smallest = min(count for _, _, count in QUALITY_RUNS)
    for name, images in samples.items():
        if len(images) > smallest:  # the same starting noise as the smaller run, for an equal-count comparison
            quality_rows.append(quality_row(f"{name}, first {smallest}", image_quality(images[:smallest]), None))

    RESULTS.mkdir(parents=True, exist_ok=True)
    grid_path, comparison_path = RESULTS / "diffusion_samples.png", RESULTS / "diffusion_same_noise.png"
    save_grid(samples["DDIM-50"][:64], grid_path, columns=16, scale=2)
    save_grid(torch.cat([images[:16] for images in samples.values()]), comparison_path, columns=16, scale=2)

    speed_rows, differences, ratios = [], [], {}
    for sampler, steps, count in SPEED_RUNS:
        ours_seconds, reference_seconds, difference = timed_pair(model, sampler, steps, count)
        differences.append(difference)
        ratios[(sampler, steps, count)] = reference_seconds / ours_seconds
        speed_rows.append(
            [
                f"{sampler}-{steps}",
                count,
                f"{ours_seconds / count * 1000:.1f} ms",
                f"{reference_seconds / count * 1000:.1f} ms",
                f"{reference_seconds / ours_seconds:.2f}x",
                f"{difference:.1e}",
            ]
        )

    ddim50 = reports["DDIM-50"]
    return {
        "topic": "diffusion",
        "title": "Diffusion (DDPM / DDIM)",
        "summary": [
            {
                "model": "UNet + DDPM and DDIM samplers (ours)",
                "reference": "diffusers UNet2DModel with DDPMPipeline / DDIMPipeline",
                "parity": (
                    f"max pixel difference {max(differences):.1e} over {len(SPEED_RUNS)} runs (same weights, noise "
                    "and generator)"
                ),
                "speed": f"{min(ratios.values()):.2f}-{max(ratios.values()):.2f}x diffusers' time per image",
                "quality": (
                    f"DDIM-50: FD {ddim50.frechet_distance:.1f} (real digits {ddim50.real_frechet_distance:.1f}), "
                    f"confidence {ddim50.mean_confidence:.2f} (real {ddim50.real_mean_confidence:.2f}), "
                    f"{ddim50.classes_present}/10 digits"
                ),
            }
        ],
        "tables": [
            {
                "title": "Sample quality of the shipped checkpoint by the shared digit metric (a small MNIST classifier "
                "stands in for Inception, whose weights need a download); "
                '"real digits\' FD" is what the same number of real training digits score against the held-out ones',
                "columns": [
                    "sampler",
                    "samples",
                    "FD",
                    "real digits' FD",
                    "mean confidence",
                    "real digits' confidence",
                    "confident (> 0.9)",
                    "digits present",
                    "time per image (ours)",
                ],
                "rows": quality_rows,
            },
            {
                "title": (
                    "Time per image, ours vs the diffusers pipeline, same weights, steps and noise (median of "
                    f"{REPEATS}; ours keeps its weights channels-last)"
                ),
                "columns": [
                    "sampler",
                    "images per batch",
                    "ours",
                    "diffusers",
                    "ours speed / diffusers",
                    "max pixel difference",
                ],
                "rows": speed_rows,
            },
        ],
        "images": [
            {"caption": "64 DDIM-50 samples of the shipped checkpoint", "path": f"bench/results/{grid_path.name}"},
            {
                "caption": "The same 16 starting noises through DDIM-20, DDIM-50 and DDPM-1000 (one row each)",
                "path": f"bench/results/{comparison_path.name}",
            },
        ],
    }
