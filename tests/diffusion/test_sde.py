"""Score SDEs on an analytic score (a Gaussian mixture, whose noised marginals are known in closed form):
our samplers against diffusers' score-SDE schedulers, and the probability-flow ODE's likelihood against
the exact density."""

import math

import pytest
import torch

from apps.diffusion.reference import diffusers_pc_sample
from apps.diffusion.sde import (
    VESDE,
    VPSDE,
    GaussianMixture,
    digits_bits_per_dim,
    divergence,
    eight_blob_mixture,
    ode_log_likelihood,
    pc_sample,
    probability_flow_ode,
)

MIXTURE = eight_blob_mixture()
# A 5-D mixture, so that images-like shapes (B, C, H, W) and Hutchinson's estimate are exercised too.
WIDE = GaussianMixture(
    torch.tensor([[1.0, -1.0, 0.5, 0.0, 2.0], [-1.5, 0.5, 0.0, 1.0, -1.0], [0.0, 1.5, -1.0, -1.0, 0.5]]),
    torch.tensor([0.3, 0.5, 0.4]),
    torch.tensor([0.5, 0.3, 0.2]),
)


def ve() -> VESDE:
    return VESDE(sigma_min=0.01, sigma_max=20.0)


@pytest.mark.parametrize("steps, corrector_steps, snr", [(50, 1, 0.16), (20, 2, 0.3), (7, 0, 0.16)])
def test_ve_predictor_corrector_equals_score_sde_ve_scheduler(steps, corrector_steps, snr):
    sde = ve()
    score = MIXTURE.score_function(sde)
    arguments = dict(steps=steps, corrector_steps=corrector_steps, snr=snr)
    ours = pc_sample(score, sde, (64, 2), generator=torch.Generator().manual_seed(1), **arguments)
    theirs = diffusers_pc_sample(score, sde, (64, 2), generator=torch.Generator().manual_seed(1), **arguments)
    assert (ours - theirs).abs().max().item() < 1e-5


