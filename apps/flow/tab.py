"""Flows tab: 2-D toy densities trained in the browser (RealNVP's exact density, rectified-flow paths
before and after reflow), and the shipped MNIST models (NICE / RealNVP / Glow samples with their bits/dim;
rectified-flow samples from our Euler sampler beside diffusers' FlowMatchEulerDiscreteScheduler loop).
UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.flow import FLOWS, MAX_IMAGES, RECTIFIED, SOLVER_NAMES, TOY_DENSITIES, TOY_KINDS, TOY_MAX_STEPS
from shared.device import gpu_task
from shared.ui import Slider, WholeNumber, code_panel, comparison_badges, notes_markdown, pyplot, source_of, user_errors

MODEL = "apps.flow.model:"
CODE_SHOWN = {
    "toy": (MODEL + "rectified_flow_loss", MODEL + "sample_ode", MODEL + "euler_step", MODEL + "heun_step"),
    "flow": (MODEL + "Coupling",),
    "rectified": (MODEL + "sample_ode", MODEL + "euler_step"),
}
# max |ours - diffusers| on [0, 1] pixels, same velocity model and noise: float rounding only
PIXEL_TOLERANCE = 1e-4

INTRODUCTION = """
## Flows: exact likelihoods, and straight paths from noise to data
A **normalizing flow** (NICE, RealNVP, Glow) is an invertible network: it maps data to a Gaussian and
back, and the change-of-variables formula gives the **exact** log-likelihood of any point. A
**rectified flow** learns a velocity field that carries noise to data along straight lines on average;
sampling integrates it with a few Euler or Heun steps. Its paths curve where lines cross; **reflow**
retrains it on its own (noise, sample) pairs, and the paths straighten, so one or two steps suffice.
Below: 2-D densities that train right here in seconds, then the shipped MNIST models
(`python -m apps.flow.train`), our Euler sampler beside diffusers' `FlowMatchEulerDiscreteScheduler`.
"""


def scatter(axis, points, title: str, colour: str) -> None:
    """(N, 2) points on the toy's square."""
    from apps.flow.toy import PLOT_LIMIT as limit

    axis.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, color=colour)
    axis.set(xlim=(-limit, limit), ylim=(-limit, limit), title=title, xticks=[], yticks=[], aspect="equal")


