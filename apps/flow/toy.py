"""
Flows on 2-D toy densities, small enough to train in a browser request (well under 30 s on 2 CPU cores):

- four densities to sample from: two moons, concentric rings, a checkerboard, 8 Gaussians on a circle;
- a RealNVP on 2-D vectors (affine couplings with MLP nets, `model.CouplingFlow`): its exact log-density
  can be drawn as a heat map;
- a rectified flow with an MLP velocity field, and its reflow (2-rectified flow) trained on the
  (noise, sample) pairs the first one produces: the trajectories from noise to data straighten.

No Gradio here; bad input raises ValueError.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from apps.flow import TOY_DENSITIES, TOY_KINDS
from apps.flow.model import CouplingFlow, CouplingFlowConfig, rectified_flow_loss, reflow_pairs

Progress = Callable[[float, str], None]  # (fraction done, what is happening)


# --- The densities -----------------------------------------------------------------------------------


def two_moons(count: int, generator: torch.Generator) -> torch.Tensor:
    angle = math.pi * torch.rand(count, generator=generator)
    upper = torch.rand(count, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], dim=1) * 1.6
    return points + 0.08 * torch.randn(count, 2, generator=generator)


def rings(count: int, generator: torch.Generator) -> torch.Tensor:
    radius = 0.8 * torch.randint(1, 4, (count,), generator=generator).float()  # three rings, radii 0.8, 1.6, 2.4
    angle = 2 * math.pi * torch.rand(count, generator=generator)
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return points + 0.06 * torch.randn(count, 2, generator=generator)


def checkerboard(count: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform on the dark squares of a 4x4 board over [-2, 2]^2."""
    x = 4 * torch.rand(count, generator=generator) - 2
    column = torch.floor(x).long() + 2  # 0..3
    row = 2 * torch.randint(0, 2, (count,), generator=generator) + (column % 2)  # rows of the same colour
    y = row.float() - 2 + torch.rand(count, generator=generator)
    return torch.stack([x, y], dim=1)


def eight_gaussians(count: int, generator: torch.Generator) -> torch.Tensor:
    angle = 2 * math.pi * torch.randint(0, 8, (count,), generator=generator).float() / 8
    centres = 2.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + 0.15 * torch.randn(count, 2, generator=generator)


DENSITIES = dict(zip(TOY_DENSITIES, (two_moons, rings, checkerboard, eight_gaussians)))
PLOT_LIMIT = 3.2  # the plots show [-PLOT_LIMIT, PLOT_LIMIT]^2


def sample_density(name: str, count: int, seed: int = 0) -> torch.Tensor:
    """(count, 2) points from one of DENSITIES."""
    if name not in DENSITIES:
        raise ValueError(f"Unknown toy density {name!r}; choose one of {', '.join(DENSITIES)}.")
    return DENSITIES[name](count, torch.Generator().manual_seed(seed))


# --- The models --------------------------------------------------------------------------------------


def toy_realnvp() -> CouplingFlow:
    """8 affine couplings on 2-D points, masks alternating between x and y, Gaussian prior."""
    return CouplingFlow(
        CouplingFlowConfig(
            dims=2, couplings=8, hidden=64, hidden_layers=2, coupling="affine", prior="gaussian", final_scaling=False
        )
    )


class MLPVelocity(nn.Module):
    """v(x, t) on 2-D points: an MLP on (x, sin/cos features of t)."""

    def __init__(self, hidden: int = 128, frequencies: int = 4):
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(frequencies).float())
        self.net = nn.Sequential(
            nn.Linear(2 + 2 * frequencies, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t.reshape(-1, 1) * self.frequencies  # (B, F)
        return self.net(torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=1))


@dataclass
class ToyRecipe:
    steps: int = 1500
    batch_size: int = 512
    learning_rate: float = 3e-3
    reflow_pairs: int = 4096
    reflow_ode_steps: int = 50  # Euler steps that make the pairs (close to the exact ODE)
    reflow_steps: int = 1500


def train_loop(
    model: nn.Module,
    loss_of_batch: Callable[[int], torch.Tensor],
    steps: int,
    learning_rate: float,
    progress: Progress | None,
    label: str,
    share: tuple[float, float],
) -> list[float]:
    """Adam with a cosine decay; returns the loss every 50 steps. `share` is the slice of the progress bar."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    losses = []
    for step in range(steps):
        loss = loss_of_batch(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == steps - 1:
            losses.append(round(loss.item(), 4))
            if progress is not None:
                progress(
                    share[0] + (share[1] - share[0]) * (step + 1) / steps,
                    f"{label}: step {step + 1}/{steps}, loss {loss.item():.3f}",
                )
    return losses


@dataclass
class ToyFlows:
    """What one toy training run produced."""

    density: str
    kind: str
    realnvp: CouplingFlow | None = None
    rectified: MLPVelocity | None = None
    reflowed: MLPVelocity | None = None
    losses: dict | None = None
    seconds: float = 0.0


KINDS = TOY_KINDS


def train_toy(
    density: str, kind: str, seed: int = 0, recipe: ToyRecipe | None = None, progress: Progress | None = None
) -> ToyFlows:
    """Train the chosen model on fresh batches of the density (a new batch every step)."""
    if density not in DENSITIES:
        raise ValueError(f"Unknown toy density {density!r}; choose one of {', '.join(DENSITIES)}.")
    if kind not in KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {', '.join(KINDS)}.")
    recipe = recipe or ToyRecipe()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    result = ToyFlows(density, kind, losses={})

    def data_batch(step: int) -> torch.Tensor:
        return DENSITIES[density](recipe.batch_size, generator)

    if kind == KINDS[0]:
        flow = toy_realnvp()
        result.losses["negative log-likelihood"] = train_loop(
            flow,
            lambda step: -flow.log_prob(data_batch(step)).mean(),
            recipe.steps,
            recipe.learning_rate,
            progress,
            "RealNVP",
            (0, 1),
        )
        result.realnvp = flow.eval()
    else:
        first = MLPVelocity()
        result.losses["1-rectified flow"] = train_loop(
            first,
            lambda step: rectified_flow_loss(first, data_batch(step), generator=generator),
            recipe.steps,
            recipe.learning_rate,
            progress,
            "rectified flow",
            (0, 0.45),
        )
        first.eval()
        if progress is not None:
            progress(0.5, f"reflow: {recipe.reflow_pairs} (noise, sample) pairs from the first flow")
        noise, samples = reflow_pairs(
            first, torch.randn(recipe.reflow_pairs, 2, generator=generator), recipe.reflow_ode_steps
        )
        second = MLPVelocity()
        second.load_state_dict(first.state_dict())  # reflow starts from the first flow (section 3 of Liu et al.)

        def pair_loss(step: int) -> torch.Tensor:
            index = torch.randint(0, len(noise), (recipe.batch_size,), generator=generator)
            return rectified_flow_loss(second, samples[index], noise[index], generator=generator)

        result.losses["2-rectified flow (reflow)"] = train_loop(
            second, pair_loss, recipe.reflow_steps, recipe.learning_rate / 3, progress, "reflow", (0.55, 1)
        )
        result.rectified, result.reflowed = first, second.eval()
    result.seconds = time.perf_counter() - start
    return result


@torch.no_grad()
def density_grid(flow: CouplingFlow, resolution: int = 120, limit: float = PLOT_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """exp(log p(x)) on a resolution x resolution grid over [-limit, limit]^2, and the grid's axis values."""
    axis = torch.linspace(-limit, limit, resolution)
    grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
    density = flow.log_prob(points).exp().view(resolution, resolution)
    return density.numpy(), axis.numpy()
