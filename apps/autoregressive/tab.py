"""Autoregressive models tab: NADE, MADE and PixelCNN on binarised digits. Sampling pixel by pixel (streamed
as the digits fill in), completing a held-out digit from its top rows, every pixel's conditional probability
and surprise, MADE's masks, PixelCNN's receptive field. UI only: the work is in side_by_side.py, imported
inside each event so that building the app loads no torch."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from shared.ui import ImageUpload, Slider, WholeNumber, code_panel, notes_markdown, pyplot, source_of, user_errors

REPORT = Path(__file__).resolve().parents[2] / "checkpoints" / "autoregressive" / "training_report.json"
MODEL_NAMES = ("NADE", "MADE", "PixelCNN")  # side_by_side.MODELS' labels
SOURCES = ("held-out digit", "upload")
ORDERINGS = ("natural", "random")  # side_by_side.ORDERINGS
PIXELCNN_VERSIONS = ("plain (masked convolutions)", "gated (vertical + horizontal stacks)")
MAX_SAMPLES = 36  # side_by_side.MAX_SAMPLES

INTRODUCTION = """
## Autoregressive models: exact likelihoods, one pixel at a time
The chain rule writes the probability of a binary image as a product of one conditional per pixel,
p(x) = Π p(x_d | x_<d). A network that outputs every conditional while never looking at pixel d or later
gives an **exact** likelihood in one pass. **NADE** shares one weight matrix across all the conditionals
(a running sum); **MADE** masks an autoencoder's weights so each output only sees earlier inputs;
**PixelCNN** masks convolution kernels so each pixel sees only the pixels above and to its left.
The price is sampling: a digit takes 784 steps, one per pixel. Shipped models: `python -m apps.autoregressive.train`
on 4,000 binarised MNIST-5k digits for a few CPU minutes each (the table compares them with the papers').
"""


def likelihood_table() -> str:
    """The held-out NLL table from the training report, read with the standard library only."""
    if not REPORT.exists():
        return "_No shipped checkpoints yet: run `python -m apps.autoregressive.train`._"
    report = json.loads(REPORT.read_text())
    lines = [
        "| model | held-out NLL (nats/image) | bits/dim | train NLL | paper | pytorch-generative |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in zip(("nade", "made", "pixelcnn"), MODEL_NAMES):
        if key in report:
            entry = report[key]
            lines.append(
                f"| {name} | **{entry['held_out_nll']:.1f}** | {entry['held_out_bits_per_dim']:.3f} | "
                f"{entry['train_nll']:.1f} | {entry['published_nats']} | {entry['pytorch_generative_nats']} |"
            )
    return (
        "\n".join(lines)
        + "\n\nOurs: 500 held-out MNIST-5k digits, trained on 4,000 for minutes. Papers: the 10,000 test digits of "
        "binarised MNIST after training on 50,000 for hours; pytorch-generative re-binarises every epoch."
    )


def frames_to_outputs(frames, describe):
    """Turn the engine's frames into (picture, status) pairs for a streaming event."""
    for frame in frames:
        status = f"{frame.pixels_drawn} / {frame.pixels_to_draw} pixels drawn, {frame.seconds:.1f} s"
        if frame.finished:
            status = describe(frame)
        yield frame.picture, status


def quality_line(images) -> str:
    if len(images) < 2:
        return ""
    from shared.image_metric import image_quality

    return " " + image_quality(images).reading()


@user_errors
def sample_run(name, count, seed):
    """Stream the digits as they are drawn, two rows at a time."""
    from apps.autoregressive import side_by_side as sbs

    model = sbs.shipped_model(name)

    def describe(frame):
        return (
            f"{len(frame.images)} digits, {frame.pixels_to_draw} pixels each, in {frame.seconds:.1f} s "
            f"({frame.seconds / len(frame.images):.2f} s per digit)." + quality_line(frame.images)
        )

    for picture, status in frames_to_outputs(sbs.sample_stream(name, count, seed), describe):
        yield picture, status, source_of(type(model), type(model).sampling_steps)


@user_errors
def complete_run(name, digit_index, rows_kept, count, seed):
    from apps.autoregressive import side_by_side as sbs

    model = sbs.shipped_model(name)

    def describe(frame):
        return (
            f"First tile: held-out digit {int(digit_index)}; second: the {int(rows_kept)} rows the model is given; "
            f"then {len(frame.images)} completions ({frame.pixels_to_draw} pixels each, {frame.seconds:.1f} s)."
        )

    frames = sbs.completion_stream(name, digit_index, rows_kept, count, seed)
    for picture, status in frames_to_outputs(frames, describe):
        yield picture, status, source_of(type(model).sampling_steps)


def surprise_figure(result):
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    axes[0].imshow(result.digit, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("the binary digit")
    shown = axes[1].imshow(result.probability_of_white, cmap="viridis", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axes[1], fraction=0.046)
    axes[1].set_title("p(pixel white | pixels before)")
    shown = axes[2].imshow(result.surprise, cmap="magma")
    figure.colorbar(shown, ax=axes[2], fraction=0.046, label="nats")
    axes[2].set_title(f"surprise -log p(x_d | x_<d): {result.nats:.1f} nats in all")
    for axis in axes:
        axis.set(xticks=[], yticks=[])
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def surprise_run(name, source, digit_index, upload):
    from apps.autoregressive import side_by_side as sbs
    from apps.autoregressive.model import conditional_probabilities

    result = sbs.surprise_of(name, source, digit_index, upload)
    summary = (
        f"{name}: -log p(digit) = **{result.nats:.1f} nats** ({result.bits_per_dim:.3f} bits/dim), the sum of the "
        "right-hand map. Bright pixels are where the model is surprised: usually where a stroke starts or ends."
    )
    model = sbs.shipped_model(name)
    return (
        notes_markdown(result.notes),
        surprise_figure(result),
        summary,
        source_of(conditional_probabilities, type(model).conditional_logits),
    )


def made_figure(picture):
    """Units as dots (inputs at the bottom, outputs on top) labelled with their degree; a line per unmasked
    weight; and the input -> output dependence matrix beside it."""
    plt = pyplot()
    figure, (graph, matrix) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    layers = [*picture.degrees, picture.degrees[0]]  # the output layer carries the input degrees
    positions = []
    for level, degrees in enumerate(layers):
        xs = [(i + 0.5) / len(degrees) for i in range(len(degrees))]
        positions.append(xs)
    for level, mask in enumerate(picture.masks):
        for out_unit, in_unit in zip(*mask.nonzero()):
            graph.plot(
                [positions[level][in_unit], positions[level + 1][out_unit]],
                [level, level + 1],
                color="#4c72b0",
                alpha=0.35,
                linewidth=0.8,
            )
    names = ["input", *[f"hidden {i + 1}" for i in range(len(picture.degrees) - 1)], "output"]
    for level, degrees in enumerate(layers):
        for x, degree in zip(positions[level], degrees):
            graph.scatter(
                [x], [level], s=380, color="#dd8452" if level in (0, len(layers) - 1) else "#ccb974", zorder=3
            )
            graph.text(x, level, str(int(degree)), ha="center", va="center", fontsize=9, zorder=4)
        graph.text(-0.02, level, names[level], ha="right", va="center", fontsize=10)
    graph.set(xlim=(-0.2, 1.02), ylim=(-0.5, len(layers) - 0.5), xticks=[], yticks=[])
    graph.set_title("MADE's unmasked weights; each unit shows its degree")
    for side in graph.spines.values():
        side.set_visible(False)
    matrix.imshow(picture.dependence, cmap="Blues", vmin=0, vmax=1.3)
    inputs = len(picture.dependence)
    names = [f"x{i + 1}" for i in range(inputs)]  # the dots from left to right
    matrix.set(
        xticks=range(inputs),
        yticks=range(inputs),
        xticklabels=names,
        yticklabels=names,
        xlabel="input",
        ylabel="output",
        title="which inputs each output can depend on",
    )
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def made_run(ordering, seed):
    from apps.autoregressive import side_by_side as sbs
    from apps.autoregressive.model import MADE, made_degrees

    picture = sbs.made_picture(ordering, seed)
    order = " -> ".join(f"x{int(i) + 1}" for i in picture.ordering)
    summary = (
        f"Drawing order: **{order}**. Input x_j's degree is its place in that order; a hidden unit of degree k may see "
        "inputs of degree <= k; output d only units of degree < d's. So output d never sees x_d or anything after it."
    )
    return made_figure(picture), summary, source_of(made_degrees, MADE.set_masks)


def field_picture(field, scale: int = 12):
    """The receptive field over a digit as an RGB picture: read pixels blue, earlier unread pixels orange,
    the pixel itself red, later pixels dark."""
    import numpy as np

    digit = field.digit[..., None] * 0.35  # (28, 28, 1): the digit, dimmed
    picture = np.concatenate([digit, digit, digit], axis=-1) + 0.1
    picture[field.field] = picture[field.field] * 0.5 + np.array([0.25, 0.45, 0.95]) * 0.6
    unseen = field.earlier & ~field.field
    picture[unseen] = picture[unseen] * 0.5 + np.array([0.95, 0.6, 0.2]) * 0.6
    picture[field.row, field.column] = (0.95, 0.1, 0.1)
    picture = (np.clip(picture, 0, 1) * 255).astype(np.uint8)
    return picture.repeat(scale, axis=0).repeat(scale, axis=1)


@user_errors
def field_run(version, row, column):
    from apps.autoregressive import side_by_side as sbs
    from apps.autoregressive.model import MaskedConv2d, receptive_field

    field = sbs.receptive_field_of(version, row, column)
    summary = (
        f"Pixel ({field.row}, {field.column}) reads **{int(field.field.sum())}** of the {int(field.earlier.sum())} "
        f"pixels before it; **{field.unseen_earlier}** earlier pixels (orange) are out of its reach."
    )
    if version == PIXELCNN_VERSIONS[0]:
        summary += (
            " The orange wedge up and to the right is the plain PixelCNN's blind spot: stacking masked kernels "
            "never reaches it."
        )
    return field_picture(field), summary, source_of(MaskedConv2d, receptive_field)


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Accordion("Held-out likelihoods of the shipped models", open=True):
        gr.Markdown(likelihood_table())
    gr.Markdown("### Sample digits, pixel by pixel")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            sample_model = gr.Radio(list(MODEL_NAMES), value="MADE", label="Model")
            sample_count = Slider(1, MAX_SAMPLES, value=16, step=1, label="Digits")
            sample_seed = WholeNumber(0, minimum=0, label="Seed")
            sample_button = gr.Button("Sample digits", variant="primary")
        with gr.Column(scale=3):
            sample_picture = gr.Image(
                label="samples (grey: not drawn yet)", type="numpy", format="png", interactive=False
            )
            sample_status = gr.Markdown()
    gr.Markdown("### Complete the digit: the top rows of a held-out digit kept, the rest sampled")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            complete_model = gr.Radio(list(MODEL_NAMES), value="PixelCNN", label="Model")
            complete_digit = WholeNumber(
                3, minimum=0, maximum=499, label="Held-out digit (0-499, 50 of each class in order)"
            )
            complete_rows = Slider(1, 27, value=12, step=1, label="Rows kept")
            complete_count = Slider(1, MAX_SAMPLES - 2, value=8, step=1, label="Completions")
            complete_seed = WholeNumber(0, minimum=0, label="Seed")
            complete_button = gr.Button("Complete the digit", variant="primary")
        with gr.Column(scale=3):
            complete_picture = gr.Image(
                label="digit, given rows, completions", type="numpy", format="png", interactive=False
            )
            complete_status = gr.Markdown()
    gr.Markdown("### Where is the model surprised? Every pixel's conditional probability")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            surprise_model = gr.Radio(list(MODEL_NAMES), value="PixelCNN", label="Model")
            surprise_source = gr.Radio(list(SOURCES), value=SOURCES[0], label="Digit")
            surprise_digit = WholeNumber(
                0, minimum=0, maximum=499, label="Held-out digit (0-499, 50 of each class in order)"
            )
            surprise_upload = ImageUpload(label="or upload a picture of a digit", height=160)
            surprise_button = gr.Button("Show the conditionals", variant="primary")
        with gr.Column(scale=3):
            surprise_notes = gr.Markdown()
            surprise_plot = gr.Plot(show_label=False)
            surprise_summary = gr.Markdown()
    gr.Markdown("### MADE's masks: which unit may see which")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            made_ordering = gr.Radio(list(ORDERINGS), value="natural", label="Input ordering")
            made_seed = WholeNumber(0, minimum=0, label="Seed (ordering and hidden degrees)")
            made_button = gr.Button("Draw the masks", variant="primary")
        with gr.Column(scale=3):
            made_plot = gr.Plot(show_label=False)
            made_summary = gr.Markdown()
    gr.Markdown("### PixelCNN's receptive field")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            field_version = gr.Radio(list(PIXELCNN_VERSIONS), value=PIXELCNN_VERSIONS[0], label="Network")
            field_row = Slider(0, 27, value=14, step=1, label="Row")
            field_column = Slider(0, 27, value=14, step=1, label="Column")
            field_button = gr.Button("Draw the receptive field", variant="primary")
        with gr.Column(scale=3):
            field_image = gr.Image(
                label="blue: read; orange: earlier but unread; red: the pixel",
                type="numpy",
                format="png",
                interactive=False,
            )
            field_summary = gr.Markdown()
    code = code_panel()

    sample_button.click(
        sample_run,
        inputs=[sample_model, sample_count, sample_seed],
        outputs=[sample_picture, sample_status, code],
        api_name="autoregressive_sample",
    )
    complete_button.click(
        complete_run,
        inputs=[complete_model, complete_digit, complete_rows, complete_count, complete_seed],
        outputs=[complete_picture, complete_status, code],
        api_name="autoregressive_complete",
    )
    surprise_button.click(
        surprise_run,
        inputs=[surprise_model, surprise_source, surprise_digit, surprise_upload],
        outputs=[surprise_notes, surprise_plot, surprise_summary, code],
        api_name="autoregressive_surprise",
    )
    made_button.click(
        made_run,
        inputs=[made_ordering, made_seed],
        outputs=[made_plot, made_summary, code],
        api_name="autoregressive_made_masks",
    )
    field_button.click(
        field_run,
        inputs=[field_version, field_row, field_column],
        outputs=[field_image, field_summary, code],
        api_name="autoregressive_receptive_field",
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "autoregressive_sample": ("MADE", 4, 0),
    "autoregressive_complete": ("NADE", 3, 14, 2, 0),
    "autoregressive_surprise": ("MADE", SOURCES[0], 0, None),
    "autoregressive_made_masks": ("random", 1),
    "autoregressive_receptive_field": (PIXELCNN_VERSIONS[0], 14, 14),
}
BROWSER_CHECK = {"button": "Draw the receptive field", "expect_text": "blind spot", "timeout_ms": 60_000}
