"""
The bridge between our UNet and noise schedule (model.py) and diffusers' `UNet2DModel`,
`DDPMScheduler` and `DDIMScheduler`: configs and weights, both ways.

Our modules carry diffusers' parameter names (conv_in, time_embedding.linear_1, down_blocks.0.resnets.0.conv1,
..., to_out.0, conv_out), so weights copy by name with no reshaping. What must be checked is the
config: UNet2DModel has options our UNet does not build (Fourier time embeddings, skip blocks, class
labels through a timestep or identity embedding); those are refused with a clear message rather than
loaded wrongly. Class labels through a learned table (`num_class_embeds`) map to ours.

`diffusers_pc_sample` runs diffusers' score-SDE schedulers on our score functions (the twin of sde.pc_sample).
`guided_ddim_loop` is classifier-free guidance written the way diffusers' pipelines write it, around
`UNet2DModel` and `DDIMScheduler`: the twin of our `sample(..., class_labels, guidance)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from apps.diffusion.model import ScheduleConfig, UNet, UNetConfig
from apps.diffusion.sde import SDE, VESDE, ScoreFunction
from shared.checkpoint import resolve_folder

# UNet2DModel options -> the value our UNet implements (anything else is refused).
FIXED_OPTIONS = {
    "time_embedding_type": "positional",
    "act_fn": "silu",
    "mid_block_type": "UNetMidBlock2D",
    "add_attention": True,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "class_embed_type": None,
    "time_embedding_dim": None,
}
DIFFUSERS_SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}


def unet_config_from_diffusers(hf_config) -> UNetConfig:
    """UNet2DModel's config -> ours; ValueError for the options our UNet does not build."""
    unsupported = [
        f"{name}={hf_config.get(name)!r}"
        for name, value in FIXED_OPTIONS.items()
        if hf_config.get(name, value) != value
    ]
    if hf_config.get("attn_norm_num_groups") is not None:
        unsupported.append(f"attn_norm_num_groups={hf_config['attn_norm_num_groups']}")
    if hf_config.get("resnet_time_scale_shift", "default") not in ("default", "scale_shift"):
        unsupported.append(f"resnet_time_scale_shift={hf_config['resnet_time_scale_shift']!r}")
    if unsupported:
        raise ValueError("this UNet2DModel uses options our UNet does not implement: " + ", ".join(unsupported))
    sample_size = hf_config["sample_size"]
    return UNetConfig(
        sample_size=sample_size if isinstance(sample_size, int) else sample_size[0],
        in_channels=hf_config["in_channels"],
        out_channels=hf_config["out_channels"],
        block_out_channels=hf_config["block_out_channels"],
        down_block_types=hf_config["down_block_types"],
        up_block_types=hf_config["up_block_types"],
        layers_per_block=hf_config["layers_per_block"],
        attention_head_dim=hf_config["attention_head_dim"],
        norm_num_groups=hf_config["norm_num_groups"],
        norm_eps=hf_config["norm_eps"],
        dropout=hf_config.get("dropout", 0.0),
        flip_sin_to_cos=hf_config["flip_sin_to_cos"],
        freq_shift=hf_config["freq_shift"],
        downsample_padding=hf_config["downsample_padding"],
        time_scale_shift=hf_config.get("resnet_time_scale_shift", "default") == "scale_shift",
        mid_block_scale_factor=hf_config["mid_block_scale_factor"],
        center_input_sample=hf_config["center_input_sample"],
        num_class_embeds=hf_config.get("num_class_embeds"),
    )


def unet_config_to_diffusers(config: UNetConfig) -> dict:
    """Our config -> keyword arguments of UNet2DModel."""
    return dict(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        block_out_channels=config.block_out_channels,
        down_block_types=config.down_block_types,
        up_block_types=config.up_block_types,
        layers_per_block=config.layers_per_block,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
        norm_eps=config.norm_eps,
        dropout=config.dropout,
        flip_sin_to_cos=config.flip_sin_to_cos,
        freq_shift=config.freq_shift,
        downsample_padding=config.downsample_padding,
        resnet_time_scale_shift="scale_shift" if config.time_scale_shift else "default",
        mid_block_scale_factor=config.mid_block_scale_factor,
        center_input_sample=config.center_input_sample,
        num_class_embeds=config.num_class_embeds,
        **FIXED_OPTIONS,
    )


