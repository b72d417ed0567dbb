"""The flow equations on their own: exact inverses, log-determinants against autograd's Jacobian, the
bits/dim bookkeeping, and what the rectified-flow loss and ODE solvers must satisfy."""

import math

import pytest
import torch

from apps.flow.model import (
    NICE,
    ActNorm,
    Coupling,
    CouplingFlow,
    CouplingFlowConfig,
    DiagonalScaling,
    FlowSequence,
    InvertibleConv1x1,
    MultiScaleFlow,
    MultiScaleFlowConfig,
    Squeeze,
    alternating_mask,
    bits_per_dim,
    channel_mask,
    checkerboard_mask,
    conv_net,
    euler_step,
    heun_step,
    image_bits_per_dim,
    interpolate,
    mlp,
    prior_log_prob,
    rectified_flow_loss,
    reflow_pairs,
    sample_ode,
    sample_pixels,
    straightness,
    time_grid,
    to_model_space,
    to_pixels,
    trajectories,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> torch.nn.Module:
    """Every parameter moved off its initial value: zero-initialised nets would make couplings identities."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return module.double().eval()


def layers():
    """(name, layer, example input) for every layer kind, small enough for a full Jacobian."""
    torch.manual_seed(0)
    actnorm = ActNorm(4)
    actnorm.train()
    actnorm(torch.randn(16, 4, 2, 2) * 3 + 1)  # data-dependent initialisation on a first batch
    return [
        ("additive coupling", Coupling(alternating_mask(6, 0), mlp(6, 8, 6, 2), affine=False), torch.randn(1, 6)),
        ("affine coupling", Coupling(alternating_mask(6, 1), mlp(6, 8, 12, 2), affine=True), torch.randn(1, 6)),
        (
            "affine coupling, checkerboard",
            Coupling(checkerboard_mask(4, 4, 0), conv_net(2, 4, 4), affine=True),
            torch.randn(1, 2, 4, 4),
        ),
        (
            "affine coupling, channels",
            Coupling(channel_mask(4, 1), conv_net(4, 4, 8), affine=True),
            torch.randn(1, 4, 2, 2),
        ),
        ("diagonal scaling", DiagonalScaling(5), torch.randn(1, 5)),
        ("actnorm", actnorm, torch.randn(1, 4, 2, 2)),
        ("invertible 1x1 conv (LU)", InvertibleConv1x1(4, torch.Generator().manual_seed(1)), torch.randn(1, 4, 2, 2)),
        ("squeeze", Squeeze(), torch.randn(1, 2, 4, 4)),
        (
            "a sequence of them",
            FlowSequence(
                [
                    Squeeze(),
                    ActNorm(8),
                    InvertibleConv1x1(8),
                    Coupling(channel_mask(8, 0), conv_net(8, 4, 16), affine=True),
                ]
            ),
            torch.randn(1, 2, 2, 2),
        ),
    ]


LAYERS = layers()


@pytest.mark.parametrize("name, layer, x", LAYERS, ids=[name for name, *_ in LAYERS])
def test_every_layer_inverts_exactly(name, layer, x):
    layer = perturbed(layer).float()
    x = torch.randn(8, *x.shape[1:])
    with torch.no_grad():
        y, _ = layer(x)
        assert (layer.inverse(y) - x).abs().max().item() < 1e-5
        assert not torch.allclose(y.reshape(x.shape) if y.numel() == x.numel() else y, x) or name == "squeeze"


@pytest.mark.parametrize("name, layer, x", LAYERS, ids=[name for name, *_ in LAYERS])
def test_every_layer_log_det_equals_the_autograd_jacobian(name, layer, x):
    layer, x = perturbed(layer), x.double()
    jacobian = torch.autograd.functional.jacobian(lambda v: layer(v.view_as(x))[0].flatten(), x.flatten())  # (D, D)
    _, expected = torch.linalg.slogdet(jacobian)
    assert abs(layer(x)[1].item() - expected.item()) < 1e-4


def tiny_flows():
    nice = NICE(CouplingFlowConfig(dims=16, couplings=4, hidden=8, hidden_layers=2))
    nice.data_shape = (1, 4, 4)
    flows = {
        "NICE": nice,
        "RealNVP (vectors)": CouplingFlow(
            CouplingFlowConfig(
                dims=16,
                couplings=3,
                hidden=8,
                hidden_layers=1,
                coupling="affine",
                prior="gaussian",
                final_scaling=False,
            )
        ),
        "RealNVP multi-scale": MultiScaleFlow(
            MultiScaleFlowConfig(kind="realnvp", image_shape=(1, 4, 4), levels=2, steps_per_level=2, hidden_channels=4)
        ),
        "Glow multi-scale": MultiScaleFlow(
            MultiScaleFlowConfig(kind="glow", image_shape=(1, 4, 4), levels=2, steps_per_level=2, hidden_channels=4)
        ),
    }
    for flow in flows.values():
        flow.train()
        flow.encode(torch.randn(32, *flow.data_shape))  # initialises actnorm
    return flows


FLOWS = tiny_flows()


@pytest.mark.parametrize("name", FLOWS)
def test_whole_flows_invert_and_their_log_det_equals_the_jacobian(name):
    flow = perturbed(FLOWS[name], scale=0.2)
    x = torch.randn(1, *flow.data_shape, dtype=torch.float64)

    def latents_of(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.flatten(1) for z in flow.encode(v.view_as(x))[0]], dim=1)[0]

    _, expected = torch.linalg.slogdet(torch.autograd.functional.jacobian(latents_of, x.flatten()))
    assert abs(flow.encode(x)[1].item() - expected.item()) < 1e-4
    flow = flow.float()
    x = torch.randn(6, *flow.data_shape)
    with torch.no_grad():
        assert (flow.decode(flow.encode(x)[0]) - x).abs().max().item() < 1e-5
        assert flow.sample(3, 0.5, torch.Generator().manual_seed(0)).shape == (3, *flow.data_shape)


def test_multi_scale_latents_have_the_documented_shapes():
    flow = MultiScaleFlow(
        MultiScaleFlowConfig(kind="glow", image_shape=(1, 28, 28), levels=2, steps_per_level=1, hidden_channels=4)
    )
    latents, _ = flow.encode(torch.randn(2, 1, 28, 28))
    assert [tuple(z.shape[1:]) for z in latents] == [(2, 14, 14), (8, 7, 7)] == flow.latent_shapes()
    assert sum(z[0].numel() for z in latents) == 784


@pytest.mark.parametrize("preprocessing", ["unit", "logit"])
def test_preprocessing_log_det_equals_autograd_and_inverts(preprocessing):
    x = torch.rand(1, 5, dtype=torch.float64) * 256
    y, log_det = to_model_space(x, preprocessing)
    jacobian = torch.autograd.functional.jacobian(lambda v: to_model_space(v[None], preprocessing)[0][0], x[0])
    assert abs(log_det.item() - torch.linalg.slogdet(jacobian)[1].item()) < 1e-6
    assert torch.allclose(to_pixels(y, preprocessing), x / 256, atol=1e-9)


def test_the_density_over_pixel_space_integrates_to_the_prior_mass_it_covers():
    """The [0, 256) -> model-space correction is right when p_X(x) = p_Y(y(x)) |dy/dx| integrates over
    [0, 256) to the prior's mass on the image of [0, 256): Phi(logit(1 - alpha)) - Phi(logit(alpha))."""
    alpha = 0.05
    x = (torch.arange(256 * 400, dtype=torch.float64) + 0.5) / 400  # midpoints over [0, 256)
    y, log_det = to_model_space(x[:, None], "logit", alpha)
    integral = (torch.exp(prior_log_prob(y, "gaussian") + log_det) / 400).sum().item()
    bound = math.log((1 - alpha) / alpha)
    assert abs(integral - math.erf(bound / math.sqrt(2))) < 1e-4


def test_a_uniform_model_of_the_pixel_cube_scores_8_bits_per_dim():
    x = torch.rand(3, 1, 2, 2) * 256
    _, log_det = to_model_space(x, "unit")  # y uniform on [-1/2, 1/2)^D: log p_Y = 0
    assert torch.allclose(bits_per_dim(torch.zeros(3), log_det, 4), torch.full((3,), 8.0))


def test_bits_per_dim_of_images_uses_fresh_dequantization_and_is_finite():
    flow = FLOWS["Glow multi-scale"].float().eval()
    pixels = torch.randint(0, 256, (4, 1, 4, 4), dtype=torch.uint8)
    first = image_bits_per_dim(flow, pixels, torch.Generator().manual_seed(0))
    again = image_bits_per_dim(flow, pixels, torch.Generator().manual_seed(0))
    other = image_bits_per_dim(flow, pixels, torch.Generator().manual_seed(1))
    assert torch.equal(first, again) and not torch.equal(first, other) and torch.isfinite(first).all()
    samples = sample_pixels(flow, 5, 0.7, torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 4, 4) and samples.min() >= 0 and samples.max() <= 1


@pytest.mark.parametrize("temperature", [0, -1, None, 2.5])
def test_sampling_refuses_a_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature must be above 0"):
        FLOWS["NICE"].sample(2, temperature)


def test_interpolation_runs_from_noise_to_data_and_the_loss_is_zero_for_the_true_velocity():
    noise, data = torch.randn(4, 3), torch.randn(4, 3)
    assert torch.equal(interpolate(noise, data, torch.zeros(4)), noise) and torch.equal(
        interpolate(noise, data, torch.ones(4)), data
    )
    true_velocity = lambda x, t: data - noise  # noqa: E731 - one pair: the straight line's direction
    assert rectified_flow_loss(true_velocity, data, noise).item() == 0.0
    assert rectified_flow_loss(lambda x, t: torch.zeros_like(x), data, noise).item() > 0.1


def test_one_euler_step_is_exact_on_a_straight_line():
    noise, data = torch.randn(5, 2), torch.randn(5, 2)
    assert torch.allclose(sample_ode(lambda x, t: data - noise, noise, 1), data, atol=1e-6)


def test_heun_is_second_order_and_euler_first_order():
    """dx/dt = -x (1 + t): x(1) = x(0) exp(-3/2). Halving the step divides Euler's error by ~2, Heun's by ~4."""
    velocity = lambda x, t: -x * (1 + t[:, None])  # noqa: E731
    x0 = torch.ones(1, 1, dtype=torch.float64)
    exact = math.exp(-1.5)

    def error(steps: int, solver: str) -> float:
        times = time_grid(steps).double()
        return abs(sample_ode(velocity, x0, steps, solver, times=times).item() - exact)

    euler_ratio, heun_ratio = error(16, "euler") / error(32, "euler"), error(16, "heun") / error(32, "heun")
    assert 1.8 < euler_ratio < 2.2 and 3.6 < heun_ratio < 4.4
    t, t_next = torch.tensor(0.0, dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    assert torch.allclose(euler_step(x0, velocity(x0, t.expand(1)), t, t_next), x0 * 0.5)
    assert torch.allclose(heun_step(velocity, x0, t, t_next), x0 + 0.25 * (-1 - 0.5 * 1.5))


@pytest.mark.parametrize("steps", [0, 10**6, 2.5, None])
def test_solvers_refuse_bad_step_counts(steps):
    with pytest.raises(ValueError, match="number of ODE steps must be a whole number from 1 to 1,000"):
        sample_ode(lambda x, t: x, torch.zeros(1, 2), steps)


def test_unknown_solver_is_refused():
    with pytest.raises(ValueError, match="Unknown solver 'rk4'"):
        sample_ode(lambda x, t: x, torch.zeros(1, 2), 2, "rk4")


def test_reflow_pairs_keep_the_noise_and_have_its_shape():
    velocity = lambda x, t: torch.ones_like(x)  # noqa: E731 - every point moves by +1
    noise = torch.randn(7, 1, 4, 4)
    x0, x1 = reflow_pairs(velocity, noise, steps=3, batch_size=3)
    assert x0.shape == x1.shape == (7, 1, 4, 4) and torch.equal(x0, noise)
    assert torch.allclose(x1, noise + 1, atol=1e-6)


def test_straightness_is_zero_on_straight_paths_and_positive_on_curved_ones():
    angles = torch.linspace(0, 5, 6)
    noise = torch.stack(
        [torch.cos(angles), torch.sin(angles)], dim=1
    )  # on the unit circle: every rotation path bends alike
    straight = trajectories(lambda x, t: torch.ones_like(x), noise, 10)
    assert straight.shape == (11, 6, 2) and straightness(straight).abs().max().item() < 1e-10
    rotating = trajectories(lambda x, t: torch.stack([-x[:, 1], x[:, 0]], dim=1), noise, 10)
    bends = straightness(rotating)
    assert (bends > 0.05).all() and torch.allclose(bends, bends[0].expand(6), rtol=1e-4)


def test_config_refuses_bad_options():
    with pytest.raises(ValueError, match="kind must be"):
        MultiScaleFlowConfig(kind="maf")
    with pytest.raises(ValueError, match="divisible by 8"):
        MultiScaleFlowConfig(image_shape=(1, 28, 28), levels=3)
    with pytest.raises(ValueError, match="coupling must be"):
        CouplingFlowConfig(coupling="spline")
