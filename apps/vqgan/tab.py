"""VQ-VAE and VQGAN tab: a held-out digit or an uploaded image -> its grid of codebook indices and the
reconstructions of our VQ-VAE and VQGAN beside diffusers' VQModel on the same weights; the codebook's use;
and new digits sampled code by code from our GPT prior. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.vqgan import CODECS, EXAMPLES, MAX_SAMPLES
from shared.device import gpu_task
from shared.ui import (
    ImageUpload,
    Slider,
    WholeNumber,
    code_panel,
    comparison_badges,
    notes_markdown,
    pyplot,
    source_of,
    user_errors,
)

MODEL = "apps.vqgan.model:"
CODE_SHOWN = {
    "reconstruct": (MODEL + "VQModel.forward", MODEL + "VectorQuantizer.forward"),
    "generate": (MODEL + "sample_codes", MODEL + "VQModel.decode_indices"),
}
DISPLAY_SCALE = 8  # 28-pixel digits shown at 224 pixels, each pixel a crisp square
# max |ours - diffusers| on the decoded pixels ([-1, 1] units), same weights and codes: float rounding only
TOLERANCE = 1e-4

INTRODUCTION = """
## VQ-VAE and VQGAN: images as a grid of codebook indices, beside diffusers' `VQModel`
Our codecs (`apps/vqgan/model.py`, laid out like diffusers' `VQModel`) squeeze a 28x28 digit into a
7x7 grid of indices into a codebook of 128 learned vectors, and rebuild it from that grid. Both were
trained on 4,500 MNIST digits by `python -m apps.vqgan.train` (Fashion-MNIST is not installed here):
the **VQ-VAE** with the reconstruction and commitment losses only, the **VQGAN** from the same start with a
perceptual loss and a patch discriminator added, weighted adaptively (eq. 7 of the VQGAN paper). The
diffusers images come from `VQModel` holding **the same weights**. Below, our GPT (from the text
generation tab) writes new index grids one code at a time, and the VQGAN decodes them.
"""


def picture(images, value_range=(-1, 1)):
    """(N, 1, S, S) tensor -> one enlarged uint8 picture."""
    from shared.images import image_grid

    return image_grid(
        images,
        columns=min(len(images), 8),
        padding=0 if len(images) == 1 else 2,
        value_range=value_range,
        scale=DISPLAY_SCALE if len(images) == 1 else 3,
    )


def code_maps_figure(results: list, codebook_size: int):
    """Each codec's 7x7 grid of indices (`side_by_side.Reconstruction`s), coloured by index and labelled with it."""
    import numpy as np

    plt = pyplot()
    figure, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4))
    for axis, result in zip(np.atleast_1d(axes), results):
        axis.imshow(result.indices, cmap="viridis", vmin=0, vmax=codebook_size - 1)
        for (row, column), index in np.ndenumerate(result.indices):
            axis.text(column, row, str(index), ha="center", va="center", fontsize=8, color="white")
        axis.set(title=f"{result.codec}: code indices", xticks=[], yticks=[])
    figure.tight_layout()
    plt.close(figure)
    return figure


def usage_figure(usages: dict):
    """How often each codebook entry occurs in the 500 held-out digits (codec -> `side_by_side.CodebookUsage`)."""
    import numpy as np

    plt = pyplot()
    figure, axes = plt.subplots(len(usages), 1, figsize=(8, 2.2 * len(usages)), sharex=True)
    for axis, (name, usage) in zip(np.atleast_1d(axes), usages.items()):
        axis.bar(np.arange(len(usage.counts)), usage.counts, width=1.0, color="#4c72b0")
        axis.set(
            ylabel="occurrences",
            title=f"{name}: {usage.used}/{len(usage.counts)} codes used, perplexity {usage.perplexity:.1f}",
        )
    np.atleast_1d(axes)[-1].set_xlabel("codebook index")
    figure.tight_layout()
    plt.close(figure)
    return figure


def reconstruction_badges(result) -> str:
    badges = comparison_badges(
        result.ours_seconds,
        result.reference_seconds,
        result.max_abs_difference,
        TOLERANCE,
        result.indices_identical,
        "code indices identical",
    )
    return (
        f"<div><b>{result.codec}</b>: MSE {result.mse:.4f} (PSNR {result.psnr_db:.1f} dB) against the input</div>"
        + badges
    )