def unet_from_diffusers(unet2d: UNet2DModel) -> UNet:
    """Our UNet holding the weights of a diffusers UNet2DModel (same names, so a strict copy)."""
    model = UNet(unet_config_from_diffusers(unet2d.config))
    model.load_state_dict(unet2d.state_dict(), strict=True)
    return model.to(unet2d.device, unet2d.dtype)


def unet_to_diffusers(model: UNet) -> UNet2DModel:
    """A diffusers UNet2DModel holding our UNet's weights."""
    unet2d = UNet2DModel(**unet_config_to_diffusers(model.config))
    unet2d.load_state_dict(model.state_dict(), strict=True)
    parameter = next(model.parameters())
    return (
        unet2d.to(parameter.device)
        if parameter.dtype == torch.float32
        else unet2d.to(parameter.device, parameter.dtype)
    )


def schedule_config_from_diffusers(scheduler_config) -> ScheduleConfig:
    """DDPMScheduler/DDIMScheduler config -> ours; ValueError for what our samplers do not implement."""
    names = {value: key for key, value in DIFFUSERS_SCHEDULES.items()}
    unsupported = []
    if scheduler_config.get("beta_schedule") not in names:
        unsupported.append(f"beta_schedule={scheduler_config.get('beta_schedule')!r}")
    for option, supported in (
        ("prediction_type", "epsilon"),
        ("thresholding", False),
        ("trained_betas", None),
        ("rescale_betas_zero_snr", False),
        ("timestep_spacing", "leading"),
        ("steps_offset", 0),
        ("clip_sample_range", 1.0),
        ("set_alpha_to_one", True),
    ):
        if scheduler_config.get(option, supported) != supported:
            unsupported.append(f"{option}={scheduler_config[option]!r}")
    if unsupported:
        raise ValueError("this scheduler uses options our samplers do not implement: " + ", ".join(unsupported))
    return ScheduleConfig(
        num_train_timesteps=scheduler_config["num_train_timesteps"],
        beta_schedule=names[scheduler_config["beta_schedule"]],
        beta_start=scheduler_config["beta_start"],
        beta_end=scheduler_config["beta_end"],
        clip_sample=scheduler_config["clip_sample"],
    )


def schedule_to_diffusers(config: ScheduleConfig, sampler: str) -> DDPMScheduler | DDIMScheduler:
    """The diffusers scheduler that takes the same steps as our `sampler` ("ddpm" or "ddim")."""
    options = dict(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=DIFFUSERS_SCHEDULES[config.beta_schedule],
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        clip_sample=config.clip_sample,
    )
    if sampler == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **options)  # beta~_t, our DDPM variance
    return DDIMScheduler(**options)


@torch.no_grad()
def guided_ddim_loop(
    unet2d: UNet2DModel,
    schedule_config: ScheduleConfig,
    noise: torch.Tensor,
    class_labels: torch.Tensor,
    guidance: float,
    num_steps: int,
) -> torch.Tensor:
    """Class-conditional DDIM (eta = 0) with classifier-free guidance, as diffusers' pipelines write it
    (e.g. DiTPipeline): eps = eps_uncond + s (eps_cond - eps_uncond) with s = 1 + w, where our guidance w
    follows Ho & Salimans. The "no label" class is the last class embedding. Returns images in [0, 1]."""
    scheduler = schedule_to_diffusers(schedule_config, "ddim")
    scheduler.set_timesteps(num_steps)
    unlabelled = torch.full_like(class_labels, unet2d.config.num_class_embeds - 1)
    x = noise
    for timestep in scheduler.timesteps:
        if guidance == 0:
            noise_prediction = unet2d(x, timestep, class_labels).sample
        else:
            conditional, unconditional = unet2d(
                torch.cat([x, x]), timestep, torch.cat([class_labels, unlabelled])
            ).sample.chunk(2)
            noise_prediction = unconditional + (1 + guidance) * (conditional - unconditional)
        x = scheduler.step(noise_prediction, timestep, x).prev_sample
    return (x / 2 + 0.5).clamp(0, 1)


