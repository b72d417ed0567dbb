"""Our rectified-flow Euler sampler against diffusers' FlowMatchEulerDiscreteScheduler on the same velocity
model: its conventions (sigma = 1 - t, model output = -v, timestep = 1000 sigma), every step, and whole loops."""

import pytest
import torch

from apps.flow.model import euler_step, interpolate, sample_ode, time_grid
from apps.flow.reference import diffusers_euler_loop, diffusers_model_output, make_scheduler, set_our_times, times_of

pytestmark = pytest.mark.usefixtures("one_thread")
STEP_COUNTS = [1, 2, 4, 8, 50]


def random_velocity(seed: int = 0):
    """A small random MLP v(x, t) on flattened 1x4x4 images: not linear, so any mismatch in t or x shows."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(17, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16)).eval()

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return net(torch.cat([x.flatten(1), t.reshape(-1, 1).to(x.dtype)], dim=1)).view_as(x)

    return velocity


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_the_scheduler_visits_our_times_as_sigmas_and_timesteps(steps):
    scheduler = make_scheduler()
    set_our_times(scheduler, steps)
    assert torch.allclose(times_of(scheduler), time_grid(steps), atol=1e-7)
    assert torch.allclose(scheduler.timesteps, 1000 * (1 - time_grid(steps)[:-1]), atol=1e-4)


def test_the_forward_processes_agree_with_sigma_equal_to_one_minus_t():
    scheduler = make_scheduler()
    set_our_times(scheduler, 4)
    data, noise = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    for index, timestep in enumerate(scheduler.timesteps):
        theirs = scheduler.scale_noise(data, timestep.expand(3), noise)
        t = 1 - scheduler.sigmas[index]
        assert (interpolate(noise, data, t.expand(3)) - theirs).abs().max().item() < 1e-6


@pytest.mark.parametrize("our_times", [True, False], ids=["our uniform times", "the scheduler's default spacing"])
@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_every_euler_step_equals_the_schedulers_step(steps, our_times):
    velocity, scheduler = random_velocity(), make_scheduler()
    set_our_times(scheduler, steps) if our_times else scheduler.set_timesteps(steps)
    times = times_of(scheduler)
    model = diffusers_model_output(velocity)
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    for index, timestep in enumerate(scheduler.timesteps):
        ours = euler_step(x, velocity(x, times[index].expand(5)), times[index], times[index + 1])
        theirs = scheduler.step(model(x, timestep), timestep, x).prev_sample
        assert (ours - theirs).abs().max().item() < 1e-6, index
        x = theirs


@pytest.mark.parametrize("steps", STEP_COUNTS)
def test_whole_sampling_loops_agree(steps):
    velocity = random_velocity(seed=2)
    noise = torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    ours = sample_ode(velocity, noise, steps)
    assert (ours - diffusers_euler_loop(velocity, noise, steps)).abs().max().item() < 1e-5
    scheduler = make_scheduler()
    scheduler.set_timesteps(steps)
    default_spacing = sample_ode(velocity, noise, steps, times=times_of(scheduler))
    assert (default_spacing - diffusers_euler_loop(velocity, noise, steps, our_times=False)).abs().max().item() < 1e-5


def test_default_spacing_ends_with_a_tiny_step_so_two_steps_are_nearly_one():
    """Why the tab passes our uniform sigmas: set_timesteps(2) gives sigmas 1, 0.001, 0."""
    scheduler = make_scheduler()
    scheduler.set_timesteps(2)
    assert torch.allclose(scheduler.sigmas, torch.tensor([1.0, 0.001, 0.0]), atol=1e-6)
