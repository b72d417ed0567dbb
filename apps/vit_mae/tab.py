"""ViT and MAE tab: an example or an uploaded image -> our MAE and transformers' ViTMAEForPreTraining
rebuild it from the same mask (same weights, same noise), and our ViT and ViTForImageClassification
classify it, with an attention-rollout map of where our class token looked. UI only: the work is in
side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.vit_mae import EXAMPLES, SHIPPED, UPLOAD
from shared.device import gpu_task
from shared.ui import (
    ImageUpload,
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

MODEL = "apps.vit_mae.model:"
CODE_SHOWN = {
    "reconstruct": (MODEL + "random_masking", MODEL + "MAE.encode", MODEL + "MAE.decode"),
    "classify": (MODEL + "ViT.encode", MODEL + "attention_rollout"),
}
DISPLAY_SIZE = 224  # small images are enlarged (nearest neighbour, so each pixel stays a crisp square) to about this
# max |ours - transformers| on the predicted pixels / logits, same weights and noise: float rounding only
TOLERANCE = 1e-4

INTRODUCTION = """
## ViT and MAE: masked-image reconstruction and classification, beside `transformers`
Our ViT and masked autoencoder (`apps/vit_mae/model.py`) were trained on 4,500 MNIST digits by
`python -m apps.vit_mae.train`: the MAE learned to rebuild digits from a quarter of their patches, and
the classifier was fine-tuned from the MAE's encoder. The reference columns run `transformers`'
`ViTMAEForPreTraining` and `ViTForImageClassification` on **the same weights**, converted by
`apps/vit_mae/reference.py`; the MAE also gets **the same noise**, so it hides the same patches.
Pick a held-out digit, the photo (to see what a digits model does with it), or upload any image.
"""


def picture(pixels):
    """(S, S, C) or (S, S) array in [0, 1] -> uint8, enlarged to about DISPLAY_SIZE pixels."""
    import numpy as np

    from shared.images import image_grid

    pixels = pixels if pixels.ndim == 3 else pixels[..., None]
    batch = np.clip(pixels, 0, 1).transpose(2, 0, 1)[None]  # (1, C, S, S)
    return image_grid(batch, columns=1, padding=0, scale=max(1, DISPLAY_SIZE // pixels.shape[0]))


def classification_figure(result):
    """A `side_by_side.Classification` drawn. Left: the top classes, our probability beside the
    reference's. Right: the image with the attention rollout laid over it, one colour per patch."""
    import numpy as np

    plt = pyplot()
    figure, (bars, heat) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.2, 1]})
    positions = np.arange(len(result.labels))
    bars.barh(positions - 0.2, result.ours, height=0.4, label="ours")
    bars.barh(positions + 0.2, result.reference, height=0.4, label="transformers")
    bars.set_yticks(positions, result.labels)
    bars.invert_yaxis()
    bars.set(xlabel="probability", xlim=(0, 1), title=f"Top {len(result.labels)} classes")
    bars.legend(loc="lower right")
    bars.grid(axis="x", alpha=0.3)
    size = result.image.shape[0]
    heat.imshow(result.image.mean(axis=-1), cmap="gray", vmin=0, vmax=1, extent=(0, size, size, 0))
    shown = heat.imshow(result.rollout, cmap="inferno", alpha=0.55, extent=(0, size, size, 0), interpolation="nearest")
    figure.colorbar(shown, ax=heat, fraction=0.046, label="share of the class token's information")
    heat.set(title="Attention rollout (ours) over the image", xticks=[], yticks=[])
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def load_models(mae_name: str, vit_name: str, progress=gr.Progress()):
    """Switch the MAE and the ViT to Hub / local checkpoints, or back to the shipped ones when empty."""
    from apps.vit_mae import side_by_side as sbs

    mae_name, vit_name = hub_model_name(mae_name) or SHIPPED, hub_model_name(vit_name) or SHIPPED
    progress(0.1, desc=f"loading {mae_name}")
    mae = sbs.autoencoders(mae_name)
    progress(0.5, desc=f"loading {vit_name}")
    vit = sbs.classifiers(vit_name)
    lines = [
        (
            f"MAE: **{mae.name}**, {mae.parameters / 1e6:.1f} M parameters, {mae.ours.config.image_size} px, "
            f"{mae.ours.config.num_patches} patches."
        ),
        f"ViT: **{vit.name}**, {vit.parameters / 1e6:.1f} M parameters, {vit.ours.config.num_labels} classes.",
    ]
    return mae_name, vit_name, "\n\n".join(lines)


@gpu_task
@user_errors
def reconstruct(example, upload, mask_ratio, seed, mae_name, progress=gr.Progress()):
    """Ours, then transformers, on the same image and noise; returns the 8 outputs of the MAE panel."""
    from apps.vit_mae import side_by_side as sbs

    progress(0.1, desc="loading the MAE")
    pair = sbs.autoencoders(mae_name)
    progress(0.3, desc="masking and rebuilding, ours and transformers")
    result = sbs.reconstruct(pair, sbs.prepared(pair, example, upload), mask_ratio, seed)
    badges = comparison_badges(
        result.ours_seconds,
        result.reference_seconds,
        result.max_abs_difference,
        TOLERANCE,
        identical=result.masks_identical,
        identical_label="masks identical",
    )
    largest = float(result.difference.max())
    badges += (
        f"<div>{result.hidden} of {result.patches} patches hidden. Mean squared error on the hidden patches "
        f"(pixels in [0, 1]): ours {result.ours_mse:.4f}, transformers {result.reference_mse:.4f}. "
        f"In the difference picture white is {largest:.1e}{' (the pictures are identical)' if largest == 0 else ''}.</div>"
    )
    difference = result.difference / largest if largest > 0 else result.difference
    return (
        notes_markdown(result.notes),
        picture(result.image),
        picture(result.masked),
        picture(result.ours),
        picture(result.reference),
        picture(difference),
        badges,
        source_of(*CODE_SHOWN["reconstruct"]),
    )


