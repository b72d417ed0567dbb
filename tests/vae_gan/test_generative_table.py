"""The table of every generative family reads each topic's shipped results: one row per model, every
column filled, each row naming its source (the normalizing flows, scored by sampling, are left to the
benchmark run itself)."""

from bench import generative


def test_rows_read_from_the_topics_results_have_every_column():
    rows = (
        generative.vae_gan_rows()
        + [generative.vqgan_row()]
        + generative.rectified_rows()
        + generative.diffusion_rows()
        + generative.autoregressive_rows()
    )
    models = [row["model"] for row in rows]
    for expected in ("GAN (non-saturating)", "WGAN-GP", "Gumbel-softmax VAE", "DDIM-20", "DDPM-1000", "PixelCNN"):
        assert expected in models
    assert any(model.startswith("rectified flow, 1 Euler step") for model in models)
    for row in rows:
        assert set(generative.COLUMNS) <= set(row) and row["source"].startswith("bench/results/")
        assert isinstance(row["FD"], (int, float)) and "/10" in row["digits present"]
        assert row["time per image"].endswith("ms")
    bits = {row["model"]: row["NLL bits/dim"] for row in rows}
    assert "binary, exact" in bits["PixelCNN"] and "IWAE-64 bound" in bits["VAE (convolutional, AutoencoderKL layout)"]
    assert bits["WGAN-GP"] == "-"
