"""
GAN, WGAN (weight clipping) and WGAN-GP on 2-D toy densities, small enough to train in a browser request
(a few seconds on 2 CPU cores), with the critic's estimate of W1 beside the exact W1 of the same samples.

The densities are the flow topic's (apps/flow/toy.py). The losses are model.py's, the same ones the DCGAN
trains with; only the networks are small MLPs. Every `eval_every` generator steps, a fixed set of real
points and as many fresh generated points are compared two ways: the critic's dual value
E_real f - E_fake f, and the exact W1 by an optimal assignment (reference.py). With a gradient penalty the
critic is close to 1-Lipschitz, so its value approaches the exact W1 from below; with clipping it is
K-Lipschitz for some unknown K set by the clip value, so it tracks W1 only up to that scale; the GAN's
discriminator gap is no W1 estimate at all.

No Gradio here; bad input raises ValueError.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from apps.flow.toy import PLOT_LIMIT, sample_density  # deliberate reuse: the flow topic's densities
from apps.vae_gan import TOY_DENSITIES, TOY_LOSSES, TOY_MAX_STEPS
from apps.vae_gan.model import (
    GAN_LOSSES,
    clip_weights,
    critic_loss,
    critic_w1_estimate,
    generator_loss,
    gradient_penalty,
)

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
LATENT_DIM = 2


def toy_mlp(inputs: int, outputs: int, width: int = 128) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, outputs)
    )


class ToyCritic(nn.Module):
    """(B, 2) points -> (B,) scores."""

    def __init__(self):
        super().__init__()
        self.net = toy_mlp(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


@dataclass
class ToyRecipe:
    steps: int = 300  # generator steps
    batch_size: int = 128
    critic_steps: int = 5  # per generator step for the WGANs (1 for the GAN)
    learning_rate: float = 5e-4
    clip: float = 0.1  # WGAN's weight clipping c (the paper's 0.01 is for image critics with many more weights)
    penalty: float = 1.0  # WGAN-GP's lambda (the paper's 10 destabilised these small toys; 0.1 let f exceed W1)
    eval_every: int = 25
    eval_points: int = 512


@dataclass
class ToyRun:
    density: str
    loss: str
    steps: list[int] = field(default_factory=list)
    critic_estimates: list[float] = field(default_factory=list)
    exact_w1: list[float] = field(default_factory=list)
    data: np.ndarray | None = None  # (eval_points, 2)
    samples: np.ndarray | None = None  # (eval_points, 2) at the end
    critic_grid: np.ndarray | None = None  # (resolution, resolution) critic values over the plot square
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "density": self.density,
            "loss": self.loss,
            "steps": self.steps,
            "critic_estimate": [round(value, 4) for value in self.critic_estimates],
            "exact_w1": [round(value, 4) for value in self.exact_w1],
            "seconds": round(self.seconds, 1),
        }


def check_request(density: str, loss: str, steps) -> None:
    if density not in TOY_DENSITIES:
        raise ValueError(f"Unknown toy density {density!r}; choose one of {', '.join(TOY_DENSITIES)}.")
    if loss not in GAN_LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {', '.join(GAN_LOSSES)}.")
    if not 1 <= steps <= TOY_MAX_STEPS:
        raise ValueError(f"Training steps must be between 1 and {TOY_MAX_STEPS}, not {steps}.")


def critic_grid(critic: nn.Module, resolution: int = 100, limit: float = PLOT_LIMIT) -> np.ndarray:
    axis = torch.linspace(-limit, limit, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.no_grad():
        return critic(points).reshape(resolution, resolution).numpy()


def train_toy(
    density: str, loss: str, recipe: ToyRecipe = ToyRecipe(), seed: int = 0, progress: Progress | None = None
) -> ToyRun:
    """Train an MLP generator against an MLP critic with `loss` (one of model.GAN_LOSSES) on `density`."""
    from apps.vae_gan.reference import exact_wasserstein1  # imports diffusers: only when a toy trains

    check_request(density, loss, recipe.steps)
    started = time.perf_counter()
    torch.manual_seed(seed)
    generator_net, critic = toy_mlp(LATENT_DIM, 2), ToyCritic()
    # Adam with beta1 = 0.5 for the GAN and WGAN-GP (DCGAN / WGAN-GP papers), RMSProp for clipping (WGAN paper)
    if loss == "wgan-clip":
        critic_optimizer = torch.optim.RMSprop(critic.parameters(), lr=recipe.learning_rate)
        generator_optimizer = torch.optim.RMSprop(generator_net.parameters(), lr=recipe.learning_rate)
    else:
        critic_optimizer = torch.optim.Adam(critic.parameters(), lr=recipe.learning_rate, betas=(0.5, 0.9))
        generator_optimizer = torch.optim.Adam(generator_net.parameters(), lr=recipe.learning_rate, betas=(0.5, 0.9))
    noise = torch.Generator().manual_seed(seed + 1)
    real_pool = sample_density(density, 20 * recipe.batch_size, seed=seed + 2)
    eval_real = sample_density(density, recipe.eval_points, seed=seed + 3)
    run = ToyRun(density, loss, data=eval_real.numpy())
    critic_steps = 1 if loss == "non-saturating" else recipe.critic_steps

    def real_batch() -> torch.Tensor:
        return real_pool[torch.randint(0, len(real_pool), (recipe.batch_size,), generator=noise)]

    def fakes(count: int) -> torch.Tensor:
        return generator_net(torch.randn(count, LATENT_DIM, generator=noise))

    for step in range(recipe.steps + 1):
        if step % recipe.eval_every == 0 or step == recipe.steps:
            with torch.no_grad():
                eval_fake = fakes(recipe.eval_points)
            run.steps.append(step)
            run.critic_estimates.append(critic_w1_estimate(critic, eval_real, eval_fake))
            run.exact_w1.append(exact_wasserstein1(eval_real.numpy(), eval_fake.numpy()))
            if progress is not None:
                progress(step / recipe.steps, f"{loss} on {density}: step {step}, exact W1 {run.exact_w1[-1]:.3f}")
        if step == recipe.steps:
            break
        for _ in range(critic_steps):
            real = real_batch()
            with torch.no_grad():
                fake = fakes(recipe.batch_size)
            objective = critic_loss(loss, critic(real), critic(fake))
            if loss == "wgan-gp":
                objective = objective + recipe.penalty * gradient_penalty(critic, real, fake, noise)
            critic_optimizer.zero_grad()
            objective.backward()
            critic_optimizer.step()
            if loss == "wgan-clip":
                clip_weights(critic, recipe.clip)
        objective = generator_loss(loss, critic(fakes(recipe.batch_size)))
        generator_optimizer.zero_grad()
        objective.backward()
        generator_optimizer.step()
    run.samples = eval_fake.numpy()
    run.critic_grid = critic_grid(critic)
    run.seconds = time.perf_counter() - started
    return run


def loss_of(shown_name: str) -> str:
    """The tab's name of a loss -> model.GAN_LOSSES' name."""
    if shown_name not in TOY_LOSSES:
        raise ValueError(f"Unknown loss {shown_name!r}; choose one of {', '.join(TOY_LOSSES)}.")
    return TOY_LOSSES[shown_name]
