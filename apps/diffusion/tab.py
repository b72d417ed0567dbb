"""Diffusion tab: sampler, steps, eta, seed and image count -> digits from our sampler and from diffusers'
DDPMPipeline / DDIMPipeline on the same weights and the same noise, the denoising trajectory, and what
a digit classifier makes of our samples. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.diffusion import MAX_IMAGES, SAMPLERS, SHIPPED
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
CODE_SHOWN = {
    "DDIM": (MODEL + "sample", MODEL + "ddim_step", MODEL + "predict_x0"),
    "DDPM": (MODEL + "sample", MODEL + "ddpm_step", MODEL + "predict_x0"),
}
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
    code = code_panel(*CODE_SHOWN["DDIM"])
    generate_button.click(
        generate,
        inputs=[sampler, steps, eta, seed, count, model_name],
        outputs=[notes, ours_grid, reference_grid, badges, trajectory, chart, code],
        api_name="diffusion_sample",
    )
    load_button.click(load_model, inputs=[hub_name], outputs=[model_name, hub_status], api_name="diffusion_load")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "diffusion_sample": ("DDIM", 5, 0.0, 0, 4),
    "diffusion_load": ("",),
}
BROWSER_CHECK = {"button": "Generate", "expect_text": "max |difference|", "timeout_ms": 60_000}
