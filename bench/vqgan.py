"""VQ-VAE and VQGAN, ours vs diffusers' VQModel, on the shipped MNIST codecs and prior (checkpoints/vqgan/):

- reconstruction of the 500 held-out digits: MSE and PSNR (pixels in [0, 1]), codebook perplexity and
  entries used, and the shared digit metric (shared/image_metric.py: Fréchet distance on a small MNIST
  classifier's features, its confidence and class coverage) on the reconstructions;
- the same metric on 500 digits sampled from the GPT prior (several temperatures / top-k) and decoded
  by the VQGAN;
- parity: our encode -> quantize -> decode against diffusers' encode -> decode on the same weights, all
  500 held-out digits: the largest pixel difference and whether every code index is identical;
- speed: encode + decode time of ours and of diffusers (forward of each), batch 1 and 64, median of
  repeats with both in this process.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from apps.vqgan import side_by_side as sbs
from apps.vqgan.model import reconstruction_metrics, sample_codes
from apps.vqgan.reference import reference_encode_decode
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
SAMPLES = 500
PRIOR_SETTINGS = ((1.0, 0), (1.0, 32), (0.8, 0))  # (temperature, top-k; 0 = all codes)
SPEED_BATCHES = {1: 30, 64: 7}  # batch size -> repeats


def timed_forward(pair: sbs.CodecPair, x: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Median seconds of our forward and of diffusers' forward (encode, quantize, decode) on batch x."""
    ours_seconds, reference_seconds = [], []
    with torch.inference_mode():
        pair.ours(x), pair.reference(x)  # warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            pair.ours(x)
            ours_seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            pair.reference(x)
            reference_seconds.append(time.perf_counter() - started)
    return statistics.median(ours_seconds), statistics.median(reference_seconds)


def quality_cells(report) -> list:
    row = report.as_row()
    return [
        row["samples"],
        row["Fréchet distance"],
        row["real digits' FD"],
        row["mean confidence"],
        f"{report.confident_fraction:.0%}",
        row["classes present"],
    ]


