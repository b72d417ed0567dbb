"""VAE and GAN tab: seeded samples of the shipped VAEs, Gumbel-softmax VAE, GAN and WGAN-GP; the 2-D latent
map; interpolation; soft vs hard Gumbel-softmax codes; a 2-D GAN / WGAN trained in the request with the
critic's W1 estimate beside the exact W1; our convolutional VAE beside diffusers' AutoencoderKL.
UI only: the work is in side_by_side.py and toy.py."""

from __future__ import annotations

import gradio as gr

from apps.vae_gan import LATENT_LIMIT, MAX_IMAGES, SAMPLERS, TOY_DENSITIES, TOY_LOSSES, TOY_MAX_STEPS
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

MODEL = "apps.vae_gan.model:"
CODE_SHOWN = {
    "sample": (MODEL + "GaussianPosterior.sample", MODEL + "elbo", MODEL + "iwae_bound"),
    "latent": (MODEL + "MLPVAE.encode", MODEL + "MLPVAE.decode"),
    "gumbel": (MODEL + "gumbel_softmax", MODEL + "CategoricalPosterior.kl"),
    "toy": (MODEL + "critic_loss", MODEL + "generator_loss", MODEL + "gradient_penalty", MODEL + "clip_weights"),
    "parity": (MODEL + "ConvVAE.encode", MODEL + "ConvVAE.decode", MODEL + "GaussianPosterior.sample"),
}
TOLERANCE = 1e-5  # max |ours - diffusers|: float rounding only
GAUSSIAN_VAES = [name for name, folder in SAMPLERS.items() if folder in ("conv_vae", "mlp_vae")]

INTRODUCTION = """
## VAE and GAN: two ways to turn a simple latent into a digit
A **VAE** learns a decoder p(x|z) together with an encoder q(z|x) by maximising the evidence lower bound
(ELBO); the sample z = μ + σ·ε (the **reparameterisation trick**) lets gradients reach μ and σ. For
discrete latents, **Gumbel-softmax** relaxes the one-hot sample with a temperature. A **GAN** trains a
generator against a discriminator; **WGAN** replaces it by a critic whose value estimates the
Wasserstein-1 distance, kept 1-Lipschitz by weight clipping or a gradient penalty (WGAN-GP).
The shipped models (`python -m apps.vae_gan.train`) learned from 4,500 MNIST digits on a CPU.
"""


@user_errors
def sample_run(model, count, seed):
    from apps.vae_gan import side_by_side as sbs

    result = sbs.samples(model, count, seed)
    text = f"{len(result.images)} samples in {result.seconds * 1000:.1f} ms. {result.reading}"
    return sbs.grid_of(result.images), text, source_of(*CODE_SHOWN["sample"])


def latent_figure(view):
    """The decoded grid as the background of the latent plane, the held-out means on top, the chosen point."""
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 5.4), gridspec_kw={"width_ratios": [3, 1]})
    limit = LATENT_LIMIT
    left.imshow(view.tiles, cmap="gray", extent=(-limit, limit, -limit, limit), alpha=0.55)
    points = left.scatter(
        view.held_out_means[:, 0], view.held_out_means[:, 1], c=view.labels, cmap="tab10", s=9, vmin=-0.5, vmax=9.5
    )
    figure.colorbar(points, ax=left, ticks=range(10), fraction=0.046, label="held-out digit's label")
    left.scatter(*view.point, marker="X", s=160, color="red", edgecolor="white", zorder=3)
    left.set(
        xlim=(-limit, limit),
        ylim=(-limit, limit),
        xlabel="z1",
        ylabel="z2",
        title="decoded latent plane, with the 500 held-out digits' posterior means",
    )
    right.imshow(view.decoded_point, cmap="gray", vmin=0, vmax=255)
    right.set(title=f"decode of ({view.point[0]:.2f}, {view.point[1]:.2f})", xticks=[], yticks=[])
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def latent_run(z1, z2):
    from apps.vae_gan import side_by_side as sbs

    return latent_figure(sbs.latent_map(z1, z2)), source_of(*CODE_SHOWN["latent"])


@user_errors
def interpolate_run(model, first_digit, second_digit, steps, upload):
    from apps.vae_gan import side_by_side as sbs

    result = sbs.interpolate(model, first_digit, second_digit, steps, upload)
    return (
        notes_markdown(result.notes),
        sbs.grid_of(result.images, len(result.images)),
        source_of(*CODE_SHOWN["latent"]),
    )