def test_pc_sampling_works_on_image_shaped_tensors():
    sde = ve()
    flat_score = WIDE.score_function(sde)

    def image_score(x, sigma):  # (B, 1, 1, 5) images of one row
        return flat_score(x.flatten(1), sigma).reshape(x.shape)

    ours = pc_sample(image_score, sde, (8, 1, 1, 5), 30, torch.Generator().manual_seed(2))
    theirs = diffusers_pc_sample(image_score, sde, (8, 1, 1, 5), 30, torch.Generator().manual_seed(2))
    assert ours.shape == (8, 1, 1, 5) and (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize("steps", [100, 13])
def test_vp_euler_maruyama_equals_score_sde_vp_scheduler(steps):
    sde = VPSDE()
    score = MIXTURE.score_function(sde)
    ours = pc_sample(
        score, sde, (64, 2), steps, torch.Generator().manual_seed(3), corrector_steps=0, predictor="euler_maruyama"
    )
    theirs = diffusers_pc_sample(score, sde, (64, 2), steps, torch.Generator().manual_seed(3), corrector_steps=0)
    assert (ours - theirs).abs().max().item() < 1e-5


def test_diffusers_vp_has_no_corrector_to_compare():
    with pytest.raises(ValueError, match="no corrector"):
        diffusers_pc_sample(MIXTURE.score_function(VPSDE()), VPSDE(), (4, 2), 10, corrector_steps=1)


def test_closed_form_marginals_equal_the_noised_data_density():
    """p_t(x) = E_{x_0 ~ p_0} N(x; scale x_0, std^2 I), estimated with 200,000 data samples, at a few points."""
    data = MIXTURE.sample(200_000, torch.Generator().manual_seed(4)).double()
    points = torch.tensor([[0.0, 0.0], [1.5, 1.0], [-1.0, 0.5], [0.3, -2.0]], dtype=torch.float64)
    for sde in (ve(), VPSDE()):
        t = torch.tensor(0.6)  # noise of std ~1 (VE) and ~0.95 (VP): the kernel average has enough samples
        scale, std = (value.double() for value in sde.marginal(t))
        squared = ((points[:, None, :] - scale * data[None]) ** 2).sum(-1)  # (4, 200000)
        monte_carlo = (torch.exp(-squared / (2 * std**2)) / (2 * math.pi * std**2)).mean(1)
        closed_form = MIXTURE.log_prob(points.float(), scale.float(), std.float()).double().exp()
        assert torch.allclose(closed_form, monte_carlo, rtol=0.03), (sde.name, closed_form, monte_carlo)


def test_analytic_score_is_the_gradient_of_the_log_density():
    for sde in (ve(), VPSDE()):
        x = torch.randn(16, 2, requires_grad=True)
        t = torch.full((16,), 0.3)
        scale, std = sde.marginal(t)
        (gradient,) = torch.autograd.grad(MIXTURE.log_prob(x, scale, std).sum(), x)
        assert torch.allclose(MIXTURE.score_function(sde)(x.detach(), sde.noise_label(t)), gradient, atol=1e-5)


@pytest.mark.parametrize("sde_name", ["VE", "VP"])
def test_samplers_reach_the_mixture(sde_name):
    """PC, Euler-Maruyama and the ODE all land on the data: the mean log density of their samples under the
    mixture is close to that of true samples (minus the entropy)."""
    sde = ve() if sde_name == "VE" else VPSDE()
    score = MIXTURE.score_function(sde)
    target = MIXTURE.log_prob(MIXTURE.sample(4000, torch.Generator().manual_seed(0))).mean()
    pc = pc_sample(score, sde, (1000, 2), 100, torch.Generator().manual_seed(6))
    em = pc_sample(score, sde, (1000, 2), 200, torch.Generator().manual_seed(7), 0, predictor="euler_maruyama")
    ode = probability_flow_ode(score, sde, (1000, 2), torch.Generator().manual_seed(8), rtol=1e-3, atol=1e-3)
    for samples in (pc, em, ode.samples):
        assert abs(MIXTURE.log_prob(samples).mean() - target) < 0.15
    assert ode.evaluations > 10 and ode.path.shape == (2, 1000, 2)


@pytest.mark.parametrize("sde_name", ["VE", "VP"])
def test_ode_likelihood_equals_the_exact_mixture_density(sde_name):
    """The acceptance check: log p through the probability-flow ODE (exact divergence in 2-D) within 0.02
    bits/dim of the mixture's own density, point by point."""
    sde = ve() if sde_name == "VE" else VPSDE()
    x = MIXTURE.sample(64, torch.Generator().manual_seed(9))
    likelihood = ode_log_likelihood(MIXTURE.score_function(sde), sde, x, exact_divergence=True)
    exact_bits = -MIXTURE.log_prob(x).double() / (2 * math.log(2))
    estimated_bits = -likelihood.log_prob / (2 * math.log(2))
    assert (estimated_bits - exact_bits).abs().max().item() < 0.02


def test_hutchinson_likelihood_is_unbiased_in_five_dimensions():
    """One Rademacher probe per point: noisy per point (a spread of about 0.6 bits/dim here), right on average."""
    sde = VPSDE()
    x = WIDE.sample(4000, torch.Generator().manual_seed(10))
    likelihood = ode_log_likelihood(WIDE.score_function(sde), sde, x, torch.Generator().manual_seed(11), rtol=1e-4)
    exact_bits = -WIDE.log_prob(x).double() / (5 * math.log(2))
    estimated_bits = -likelihood.log_prob / (5 * math.log(2))
    assert abs((estimated_bits - exact_bits).mean().item()) < 0.03  # about three standard errors


def test_hutchinson_divergence_averages_to_the_exact_one():
    x = torch.randn(3, 4, requires_grad=True)
    matrix = torch.randn(4, 4)

    def drift():  # divergence: trace(matrix) + 3 sum x^2
        return x @ matrix.T + x**3

    exact = divergence(drift(), x, None)
    assert torch.allclose(exact, matrix.trace() + 3 * (x**2).sum(1), atol=1e-5)
    generator = torch.Generator().manual_seed(12)
    estimates = torch.stack(
        [divergence(drift(), x, torch.randint(0, 2, x.shape, generator=generator).float() * 2 - 1) for _ in range(4000)]
    )
    assert torch.allclose(estimates.mean(0), exact, atol=0.3)


def test_bits_per_dim_of_digits_counts_the_dequantised_scale():
    """A VP score of a wide standard normal on the [-1, 1] scale: bits/dim = -log N(y) / (D ln 2) + 7 (log2 128)."""
    sde = VPSDE()

    def normal_score(x, t):  # data ~ N(0, I): every marginal is N(0, I), score -x
        return -x

    pixels = torch.randint(0, 256, (4, 3, 3), generator=torch.Generator().manual_seed(13), dtype=torch.uint8)
    bits, calls = digits_bits_per_dim(normal_score, sde, pixels, torch.Generator().manual_seed(14))
    generator = torch.Generator().manual_seed(14)
    y = (pixels[:, None].float() + torch.rand((4, 1, 3, 3), generator=generator)) / 128 - 1
    expected = (0.5 * math.log(2 * math.pi) + y.flatten(1).pow(2).mean(1) / 2) / math.log(2) + 7
    assert torch.allclose(bits.float(), expected, atol=1e-3) and calls > 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(steps=0), "steps must be a whole number"),
        (dict(steps=2.5), "steps must be a whole number"),
        (dict(corrector_steps=-1), "corrector_steps must be"),
        (dict(corrector_steps=1.5), "corrector_steps must be"),
        (dict(snr=0.0), "snr"),
        (dict(snr=3.0), "snr"),
        (dict(predictor="heun"), "predictor must be"),
    ],
)
def test_pc_sample_refuses_bad_settings(arguments, message):
    sde = ve()
    with pytest.raises(ValueError, match=message):
        pc_sample(MIXTURE.score_function(sde), sde, (2, 2), **{"steps": 5, **arguments})


def test_sdes_refuse_inverted_ranges():
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        VPSDE(beta_min=5.0, beta_max=1.0)
