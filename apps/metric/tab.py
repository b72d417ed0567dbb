"""Metric learning tab: the margin losses' embeddings of held-out digits on the plane or the sphere, with the
loss at a chosen margin and scale from our module and from pytorch-metric-learning's; a drawn or uploaded
digit placed among them; SimCLR's neighbours and probe table. UI only: the work is in side_by_side.py, and
every heavy import happens inside the events."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from shared.ui import ImageUpload, WholeNumber, code_panel, comparison_badges, notes_markdown, source_of, user_errors

# the tab's choices, repeated here (side_by_side checks them) so that building the tab imports no torch
LOSS_CHOICES = ("Softmax", "L-Softmax", "SphereFace", "CosFace", "ArcFace")
DIMENSIONS = ("2-D (plane)", "3-D (sphere)")
# (margin, scale) shown when a loss is picked: the values the shipped 3-D networks were trained with (2-D: smaller
# margins, see train.py); L-Softmax is measured on the softmax network, m = 2 a sample setting
DEFAULT_SETTINGS = {
    "Softmax": (0.0, 1.0),
    "L-Softmax": (2, 1.0),
    "SphereFace": (2, 1.0),
    "CosFace": (0.35, 16.0),
    "ArcFace": (0.3, 16.0),
}
EXAMPLE_DIGIT = str(Path(__file__).resolve().parents[2] / "checkpoints" / "metric" / "example_digit.png")
PARITY_TOLERANCE = 1e-5
TIMED_EVALUATIONS = 100  # as side_by_side.TIMED_EVALUATIONS (repeated here: the tab imports no engine at build time)

INTRODUCTION = """
## Metric learning: losses that shape an embedding space
A classifier only needs the right class to win; **metric learning** asks for more: digits of one class close
together, different classes far apart, so that a plain distance (or angle) can compare any two digits, even of
classes never seen in training. The **margin losses** of face recognition make the true class win by a margin:
L-Softmax and SphereFace multiply the angle (cos m&theta;), CosFace subtracts m from the cosine, ArcFace adds m
to the angle. Below: a small CNN trained on 4,500 MNIST digits with each loss and a 2-D or 3-D embedding
(`python -m apps.metric.train`); its 500 held-out digits in that space, and the loss at the margin and scale you
choose computed by our module and by `pytorch-metric-learning` on the same embeddings and class weights.
Margins: L-Softmax / SphereFace an integer m (1 = none), CosFace a cosine (0 to 1), ArcFace an angle in
**radians** (below &pi;/2; PML takes degrees).
"""


def defaults_for(loss):
    """Margin and scale the shipped network of `loss` was trained with."""
    if loss not in DEFAULT_SETTINGS:
        raise gr.Error(f"Unknown loss {loss!r}; choose one of {', '.join(LOSS_CHOICES)}.")
    return DEFAULT_SETTINGS[loss]


def view_badges(view) -> str:
    badges = comparison_badges(view.our_seconds, view.pml_seconds, view.difference, PARITY_TOLERANCE)
    verification = view.verification
    return badges + (
        f"<div>{view.loss} on the 500 held-out digits: ours <b>{view.our_loss:.6f}</b>, pytorch-metric-learning "
        f"<b>{view.pml_loss:.6f}</b> (times: {TIMED_EVALUATIONS} evaluations each). Held-out accuracy "
        f"{view.accuracy:.1%}; verification on all held-out pairs by cosine: ROC AUC {verification['roc_auc']:.4f}, "
        f"TAR at FAR 1% {verification['tar_at_far']:.1%}.</div>"
    )


@user_errors
def show_embeddings(loss, dimensions, margin, scale):
    from apps.metric import plots
    from apps.metric import side_by_side as sbs

    view = sbs.embedding_view(loss, dimensions, margin, scale)
    figure = plots.embedding_figure(view.embeddings, view.labels, view.class_weights, f"{loss}, held-out digits")
    return notes_markdown(view.notes), figure, view_badges(view), source_of(*CODE_SHOWN[loss])


# the code each loss runs, by name in apps/metric/model.py
# the code panel's content per loss, read from apps/metric/model.py by name (no import before the first event)
CODE_SHOWN = {
    loss: tuple(f"apps.metric.model:{name}" for name in names)
    for loss, names in {
        "Softmax": ("SoftmaxLoss",),
        "L-Softmax": ("AngularMarginLoss", "LargeMarginSoftmaxLoss", "psi", "multiple_angle_cosine"),
        "SphereFace": ("AngularMarginLoss", "SphereFaceLoss", "psi"),
        "CosFace": ("AngularMarginLoss", "CosFaceLoss"),
        "ArcFace": ("AngularMarginLoss", "ArcFaceLoss"),
    }.items()
}


def place(read_pixels, loss, dimensions, margin, scale):
    import numpy as np

    from apps.metric import plots
    from apps.metric import side_by_side as sbs
    from shared.images import image_grid

    pixels, notes = read_pixels()
    placed = sbs.place_digit(pixels, notes, loss, dimensions, margin, scale)
    figure = plots.embedding_figure(
        placed.view.embeddings,
        placed.view.labels,
        placed.view.class_weights,
        "your digit (black star)",
        placed.embedding,
    )
    grid = image_grid(
        np.concatenate([np.round(placed.pixels[None] * 255), placed.neighbours]).astype(np.uint8),
        columns=len(placed.neighbours) + 1,
        scale=3,
    )
    top = ", ".join(f"{digit}: {placed.probabilities[digit]:.0%}" for digit in placed.probabilities.argsort()[::-1][:3])
    summary = (
        f"The {loss} network reads **{placed.predicted}** ({top}). Left: what it saw (28 x 28, centred as MNIST); "
        f"then its {len(placed.neighbours)} nearest training digits by cosine: "
        f"{', '.join(str(label) for label in placed.neighbour_labels)}."
    )
    return notes_markdown(placed.notes), figure, grid, summary


@user_errors
def place_sketch(sketch, loss, dimensions, margin, scale):
    from apps.metric import side_by_side as sbs

    return place(lambda: sbs.sketch_pixels(sketch), loss, dimensions, margin, scale)


@user_errors
def place_upload(path, loss, dimensions, margin, scale):
    from apps.metric import side_by_side as sbs

    return place(lambda: sbs.upload_pixels(path), loss, dimensions, margin, scale)


@user_errors
def simclr_panel(index):
    import numpy as np

    from apps.metric import side_by_side as sbs
    from shared.images import image_grid

    found = sbs.simclr_neighbours(index)
    rows = np.concatenate([found.query[None], found.simclr, found.query[None], found.pixels])
    grid = image_grid(rows, columns=len(found.simclr) + 1, scale=3)

    def agree(labels):
        return int((labels == found.query_label).sum())

    summary = (
        f"Held-out digit {int(index)} (a {found.query_label}). Top row: nearest training digits in SimCLR's features, "
        f"learnt without labels ({agree(found.simclr_labels)}/{len(found.simclr)} share its digit); bottom row: "
        f"nearest in raw pixels ({agree(found.pixel_labels)}/{len(found.pixels)}).\n\n"
        "Held-out accuracy on 500 digits with few labels (a linear probe or 5-NN on frozen features, against the same "
        "CNN trained from scratch on those labels and against raw pixels):\n\n" + sbs.probe_markdown()
    )
    return grid, summary


def margin_and_scale():
    margin = gr.Number(DEFAULT_SETTINGS["ArcFace"][0], label="Margin (m)")
    scale = gr.Number(DEFAULT_SETTINGS["ArcFace"][1], label="Scale (s)")
    return margin, scale


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            loss = gr.Radio(list(LOSS_CHOICES), value="ArcFace", label="Loss")
            dimensions = gr.Radio(list(DIMENSIONS), value=DIMENSIONS[1], label="Embedding")
            margin, scale = margin_and_scale()
            show_button = gr.Button("Show the embeddings", variant="primary")
        with gr.Column(scale=3):
            notes = gr.Markdown()
            plot = gr.Plot(show_label=False)
            badges = gr.HTML()
    gr.Markdown("### Your digit: draw one (or upload a picture) and see where it lands")
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            sketch = gr.Sketchpad(
                label="Draw a digit",
                type="numpy",
                canvas_size=(280, 280),
                brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
            )
            sketch_button = gr.Button("Place my drawing", variant="primary")
            upload = ImageUpload(label="...or upload a picture of a digit", height=200)
            upload_button = gr.Button("Place the upload")
        with gr.Column(scale=2):
            digit_notes = gr.Markdown()
            digit_plot = gr.Plot(show_label=False)
            neighbours = gr.Image(
                label="what the network saw, then its nearest training digits", format="png", interactive=False
            )
            digit_summary = gr.Markdown()
    gr.Markdown("### SimCLR: features learnt without labels")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            index = WholeNumber(0, minimum=0, maximum=499, label="Held-out digit (0-499)")
            simclr_button = gr.Button("Find its neighbours", variant="primary")
        with gr.Column(scale=3):
            simclr_grid = gr.Image(label="query, then nearest training digits", format="png", interactive=False)
            simclr_summary = gr.Markdown()
    code = code_panel(label="Read the code of the loss")

    loss.change(defaults_for, inputs=loss, outputs=[margin, scale], api_name="metric_defaults")
    settings = [loss, dimensions, margin, scale]
    show_button.click(
        show_embeddings, inputs=settings, outputs=[notes, plot, badges, code], api_name="metric_embeddings"
    )
    digit_outputs = [digit_notes, digit_plot, neighbours, digit_summary]
    sketch_button.click(place_sketch, inputs=[sketch] + settings, outputs=digit_outputs, api_name="metric_sketch")
    upload_button.click(place_upload, inputs=[upload] + settings, outputs=digit_outputs, api_name="metric_upload")
    simclr_button.click(simclr_panel, inputs=index, outputs=[simclr_grid, simclr_summary], api_name="metric_simclr")


def _file(path: str) -> dict:
    """A file argument as gradio_client sends it (what `gradio_client.handle_file` builds)."""
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "metric_defaults": ("CosFace",),
    "metric_embeddings": ("ArcFace", DIMENSIONS[1], 0.3, 16.0),
    "metric_sketch": (
        {"background": _file(EXAMPLE_DIGIT), "layers": [], "composite": _file(EXAMPLE_DIGIT)},
        "CosFace",
        DIMENSIONS[1],
        0.35,
        16.0,
    ),
    "metric_upload": (_file(EXAMPLE_DIGIT), "ArcFace", DIMENSIONS[0], 0.1, 16.0),
    "metric_simclr": (7,),
}
MAIN_ACTION = ("metric_embeddings", API_EXAMPLES["metric_embeddings"])  # what `python -m bench app` clicks
BROWSER_CHECK = {"button": "Show the embeddings", "expect_text": "max |difference|", "timeout_ms": 60_000}
