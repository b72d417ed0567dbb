"""
Diffusion as a stochastic differential equation (Song et al. 2021, "Score-Based Generative Modeling through
Stochastic Differential Equations"; equation numbers below are theirs).

Noise is added continuously for t from 0 to T = 1 by the forward SDE

    dx = f(x, t) dt + g(t) dw                                                            (eq. 5)

and the data is recovered by running time backwards with the reverse SDE, which needs only the score
grad_x log p_t(x) of every noised marginal p_t, the thing a network learns:

    dx = [f(x, t) - g(t)^2 grad_x log p_t(x)] dt + g(t) dw_bar                           (eq. 6)

Two SDEs cover the two classic models. Variance exploding (VE, SMLD's noise scales): f = 0, the noise
level sigma(t) grows geometrically, x_t = x_0 + sigma(t) z. Variance preserving (VP, DDPM's chain in
continuous time): f = -beta(t) x / 2, g = sqrt(beta(t)), x_t = alpha(t) x_0 + sqrt(1 - alpha(t)^2) z.

Samplers of the reverse SDE, from the prior at t = 1 down to a small t = eps:
- Euler-Maruyama: a plain step of eq. 6 with dt = -1/N.
- Predictor-corrector (Algorithm 1 and 2): a "reverse diffusion" predictor step of the SDE's own
  discretisation (eq. 47), then `corrector_steps` Langevin MCMC steps whose size is set by a target
  signal-to-noise ratio `snr` (Algorithm 4 and 5), which pull the sample back onto p_t.
- The probability-flow ODE (eq. 13) has the same marginals as the SDE but no noise:

      dx/dt = f(x, t) - g(t)^2 / 2 grad_x log p_t(x)

  Solved by RK45 from t = 1 it maps noise to data deterministically (DDIM is its Euler step for VP).
  Run forward from the data it gives exact likelihoods by the instantaneous change of variables
  (eq. 39, from neural ODEs): log p_eps(x) = log p_1(z) + integral_eps^1 div(dx/dt) dt, with the
  divergence estimated by Hutchinson's trick E_v[v^T (d drift / dx) v] (one vector-Jacobian product),
  or computed exactly in low dimension.

`score_fn(x, label)` is the score network: x (B, ...) and a (B,) noise label, which is sigma(t) for the VE
SDE (the network is told the noise level, as in NCSN) and t for the VP SDE. The step layout (which
timestep indices, dt = -1/N, the order of the random draws) follows the authors' code and diffusers'
ScoreSdeVeScheduler / ScoreSdeVpScheduler, so the same generator gives the same samples (reference.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from apps.diffusion.model import UNet
from apps.flow.model import bits_per_dim, dequantize

ScoreFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTORS = ("reverse_diffusion", "euler_maruyama")
PIXEL_HALF_RANGE = 128  # dequantised pixels u in [0, 256) -> u / 128 - 1 in [-1, 1), the diffusion models' scale


def _column(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) or scalar -> broadcastable against `like` (B, ...)."""
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class VESDE:
    """Variance exploding: dx = sigma(t) sqrt(2 log(sigma_max / sigma_min)) dw, sigma(t) = sigma_min (sigma_max /
    sigma_min)^t (eq. 30), so x_t = x_0 + sigma(t) z. The prior is N(0, sigma_max^2 I)."""

    name = "VE"

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, sampling_eps: float = 1e-5):
        if not 0 < sigma_min < sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max, self.sampling_eps = sigma_min, sigma_max, sampling_eps

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean scale, std) of p(x_t | x_0) = N(scale x_0, std^2 I)."""
        return torch.ones_like(t), self.sigma(t)

    def noise_label(self, t: torch.Tensor) -> torch.Tensor:
        return self.sigma(t)

    def marginal_of_label(self, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.ones_like(label), label

    def drift_and_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(x), self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def discretize(self, x: torch.Tensor, t: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """SMLD's chain x_i = x_{i-1} + sqrt(sigma_i^2 - sigma_{i-1}^2) z over `steps` geometric noise levels (eq. 46):
        (f_i, G_i) with f_i = 0. The level index is (t (N - 1)) rounded down, as the authors compute it."""
        sigmas = torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), steps))
        index = (t * (steps - 1)).long()
        previous = sigmas[index - 1] if index > 0 else torch.zeros(())
        return torch.zeros_like(x), (sigmas[index] ** 2 - previous**2) ** 0.5

    def corrector_scale(self, t: torch.Tensor, steps: int) -> float:
        """alpha_i of Langevin's step size (Algorithm 4): 1 for VE."""
        return 1.0

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * self.sigma_max

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        dims = z[0].numel()
        return -dims / 2 * math.log(2 * math.pi * self.sigma_max**2) - z.flatten(1).pow(2).sum(1) / (
            2 * self.sigma_max**2
        )


