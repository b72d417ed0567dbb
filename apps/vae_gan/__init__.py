"""VAE, Gumbel-softmax VAE, GAN and WGAN. The names below are what the tab shows before the engine loads;
the engine (side_by_side.py, toy.py) uses the same ones."""

# shown name -> checkpoint folder under checkpoints/vae_gan/
SAMPLERS = {
    "VAE (convolutional, AutoencoderKL layout)": "conv_vae",
    "VAE (MLP, 2-D latent)": "mlp_vae",
    "Gumbel-softmax VAE": "gumbel_vae",
    "GAN (non-saturating)": "gan",
    "WGAN-GP": "wgan_gp",
}
MAX_IMAGES = 64
LATENT_LIMIT = 4.0  # the latent map covers [-LATENT_LIMIT, LATENT_LIMIT]^2 (the prior puts 99.9% inside)
TOY_DENSITIES = ("8 gaussians", "two moons", "rings")
TOY_LOSSES = {"GAN (non-saturating)": "non-saturating", "WGAN (weight clipping)": "wgan-clip", "WGAN-GP": "wgan-gp"}
TOY_MAX_STEPS = 3000
