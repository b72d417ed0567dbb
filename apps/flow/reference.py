"""
The bridge between our rectified-flow sampler and diffusers' `FlowMatchEulerDiscreteScheduler`.

Conventions, read from diffusers 0.42's `scheduling_flow_match_euler_discrete.py`:
- diffusers counts a noise level sigma from 1 (pure noise) down to 0 (data) and writes the forward
  process as x = sigma * noise + (1 - sigma) * x_0 (`scale_noise`). Ours counts time t from 0 (noise) up
  to 1 (data): x_t = t x_1 + (1 - t) x_0 with x_0 the noise. So sigma = 1 - t.
- The model output the scheduler integrates is d x / d sigma = noise - data (`step`: prev_sample =
  sample + (sigma_next - sigma) * model_output). Ours is v = d x / d t = data - noise = -(d x / d sigma).
  So the diffusers model output is -v(x, 1 - sigma).
- The timestep handed to the network is sigma * num_train_timesteps (1000): `timesteps = sigmas * 1000`.
- `set_timesteps(N)` with the default settings (shift 1, no dynamic shifting, no Karras/exponential/beta
  sigmas) spaces N sigmas evenly from sigma_max = 1 to sigma_min = 1/1000 (the smallest training sigma)
  and appends a final 0, so the last step is tiny and 2 steps are nearly 1. `set_timesteps(sigmas=...)`
  takes any list instead: passing 1 - t for our uniform grid makes both loops visit the same times.

No weights are mapped here: both loops call the same velocity model. Normalizing flows have no
Hugging Face counterpart; they are checked by exact inversion and an autograd Jacobian (tests/flow/).
"""

from __future__ import annotations

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from apps.flow.model import Velocity, time_grid

NUM_TRAIN_TIMESTEPS = 1000


def make_scheduler() -> FlowMatchEulerDiscreteScheduler:
    """The scheduler with the settings whose step is our Euler step (shift 1, deterministic)."""
    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=1.0, stochastic_sampling=False
    )


def set_our_times(scheduler: FlowMatchEulerDiscreteScheduler, steps: int) -> None:
    """Make the scheduler visit our uniform times: sigmas 1, 1 - 1/N, ..., 1/N (it appends the final 0)."""
    sigmas = 1 - time_grid(steps)[:-1]
    scheduler.set_timesteps(sigmas=sigmas.tolist())


def times_of(scheduler: FlowMatchEulerDiscreteScheduler) -> torch.Tensor:
    """The scheduler's sigmas as our times t = 1 - sigma, (N + 1,): our sampler then takes its steps."""
    return 1 - scheduler.sigmas


def diffusers_model_output(velocity: Velocity) -> callable:
    """Our velocity field as the model a diffusers flow-matching loop expects: (x, timestep) -> -v(x, 1 - timestep / 1000)."""

    def model(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        t = 1 - timestep.float() / NUM_TRAIN_TIMESTEPS
        return -velocity(x, t.expand(x.shape[0]))

    return model


@torch.no_grad()
def diffusers_euler_loop(velocity: Velocity, noise: torch.Tensor, steps: int, our_times: bool = True) -> torch.Tensor:
    """The denoising loop of diffusers' flow-matching pipelines (SD3, Flux) around our velocity model:
    for each timestep, call the model, then `scheduler.step`. `our_times`: the uniform grid (else the
    scheduler's default spacing)."""
    scheduler = make_scheduler()
    if our_times:
        set_our_times(scheduler, steps)
    else:
        scheduler.set_timesteps(steps)
    model = diffusers_model_output(velocity)
    x = noise
    for timestep in scheduler.timesteps:
        x = scheduler.step(model(x, timestep), timestep, x).prev_sample
    return x
