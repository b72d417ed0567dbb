"""Diffusion, ours vs diffusers, on the shipped MNIST UNet (checkpoints/diffusion/):

- quality: the shared digit metric (shared/image_metric.py: Fréchet distance on a small MNIST
  classifier's features, its confidence and class coverage) on DDIM-20 and DDIM-50 samples (1,000 each)
  and DDPM-1000 samples (a smaller stated count: 1,000 DDPM-1000 samples are a million network calls,
  over an hour on this CPU). The first images of every sampler start from the same noise, so the rows
  are also compared at equal counts (the FD grows as the count shrinks);
- speed: seconds per image of our sampler and of diffusers' DDIMPipeline / DDPMPipeline on the same
  weights, steps, noise and generator (median of 3 runs, both in this process), with the largest pixel
  difference between the two outputs;
- score SDEs: the shipped UNet read as a VP score (score = -eps / sigma_t) sampled by predictor-corrector,
  Euler-Maruyama and the probability-flow ODE (RK45) at equal network calls, with DDIM (the ODE's Euler
  step) beside them; its held-out bits/dim through the ODE next to the flows' (bench/results/flow.json);
  ours vs diffusers' ScoreSdeVe/VpScheduler loops on the same scores and generators;
- guidance: the class-conditional UNet (checkpoints/diffusion/conditional/) with classifier-free guidance,
  guided DDIM-20 for every digit as w goes from 0 to 5: how often the digit classifier reads the requested
  digit (overall and for the worst digit) and the FD of the samples (a curve), and ours vs a diffusers loop
  on the same weights and noise.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

import torch

from apps.diffusion import side_by_side as sbs
from apps.diffusion.model import sample
from apps.diffusion.reference import diffusers_pc_sample
from apps.diffusion.sde import VPSDE, digits_bits_per_dim, noise_model_score, pc_sample, probability_flow_ode
from shared.data import mnist5k
from shared.image_metric import image_quality
from shared.images import save_grid

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
CHUNK = 200  # images per sampling batch; chunk i starts from the noise of seed SEED + i
QUALITY_RUNS = (("DDIM", 20, 1000), ("DDIM", 50, 1000), ("DDPM", 1000, 200))
SPEED_RUNS = (("DDIM", 50, 1), ("DDIM", 50, 16), ("DDIM", 20, 64), ("DDPM", 1000, 1))
REPEATS = 3
LIKELIHOOD_DIGITS = 100  # held-out digits scored through the ODE (each RK45 call is a forward and a backward pass)
LIKELIHOOD_TOLERANCE = 1e-4  # RK45 rtol = atol for the likelihood
SDE_SAMPLES = 200
SDE_ODE_TOLERANCE = 1e-3  # RK45 rtol = atol for sampling; its call count sets the other samplers' budget
GUIDANCE_SCALES = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
GUIDED_PER_DIGIT = 20  # samples of each digit per guidance scale (200 in all)
QUALITY_COLUMNS = [
    "samples",
    "FD",
    "real digits' FD",
    "mean confidence",
    "real digits' confidence",
    "confident (> 0.9)",
    "digits present",
    "time per image (ours)",
]


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


def sampler_results() -> dict:
    """DDPM and DDIM: quality and speed against the diffusers pipelines."""
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
        "title": "Diffusion (DDPM / DDIM, score SDEs)",
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
                "columns": ["sampler", *QUALITY_COLUMNS],
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


def flow_bits_per_dim() -> list[list]:
    """The flows topic's held-out bits/dim rows (NICE, RealNVP, Glow), as measured there."""
    flows = json.loads((RESULTS / "flow.json").read_text())
    table = next(table for table in flows["tables"] if table["title"].startswith("Held-out bits/dim"))
    column = table["columns"].index("held-out bits/dim")
    return [[row[0], row[column], "500 (all)", "exact change of variables (flows topic)", "-"] for row in table["rows"]]


