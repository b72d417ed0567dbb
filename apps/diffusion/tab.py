"""Diffusion tab: sampler, steps, eta, seed and image count -> digits from our sampler and from diffusers'
DDPMPipeline / DDIMPipeline on the same weights and the same noise, the denoising trajectory, and what
a digit classifier makes of our samples. Then the score-SDE view (predictor-corrector, Euler-Maruyama and
the probability-flow ODE on a 2-D mixture with trajectories, and on digits), the ODE likelihoods, and digits
on request (class-conditional UNet, classifier-free guidance). UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.diffusion import (
    DEFAULT_GUIDANCE,
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_MIXTURE_POINTS,
    SAMPLERS,
    SDE_DATA,
    SDE_KINDS,
    SDE_SAMPLERS,
    SHIPPED,
)
from shared.device import gpu_task
from shared.ui import (
    Slider,
    WholeNumber,
    code_panel,
    comparison_badges,
    hub_model_name,
    notes_markdown,
    pyplot,
    source_of,
    user_errors,
)

MODEL = "apps.diffusion.model:"
SDE = "apps.diffusion.sde:"
CODE_SHOWN = {
    "DDIM": (MODEL + "sample", MODEL + "ddim_step", MODEL + "predict_x0"),
    "DDPM": (MODEL + "sample", MODEL + "ddpm_step", MODEL + "predict_x0"),
    "predictor-corrector": (SDE + "pc_sample", SDE + "langevin_step", SDE + "reverse_diffusion_step"),
    "Euler-Maruyama": (SDE + "pc_sample", SDE + "euler_maruyama_step", SDE + "VPSDE.drift_and_diffusion"),
    "probability-flow ODE": (SDE + "probability_flow_ode", SDE + "ode_drift"),
    "likelihood": (SDE + "ode_log_likelihood", SDE + "divergence"),
    "guided": (MODEL + "guided_noise", MODEL + "sample", "apps.diffusion.reference:guided_ddim_loop"),
}
# max |ours - diffusers' ScoreSde scheduler loop| on the same score and generator (pixels for digits)
SDE_TOLERANCE = 1e-4
# max |ours - diffusers| on [0, 1] pixels, same weights and noise: a quarter of one 8-bit grey level. Float
# rounding (our channels-last convolutions sum in another order) grows over many deterministic DDIM steps.
PIXEL_TOLERANCE = 1e-3

INTRODUCTION = """
## Diffusion: digits out of noise, our sampler beside diffusers
Our UNet (`apps/diffusion/model.py`, laid out like diffusers' `UNet2DModel`) learned to predict the
noise in MNIST digits (`python -m apps.diffusion.train`). **DDPM** removes it over up to 1,000 small
random steps; **DDIM** jumps through 20-50 of them, deterministically when eta = 0. The right column
runs diffusers' `DDPMPipeline` / `DDIMPipeline` on **the same weights, starting noise and random
generator**, so the two grids should match to rounding.
"""

SDE_INTRODUCTION = """
### The same idea as a stochastic differential equation (`apps/diffusion/sde.py`)
Noise is added continuously (**VE**: x_t = x_0 + sigma(t) z; **VP**: DDPM's chain in continuous time) and
removed by the reverse-time SDE, which needs only the score of every noised density. **Predictor-corrector**
takes a reverse-diffusion step then a Langevin step sized by the signal-to-noise ratio **snr**;
**Euler-Maruyama** takes plain SDE steps; the **probability-flow ODE** has the same marginals with no noise
(RK45 picks its own steps). On the 2-D mixture the score is exact (closed form), so every sampler should
land on the blobs; on digits, the shipped DDPM network is read as a VP score, -eps / sigma_t. Where diffusers
has a twin (VE predictor-corrector: `ScoreSdeVeScheduler`; VP Euler-Maruyama: `ScoreSdeVpScheduler`), it
runs on the same score with the same generator.
"""
LIKELIHOOD_INTRODUCTION = """
### Exact likelihoods through the probability-flow ODE
Run the ODE from the data to the prior and add up the divergence of its drift (the instantaneous change of
variables): log p(x) = log p_1(z) + integral of div. Hutchinson's trick estimates the divergence with one
random probe per point; in 2-D it can also be computed exactly. The mixture's true density is known.
"""


def quality_figure(report):
    """Bars of how many samples the digit classifier reads as each digit, with its confidence."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 2.6))
    axis.bar(range(10), report.class_histogram, color="#4c72b0")
    axis.set_ylim(0, max(report.class_histogram) * 1.15)  # headroom above the tallest bar
    axis.set_xticks(range(10))
    axis.set_xlabel("digit the classifier reads")
    axis.set_ylabel("samples")
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def load_model(name: str, progress=gr.Progress()):
    """Switch both columns to a diffusers UNet (Hub id or folder), or back to the shipped one when empty."""
    from apps.diffusion import side_by_side as sbs

    name = hub_model_name(name) or SHIPPED
    progress(0.1, desc=f"loading {name}")
    model = sbs.diffusion_model(name)
    config = model.unet.config
    return name, (
        f"Using **{name}**: {model.parameters / 1e6:.1f} M parameters, {config.in_channels}-channel "
        f"{config.sample_size}x{config.sample_size} images, up to {model.evaluation_budget:,} images x steps per request."
    )


@gpu_task
@user_errors
def generate(sampler, steps, eta, seed, count, model_name, progress=gr.Progress(track_tqdm=True)):
    """Ours, then the diffusers pipeline; returns the 7 outputs of the tab."""
    from apps.diffusion import side_by_side as sbs

    model = sbs.diffusion_model(model_name)
    request = sbs.SamplingRequest(sampler, steps, eta, seed, count)
    request.validate(model)
    ours, trajectory = sbs.run_ours(
        model, request, on_step=lambda index, total: progress((index + 1, total), desc="ours", unit="steps")
    )
    reference = sbs.run_reference(model, request)
    difference = (ours.images - reference.images).abs().max().item()
    badges = comparison_badges(ours.seconds, reference.seconds, difference, PIXEL_TOLERANCE)
    badges += (
        f"<div>{count} images x {steps} steps; per image: ours {ours.seconds / count * 1000:.0f} ms, diffusers "
        f"{reference.seconds / count * 1000:.0f} ms</div>"
    )
    figure = None
    if model.unet.config.in_channels == 1 and count >= 2:
        from shared.image_metric import image_quality

        report = image_quality(ours.images)
        figure = quality_figure(report)
        badges += f"<div>{report.reading('our samples')}</div>"
    else:
        request.notes.append("The digit classifier scores grayscale samples only, two or more at a time.")
    return (
        notes_markdown(request.notes),
        sbs.grid_of(ours),
        sbs.grid_of(reference),
        badges,
        trajectory.frames,
        figure,
        source_of(*CODE_SHOWN[sampler]),
    )


def sde_figure(result, request, sbs):
    """The mixture's density with our samples and a few trajectories, beside diffusers' samples when a
    scheduler is our sampler's twin (else beside samples of the mixture itself)."""
    import numpy as np

    plt = pyplot()
    axis_values, log_density = sbs.mixture_density_grid()
    levels = sorted(log_density.max() - np.array([6.0, 4.0, 3.0, 2.0, 1.0, 0.5]))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    right_title = "diffusers ScoreSde scheduler loop (same score, same generator)"
    right = result.reference
    if right is None:
        right, right_title = sbs.mixture().sample(request.count, None), "samples of the mixture itself"
    for axis, points, title in (
        (axes[0], result.samples, f"ours: {request.sde} {request.sampler}"),
        (axes[1], right, right_title),
    ):
        axis.contour(axis_values, axis_values, log_density, levels=levels, colors="#999999", linewidths=0.6)
        axis.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5, color="#4c72b0")
        axis.set_title(title, fontsize=10)
        axis.set_xlim(axis_values[0], axis_values[-1])
        axis.set_ylim(axis_values[0], axis_values[-1])
        axis.set_aspect("equal")
    if result.trajectories is not None:  # (frames, points, 2), from noise to data; drawn inside the frame only
        paths = result.trajectories.numpy().copy()
        paths[(np.abs(paths) > axis_values[-1]).any(-1)] = np.nan
        for point in range(paths.shape[1]):
            axes[0].plot(paths[:, point, 0], paths[:, point, 1], color="#dd8452", linewidth=0.6, alpha=0.7)
            axes[0].scatter(paths[-1, point, 0], paths[-1, point, 1], s=14, color="#c44e52", zorder=3)
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def sde_run(data, sde, sampler, steps, snr, seed, count, progress=gr.Progress()):
    """The SDE panel: 6 outputs (notes, 2-D plot, our grid, diffusers' grid, badges, code)."""
    from apps.diffusion import side_by_side as sbs

    request = sbs.SDERequest(data, sde, sampler, steps, snr, seed, count)
    request.validate(sbs.diffusion_model(SHIPPED) if request.on_digits else None)
    result = sbs.run_sde(request, on_step=lambda index, total: progress((index + 1, total), desc="ours", unit="steps"))
    difference = None if result.reference is None else (result.samples - result.reference).abs().max().item()
    badges = comparison_badges(
        result.seconds, result.reference_seconds, difference, SDE_TOLERANCE if difference is not None else None
    )
    badges += f"<div>{result.calls} network calls per batch ({request.sampler})</div>"
    figure = ours_grid = reference_grid = None
    if request.on_digits:
        from shared.image_metric import image_quality

        ours_grid = sbs.grid_of(sbs.Samples(result.samples, result.seconds))
        if result.reference is not None:
            reference_grid = sbs.grid_of(sbs.Samples(result.reference, result.reference_seconds))
        badges += f"<div>{image_quality(result.samples).reading('our samples')}</div>"
    else:
        figure = sde_figure(result, request, sbs)
    return notes_markdown(request.notes), figure, ours_grid, reference_grid, badges, source_of(*CODE_SHOWN[sampler])


@user_errors
def likelihood_run(points, seed, progress=gr.Progress()):
    """The likelihood panel: the mixture's bits/dim exact and through the ODE, and the measured digit table."""
    from apps.diffusion import side_by_side as sbs
    from shared.results import markdown_table

    progress(0.1, desc="solving the probability-flow ODE")
    rows = sbs.mixture_likelihoods(points, seed)
    columns = ["estimate", "bits/dim (ODE)", "bits/dim (exact)", "difference", "network calls", "time"]
    text = "**The 2-D mixture** (mean over the points; the exact density is known in closed form)\n\n"
    text += markdown_table(columns, rows)
    measured = sbs.measured_digit_likelihoods()
    if measured is None:
        text += "\n\nRun `python -m bench diffusion` for the held-out digits' table."
    else:
        text += "\n\n**Held-out MNIST digits** (measured by `python -m bench diffusion`)\n\n" + markdown_table(
            measured[0], measured[1:]
        )
    return text, source_of(*CODE_SHOWN["likelihood"])


GUIDED_INTRODUCTION = """
### Digits on request: classifier-free guidance
A second UNet learned with the digit's label as an input, and with the label dropped (a "no label" class)
for one example in ten. Sampling mixes its two predictions: eps = (1 + w) eps(x, digit) - w eps(x, no label)
(Ho & Salimans). w = 0 is the conditional model alone; larger w pushes harder towards the asked digit and
away from variety. The right side runs the same guided DDIM as diffusers' pipelines write it, on a
`UNet2DModel` holding the same weights, from the same noise.
"""


@user_errors
def guided_run(digit, guidance, steps, seed, count, progress=gr.Progress()):
    """The guided panel: 4 outputs (our grid, diffusers' grid, badges, code)."""
    from apps.diffusion import side_by_side as sbs

    request = sbs.GuidedRequest(int(digit), float(guidance), steps, count, seed)
    result = sbs.run_guided(
        request, on_step=lambda index, total: progress((index + 1, total), desc="ours", unit="steps")
    )
    difference = (result.ours.images - result.reference.images).abs().max().item()
    badges = comparison_badges(result.ours.seconds, result.reference.seconds, difference, PIXEL_TOLERANCE)
    badges += (
        f"<div>The digit classifier reads <b>{result.read_as_requested:.0%}</b> of our samples as a "
        f"{request.digit} (w = {request.guidance:g}).</div>"
    )
    return sbs.grid_of(result.ours), sbs.grid_of(result.reference), badges, source_of(*CODE_SHOWN["guided"])


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    model_name = gr.State(SHIPPED)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            sampler = gr.Radio(list(SAMPLERS), value="DDIM", label="Sampler")
            steps = Slider(1, 1000, value=20, step=1, label="Steps (DDPM was trained with 1,000)")
            eta = Slider(0, 1, value=0, step=0.05, label="eta (DDIM: 0 = deterministic, 1 = DDPM noise)")
            count = Slider(1, MAX_IMAGES, value=16, step=1, label="Images")
            seed = WholeNumber(0, minimum=0, label="Seed (the same noise on both sides)")
            generate_button = gr.Button("Generate", variant="primary")
            with gr.Accordion("Use a diffusers UNet from the Hub (needs the internet)", open=False):
                hub_name = gr.Textbox(
                    label="Hub id or save_pretrained folder (empty: the shipped model)",
                    placeholder="google/ddpm-cifar10-32, ./my-ddpm",
                )
                load_button = gr.Button("Load into ours and diffusers")
                hub_status = gr.Markdown(f"Using the **{SHIPPED}**.")
        with gr.Column(scale=3):
            notes = gr.Markdown()
            with gr.Row():
                ours_grid = gr.Image(label="Ours", type="numpy", interactive=False)
                reference_grid = gr.Image(
                    label="diffusers pipeline (same weights and noise)", type="numpy", interactive=False
                )
            badges = gr.HTML()
            trajectory = gr.Gallery(
                label="Denoising: x_t and the predicted x_0 along the way (ours)",
                columns=3,
                height="auto",
                object_fit="contain",
            )
            chart = gr.Plot(
                label="Our samples as a digit classifier reads them (a stand-in for Inception, which needs a download)"
            )
    gr.Markdown(SDE_INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            sde_data = gr.Radio(list(SDE_DATA), value=SDE_DATA[0], label="Data")
            sde_kind = gr.Radio(list(SDE_KINDS), value="VE", label="SDE (digits: VP, the DDPM's)")
            sde_sampler = gr.Radio(list(SDE_SAMPLERS), value=SDE_SAMPLERS[0], label="Sampler")
            sde_steps = Slider(1, 1000, value=100, step=1, label="Steps (the ODE picks its own)")
            sde_snr = Slider(0.01, 1, value=0.16, step=0.01, label="snr of the Langevin corrector")
            sde_count = Slider(2, MAX_MIXTURE_POINTS, value=500, step=1, label="Samples (digits: at most 64)")
            sde_seed = WholeNumber(0, minimum=0, label="Seed (the same generator on both sides)")
            sde_button = gr.Button("Run the SDE sampler", variant="primary")
        with gr.Column(scale=3):
            sde_notes = gr.Markdown()
            sde_plot = gr.Plot(label="2-D mixture: samples, density contours, trajectories from noise (ours)")
            with gr.Row():
                sde_ours = gr.Image(label="Ours (digits)", type="numpy", interactive=False)
                sde_reference = gr.Image(
                    label="diffusers ScoreSde scheduler loop (digits)", type="numpy", interactive=False
                )
            sde_badges = gr.HTML()
    gr.Markdown(LIKELIHOOD_INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            likelihood_points = Slider(1, 500, value=100, step=1, label="Mixture points")
            likelihood_seed = WholeNumber(0, minimum=0, label="Seed")
            likelihood_button = gr.Button("Compute the likelihoods")
        with gr.Column(scale=3):
            likelihood_table = gr.Markdown()
    gr.Markdown(GUIDED_INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            guided_digit = Slider(0, 9, value=7, step=1, label="Draw me a...")
            guidance = Slider(0, MAX_GUIDANCE, value=DEFAULT_GUIDANCE, step=0.25, label="Guidance w")
            guided_steps = Slider(1, 100, value=20, step=1, label="DDIM steps")
            guided_count = Slider(1, MAX_IMAGES, value=16, step=1, label="Images")
            guided_seed = WholeNumber(0, minimum=0, label="Seed (the same noise on both sides)")
            guided_button = gr.Button("Draw the digit", variant="primary")
        with gr.Column(scale=3):
            with gr.Row():
                guided_ours = gr.Image(label="Ours (guided DDIM)", type="numpy", interactive=False)
                guided_reference = gr.Image(
                    label="diffusers UNet2DModel, guided DDIM loop (same weights and noise)",
                    type="numpy",
                    interactive=False,
                )
            guided_badges = gr.HTML()
    code = code_panel(*CODE_SHOWN["DDIM"])
    generate_button.click(
        generate,
        inputs=[sampler, steps, eta, seed, count, model_name],
        outputs=[notes, ours_grid, reference_grid, badges, trajectory, chart, code],
        api_name="diffusion_sample",
    )
    load_button.click(load_model, inputs=[hub_name], outputs=[model_name, hub_status], api_name="diffusion_load")
    sde_button.click(
        sde_run,
        inputs=[sde_data, sde_kind, sde_sampler, sde_steps, sde_snr, sde_seed, sde_count],
        outputs=[sde_notes, sde_plot, sde_ours, sde_reference, sde_badges, code],
        api_name="diffusion_sde",
    )
    likelihood_button.click(
        likelihood_run,
        inputs=[likelihood_points, likelihood_seed],
        outputs=[likelihood_table, code],
        api_name="diffusion_likelihood",
    )
    guided_button.click(
        guided_run,
        inputs=[guided_digit, guidance, guided_steps, guided_seed, guided_count],
        outputs=[guided_ours, guided_reference, guided_badges, code],
        api_name="diffusion_guided",
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "diffusion_sample": ("DDIM", 5, 0.0, 0, 4),
    "diffusion_load": ("",),
    "diffusion_sde": (SDE_DATA[0], "VE", SDE_SAMPLERS[0], 50, 0.16, 0, 200),
    "diffusion_likelihood": (20, 0),
    "diffusion_guided": (7, DEFAULT_GUIDANCE, 5, 0, 2),
}
BROWSER_CHECK = {"button": "Generate", "expect_text": "max |difference|", "timeout_ms": 60_000}
