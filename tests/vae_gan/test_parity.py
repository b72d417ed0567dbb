"""Our convolutional VAE against diffusers' AutoencoderKL on the same weights and inputs (posterior mean and
log-variance, decode, a seeded posterior sample, the weight mapping both ways, a save_pretrained round
trip), and our Gumbel-softmax against torch.nn.functional.gumbel_softmax on the same noise."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from apps.vae_gan.model import ConvVAE, GaussianPosterior, gumbel_softmax
from apps.vae_gan.reference import (
    exact_wasserstein1,
    reference_posterior_and_decode,
    vae_config_from_diffusers,
    vae_from_diffusers,
    vae_to_diffusers,
)
from tests.weights import perturb_parameters

pytestmark = pytest.mark.usefixtures("one_thread")
TOLERANCE = 1e-5  # on the largest |value| when above 1 (perturbed weights give latents up to about 40)


def assert_close_to(ours: torch.Tensor, reference: torch.Tensor) -> None:
    scale = max(1.0, reference.abs().max().item())
    assert (ours - reference).abs().max().item() <= TOLERANCE * scale


# Three layouts: two levels; three levels with two ResNets per level and RGB; no mid-block attention with
# more input than output channels and a wider latent.
TINY_CONFIGS = {
    "two-levels": dict(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), latent_channels=2, norm_num_groups=4
    ),
    "three-levels-rgb": dict(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 16),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=8,
    ),
    "no-mid-attention": dict(
        sample_size=8,
        in_channels=2,
        out_channels=1,
        block_out_channels=(16, 8),
        latent_channels=3,
        norm_num_groups=8,
        mid_block_add_attention=False,
    ),
}


def random_autoencoder(options: dict, seed: int = 0) -> AutoencoderKL:
    """An AutoencoderKL with every weight perturbed (so that no zero or unit default hides a mapping bug)."""
    torch.manual_seed(seed)
    levels = len(options["block_out_channels"])
    autoencoder = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels, **options
    ).eval()
    return perturb_parameters(autoencoder, 0.3)


def assert_same_as_autoencoder(ours: ConvVAE, autoencoder: AutoencoderKL, x: torch.Tensor) -> None:
    with torch.no_grad():
        mean, logvar, sample, decoded = reference_posterior_and_decode(autoencoder, x, torch.Generator().manual_seed(7))
        posterior = ours.encode(x)
        assert_close_to(posterior.mean, mean)
        assert_close_to(posterior.logvar, logvar)
        assert_close_to(posterior.sample(torch.Generator().manual_seed(7)), sample)
        assert_close_to(ours.decode(posterior.mean), decoded)


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_posterior_sample_and_decode_equal_autoencoder_kl(name):
    options = TINY_CONFIGS[name]
    autoencoder = random_autoencoder(options)
    ours = vae_from_diffusers(autoencoder)
    size = options["sample_size"]
    x = (torch.rand(3, options["in_channels"], size, size) < 0.4).float()
    assert_same_as_autoencoder(ours, autoencoder, x)


def test_shipped_conv_vae_equals_autoencoder_kl(conv_vae):
    from shared.data import mnist5k

    digits = torch.from_numpy(mnist5k().validation_images[:16]).float().div(255).unsqueeze(1)
    assert_same_as_autoencoder(conv_vae, vae_to_diffusers(conv_vae), (digits > 0.5).float())


def test_mapping_round_trip_and_save_pretrained(tmp_path):
    options = TINY_CONFIGS["three-levels-rgb"]
    autoencoder = random_autoencoder(options, seed=1)
    ours = vae_from_diffusers(autoencoder)
    back = vae_to_diffusers(ours)
    for key, value in autoencoder.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    back.save_pretrained(tmp_path)
    reloaded = vae_from_diffusers(AutoencoderKL.from_pretrained(tmp_path))
    assert reloaded.config == ours.config
    x = (torch.rand(2, 3, 16, 16) < 0.5).float()
    with torch.no_grad():
        assert torch.equal(reloaded.decode(ours.encode(x).mean), ours.decode(ours.encode(x).mean))


def test_unsupported_autoencoder_options_are_refused():
    config = dict(random_autoencoder(TINY_CONFIGS["two-levels"]).config)
    with pytest.raises(ValueError, match="act_fn"):
        vae_config_from_diffusers({**config, "act_fn": "relu"})
    with pytest.raises(ValueError, match="use_quant_conv"):
        vae_config_from_diffusers({**config, "use_quant_conv": False})


def test_gaussian_posterior_equals_diagonal_gaussian_distribution():
    """Same clamping of the log-variance (values beyond [-30, 20] included), sample, KL and log-density."""
    parameters = torch.randn(4, 6, 3, 3) * 3
    parameters[0, 3, 0, 0], parameters[1, 4, 1, 1] = -50.0, 35.0  # outside the clamp on both sides
    reference = DiagonalGaussianDistribution(parameters)
    ours = GaussianPosterior(*parameters.chunk(2, dim=1))
    assert torch.equal(ours.logvar, reference.logvar)
    assert torch.equal(
        ours.sample(torch.Generator().manual_seed(3)), reference.sample(torch.Generator().manual_seed(3))
    )
    assert torch.allclose(ours.kl(), reference.kl(), rtol=1e-5)
    z = torch.randn(4, 3, 3, 3)
    assert torch.allclose(-ours.log_prob(z), reference.nll(z), rtol=1e-5)


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 2.0])
def test_gumbel_softmax_equals_torch_on_the_same_noise(hard, temperature):
    logits = torch.randn(5, 7, 10, requires_grad=True)
    weights = torch.randn(5, 7, 10)
    torch.manual_seed(11)
    reference = F.gumbel_softmax(logits, tau=temperature, hard=hard)
    (reference_gradient,) = torch.autograd.grad((reference * weights).sum(), logits)
    torch.manual_seed(11)
    ours = gumbel_softmax(logits, temperature, hard)
    (gradient,) = torch.autograd.grad((ours * weights).sum(), logits)
    assert (ours - reference).abs().max().item() < 1e-6
    assert (gradient - reference_gradient).abs().max().item() < 1e-5
    if hard:
        assert torch.equal(ours.detach().sum(-1), torch.ones(5, 7)) and set(ours.detach().unique().tolist()) <= {0, 1}


def test_exact_wasserstein1_on_cases_with_known_answers():
    points = np.random.default_rng(0).normal(size=(50, 2))
    assert exact_wasserstein1(points, points[::-1]) == pytest.approx(0.0, abs=1e-12)  # same cloud, reordered
    assert exact_wasserstein1(points, points + [3.0, 4.0]) == pytest.approx(5.0)  # a shift moves every point by 5
    with pytest.raises(ValueError, match="equal sample sizes"):
        exact_wasserstein1(points, points[:10])