def score_sde_results() -> dict:
    """The shipped UNet as a VP score: held-out bits/dim through the ODE, samplers at equal network calls,
    and parity with diffusers' score-SDE schedulers."""
    model = sbs.diffusion_model(sbs.SHIPPED)
    sde = VPSDE()
    score = noise_model_score(model.unet, sde)

    pixels = torch.as_tensor(mnist5k().validation_images[:LIKELIHOOD_DIGITS])
    start = time.perf_counter()
    bits, likelihood_calls = digits_bits_per_dim(
        score,
        sde,
        pixels,
        torch.Generator().manual_seed(SEED),
        pad=2,
        rtol=LIKELIHOOD_TOLERANCE,
        atol=LIKELIHOOD_TOLERANCE,
    )
    likelihood_seconds = time.perf_counter() - start
    ddpm_bits = bits.mean().item()
    standard_error = bits.std().item() / math.sqrt(len(bits))
    likelihood_rows = [
        [
            "DDPM (shipped UNet) via the probability-flow ODE",
            f"{ddpm_bits:.3f} ± {standard_error:.3f}",
            f"{LIKELIHOOD_DIGITS} (the first)",
            "ODE + Hutchinson (1 Rademacher probe), RK45 tolerance 1e-4; padded 32x32 image's bits / 784 digit pixels",
            likelihood_calls,
        ],
        *flow_bits_per_dim(),
    ]

    shape = (SDE_SAMPLES, 1, model.unet.config.sample_size, model.unet.config.sample_size)
    start = time.perf_counter()
    ode = probability_flow_ode(
        score, sde, shape, torch.Generator().manual_seed(SEED), SDE_ODE_TOLERANCE, SDE_ODE_TOLERANCE
    )
    runs = {
        "probability-flow ODE (RK45)": (sbs.as_pixels(ode.samples, True), ode.evaluations, time.perf_counter() - start)
    }
    calls = ode.evaluations
    for name, steps, corrector_steps, predictor in (
        ("Euler-Maruyama", calls, 0, "euler_maruyama"),
        ("predictor-corrector (snr 0.16)", calls // 2, 1, "reverse_diffusion"),
    ):
        start = time.perf_counter()
        samples = pc_sample(
            score, sde, shape, steps, torch.Generator().manual_seed(SEED), corrector_steps, 0.16, predictor
        )
        runs[name] = (sbs.as_pixels(samples, True), steps * (1 + corrector_steps), time.perf_counter() - start)
    start = time.perf_counter()
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(SEED))
    ddim = sample(model.unet, model.schedule, noise, "ddim", calls)
    runs[f"DDIM-{calls} (the ODE's Euler steps, discrete time)"] = (ddim, calls, time.perf_counter() - start)
    equal_rows = []
    for name, (images, used, seconds) in runs.items():
        report = image_quality(images)
        row = quality_row(name, report, seconds / SDE_SAMPLES)
        equal_rows.append([row[0], used, *row[1:]])
    save_grid(
        torch.cat([images[:16] for images, _, _ in runs.values()]),
        RESULTS / "diffusion_sde_samplers.png",
        columns=16,
        scale=2,
    )

    parity_rows = []
    mixture_sde = sbs.sde_of("VE")
    mixture_score = sbs.mixture().score_function(mixture_sde)
    for name, score_fn, chosen_sde, request_shape, steps, corrector_steps, predictor in (
        (
            "VE predictor-corrector, 2-D mixture (exact score)",
            mixture_score,
            mixture_sde,
            (2000, 2),
            200,
            1,
            "reverse_diffusion",
        ),
        ("VP Euler-Maruyama, shipped UNet (16 digits)", score, sde, (16, *shape[1:]), 100, 0, "euler_maruyama"),
    ):
        ours_seconds, reference_seconds, difference = [], [], 0.0
        for _ in range(REPEATS):
            start = time.perf_counter()
            ours = pc_sample(
                score_fn,
                chosen_sde,
                request_shape,
                steps,
                torch.Generator().manual_seed(SEED),
                corrector_steps,
                0.16,
                predictor,
            )
            ours_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            with torch.no_grad():
                theirs = diffusers_pc_sample(
                    score_fn,
                    chosen_sde,
                    request_shape,
                    steps,
                    torch.Generator().manual_seed(SEED),
                    corrector_steps,
                    0.16,
                )
            reference_seconds.append(time.perf_counter() - start)
            difference = max(difference, (ours - theirs).abs().max().item())
        ours_median, reference_median = statistics.median(ours_seconds), statistics.median(reference_seconds)
        parity_rows.append(
            [
                name,
                steps,
                f"{ours_median:.2f} s",
                f"{reference_median:.2f} s",
                f"{reference_median / ours_median:.2f}x",
                f"{difference:.1e}",
            ]
        )
    return {
        "bits_per_dim": ddpm_bits,
        "likelihood_seconds": likelihood_seconds,
        "calls": calls,
        "likelihood_rows": likelihood_rows,
        "equal_rows": equal_rows,
        "parity_rows": parity_rows,
    }


