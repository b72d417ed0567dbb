"""Mathematical properties of the models where no library twin exists: the bounds against exact
log-likelihoods (small latents summed or integrated exactly), the analytic KLs against Monte Carlo, the
Gumbel-max trick's frequencies, the gradient penalty and clipping on critics with known gradients."""

import math

import pytest
import torch

from apps.vae_gan.model import (
    MLPVAE,
    CategoricalPosterior,
    CategoricalVAE,
    CategoricalVAEConfig,
    ConvVAE,
    ConvVAEConfig,
    Critic,
    DCGANConfig,
    GaussianPosterior,
    Generator,
    MLPVAEConfig,
    bernoulli_log_likelihood,
    clip_weights,
    critic_loss,
    elbo,
    generator_loss,
    gradient_penalty,
    gumbel_softmax,
    iwae_bound,
    standard_normal_log_prob,
)
from tests.weights import perturb_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


def binary_images(count: int) -> torch.Tensor:
    return (torch.rand(count, 1, 28, 28) < 0.3).float()


@torch.no_grad()
def exact_log_likelihood_1d(model: MLPVAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = log integral p(x|z) N(z) dz for a 1-D latent, by the trapezoid rule on [-8, 8]."""
    z = torch.linspace(-8, 8, 4001)[:, None]  # (Z, 1)
    log_joint = torch.stack(
        [bernoulli_log_likelihood(model.decode(z), image.expand(len(z), -1, -1, -1)) for image in x]
    ) + standard_normal_log_prob(z)  # (B, Z)
    step = (z[1] - z[0]).item()
    return torch.logsumexp(log_joint, dim=1) + math.log(step)


def test_elbo_and_iwae_bound_the_exact_log_likelihood_and_iwae_is_tighter():
    model = perturb_parameters(MLPVAE(MLPVAEConfig(hidden=(16,), latent_dim=1)), 0.05).eval()
    x = binary_images(4)
    exact = exact_log_likelihood_1d(model, x)
    with torch.no_grad():
        mean_elbo = torch.stack([elbo(model, x) for _ in range(400)]).mean(0)
    iwae = torch.stack([iwae_bound(model, x, 64) for _ in range(5)]).mean(0)
    assert (mean_elbo < iwae).all() and (iwae <= exact + 0.05).all()
    assert ((exact - iwae) < 0.5 * (exact - mean_elbo)).all()  # k = 64 closes most of the gap


def test_categorical_vae_bounds_against_the_exact_sum_over_every_code():
    config = CategoricalVAEConfig(hidden=(16,), latent_variables=2, categories=3)
    model = perturb_parameters(CategoricalVAE(config), 0.3).eval()
    x = binary_images(3)
    codes = torch.nn.functional.one_hot(torch.cartesian_prod(torch.arange(3), torch.arange(3)), 3).float()  # (9, 2, 3)
    with torch.no_grad():
        posterior = model.encode(x)
        log_likelihood = torch.stack(
            [bernoulli_log_likelihood(model.decode(code.expand(len(x), -1, -1)), x) for code in codes]
        )  # (9, B): log p(x|c)
        log_q = torch.stack([posterior.log_prob(code.expand(len(x), -1, -1)) for code in codes])  # (9, B)
    exact = torch.logsumexp(log_likelihood, dim=0) - math.log(9)  # uniform prior over the 9 codes
    exact_elbo = (log_q.exp() * log_likelihood).sum(0) - posterior.kl()
    assert torch.allclose(log_q.exp().sum(0), torch.ones(3), atol=1e-6)
    iwae = torch.stack([iwae_bound(model, x, 256) for _ in range(4)]).mean(0)
    assert (exact_elbo <= exact + 1e-4).all() and (iwae <= exact + 0.02).all()
    assert (exact - iwae < exact - exact_elbo).all()


def test_analytic_kls_equal_monte_carlo():
    posterior = GaussianPosterior(torch.randn(2, 3), torch.randn(2, 3))
    z = torch.stack([posterior.sample() for _ in range(20000)])  # (S, 2, 3)
    monte_carlo = torch.stack([posterior.log_prob(sample) - standard_normal_log_prob(sample) for sample in z]).mean(0)
    assert torch.allclose(posterior.kl(), monte_carlo, atol=0.05)
    categorical = CategoricalPosterior(torch.randn(2, 4, 5))
    q = categorical.logits.exp()
    explicit = (q * (q.log() - math.log(1 / 5))).sum((1, 2))
    assert torch.allclose(categorical.kl(), explicit, atol=1e-5)


def test_gumbel_max_samples_follow_the_softmax_and_low_temperature_approaches_one_hot():
    logits = torch.tensor([[[1.0, 0.0, -1.0, 2.0]]])
    samples = CategoricalPosterior(logits.expand(20000, 1, 4)).sample(torch.Generator().manual_seed(0))
    assert torch.allclose(samples.mean(0)[0], logits.softmax(-1)[0, 0], atol=0.015)
    cold = gumbel_softmax(logits.expand(1000, 1, 4), 0.01, generator=torch.Generator().manual_seed(1))
    assert cold.max(-1).values.mean() > 0.99
    with pytest.raises(ValueError, match="positive"):
        gumbel_softmax(logits, 0.0)


class LinearCritic(torch.nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight


def test_gradient_penalty_on_critics_with_known_gradient_norms():
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    assert gradient_penalty(LinearCritic(torch.tensor([0.6, 0.8])), real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(LinearCritic(torch.tensor([0.0, 3.0])), real, fake).item() == pytest.approx(4.0)


def test_clipping_and_the_losses():
    critic = Critic(DCGANConfig(critic_channels=4))
    clip_weights(critic, 0.01)
    assert all(parameter.abs().max() <= 0.01 for parameter in critic.parameters())
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    expected = -torch.log(torch.sigmoid(real)).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    assert critic_loss("non-saturating", real, fake).item() == pytest.approx(expected.item(), rel=1e-6)
    assert generator_loss("non-saturating", fake).item() == pytest.approx(-torch.log(torch.sigmoid(fake)).mean().item())
    assert critic_loss("wgan-gp", real, fake).item() == pytest.approx(-1.0)  # E fake - E real
    assert generator_loss("wgan-clip", fake).item() == pytest.approx(0.0)


def test_shapes_and_ranges():
    config = ConvVAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4, latent_channels=3)
    vae = ConvVAE(config)
    assert vae.latent_shape() == (3, 7, 7)
    assert vae.encode(binary_images(2)).mean.shape == (2, 3, 7, 7) and vae.decode(vae.sample_prior(2)).shape == (
        2,
        1,
        28,
        28,
    )
    generator = Generator(DCGANConfig(latent_dim=8, generator_channels=8)).eval()
    images = generator.generate(5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, generator.generate(5, torch.Generator().manual_seed(0)))  # seeded
    categorical = CategoricalVAE(CategoricalVAEConfig(hidden=(8,), latent_variables=3, categories=4))
    hard = categorical.sample_relaxed_prior(6, 0.5, hard=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(hard.sum(-1), torch.ones(6, 3))
    assert CategoricalVAEConfig().temperature_at(0) == 1.0 and CategoricalVAEConfig().temperature_at(10**6) == 0.5