def toy_figure(view, steps: int, solver: str):
    """A `side_by_side.ToyView` drawn. RealNVP: data, samples, density heat map. Rectified flow: data,
    samples before and after reflow, and the trajectories of both from the same noise."""
    from apps.flow import toy

    plt = pyplot()
    if view.log_density is not None:
        figure, axes = plt.subplots(1, 3, figsize=(13, 4.4))
        scatter(axes[0], view.data, f"data: {view.density}", "#4c72b0")
        scatter(axes[1], view.samples, "RealNVP samples", "#dd8452")
        density, grid = view.log_density
        shown = axes[2].imshow(density, origin="lower", extent=(grid[0], grid[-1], grid[0], grid[-1]), cmap="magma")
        figure.colorbar(shown, ax=axes[2], fraction=0.046, label="p(x), exact")
        axes[2].set(title=f"exact density; mean log p on data {view.mean_log_likelihood:.2f}", xticks=[], yticks=[])
    else:
        figure, axes = plt.subplots(1, 5, figsize=(21, 4.4))
        scatter(axes[0], view.data, f"data: {view.density}", "#4c72b0")
        colours = {"1-rectified": "#dd8452", "2-rectified (reflow)": "#55a868"}
        for axis, samples, name in (
            (axes[1], view.samples, "1-rectified"),
            (axes[2], view.reflow_samples, "2-rectified (reflow)"),
        ):
            scatter(axis, samples, f"{name}, {steps} {solver} steps", colours[name])
        for axis, name in zip(axes[3:], colours):
            fine, coarse = view.fine_paths[name], view.paths[name]
            for index in range(fine.shape[1]):
                axis.plot(fine[:, index, 0], fine[:, index, 1], color=colours[name], linewidth=1.0, alpha=0.8)
                axis.plot(
                    coarse[:, index, 0],
                    coarse[:, index, 1],
                    color="black",
                    linewidth=0.5,
                    alpha=0.5,
                    marker="o",
                    markersize=2,
                )
            axis.scatter(fine[0, :, 0], fine[0, :, 1], s=8, color="black", zorder=3)
            limit = toy.PLOT_LIMIT
            axis.set(
                xlim=(-limit, limit),
                ylim=(-limit, limit),
                xticks=[],
                yticks=[],
                aspect="equal",
                title=f"{name} paths (straightness {view.path_straightness[name]:.3f})",
            )
        axes[3].text(
            -toy.PLOT_LIMIT + 0.1,
            -toy.PLOT_LIMIT + 0.15,
            f"colour: the ODE's path; black: {steps} {solver} steps from the noise (dots)",
            fontsize=7,
        )
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def toy_run(density, kind, steps, solver, seed, progress=gr.Progress()):
    """Train (in this request, unless trained already) and plot."""
    from apps.flow import side_by_side as sbs

    view = sbs.toy_view(
        density, kind, steps, solver, seed, progress=lambda fraction, text: progress(fraction, desc=text)
    )
    if view.log_density is not None:
        summary = (
            f"Trained in {view.seconds:.1f} s. Exact mean log-likelihood of {len(view.data):,} fresh data points: "
            f"**{view.mean_log_likelihood:.3f} nats**."
        )
    else:
        curved, straight = view.path_straightness.values()
        summary = (
            f"Trained both flows in {view.seconds:.1f} s. Path straightness (mean squared deviation of the velocity from the "
            f"straight chord; 0 = straight lines): 1-rectified **{curved:.3f}**, after reflow **{straight:.4f}**."
        )
    return notes_markdown(view.notes), toy_figure(view, int(steps), solver), summary, source_of(*CODE_SHOWN["toy"])


@gpu_task
@user_errors
def flow_run(name, temperature, count, seed, progress=gr.Progress()):
    """Samples of a shipped normalizing flow and the three flows' held-out bits/dim."""
    from apps.flow import side_by_side as sbs

    progress(0.1, desc=f"loading {name}")
    result = sbs.flow_samples(name, temperature, count, seed)
    rows = " · ".join(f"{label} **{value:.3f}**" for label, value in result.bits_per_dim.items())
    text = (
        f"Held-out bits/dim on the 500 held-out MNIST digits (lower is better): {rows}; pytorch-generative reports "
        f"**{sbs.REFERENCE_BITS_PER_DIM}** for NICE on full MNIST after far longer training. {count} samples in "
        f"{result.seconds * 1000:.0f} ms."
    )
    return notes_markdown(result.notes), sbs.grid_of(result.images), text, source_of(*CODE_SHOWN["flow"])


@gpu_task
@user_errors
def rectified_run(model, steps, seed, count, progress=gr.Progress()):
    """Ours, then the diffusers scheduler loop, on the same velocity model and noise."""
    from apps.flow import side_by_side as sbs

    request = sbs.RectifiedRequest(model, steps, seed, count)
    request.validate()
    progress(0.1, desc="ours")
    ours = sbs.run_ours(request)
    progress(0.5, desc="diffusers")
    reference = sbs.run_reference(request)
    difference = (ours.images - reference.images).abs().max().item()
    badges = comparison_badges(ours.seconds, reference.seconds, difference, PIXEL_TOLERANCE)
    badges += f"<div>{request.count} images x {request.steps} Euler steps, {model}.</div>"
    if request.count >= 2:
        from shared.image_metric import image_quality

        report = image_quality(ours.images)
        badges += (
            f"<div>The digit classifier reads {report.classes_present}/10 digits in our samples, mean confidence "
            f"{report.mean_confidence:.2f} (real digits: {report.real_mean_confidence:.2f}).</div>"
        )
    return (
        notes_markdown(request.notes),
        sbs.grid_of(ours.images),
        sbs.grid_of(reference.images),
        badges,
        source_of(*CODE_SHOWN["rectified"]),
    )


