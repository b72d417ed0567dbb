"""The diffusion equations on their own: the forward process, the loss, and what the samplers must satisfy."""

import pytest
import torch

from apps.diffusion.model import (
    NoiseSchedule,
    ScheduleConfig,
    UNet,
    UNetConfig,
    ddim_step,
    ddpm_step,
    diffusion_loss,
    predict_x0,
    sample,
)

TINY = UNetConfig(
    sample_size=8,
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
)


def test_forward_process_ends_in_pure_noise_and_starts_at_the_data():
    schedule = NoiseSchedule(ScheduleConfig())
    x0 = torch.ones(4000, 1, 2, 2)
    noise = torch.randn(4000, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    last = schedule.add_noise(x0, noise, torch.full((4000,), 999))
    assert abs(last.mean().item()) < 0.03 and abs(last.std().item() - 1) < 0.03  # alpha_bar_T ~ 4e-5
    first = schedule.add_noise(x0, noise, torch.zeros(4000, dtype=torch.long))
    assert (first - x0).abs().max().item() < 0.05  # beta_1 = 1e-4


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
def test_alpha_bar_decreases_from_one_to_near_zero(beta_schedule):
    alpha_bars = NoiseSchedule(ScheduleConfig(beta_schedule=beta_schedule)).alpha_bars
    assert (alpha_bars[1:] < alpha_bars[:-1]).all()
    assert alpha_bars[0] > 0.99 and alpha_bars[-1] < 1e-3


def test_x0_prediction_inverts_the_forward_process():
    schedule = NoiseSchedule(ScheduleConfig(clip_sample=False))
    x0, noise = torch.rand(3, 1, 4, 4) * 2 - 1, torch.randn(3, 1, 4, 4)
    for timestep in (0, 300, 999):
        x_t = schedule.add_noise(x0, noise, torch.tensor([timestep]))
        assert torch.allclose(predict_x0(schedule, x_t, noise, timestep), x0, atol=2e-3 if timestep == 999 else 1e-5)


def test_ddim_with_eta_one_takes_the_ddpm_posterior_step():
    """Eq. 16 of DDIM: eta = 1 gives the DDPM posterior, the same mean and the same noise scale."""
    schedule = NoiseSchedule(ScheduleConfig(clip_sample=False))
    x0, noise = torch.rand(2, 1, 4, 4) * 2 - 1, torch.randn(2, 1, 4, 4)
    for timestep, previous in ((999, 998), (500, 480), (20, 0)):
        x_t = schedule.add_noise(x0, noise, torch.tensor([timestep]))
        ddpm, _ = ddpm_step(schedule, x_t, noise, timestep, previous, torch.Generator().manual_seed(1))
        ddim, _ = ddim_step(schedule, x_t, noise, timestep, previous, 1.0, torch.Generator().manual_seed(1))
        assert torch.allclose(ddpm, ddim, atol=1e-4)


def test_ddim_with_eta_zero_is_deterministic_and_draws_no_noise():
    schedule = NoiseSchedule(ScheduleConfig())
    x_t, eps = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    first, _ = ddim_step(schedule, x_t, eps, 500, 450, 0.0, generator)
    assert torch.equal(generator.get_state(), state)
    assert torch.equal(first, ddim_step(schedule, x_t, eps, 500, 450, 0.0, None)[0])


def test_unet_keeps_the_image_shape_and_uses_the_timestep():
    model = UNet(TINY).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        early, late = model(x, torch.tensor([5, 5])), model(x, torch.tensor([900, 900]))
    assert early.shape == x.shape and not torch.allclose(early, late)
    assert torch.allclose(model(x, 5), early, atol=1e-6)  # an int timestep is broadcast


def test_a_few_steps_on_one_batch_lower_the_loss():
    torch.manual_seed(0)
    model, schedule = UNet(TINY), NoiseSchedule(ScheduleConfig())
    x0 = torch.rand(16, 1, 8, 8) * 2 - 1
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss_on_fixed_noise() -> float:
        with torch.no_grad():
            return diffusion_loss(model, schedule, x0, torch.Generator().manual_seed(7)).item()

    before = loss_on_fixed_noise()
    for step in range(30):
        loss = diffusion_loss(model, schedule, x0, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss_on_fixed_noise() < 0.8 * before


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(sampler="euler"), "sampler must be"),
        (dict(eta=1.5), "eta must be between"),
        (dict(eta=-0.1), "eta must be between"),
        (dict(num_steps=0), "between 1 and 1000"),
        (dict(num_steps=10**6), "between 1 and 1000"),
    ],
)
def test_sampler_refuses_bad_settings(arguments, message):
    model, schedule = UNet(TINY).eval(), NoiseSchedule(ScheduleConfig())
    with pytest.raises(ValueError, match=message):
        sample(model, schedule, torch.randn(1, 1, 8, 8), **{"sampler": "ddim", "num_steps": 2, **arguments})


def test_samples_are_pixels_and_the_callback_sees_every_step():
    model, schedule = UNet(TINY).eval(), NoiseSchedule(ScheduleConfig())
    seen = []
    images = sample(
        model,
        schedule,
        torch.randn(2, 1, 8, 8),
        "ddpm",
        5,
        generator=torch.Generator().manual_seed(0),
        on_step=lambda index, t, x_t, x0: seen.append((index, t, x0.abs().max().item())),
    )
    assert images.shape == (2, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert [t for _, t, _ in seen] == [800, 600, 400, 200, 0] and all(value <= 1 for *_, value in seen)


def test_config_refuses_unknown_blocks_and_mismatched_lengths():
    with pytest.raises(ValueError, match="unsupported block types"):
        UNetConfig(down_block_types=("CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D"))
    with pytest.raises(ValueError, match="one down block and one up block"):
        UNetConfig(block_out_channels=(32, 64))
    with pytest.raises(ValueError, match="divisible by norm_num_groups"):
        UNetConfig(block_out_channels=(30, 64, 64))
    with pytest.raises(ValueError, match="beta_schedule"):
        ScheduleConfig(beta_schedule="sigmoid")