@user_errors
def gumbel_run(temperature, count, seed):
    from apps.vae_gan import side_by_side as sbs

    result = sbs.gumbel_samples(temperature, count, seed)
    text = (
        f"Same Gumbel noise on both sides. Mean largest class probability of the soft codes: "
        f"**{result.mean_max_probability:.3f}** (1 = one-hot; 1/{result.soft_codes.shape[-1]} = uniform). "
        "Low temperatures make soft and hard codes agree; high ones blend classes into blurry digits."
    )
    return sbs.grid_of(result.soft), sbs.grid_of(result.hard), text, source_of(*CODE_SHOWN["gumbel"])


def toy_figure(run):
    """Samples over the critic's contours, and the critic's estimate beside the exact W1 over training."""
    from apps.vae_gan.toy import PLOT_LIMIT as limit

    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    shown = left.imshow(
        run.critic_grid, origin="lower", extent=(-limit, limit, -limit, limit), cmap="coolwarm", alpha=0.8
    )
    left.contour(run.critic_grid, levels=12, colors="black", linewidths=0.4, extent=(-limit, limit, -limit, limit))
    figure.colorbar(shown, ax=left, fraction=0.046, label="critic value f(x)")
    left.scatter(run.data[:, 0], run.data[:, 1], s=3, color="black", label="data")
    left.scatter(run.samples[:, 0], run.samples[:, 1], s=3, color="yellow", label="generated")
    left.set(xlim=(-limit, limit), ylim=(-limit, limit), title=f"{run.loss} on {run.density}", xticks=[], yticks=[])
    left.legend(loc="upper right", fontsize=8)
    right.plot(run.steps, run.exact_w1, color="black", label="exact W1 (optimal assignment)")
    estimate_label = (
        "discriminator gap (no W1 estimate)" if run.loss == "non-saturating" else "critic: E f(real) - E f(fake)"
    )
    right.plot(run.steps, run.critic_estimates, color="tab:red", label=estimate_label)
    right.set(xlabel="generator steps", ylabel="distance", title="critic's estimate vs exact W1, same samples")
    right.legend(fontsize=8)
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def toy_run(density, loss, steps, seed, progress=gr.Progress()):
    from apps.vae_gan import side_by_side as sbs

    run = sbs.toy_run(density, loss, steps, seed, progress=lambda fraction, text: progress(fraction, desc=text))
    text = (
        f"Trained in {run.seconds:.1f} s. Final exact W1 **{run.exact_w1[-1]:.3f}**, critic's value "
        f"**{run.critic_estimates[-1]:.3f}** (WGAN-GP's critic is near 1-Lipschitz, so its value approaches W1 from "
        "below; a clipped critic is K-Lipschitz for an unknown K; a GAN's discriminator estimates no distance)."
    )
    return toy_figure(run), text, source_of(*CODE_SHOWN["toy"])


@user_errors
def parity_run(count, seed):
    from apps.vae_gan import side_by_side as sbs

    result = sbs.parity(count, seed)
    worst = max(result.differences.values())
    badges = comparison_badges(result.ours_seconds, result.reference_seconds, worst, TOLERANCE)
    badges += "<div>" + " · ".join(f"{name}: {value:.1e}" for name, value in result.differences.items()) + "</div>"
    badges += (
        f"<div>{result.count} held-out digits; the sample uses the same seeded torch.Generator on both sides.</div>"
    )
    return sbs.grid_of(result.originals), sbs.grid_of(result.reconstructions), badges, source_of(*CODE_SHOWN["parity"])


def count_and_seed(value: int = 16):
    return Slider(1, MAX_IMAGES, value=value, step=1, label="Images"), WholeNumber(0, minimum=0, label="Seed")