def count_seed_and_button(seed_label: str, button_label: str):
    count = Slider(1, MAX_IMAGES, value=16, step=1, label="Images")
    seed = WholeNumber(0, minimum=0, label=seed_label)
    return count, seed, gr.Button(button_label, variant="primary")


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    gr.Markdown("### 2-D densities, trained in your request (about 10 s on 2 CPU cores)")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            density = gr.Dropdown(list(TOY_DENSITIES), value="two moons", label="Density")
            kind = gr.Radio(list(TOY_KINDS), value=TOY_KINDS[1], label="Model")
            steps = Slider(1, TOY_MAX_STEPS, value=4, step=1, label="ODE steps (rectified flow)")
            solver = gr.Radio(list(SOLVER_NAMES), value="Euler", label="Solver")
            toy_seed = WholeNumber(0, minimum=0, label="Seed")
            toy_button = gr.Button("Train and plot", variant="primary")
        with gr.Column(scale=3):
            toy_notes = gr.Markdown()
            toy_plot = gr.Plot(show_label=False)
            toy_summary = gr.Markdown()
    gr.Markdown("### MNIST: the shipped normalizing flows")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            flow_name = gr.Radio(list(FLOWS), value="Glow", label="Flow")
            temperature = Slider(
                0.05, 2, value=0.7, step=0.05, label="Temperature (spread of the latents; 1 = as trained)"
            )
            flow_count, flow_seed, flow_button = count_seed_and_button("Seed", "Sample the flow")
        with gr.Column(scale=3):
            flow_notes = gr.Markdown()
            flow_grid = gr.Image(label="samples", type="numpy", format="png", interactive=False)
            flow_summary = gr.Markdown()
    gr.Markdown("### MNIST: rectified flow, our Euler sampler beside diffusers' `FlowMatchEulerDiscreteScheduler`")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            rectified_model = gr.Radio(list(RECTIFIED), value=list(RECTIFIED)[0], label="Model")
            rectified_steps = Slider(1, 1000, value=4, step=1, label="Euler steps")
            rectified_count, rectified_seed, rectified_button = count_seed_and_button(
                "Seed (the same noise on both sides)", "Generate digits"
            )
        with gr.Column(scale=3):
            rectified_notes = gr.Markdown()
            with gr.Row():
                ours_grid = gr.Image(label="Ours (sample_ode, Euler)", type="numpy", format="png", interactive=False)
                reference_grid = gr.Image(
                    label="diffusers FlowMatchEulerDiscreteScheduler loop (same model and noise)",
                    type="numpy",
                    format="png",
                    interactive=False,
                )
            rectified_badges = gr.HTML()
    code = code_panel(*CODE_SHOWN["toy"])

    toy_button.click(
        toy_run,
        inputs=[density, kind, steps, solver, toy_seed],
        outputs=[toy_notes, toy_plot, toy_summary, code],
        api_name="flow_toy",
    )
    flow_button.click(
        flow_run,
        inputs=[flow_name, temperature, flow_count, flow_seed],
        outputs=[flow_notes, flow_grid, flow_summary, code],
        api_name="flow_sample",
    )
    rectified_button.click(
        rectified_run,
        inputs=[rectified_model, rectified_steps, rectified_seed, rectified_count],
        outputs=[rectified_notes, ours_grid, reference_grid, rectified_badges, code],
        api_name="flow_rectified",
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {  # the first is the topic's main action
    "flow_rectified": (list(RECTIFIED)[1], 2, 0, 4),
    "flow_toy": ("two moons", TOY_KINDS[1], 4, "Euler", 0),
    "flow_sample": ("Glow", 0.7, 4, 0),
}
BROWSER_CHECK = {"button": "Generate digits", "expect_text": "max |difference|", "timeout_ms": 60_000}