class VPSDE:
    """Variance preserving: dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw with beta(t) = beta_min + t (beta_max -
    beta_min) (eq. 32), DDPM's chain as N -> infinity (beta_min = N beta_1, beta_max = N beta_N: 0.1 and 20 for
    DDPM's 1e-4 .. 0.02 over 1,000 steps). x_t = alpha(t) x_0 + sqrt(1 - alpha(t)^2) z with
    log alpha(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2 (eq. 33). The prior is N(0, I)."""

    name = "VP"

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, sampling_eps: float = 1e-3):
        if not 0 < beta_min < beta_max:
            raise ValueError(f"need 0 < beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_min, self.beta_max, self.sampling_eps = beta_min, beta_max, sampling_eps

    def beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_mean_scale = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        return torch.exp(log_mean_scale), torch.sqrt(1.0 - torch.exp(2.0 * log_mean_scale))

    def noise_label(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def marginal_of_label(self, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.marginal(label)

    def drift_and_diffusion(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        beta = self.beta(t)
        return -0.5 * _column(beta, x) * x, torch.sqrt(beta)

    def discrete_beta(self, t: torch.Tensor, steps: int) -> torch.Tensor:
        betas = torch.linspace(self.beta_min / steps, self.beta_max / steps, steps)
        return betas[(t * (steps - 1)).long()]

    def discretize(self, x: torch.Tensor, t: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """DDPM's chain x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z (eq. 47's f_i and G_i)."""
        beta = self.discrete_beta(t, steps)
        return torch.sqrt(1 - beta) * x - x, torch.sqrt(beta)

    def corrector_scale(self, t: torch.Tensor, steps: int) -> float:
        """alpha_i = 1 - beta_i of Langevin's step size (Algorithm 5)."""
        return float(1 - self.discrete_beta(t, steps))

    def prior_sample(self, shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
        return torch.randn(shape, generator=generator)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        dims = z[0].numel()
        return -dims / 2 * math.log(2 * math.pi) - z.flatten(1).pow(2).sum(1) / 2


SDE = VESDE | VPSDE


# --- Samplers of the reverse SDE ---------------------------------------------------------------------


def reverse_diffusion_step(
    sde: SDE, score: torch.Tensor, x: torch.Tensor, t: torch.Tensor, steps: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reverse of the SDE's own discretisation (eq. 47): x <- x - f_i + G_i^2 score + G_i z.
    Returns (x with noise, x without it)."""
    f, g = sde.discretize(x, t, steps)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    mean = x - f + g**2 * score
    return mean + g * noise, mean


def euler_maruyama_step(
    sde: SDE, score: torch.Tensor, x: torch.Tensor, t: torch.Tensor, steps: int, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler-Maruyama step of the reverse SDE (eq. 6) with dt = -1/N: x <- x + [f - g^2 score] dt + g sqrt(|dt|) z.
    (N steps from t = 1 to eps, so the last step overshoots eps by about eps, as in the authors' code.)"""
    dt = -1.0 / steps
    f, g = sde.drift_and_diffusion(x, t)
    g = _column(g, x)
    mean = x + (f - g**2 * score) * dt
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return mean + g * math.sqrt(-dt) * noise, mean


def langevin_step(
    score: torch.Tensor, x: torch.Tensor, snr: float, scale: float, generator: torch.Generator | None
) -> torch.Tensor:
    """One corrector step, annealed Langevin dynamics (Algorithm 4): x <- x + e score + sqrt(2 e) z, with the step
    e = 2 alpha (snr ||z|| / ||score||)^2 so that the noise is `snr` times the score's pull (norms averaged over the batch)."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    score_norm = torch.linalg.norm(score.reshape(score.shape[0], -1), dim=-1).mean()
    noise_norm = torch.linalg.norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
    step = (snr * noise_norm / score_norm) ** 2 * 2 * scale
    return x + step * score + (2 * step) ** 0.5 * noise


def check_sampler_settings(steps: int, corrector_steps: int, snr: float, predictor: str) -> None:
    for name, value, lowest in (("steps", steps, 1), ("corrector_steps", corrector_steps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise ValueError(f"{name} must be a whole number of at least {lowest}, not {value!r}")
    if not (isinstance(snr, int | float) and 0 < snr <= 1):
        raise ValueError(
            f"snr (Langevin's signal-to-noise ratio) must be in (0, 1]; 0.16 is the usual value, not {snr!r}"
        )
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, not {predictor!r}")


# Called after every predictor step with (step index, t, the noise-free sample).
SDEStepCallback = Callable[[int, float, torch.Tensor], None]


@torch.no_grad()
def pc_sample(
    score_fn: ScoreFunction,
    sde: SDE,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None = None,
    corrector_steps: int = 1,
    snr: float = 0.16,
    predictor: str = "reverse_diffusion",
    on_step: SDEStepCallback | None = None,
) -> torch.Tensor:
    """Predictor-corrector sampling (Algorithm 1): from the prior, for t from 1 down to eps in `steps` steps,
    `corrector_steps` Langevin steps then one predictor step. predictor="euler_maruyama" with corrector_steps=0
    is plain Euler-Maruyama. Network calls: steps x (1 + corrector_steps). Returns the last noise-free sample."""
    check_sampler_settings(steps, corrector_steps, snr, predictor)
    predict = reverse_diffusion_step if predictor == "reverse_diffusion" else euler_maruyama_step
    x = sde.prior_sample(shape, generator)
    mean = x
    for index, t in enumerate(torch.linspace(1.0, sde.sampling_eps, steps)):
        label = sde.noise_label(t) * torch.ones(shape[0])  # (B,)
        for _ in range(corrector_steps):
            x = langevin_step(score_fn(x, label), x, snr, sde.corrector_scale(t, steps), generator)
        x, mean = predict(sde, score_fn(x, label), x, t, steps, generator)
        if on_step is not None:
            on_step(index, float(t), mean)
    return mean


# --- The probability-flow ODE ------------------------------------------------------------------------


def ode_drift(score_fn: ScoreFunction, sde: SDE, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """dx/dt = f(x, t) - g(t)^2 / 2 score(x, t) (eq. 13)."""
    f, g = sde.drift_and_diffusion(x, t)
    label = sde.noise_label(t) * torch.ones(x.shape[0], dtype=x.dtype)
    return f - 0.5 * _column(g, x) ** 2 * score_fn(x, label)


@dataclass
class ODESolution:
    samples: torch.Tensor  # (B, ...) at t = eps
    evaluations: int  # network calls RK45 made
    times: np.ndarray  # (frames,) from 1 down to eps
    path: torch.Tensor  # (frames, B, ...): x at those times, for pictures of the trajectories


def probability_flow_ode(
    score_fn: ScoreFunction,
    sde: SDE,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    frames: int = 2,
) -> ODESolution:
    """Deterministic sampling: draw z from the prior and solve eq. 13 from t = 1 to eps with RK45 (scipy's
    adaptive Dormand-Prince, as the authors do). The tolerances set the number of network calls."""
    z = sde.prior_sample(shape, generator)

    @torch.no_grad()
    def derivative(t: float, flat: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(flat).float().reshape(shape)
        return ode_drift(score_fn, sde, x, torch.tensor(t, dtype=torch.float32)).double().flatten().numpy()

    times = np.linspace(1.0, sde.sampling_eps, max(frames, 2))
    solution = solve_ivp(
        derivative, (1.0, sde.sampling_eps), z.double().flatten().numpy(), "RK45", t_eval=times, rtol=rtol, atol=atol
    )
    path = torch.from_numpy(solution.y.T).float().reshape(len(times), *shape)
    return ODESolution(path[-1], solution.nfev, times, path)


def divergence(drift: torch.Tensor, x: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
    """div_x drift per example (B,): exact (one backward pass per dimension) when `probe` is None, else
    Hutchinson's unbiased estimate v^T (d drift / dx) v with the probe v (B, ...)."""
    if probe is not None:
        (vector_jacobian,) = torch.autograd.grad(drift, x, probe)
        return (vector_jacobian * probe).flatten(1).sum(1)
    flat_drift = drift.flatten(1)
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for dim in range(flat_drift.shape[1]):
        (gradient,) = torch.autograd.grad(flat_drift[:, dim].sum(), x, retain_graph=True)
        total = total + gradient.flatten(1)[:, dim]
    return total


@dataclass
class Likelihood:
    log_prob: torch.Tensor  # (B,) log p_eps(x) in nats
    evaluations: int  # network calls (each with a backward pass)


def ode_log_likelihood(
    score_fn: ScoreFunction,
    sde: SDE,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    exact_divergence: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> Likelihood:
    """log p_eps(x) through the probability-flow ODE: solve [dx/dt, d(delta)/dt] = [drift, div drift] from eps to 1,
    then log p_eps(x) = log p_1(x(1)) + delta(1) (eq. 39). The divergence is Hutchinson's estimate with one
    Rademacher probe per example, fixed for the whole solve, unless `exact_divergence`."""
    shape, batch = x.shape, x.shape[0]
    probe = None
    if not exact_divergence:
        probe = torch.randint(0, 2, shape, generator=generator).float() * 2 - 1  # Rademacher +-1

    def derivative(t: float, state: np.ndarray) -> np.ndarray:
        current = torch.from_numpy(state[:-batch]).float().reshape(shape).requires_grad_(True)
        with torch.enable_grad():
            drift = ode_drift(score_fn, sde, current, torch.tensor(t, dtype=torch.float32))
            div = divergence(drift, current, probe)
        return np.concatenate([drift.detach().double().flatten().numpy(), div.detach().double().numpy()])

    start = np.concatenate([x.double().flatten().numpy(), np.zeros(batch)])
    solution = solve_ivp(derivative, (sde.sampling_eps, 1.0), start, "RK45", rtol=rtol, atol=atol)
    end = torch.from_numpy(solution.y[:, -1])
    z, delta = end[:-batch].reshape(shape), end[-batch:]
    return Likelihood(sde.prior_log_prob(z) + delta, solution.nfev)


def digits_bits_per_dim(
    score_fn: ScoreFunction,
    sde: SDE,
    pixels: torch.Tensor,
    generator: torch.Generator | None = None,
    pad: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[torch.Tensor, int]:
    """Bits per dimension of 8-bit digits (B, H, W) on the flows topic's dequantised scale: u = pixels + U[0, 1)
    in [0, 256), y = u / 128 - 1 (the diffusion models' [-1, 1]), bits/dim = -(log p(y) - D log 128) / (D ln 2).

    A model trained on digits padded to a larger square (`pad` black pixels each side) scores the padded
    image, whose padding is dequantised like any pixel; its total bits are divided by the H x W digit pixels
    only. That is an upper bound on the model's discrete code length per digit pixel (the padding given the
    digit costs no negative bits), so it compares with the flows' 28x28 numbers. Returns ((B,), network calls)."""
    padded = torch.nn.functional.pad(pixels[:, None], (pad,) * 4)  # (B, 1, H + 2 pad, W + 2 pad), black borders
    u = dequantize(padded, generator)
    y = u / PIXEL_HALF_RANGE - 1
    likelihood = ode_log_likelihood(score_fn, sde, y, generator, rtol=rtol, atol=atol)
    log_det = torch.full((y.shape[0],), -y[0].numel() * math.log(PIXEL_HALF_RANGE), dtype=torch.float64)
    return bits_per_dim(likelihood.log_prob, log_det, pixels[0].numel()), likelihood.evaluations


# --- Score models ------------------------------------------------------------------------------------


def noise_model_score(model: UNet, sde: VPSDE, num_train_timesteps: int = 1000) -> ScoreFunction:
    """A DDPM noise predictor eps_theta(x, n) as a VP score: grad log p_t(x) = -eps_theta(x, (N - 1) t) / sigma(t),
    since x_t = alpha(t) x_0 + sigma(t) eps (the continuous t in [0, 1] is the discrete step n / (N - 1))."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, std = sde.marginal(t)
        return -model(x, t * (num_train_timesteps - 1)) / _column(std, x)

    return score


class GaussianMixture:
    """p_0 = sum_k w_k N(mu_k, s_k^2 I): its noised marginals stay mixtures, alpha mu_k and alpha^2 s_k^2 + sigma^2,
    so the score of every p_t is known in closed form (a test bed needing no training)."""

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
        self.means, self.stds = means.float(), stds.float()  # (K, D), (K,)
        self.weights = weights.float() / weights.sum()  # (K,)

    @property
    def dims(self) -> int:
        return self.means.shape[1]

    def _components(
        self, x: torch.Tensor, mean_scale: torch.Tensor, std: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-component log(w_k N(x; alpha mu_k, v_k I)) (B, K), x - alpha mu_k (B, K, D) and v_k (B, K)."""
        mean_scale, std = _column(mean_scale, x), _column(std, x)  # (B, 1)
        variance = mean_scale**2 * self.stds**2 + std**2  # (B, K)
        offset = x[:, None, :] - mean_scale[:, :, None] * self.means  # (B, K, D)
        log_density = -0.5 * (offset**2).sum(-1) / variance - self.dims / 2 * torch.log(2 * math.pi * variance)
        return log_density + torch.log(self.weights), offset, variance

    def log_prob(self, x: torch.Tensor, mean_scale=None, std=None) -> torch.Tensor:
        """log p_t(x) (B,) of the mixture noised to (mean scale, std); the data itself by default."""
        mean_scale = torch.ones(x.shape[0]) if mean_scale is None else mean_scale * torch.ones(x.shape[0])
        std = torch.zeros(x.shape[0]) if std is None else std * torch.ones(x.shape[0])
        log_joint, _, _ = self._components(x, mean_scale, std)
        return torch.logsumexp(log_joint, dim=1)

    def score_function(self, sde: SDE) -> ScoreFunction:
        """score_fn(x, label) = grad log p_t(x) = sum_k r_k(x) (alpha mu_k - x) / v_k, r the responsibilities."""

        def score(x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            mean_scale, std = sde.marginal_of_label(label)
            log_joint, offset, variance = self._components(x, mean_scale.to(x.dtype), std.to(x.dtype))
            responsibilities = torch.softmax(log_joint, dim=1)  # (B, K)
            return -(responsibilities[:, :, None] * offset / variance[:, :, None]).sum(1)

        return score

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        components = torch.multinomial(self.weights, count, replacement=True, generator=generator)
        noise = torch.randn(count, self.dims, generator=generator)
        return self.means[components] + self.stds[components, None] * noise


def eight_blob_mixture() -> GaussianMixture:
    """The 2-D mixture the tab and the tests use: eight unequal blobs on two arcs."""
    angles = torch.tensor([0.0, 0.9, 1.8, 2.7, 3.1, 4.0, 4.9, 5.8])
    radius = torch.tensor([2.0, 2.0, 2.0, 2.0, 1.2, 1.2, 1.2, 1.2])
    means = torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)
    return GaussianMixture(means, torch.tensor([0.15, 0.2, 0.25, 0.2, 0.1, 0.15, 0.2, 0.15]), torch.arange(1.0, 9.0))