@gpu_task
@user_errors
def reconstruct(example, upload, progress=gr.Progress()):
    """Both codecs, ours and diffusers, on one image; returns the 9 outputs of the reconstruction panel."""
    from apps.vqgan import side_by_side as sbs

    progress(0.1, desc="loading the codecs")
    image = sbs.prepare(example, upload)
    results = []
    for step, name in enumerate(CODECS):
        progress(0.2 + 0.35 * step, desc=f"{name}: ours and diffusers")
        results.append(sbs.reconstruct(sbs.codec(name), image.x))
    config = sbs.codec("VQGAN").config
    image_bits, code_bits, ratio = sbs.compression(config)
    summary = (
        f"<div>{config.sample_size}x{config.sample_size} pixels x {sbs.PIXEL_BITS} bits = {image_bits:,} bits -> "
        f"{config.latent_size}x{config.latent_size} codes x {results[0].code_bits} bits = {code_bits} bits: "
        f"<b>{ratio:.1f}x smaller</b></div>"
    )
    badges = summary + "".join(reconstruction_badges(result) for result in results)
    progress(0.9, desc="codebook use over the held-out digits")
    usages = {name: sbs.codebook_usage(name) for name in CODECS}
    vqvae, vqgan = results
    return (
        notes_markdown(image.notes),
        picture(image.x),
        picture(vqvae.ours),
        picture(vqvae.reference),
        picture(vqgan.ours),
        picture(vqgan.reference),
        code_maps_figure(results, config.num_vq_embeddings),
        badges,
        usage_figure(usages),
    )


@gpu_task
@user_errors
def generate(temperature, top_k, seed, count, progress=gr.Progress()):
    """Codes from the prior, decoded by our VQGAN and by diffusers; returns the 5 outputs of the generation panel."""
    from apps.vqgan import side_by_side as sbs

    request = sbs.GenerationRequest(temperature, top_k, seed, count)
    result = sbs.generate(
        request, on_step=lambda done, total: progress((done, total), desc="sampling codes", unit="codes")
    )
    badges = comparison_badges(
        result.ours_decode_seconds, result.reference_decode_seconds, result.max_abs_difference, TOLERANCE
    )
    badges += (
        f"<div>{len(result.codes)} grids of {result.codes[0].numel()} codes sampled in "
        f"{result.sampling_seconds * 1000:.0f} ms; decoding times above (ours vs diffusers, same codes)</div>"
    )
    if len(result.ours) >= 2:
        from shared.image_metric import image_quality

        report = image_quality(result.ours)
        badges += f"<div>{report.reading('these samples')}</div>"
    else:
        request.notes.append("The digit classifier scores two or more samples at a time.")
    return (
        notes_markdown(request.notes),
        picture(result.ours, (0, 1)),
        picture(result.reference, (0, 1)),
        badges,
        source_of(*CODE_SHOWN["generate"]),
    )


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            example = gr.Dropdown(list(EXAMPLES), value="held-out digit 3", label="Image")
            upload = ImageUpload(label="Or upload any image (choose 'your upload' above)", height=200)
            reconstruct_button = gr.Button("Encode and decode", variant="primary")
            original = gr.Image(label="What the codecs read (28x28, grayscale)", type="numpy", interactive=False)
        with gr.Column(scale=3):
            notes = gr.Markdown()
            with gr.Row():
                vqvae_ours = gr.Image(label="VQ-VAE, ours", type="numpy", interactive=False)
                vqvae_reference = gr.Image(label="VQ-VAE, diffusers VQModel", type="numpy", interactive=False)
                vqgan_ours = gr.Image(label="VQGAN, ours", type="numpy", interactive=False)
                vqgan_reference = gr.Image(label="VQGAN, diffusers VQModel", type="numpy", interactive=False)
            badges = gr.HTML()
            code_maps = gr.Plot(label="The 7x7 grids of code indices")
            usage = gr.Plot(label="Codebook use over the 500 held-out digits")
    gr.Markdown("### Generate: our GPT writes a 7x7 grid of codes, one at a time, and the VQGAN decodes it")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            temperature = Slider(0, 2, value=1.0, step=0.05, label="Temperature (0: always the most likely code)")
            top_k = Slider(0, 128, value=0, step=1, label="top-k (0: all codes)")
            seed = WholeNumber(0, minimum=0, label="Seed")
            count = Slider(1, MAX_SAMPLES, value=16, step=1, label="Images")
            generate_button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=3):
            generate_notes = gr.Markdown()
            with gr.Row():
                samples_ours = gr.Image(label="Decoded by our VQGAN", type="numpy", interactive=False)
                samples_reference = gr.Image(
                    label="The same codes decoded by diffusers' VQModel", type="numpy", interactive=False
                )
            generate_badges = gr.HTML()
    code = code_panel(*CODE_SHOWN["reconstruct"])
    reconstruct_button.click(
        reconstruct,
        inputs=[example, upload],
        outputs=[notes, original, vqvae_ours, vqvae_reference, vqgan_ours, vqgan_reference, code_maps, badges, usage],
        api_name="vqgan_reconstruct",
    )
    generate_button.click(
        generate,
        inputs=[temperature, top_k, seed, count],
        outputs=[generate_notes, samples_ours, samples_reference, generate_badges, code],
        api_name="vqgan_generate",
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "vqgan_reconstruct": ("held-out digit 3", None),
    "vqgan_generate": (1.0, 0, 0, 4),
}
BROWSER_CHECK = {"button": "Encode and decode", "expect_text": "code indices identical", "timeout_ms": 60_000}