def export_pipeline(model: UNet, schedule_config: ScheduleConfig, folder: str | os.PathLike) -> Path:
    """Write a diffusers DDPMPipeline folder (unet/ and scheduler/) that `DDPMPipeline.from_pretrained` loads."""
    from diffusers import DDPMPipeline

    pipeline = DDPMPipeline(unet=unet_to_diffusers(model), scheduler=schedule_to_diffusers(schedule_config, "ddpm"))
    pipeline.save_pretrained(folder)
    return Path(folder)


def load_diffusers_unet(name_or_path: str | os.PathLike) -> tuple[UNet, ScheduleConfig | None]:
    """Our UNet from a diffusers model: a Hub id such as "google/ddpm-cifar10-32" (when online) or a
    folder written by `save_pretrained` (a pipeline folder with unet/, or a bare UNet folder). Returns the
    scheduler config as well when the folder has one."""
    folder = resolve_folder(name_or_path, allow_patterns=["*.json", "*.safetensors", "*.bin"])
    unet_folder = folder / "unet" if (folder / "unet" / "config.json").exists() else folder
    unet = unet_from_diffusers(UNet2DModel.from_pretrained(unet_folder))
    for scheduler_file in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json"):
        if scheduler_file.exists():
            return unet, schedule_config_from_diffusers(DDPMScheduler.from_pretrained(scheduler_file.parent).config)
    return unet, None


def diffusers_pc_sample(
    score_fn: ScoreFunction,
    sde: SDE,
    shape: tuple[int, ...],
    steps: int,
    generator: torch.Generator | None = None,
    corrector_steps: int = 1,
    snr: float = 0.16,
) -> torch.Tensor:
    """The twin of sde.pc_sample: the sampling loop of diffusers' ScoreSdeVePipeline around
    `ScoreSdeVeScheduler.step_correct` / `step_pred` (Langevin corrector, reverse-diffusion predictor) for
    the VE SDE, and `ScoreSdeVpScheduler.step_pred` (Euler-Maruyama, no corrector) for the VP SDE, on our
    score function. Returns the last noise-free sample, as the pipeline does."""
    from diffusers.schedulers import ScoreSdeVeScheduler, ScoreSdeVpScheduler
    from diffusers.utils.torch_utils import randn_tensor

    batch = shape[0]
    if isinstance(sde, VESDE):
        scheduler = ScoreSdeVeScheduler(
            num_train_timesteps=steps,
            snr=snr,
            sigma_min=sde.sigma_min,
            sigma_max=sde.sigma_max,
            sampling_eps=sde.sampling_eps,
            correct_steps=corrector_steps,
        )
        scheduler.set_timesteps(steps)
        scheduler.set_sigmas(steps)
        x = randn_tensor(shape, generator=generator) * scheduler.init_noise_sigma
        for index, t in enumerate(scheduler.timesteps):
            sigma = scheduler.sigmas[index] * torch.ones(batch)  # the network is told the noise level
            for _ in range(scheduler.config.correct_steps):
                x = scheduler.step_correct(score_fn(x, sigma), x, generator=generator).prev_sample
            output = scheduler.step_pred(score_fn(x, sigma), t, x, generator=generator)
            x, mean = output.prev_sample, output.prev_sample_mean
        return mean
    if corrector_steps:
        raise ValueError("diffusers' ScoreSdeVpScheduler has no corrector: compare VP sampling with corrector_steps=0")
    scheduler = ScoreSdeVpScheduler(
        num_train_timesteps=steps, beta_min=sde.beta_min, beta_max=sde.beta_max, sampling_eps=sde.sampling_eps
    )
    scheduler.set_timesteps(steps)
    x = randn_tensor(shape, generator=generator)
    for t in scheduler.timesteps:
        t = t * torch.ones(batch)
        # step_pred takes a noise prediction eps and turns it into the score -eps / sigma(t)
        _, std = sde.marginal(t)
        x, mean = scheduler.step_pred(-std.reshape(-1, *([1] * (x.dim() - 1))) * score_fn(x, t), x, t, generator)
    return mean