def picture(label: str) -> gr.Image:
    return gr.Image(label=label, type="numpy", format="png", interactive=False)


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    gr.Markdown("### Our convolutional VAE beside diffusers' `AutoencoderKL` (same weights, digits and generator)")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            parity_count, parity_seed = count_and_seed(8)
            parity_button = gr.Button("Compare with AutoencoderKL", variant="primary")
        with gr.Column(scale=3):
            with gr.Row():
                parity_originals = picture("held-out digits (binarised)")
                parity_reconstructions = picture("our decode of the posterior means (Bernoulli means)")
            parity_badges = gr.HTML()
    gr.Markdown("### Samples of the shipped models (seeded)")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            sampler = gr.Radio(list(SAMPLERS), value=list(SAMPLERS)[0], label="Model")
            sample_count, sample_seed = count_and_seed()
            sample_button = gr.Button("Sample", variant="primary")
        with gr.Column(scale=3):
            sample_grid = picture("samples")
            sample_text = gr.Markdown()
    gr.Markdown("### The latent map of the 2-D VAE: pick a point, see its digit")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            z1 = Slider(-LATENT_LIMIT, LATENT_LIMIT, value=0.0, step=0.05, label="z1")
            z2 = Slider(-LATENT_LIMIT, LATENT_LIMIT, value=0.0, step=0.05, label="z2")
            latent_button = gr.Button("Decode the point", variant="primary")
        with gr.Column(scale=3):
            latent_plot = gr.Plot(show_label=False)
    gr.Markdown("### Interpolation between two digits' posterior means")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            interpolation_model = gr.Radio(GAUSSIAN_VAES, value=GAUSSIAN_VAES[0], label="VAE")
            first_digit = WholeNumber(3, minimum=0, maximum=9, label="From the held-out digit")
            second_digit = WholeNumber(8, minimum=0, maximum=9, label="To the held-out digit")
            interpolation_steps = Slider(2, 16, value=10, step=1, label="Steps")
            upload = ImageUpload(label="Or start from your own picture (optional)", height=160)
            interpolation_button = gr.Button("Interpolate", variant="primary")
        with gr.Column(scale=3):
            interpolation_notes = gr.Markdown()
            interpolation_strip = picture("decodes along the line")
    gr.Markdown("### Gumbel-softmax: soft vs hard codes from the same noise")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            temperature = Slider(0.05, 5, value=0.5, step=0.05, label="Temperature τ")
            gumbel_count, gumbel_seed = count_and_seed()
            gumbel_button = gr.Button("Sample codes", variant="primary")
        with gr.Column(scale=3):
            with gr.Row():
                soft_grid = picture("soft: softmax((log π + g) / τ)")
                hard_grid = picture("hard: one-hot argmax (straight-through)")
            gumbel_text = gr.Markdown()
    gr.Markdown("### GAN vs WGAN on 2-D points, trained in your request (a few seconds)")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            density = gr.Dropdown(list(TOY_DENSITIES), value=TOY_DENSITIES[0], label="Density")
            toy_loss = gr.Radio(list(TOY_LOSSES), value="WGAN-GP", label="Loss")
            toy_steps = Slider(1, TOY_MAX_STEPS, value=300, step=1, label="Generator steps")
            toy_seed = WholeNumber(0, minimum=0, label="Seed")
            toy_button = gr.Button("Train and plot", variant="primary")
        with gr.Column(scale=3):
            toy_plot = gr.Plot(show_label=False)
            toy_text = gr.Markdown()
    code = code_panel(*CODE_SHOWN["parity"])

    parity_button.click(
        parity_run,
        inputs=[parity_count, parity_seed],
        outputs=[parity_originals, parity_reconstructions, parity_badges, code],
        api_name="vae_gan_parity",
    )
    sample_button.click(
        sample_run,
        inputs=[sampler, sample_count, sample_seed],
        outputs=[sample_grid, sample_text, code],
        api_name="vae_gan_sample",
    )
    latent_button.click(latent_run, inputs=[z1, z2], outputs=[latent_plot, code], api_name="vae_gan_latent_map")
    interpolation_button.click(
        interpolate_run,
        inputs=[interpolation_model, first_digit, second_digit, interpolation_steps, upload],
        outputs=[interpolation_notes, interpolation_strip, code],
        api_name="vae_gan_interpolate",
    )
    gumbel_button.click(
        gumbel_run,
        inputs=[temperature, gumbel_count, gumbel_seed],
        outputs=[soft_grid, hard_grid, gumbel_text, code],
        api_name="vae_gan_gumbel",
    )
    toy_button.click(
        toy_run,
        inputs=[density, toy_loss, toy_steps, toy_seed],
        outputs=[toy_plot, toy_text, code],
        api_name="vae_gan_toy",
    )


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {  # the first is the topic's main action
    "vae_gan_parity": (4, 0),
    "vae_gan_sample": (list(SAMPLERS)[0], 4, 0),
    "vae_gan_latent_map": (0.5, -1.0),
    "vae_gan_interpolate": (GAUSSIAN_VAES[0], 3, 8, 4, None),
    "vae_gan_gumbel": (0.5, 4, 0),
    "vae_gan_toy": (TOY_DENSITIES[0], "WGAN-GP", 20, 0),
}
BROWSER_CHECK = {"button": "Compare with AutoencoderKL", "expect_text": "max |difference|", "timeout_ms": 60_000}