@gpu_task
@user_errors
def classify(example, upload, vit_name, progress=gr.Progress()):
    """Our ViT and ViTForImageClassification on the same image; returns the 4 outputs of the ViT panel."""
    from apps.vit_mae import side_by_side as sbs

    progress(0.1, desc="loading the ViT")
    pair = sbs.classifiers(vit_name)
    result = sbs.classify(pair, sbs.prepared(pair, example, upload))
    badges = comparison_badges(
        result.ours_seconds,
        result.reference_seconds,
        result.max_logit_difference,
        TOLERANCE,
        identical=result.max_attention_difference < TOLERANCE,
        identical_label="attention maps identical",
    )
    badges += (
        "<div>Times include the attention weights of every layer. Max |attention difference| "
        f"{result.max_attention_difference:.1e}.</div>"
    )
    return notes_markdown(result.notes), classification_figure(result), badges, source_of(*CODE_SHOWN["classify"])


def describe_upload(upload):
    """A file was uploaded: use it (picking an example again switches back)."""
    return gr.update(value=UPLOAD) if upload else gr.update()


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    mae_name, vit_name = gr.State(SHIPPED), gr.State(SHIPPED)
    with gr.Row():
        example = gr.Dropdown([*EXAMPLES, UPLOAD], value=EXAMPLES[3], label="Image", scale=2)
        upload = ImageUpload(
            label="Or upload an image (any size; converted to the model's format with a note)", height=180, scale=2
        )
        with gr.Accordion("Use a ViT-MAE / ViT from the Hugging Face Hub (needs the internet)", open=False):
            hub_mae = gr.Textbox(
                label="ViTMAEForPreTraining: Hub id or save_pretrained folder (empty: the shipped MAE)",
                placeholder="facebook/vit-mae-base",
            )
            hub_vit = gr.Textbox(
                label="ViTForImageClassification: Hub id or folder (empty: the shipped ViT)",
                placeholder="google/vit-base-patch16-224",
            )
            load_button = gr.Button("Load into ours and transformers")
            hub_status = gr.Markdown(f"Using the **{SHIPPED}**.")
    with gr.Tab("Masked reconstruction (MAE)"):
        with gr.Row():
            mask_ratio = Slider(
                0, 1, value=0.75, step=0.05, label="Mask ratio (share of patches hidden; MAE trains at 0.75)", scale=3
            )
            seed = WholeNumber(
                0,
                minimum=0,
                label="Seed (which patches are hidden; the same noise on both sides)",
                scale=2,
            )
            reconstruct_button = gr.Button("Mask and rebuild", variant="primary", scale=1)
        gr.Markdown(
            "The model's input; what the encoder sees (hidden patches grey); the visible patches with the hidden ones as "
            "**our MAE** predicts them; the same from **transformers**' predictions; their difference, scaled "
            "to its largest value."
        )
        reconstruction_notes = gr.Markdown()
        with gr.Row():
            shown = dict(type="numpy", format="png", interactive=False)
            original = gr.Image(label="the model's input", **shown)
            masked = gr.Image(label="encoder's view", **shown)
            ours = gr.Image(label="ours", **shown)
            reference = gr.Image(label="transformers", **shown)
            difference = gr.Image(label="difference", **shown)
        reconstruction_badges = gr.HTML()
    with gr.Tab("Classification and attention (ViT)"):
        classify_button = gr.Button("Classify", variant="primary")
        classification_notes = gr.Markdown()
        chart = gr.Plot(show_label=False)
        classification_badges = gr.HTML()
    code = code_panel(*CODE_SHOWN["reconstruct"])

    upload.change(describe_upload, inputs=[upload], outputs=[example], api_name=False)
    reconstruct_button.click(
        reconstruct,
        inputs=[example, upload, mask_ratio, seed, mae_name],
        outputs=[reconstruction_notes, original, masked, ours, reference, difference, reconstruction_badges, code],
        api_name="vit_mae_reconstruct",
    )
    classify_button.click(
        classify,
        inputs=[example, upload, vit_name],
        outputs=[classification_notes, chart, classification_badges, code],
        api_name="vit_mae_classify",
    )
    load_button.click(
        load_models, inputs=[hub_mae, hub_vit], outputs=[mae_name, vit_name, hub_status], api_name="vit_mae_load"
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "vit_mae_reconstruct": (EXAMPLES[3], None, 0.75, 0),
    "vit_mae_classify": (EXAMPLES[3], None),
    "vit_mae_load": ("", ""),
}
BROWSER_CHECK = {"button": "Mask and rebuild", "expect_text": "masks identical", "timeout_ms": 60_000}