def run() -> dict:
    torch.manual_seed(0)
    images, _ = sbs.held_out_digits()  # (500, 1, 28, 28) in [-1, 1]
    reconstruction_rows, speed_rows, parity, ratios, reconstructions, summaries = [], [], [], [], {}, {}
    for name in sbs.CODECS:
        pair = sbs.codec(name)
        metrics = reconstruction_metrics(pair.ours, images)
        with torch.inference_mode():
            output = pair.ours(images)
            _, reference_indices, reference = reference_encode_decode(pair.reference, images)
        reconstructions[name] = output.reconstruction.clamp(-1, 1)
        difference = (output.reconstruction - reference).abs().max().item()
        identical = torch.equal(output.quantized.indices, reference_indices)
        parity.append((name, difference, identical))
        report = image_quality(reconstructions[name], value_range=(-1, 1))
        summaries[name] = (metrics, report)
        reconstruction_rows.append(
            [
                name,
                f"{metrics['mse']:.5f}",
                f"{metrics['psnr_db']:.2f} dB",
                f"{metrics['perplexity']:.1f}",
                f"{metrics['codes_used']}/{pair.config.num_vq_embeddings}",
                *quality_cells(report),
            ]
        )
        for batch, repeats in SPEED_BATCHES.items():
            ours_seconds, reference_seconds = timed_forward(pair, images[:batch], repeats)
            ratios.append(reference_seconds / ours_seconds)
            speed_rows.append(
                [
                    name,
                    batch,
                    f"{ours_seconds * 1000:.1f} ms",
                    f"{reference_seconds * 1000:.1f} ms",
                    f"{reference_seconds / ours_seconds:.2f}x",
                ]
            )

    codec, gpt = sbs.codec("VQGAN").ours, sbs.prior()
    sample_rows, samples = [], {}
    for temperature, top_k in PRIOR_SETTINGS:
        started = time.perf_counter()
        codes = sample_codes(
            gpt, SAMPLES, codec.config.latent_size, temperature, top_k or None, torch.Generator().manual_seed(SEED)
        )
        with torch.inference_mode():
            decoded = codec.decode_indices(codes).clamp(-1, 1)
        seconds = time.perf_counter() - started
        samples[(temperature, top_k)] = decoded
        report = image_quality(decoded, value_range=(-1, 1))
        summaries[("prior", temperature, top_k)] = report
        sample_rows.append([temperature, top_k or "all", *quality_cells(report), f"{seconds / SAMPLES * 1000:.1f} ms"])

    RESULTS.mkdir(parents=True, exist_ok=True)
    reconstruction_path, samples_path = RESULTS / "vqgan_reconstructions.png", RESULTS / "vqgan_samples.png"
    shown = torch.arange(32) * (len(images) // 32)  # the held-out digits are sorted by class: every digit appears
    save_grid(
        torch.cat([images[shown], reconstructions["VQ-VAE"][shown], reconstructions["VQGAN"][shown]]),
        reconstruction_path,
        columns=16,
        value_range=(-1, 1),
        scale=2,
    )
    save_grid(samples[PRIOR_SETTINGS[0]][:64], samples_path, columns=16, value_range=(-1, 1), scale=2)

    (vqvae_metrics, vqvae_report), (vqgan_metrics, vqgan_report) = summaries["VQ-VAE"], summaries["VQGAN"]
    prior_report = summaries[("prior", *PRIOR_SETTINGS[0])]
    return {
        "topic": "vqgan",
        "title": "VQ-VAE and VQGAN",
        "summary": [
            {
                "model": "VQ-VAE and VQGAN codecs + GPT prior over codes (ours)",
                "reference": "diffusers VQModel",
                "parity": (
                    f"max pixel difference {max(d for _, d, _ in parity):.1e} on 500 held-out digits; code indices "
                    f"identical: {'yes' if all(i for _, _, i in parity) else 'NO'}"
                ),
                "speed": f"{min(ratios):.2f}-{max(ratios):.2f}x diffusers' encode + decode speed",
                "quality": (
                    f"held-out PSNR {vqvae_metrics['psnr_db']:.1f} dB (VQ-VAE) / {vqgan_metrics['psnr_db']:.1f} "
                    "dB (VQGAN); reconstruction FD "
                    f"{vqvae_report.frechet_distance:.1f} / {vqgan_report.frechet_distance:.1f}; prior samples "
                    f"FD {prior_report.frechet_distance:.1f} "
                    f"(real digits {prior_report.real_frechet_distance:.1f}), {prior_report.classes_present}/10 digits"
                ),
            }
        ],
        "tables": [
            {
                "title": (
                    "Reconstruction of the 500 held-out digits (7x7 codes from 128 entries: 343 bits instead of "
                    "6,272); FD and confidence by the shared digit metric"
                ),
                "columns": [
                    "codec",
                    "MSE",
                    "PSNR",
                    "perplexity",
                    "codes used",
                    "images",
                    "FD",
                    "real digits' FD",
                    "mean confidence",
                    "confident (> 0.9)",
                    "digits present",
                ],
                "rows": reconstruction_rows,
            },
            {
                "title": f"{SAMPLES} digits from the GPT prior, decoded by the VQGAN (same seed for each setting)",
                "columns": [
                    "temperature",
                    "top-k",
                    "images",
                    "FD",
                    "real digits' FD",
                    "mean confidence",
                    "confident (> 0.9)",
                    "digits present",
                    "time per image",
                ],
                "rows": sample_rows,
            },
            {
                "title": "Encode + decode time, ours vs diffusers VQModel, same weights (median; both in this process)",
                "columns": ["codec", "batch", "ours", "diffusers", "ours speed / diffusers"],
                "rows": speed_rows,
            },
            {
                "title": "Parity on the 500 held-out digits: ours (encode, quantize, decode) vs diffusers (encode, decode)",
                "columns": ["codec", "max pixel difference", "code indices identical"],
                "rows": [
                    [name, f"{difference:.1e}", "yes" if identical else "no"] for name, difference, identical in parity
                ],
            },
        ],
        "images": [
            {
                "caption": (
                    "32 held-out digits (two rows), their VQ-VAE reconstructions (two rows), their VQGAN "
                    "reconstructions (two rows)"
                ),
                "path": f"bench/results/{reconstruction_path.name}",
            },
            {
                "caption": "64 digits sampled from the GPT prior (temperature 1, all codes), decoded by the VQGAN",
                "path": f"bench/results/{samples_path.name}",
            },
        ],
    }