def extension_results(score_sde: dict) -> dict:
    """The score-SDE part of the result: summary entry, tables and images."""
    best_flow = min(float(row[1]) for row in score_sde["likelihood_rows"][1:])
    return {
        "summary": [
            {
                "model": "score SDEs: VE/VP predictor-corrector, Euler-Maruyama, probability-flow ODE (ours)",
                "reference": "diffusers ScoreSdeVeScheduler / ScoreSdeVpScheduler loops on the same score",
                "parity": "max difference "
                + ", ".join(f"{row[-1]}" for row in score_sde["parity_rows"])
                + " (same score and generator)",
                "speed": ", ".join(f"{row[4]}" for row in score_sde["parity_rows"]) + " diffusers' speed",
                "quality": (
                    f"shipped DDPM via the ODE: {score_sde['bits_per_dim']:.2f} bits/dim on held-out digits "
                    f"(best flow {best_flow:.2f})"
                ),
            },
        ],
        "tables": [
            {
                "title": (
                    "Held-out bits/dim on MNIST-5k digits (uniform dequantization, lower is better): the shipped "
                    "DDPM read as a VP score, through the probability-flow ODE, beside the flows topic's models"
                ),
                "columns": ["model", "held-out bits/dim", "digits", "how", "network calls"],
                "rows": score_sde["likelihood_rows"],
            },
            {
                "title": (
                    f"The shipped UNet as a VP score, samplers at equal network calls ({score_sde['calls']}, what RK45 "
                    f"took at tolerance {SDE_ODE_TOLERANCE:g}), {SDE_SAMPLES} samples each from one seed"
                ),
                "columns": ["sampler", "network calls", *QUALITY_COLUMNS],
                "rows": score_sde["equal_rows"],
            },
            {
                "title": f"Ours vs the diffusers loops, same score or weights and generator (median of {REPEATS})",
                "columns": ["sampler", "steps", "ours", "diffusers", "ours speed / diffusers", "max difference"],
                "rows": score_sde["parity_rows"],
            },
        ],
        "images": [
            {
                "caption": (
                    "The shipped UNet as a VP score at equal network calls: ODE, Euler-Maruyama, predictor-corrector, "
                    "DDIM (one row each)"
                ),
                "path": "bench/results/diffusion_sde_samplers.png",
            },
        ],
    }


