"""VQ-VAE and VQGAN, ours vs diffusers' VQModel, on the shipped MNIST codecs and prior (checkpoints/vqgan/):

- reconstruction of the 500 held-out digits: MSE and PSNR (pixels in [0, 1]), codebook perplexity and
  entries used, and the shared digit metric (shared/image_metric.py: Fréchet distance on a small MNIST
  classifier's features, its confidence and class coverage) on the reconstructions;
- the same metric on 500 digits sampled from the GPT prior (several temperatures / top-k) and decoded
  by the VQGAN;
- what the GAN buys at the same code rate: VQ-VAE against VQGAN on reconstruction FD and on sharpness
  (the energy of the image gradient and the share of high-frequency power, beside the real digits'),
  with the pictures side by side; and whether the discriminator separated real digits from
  reconstructions while it trained (its hinge loss per step, from training_report.json, plotted);
- parity: our encode -> quantize -> decode against diffusers' encode -> decode on the same weights, all
  500 held-out digits: the largest pixel difference and whether every code index is identical;
- speed: encode + decode time of ours and of diffusers (forward of each), batch 1 and 64, median of
  repeats with both in this process.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from apps.vqgan import side_by_side as sbs
from apps.vqgan.model import gradient_energy, high_frequency_power, reconstruction_metrics, sample_codes
from apps.vqgan.reference import reference_encode_decode
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
SAMPLES = 500
PRIOR_SETTINGS = ((1.0, 0), (1.0, 32), (0.8, 0))  # (temperature, top-k; 0 = all codes)
SPEED_BATCHES = {1: 30, 64: 7}  # batch size -> repeats
SMOOTHING = 25  # steps in the moving average of the discriminator's loss


def discriminator_phases(report: dict) -> tuple[list[int], list[float], dict[str, float]]:
    """The discriminator's hinge loss per step from a training report, and its mean over three stretches:
    before the GAN term acts, the first and the last quarter of GAN training (1.0 = chance)."""
    logged = report["discriminator_hinge_per_step"]
    steps = list(range(logged["first_step"], logged["first_step"] + len(logged["values"])))
    gan_start, gan_steps = report["recipe"]["codec_steps"], report["recipe"]["gan_steps"]
    stretches = {
        "learning alone (before the GAN term)": (logged["first_step"], gan_start),
        "first quarter of GAN training": (gan_start, gan_start + gan_steps // 4),
        "last quarter of GAN training": (gan_start + gan_steps - gan_steps // 4, gan_start + gan_steps),
    }
    means = {}
    for name, (first, end) in stretches.items():
        values = [value for step, value in zip(steps, logged["values"]) if first <= step < end]
        if values:
            means[name] = statistics.fmean(values)
    return steps, logged["values"], means


def plot_discriminator(steps: list[int], values: list[float], gan_start: int, path: Path) -> None:
    from shared.ui import pyplot

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 3.6))
    axis.plot(steps, values, color="0.75", linewidth=0.6, label="per step")
    if len(values) >= SMOOTHING:
        kernel = torch.ones(SMOOTHING) / SMOOTHING
        smoothed = torch.nn.functional.conv1d(torch.tensor(values)[None, None], kernel[None, None])[0, 0]
        axis.plot(steps[SMOOTHING - 1 :], smoothed.tolist(), color="C0", label=f"mean of {SMOOTHING} steps")
    axis.axhline(1.0, color="C3", linestyle="--", linewidth=1, label="chance (1.0)")
    axis.axvline(gan_start, color="0.3", linestyle=":", linewidth=1)
    axis.text(gan_start, axis.get_ylim()[1], " GAN term on", va="top", fontsize=8)
    axis.set_xlabel("training step")
    axis.set_ylabel("discriminator hinge loss")
    axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


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
    closeup_path, discriminator_path = RESULTS / "vqgan_closeup.png", RESULTS / "vqgan_discriminator.png"

    # What the GAN buys at the same code rate: fidelity to the digit (FD) and sharpness, beside the real digits.
    sharpness = {"real digits": (gradient_energy(images), high_frequency_power(images))}
    sharpness |= {name: (gradient_energy(rec), high_frequency_power(rec)) for name, rec in reconstructions.items()}
    real_energy = sharpness["real digits"][0]
    same_rate_rows = [
        ["real digits", "-", "-", "-", f"{real_energy:.4f}", "1.00", f"{sharpness['real digits'][1]:.1%}"]
    ]
    for name in sbs.CODECS:
        metrics, report = summaries[name]
        energy, high = sharpness[name]
        same_rate_rows.append(
            [
                name,
                f"{metrics['mse']:.5f}",
                f"{metrics['psnr_db']:.2f} dB",
                f"{report.frechet_distance:.2f}",
                f"{energy:.4f}",
                f"{energy / real_energy:.2f}",
                f"{high:.1%}",
            ]
        )
    training_report = json.loads((sbs.CHECKPOINT_DIR / "training_report.json").read_text())
    steps, hinge, phase_means = discriminator_phases(training_report)
    plot_discriminator(steps, hinge, training_report["recipe"]["codec_steps"], discriminator_path)
    last_quarter = phase_means["last quarter of GAN training"]
    closeup = torch.arange(8) * (len(images) // 8) + 3
    shown = torch.arange(32) * (len(images) // 32)  # the held-out digits are sorted by class: every digit appears
    save_grid(
        torch.cat([images[shown], reconstructions["VQ-VAE"][shown], reconstructions["VQGAN"][shown]]),
        reconstruction_path,
        columns=16,
        value_range=(-1, 1),
        scale=2,
    )
    save_grid(samples[PRIOR_SETTINGS[0]][:64], samples_path, columns=16, value_range=(-1, 1), scale=2)
    save_grid(
        torch.cat([images[closeup], reconstructions["VQ-VAE"][closeup], reconstructions["VQGAN"][closeup]]),
        closeup_path,
        columns=8,
        value_range=(-1, 1),
        scale=6,
    )

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
                    f"(real digits {prior_report.real_frechet_distance:.1f}), {prior_report.classes_present}/10 digits; "
                    f"discriminator hinge loss {last_quarter:.2f} over the last quarter of GAN training (chance 1.0)"
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
                "title": (
                    "VQ-VAE vs VQGAN at the same code rate (343 bits per digit), 500 held-out digits: fidelity (MSE, "
                    "PSNR, FD of the reconstructions) and sharpness (mean squared pixel-to-pixel difference and its "
                    "ratio to the real digits'; share of spectral power above 0.25 cycles/pixel)"
                ),
                "columns": ["images", "MSE", "PSNR", "FD", "gradient energy", "vs real", "high-frequency power"],
                "rows": same_rate_rows,
            },
            {
                "title": (
                    "The discriminator's hinge loss while it trained (1.0 = chance: it cannot tell real digits from "
                    "reconstructions; lower = it separates them)"
                ),
                "columns": ["stretch of training", "mean hinge loss"],
                "rows": [[name, f"{value:.3f}"] for name, value in phase_means.items()],
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
                "caption": "Close-up: 8 held-out digits (top), their VQ-VAE (middle) and VQGAN (bottom) reconstructions",
                "path": f"bench/results/{closeup_path.name}",
            },
            {
                "caption": (
                    "The discriminator's hinge loss at every step of training (grey), its moving average (blue) and "
                    "chance (red); it learns from the shared warm-up, the GAN term reaches the VQGAN's decoder at "
                    "the dotted line"
                ),
                "path": f"bench/results/{discriminator_path.name}",
            },
            {
                "caption": "64 digits sampled from the GPT prior (temperature 1, all codes), decoded by the VQGAN",
                "path": f"bench/results/{samples_path.name}",
            },
        ],
    }