def guidance_results() -> dict:
    """The guidance curve of the class-conditional UNet and its parity with a diffusers loop."""
    from apps.diffusion import DEFAULT_GUIDANCE
    from apps.diffusion.reference import guided_ddim_loop
    from shared.image_metric import default_metric
    from shared.ui import pyplot

    model = sbs.conditional_model()
    size = model.unet.config.sample_size
    requested = torch.arange(10).repeat_interleave(GUIDED_PER_DIGIT)  # (200,)
    noise = torch.randn(len(requested), 1, size, size, generator=torch.Generator().manual_seed(SEED))
    rows, curve, grids = [], [], []
    for guidance in GUIDANCE_SCALES:
        started = time.perf_counter()
        images = sample(model.unet, model.schedule, noise, "ddim", 20, class_labels=requested, guidance=guidance)
        seconds = time.perf_counter() - started
        read = torch.as_tensor(default_metric().embed(images)[1].argmax(axis=1))
        per_digit = [(read[requested == digit] == digit).float().mean().item() for digit in range(10)]
        report = image_quality(images)
        overall = sum(per_digit) / 10
        curve.append((guidance, overall, min(per_digit), report.frechet_distance))
        rows.append(
            [
                guidance,
                f"{overall:.1%}",
                f"{min(per_digit):.0%} (digit {per_digit.index(min(per_digit))})",
                round(report.frechet_distance, 1),
                round(report.real_frechet_distance, 1),
                f"{seconds / len(images) * 1000:.0f} ms",
            ]
        )
        grids.append(images.view(10, GUIDED_PER_DIGIT, 1, size, size)[:, :8].reshape(80, 1, size, size))
    grid_path, curve_path = RESULTS / "diffusion_guided.png", RESULTS / "diffusion_guidance_curve.png"
    default_index = GUIDANCE_SCALES.index(DEFAULT_GUIDANCE)
    save_grid(grids[default_index], grid_path, columns=8, scale=2)
    plt = pyplot()
    figure, left = plt.subplots(figsize=(6, 3.5))
    scales = [point[0] for point in curve]
    left.plot(scales, [point[1] for point in curve], "o-", label="read as requested (all digits)")
    left.plot(scales, [point[2] for point in curve], "s--", label="read as requested (worst digit)")
    left.set_xlabel("guidance w")
    left.set_ylabel("share read as the requested digit")
    left.set_ylim(0, 1.02)
    right = left.twinx()
    right.plot(scales, [point[3] for point in curve], "^:", color="tab:red", label="FD (right axis)")
    right.set_ylabel("FD of the samples")
    figure.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(curve_path, dpi=120)
    plt.close(figure)

    labels = torch.tensor([7, 7, 3, 3])
    start_noise = noise[:4]
    ours_times, reference_times = [], []
    reference_unet = sbs.conditional_reference_unet()
    for _ in range(REPEATS):
        started = time.perf_counter()
        ours = sample(
            model.unet, model.schedule, start_noise, "ddim", 20, class_labels=labels, guidance=DEFAULT_GUIDANCE
        )
        ours_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with torch.no_grad():
            theirs = guided_ddim_loop(reference_unet, model.schedule.config, start_noise, labels, DEFAULT_GUIDANCE, 20)
        reference_times.append(time.perf_counter() - started)
    difference = (ours - theirs).abs().max().item()
    ratio = statistics.median(reference_times) / statistics.median(ours_times)
    at_default = curve[default_index]
    return {
        "summary": [
            {
                "model": "class-conditional UNet, classifier-free guided DDIM (ours)",
                "reference": "diffusers UNet2DModel (num_class_embeds) in a guided DDIM loop",
                "parity": f"max pixel difference {difference:.1e} (same weights, noise, w = {DEFAULT_GUIDANCE:g})",
                "speed": f"{ratio:.2f}x the diffusers loop's speed",
                "quality": (
                    f"at w = {DEFAULT_GUIDANCE:g} the classifier reads the requested digit in {at_default[1]:.1%} "
                    f"of samples (worst digit {at_default[2]:.0%}); FD {at_default[3]:.1f}"
                ),
            }
        ],
        "tables": [
            {
                "title": (
                    f"Digits on request: guided DDIM-20 from the class-conditional UNet, {GUIDED_PER_DIGIT} samples "
                    "of each digit per guidance scale w (the same noise for every w); how often the digit "
                    "classifier reads the requested digit, and the FD of the 200 samples"
                ),
                "columns": ["w", "read as requested", "worst digit", "FD", "real digits' FD", "time per image (ours)"],
                "rows": rows,
            },
        ],
        "images": [
            {
                "caption": "Guidance curve: share read as the requested digit (all, worst) and FD against w",
                "path": f"bench/results/{curve_path.name}",
            },
            {
                "caption": f"Digits on request at w = {DEFAULT_GUIDANCE:g}: each row asks for one digit, 0 to 9",
                "path": f"bench/results/{grid_path.name}",
            },
        ],
    }


def run() -> dict:
    result = sampler_results()
    for extension in (extension_results(score_sde_results()), guidance_results()):
        for key in ("summary", "tables", "images"):
            result[key] += extension[key]
    return result
