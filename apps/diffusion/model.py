"""
Denoising diffusion from scratch: a UNet that predicts the noise, the DDPM forward process and loss,
and two samplers (DDPM ancestral sampling and DDIM).

The idea (Ho et al. 2020, "DDPM"): destroy an image x_0 by adding Gaussian noise over T steps,

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),   alpha_bar_t = prod_{s<=t} (1 - beta_s)   (eq. 4)

and train a network eps_theta(x_t, t) to tell which noise was added (the "simple" loss, eq. 14). To
generate, start from pure noise x_T and remove the predicted noise step by step:
- DDPM (eq. 6-7 and Algorithm 2) samples x_{t-1} from the Gaussian posterior q(x_{t-1} | x_t, x_0) with
  x_0 estimated from the prediction: a fresh noise draw at every step, so 1000 network calls.
- DDIM (Song et al. 2021, eq. 12) takes the same trained network and jumps along a chosen subset of
  timesteps; with eta = 0 the path is deterministic, so 20-50 steps give a clean image. eta = 1 puts
  the DDPM amount of noise back (eq. 16).

The UNet keeps the parameter names of diffusers' `UNet2DModel` for the blocks used here (ResNet blocks
with a time embedding, self-attention, strided-conv downsampling, nearest-neighbour upsampling, all in
shared/conv_blocks.py, which the VQGAN topic's encoder and decoder use too), so a state dict copies
across by name (see reference.py). Tensors are (B, C, H, W) throughout.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.conv_blocks import Downsample, ResnetBlock, SelfAttention, Upsample

DOWN_BLOCK_TYPES = ("DownBlock2D", "AttnDownBlock2D")
UP_BLOCK_TYPES = ("UpBlock2D", "AttnUpBlock2D")


@dataclass
class UNetConfig:
    sample_size: int = 32
    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # channels at each resolution, full size first
    down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D")
    up_block_types: tuple[str, ...] = ("UpBlock2D", "AttnUpBlock2D", "UpBlock2D")
    layers_per_block: int = 1  # ResNet blocks per level going down (one more going up)
    attention_head_dim: int | None = 8  # None: one head as wide as the channels
    norm_num_groups: int = 8
    norm_eps: float = 1e-5
    dropout: float = 0.0
    flip_sin_to_cos: bool = True  # timestep embedding order: [cos, sin] if True, [sin, cos] if False
    freq_shift: int = 0  # shifts the denominator of the sinusoid frequencies (Hub DDPM models use 1)
    downsample_padding: int = 1  # 0: pad right/bottom by one pixel before the stride-2 convolution
    time_scale_shift: bool = False  # True: the time embedding scales and shifts the second norm
    mid_block_scale_factor: float = 1.0  # the middle block's residual sums are divided by this
    center_input_sample: bool = False  # True: inputs in [0, 1] are mapped to [-1, 1] first
    # Class conditioning: a learned vector per label added to the time embedding (diffusers' num_class_embeds).
    # For classifier-free guidance the last entry is the "no label" class, so 10 digits need 11.
    num_class_embeds: int | None = None

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        self.down_block_types = tuple(self.down_block_types)
        self.up_block_types = tuple(self.up_block_types)
        levels = len(self.block_out_channels)
        if len(self.down_block_types) != levels or len(self.up_block_types) != levels:
            raise ValueError(f"one down block and one up block per entry of block_out_channels ({levels}) are needed")
        unknown = [name for name in self.down_block_types if name not in DOWN_BLOCK_TYPES]
        unknown += [name for name in self.up_block_types if name not in UP_BLOCK_TYPES]
        if unknown:
            raise ValueError(f"unsupported block types {unknown}; this UNet builds {DOWN_BLOCK_TYPES + UP_BLOCK_TYPES}")
        if self.num_class_embeds is not None and self.num_class_embeds < 2:
            raise ValueError(
                f"num_class_embeds must be at least 2 (classes plus 'no label'), not {self.num_class_embeds}"
            )
        if any(channels % self.norm_num_groups for channels in self.block_out_channels):
            raise ValueError(
                f"every entry of block_out_channels must be divisible by norm_num_groups={self.norm_num_groups}"
            )

    @property
    def time_embedding_dim(self) -> int:
        return 4 * self.block_out_channels[0]


def sinusoidal_embedding(
    timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: int, max_period: float = 10_000.0
) -> torch.Tensor:
    """The Transformer's sinusoidal position encoding, applied to the timestep (DDPM, Appendix B). (B,) -> (B, dim)."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device) / (half - freq_shift)
    )
    angles = timesteps.float()[:, None] * frequencies[None, :]  # (B, half)
    sin, cos = torch.sin(angles), torch.cos(angles)
    embedding = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    return F.pad(embedding, (0, dim % 2))


class TimestepEmbedding(nn.Module):
    """An MLP on the sinusoidal embedding; its output conditions every ResNet block."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, out_features)
        self.linear_2 = nn.Linear(out_features, out_features)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(embedding)))


def resnet_block(
    in_channels: int, out_channels: int, config: UNetConfig, output_scale_factor: float = 1.0
) -> ResnetBlock:
    """A ResNet block conditioned on the time embedding, with this UNet's norms and dropout."""
    return ResnetBlock(
        in_channels,
        out_channels,
        config.time_embedding_dim,
        config.norm_num_groups,
        config.norm_eps,
        config.dropout,
        config.time_scale_shift,
        output_scale_factor,
    )


def attention_block(
    channels: int, config: UNetConfig, output_scale_factor: float = 1.0, normalize: bool = True
) -> SelfAttention:
    """Self-attention over the pixels with this UNet's head width and norms."""
    return SelfAttention(
        channels, config.attention_head_dim, config.norm_num_groups, config.norm_eps, output_scale_factor, normalize
    )


class DownBlock(nn.Module):
    """One resolution level of the encoder: ResNet blocks (each optionally followed by attention), then a
    downsample. Every intermediate output is kept for the decoder's skip connections."""

    def __init__(
        self, in_channels: int, out_channels: int, with_attention: bool, add_downsample: bool, config: UNetConfig
    ):
        super().__init__()
        self.resnets = nn.ModuleList(
            resnet_block(in_channels if i == 0 else out_channels, out_channels, config)
            for i in range(config.layers_per_block)
        )
        if with_attention:
            self.attentions = nn.ModuleList(attention_block(out_channels, config) for _ in self.resnets)
        self.downsamplers = (
            nn.ModuleList([Downsample(out_channels, config.downsample_padding)]) if add_downsample else None
        )

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, time_embedding)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x)
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """One resolution level of the decoder: each ResNet block takes the running features concatenated
    with one skip connection from the encoder (popped last-in, first-out), then an upsample."""

    def __init__(
        self,
        in_channels: int,
        previous_channels: int,
        out_channels: int,
        with_attention: bool,
        add_upsample: bool,
        config: UNetConfig,
    ):
        super().__init__()
        layers = config.layers_per_block + 1
        self.resnets = nn.ModuleList()
        for i in range(layers):
            skip_channels = in_channels if i == layers - 1 else out_channels
            running_channels = previous_channels if i == 0 else out_channels
            self.resnets.append(resnet_block(running_channels + skip_channels, out_channels, config))
        if with_attention:
            self.attentions = nn.ModuleList(attention_block(out_channels, config) for _ in self.resnets)
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_upsample else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], time_embedding: torch.Tensor) -> torch.Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), time_embedding)
            if hasattr(self, "attentions"):
                x = self.attentions[i](x)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    """At the lowest resolution: ResNet, self-attention over the whole image, ResNet."""

    def __init__(self, channels: int, config: UNetConfig):
        super().__init__()
        scale = config.mid_block_scale_factor
        self.resnets = nn.ModuleList(resnet_block(channels, channels, config, scale) for _ in range(2))
        # diffusers leaves out this attention's input norm when the time embedding scales and shifts the norms
        self.attentions = nn.ModuleList(
            [attention_block(channels, config, scale, normalize=not config.time_scale_shift)]
        )

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x, time_embedding)
        return self.resnets[1](self.attentions[0](x), time_embedding)


class UNet(nn.Module):
    """eps_theta(x_t, t): the noise in x_t, predicted from the noisy image and its timestep."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        channels = config.block_out_channels
        levels = len(channels)
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(channels[0], config.time_embedding_dim)
        if config.num_class_embeds is not None:
            self.class_embedding = nn.Embedding(config.num_class_embeds, config.time_embedding_dim)
        self.down_blocks = nn.ModuleList(
            DownBlock(
                channels[max(level - 1, 0)],
                channels[level],
                config.down_block_types[level] == "AttnDownBlock2D",
                level < levels - 1,
                config,
            )
            for level in range(levels)
        )
        self.mid_block = MidBlock(channels[-1], config)
        reversed_channels = channels[::-1]
        self.up_blocks = nn.ModuleList(
            UpBlock(
                in_channels=reversed_channels[
                    min(level + 1, levels - 1)
                ],  # the encoder width of this level's first skips
                previous_channels=reversed_channels[max(level - 1, 0)],
                out_channels=reversed_channels[level],
                with_attention=config.up_block_types[level] == "AttnUpBlock2D",
                add_upsample=level < levels - 1,
                config=config,
            )
            for level in range(levels)
        )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[0], eps=config.norm_eps)
        self.conv_out = nn.Conv2d(channels[0], config.out_channels, 3, padding=1)

    @property
    def null_label(self) -> int | None:
        """The "no label" class of a class-conditional UNet (the last embedding), None for an unconditional one."""
        return None if self.config.num_class_embeds is None else self.config.num_class_embeds - 1

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor | int, class_labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x: (B, C, H, W); timesteps: (B,), a scalar tensor or an int; class_labels: (B,) integers, needed
        exactly when the UNet is class-conditional. Returns (B, C_out, H, W)."""
        if (class_labels is None) != (self.null_label is None):
            raise ValueError("class_labels are needed by a class-conditional UNet and refused by an unconditional one")
        if self.config.center_input_sample:
            x = 2 * x - 1
        timesteps = torch.as_tensor(timesteps, device=x.device).reshape(-1).expand(x.shape[0])  # (B,)
        time_embedding = sinusoidal_embedding(
            timesteps, self.config.block_out_channels[0], self.config.flip_sin_to_cos, self.config.freq_shift
        )
        time_embedding = self.time_embedding(time_embedding.to(x.dtype))  # (B, 4 * C0)
        if class_labels is not None:
            time_embedding = time_embedding + self.class_embedding(class_labels).to(x.dtype)  # (B, 4 * C0)

        x = self.conv_in(x)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, time_embedding)
            skips += block_skips
        x = self.mid_block(x, time_embedding)
        for block in self.up_blocks:
            x = block(x, skips, time_embedding)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# --- The forward process and the loss -----------------------------------------------------------------


@dataclass
class ScheduleConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"  # "linear" (DDPM) or "cosine" (Nichol & Dhariwal 2021)
    beta_start: float = 1e-4
    beta_end: float = 0.02
    clip_sample: bool = True  # clamp the x_0 estimate to [-1, 1] while sampling (diffusers' default; not the papers')

    def __post_init__(self):
        if self.beta_schedule not in ("linear", "cosine"):
            raise ValueError(f"beta_schedule must be 'linear' or 'cosine', not {self.beta_schedule!r}")


class NoiseSchedule:
    """beta_t and its running products. Kept in float32, as the reference computes them, so the
    samplers agree with diffusers to rounding."""

    def __init__(self, config: ScheduleConfig):
        self.config = config
        steps = config.num_train_timesteps
        if config.beta_schedule == "linear":
            self.betas = torch.linspace(config.beta_start, config.beta_end, steps, dtype=torch.float32)
        else:
            # Improved DDPM eq. 17: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), s = 0.008; beta capped at 0.999.
            def alpha_bar(fraction: float) -> float:
                return math.cos((fraction + 0.008) / 1.008 * math.pi / 2) ** 2

            self.betas = torch.tensor(
                [min(1 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)],
                dtype=torch.float32,
            )
        self.alpha_bars = torch.cumprod(1.0 - self.betas, dim=0)  # alpha_bar_t, t = 0 .. T-1

    @property
    def num_train_timesteps(self) -> int:
        return self.config.num_train_timesteps

    def alpha_bar(self, timestep: int) -> torch.Tensor:
        """alpha_bar at `timestep`; 1 for timestep -1 (the clean image after the last step)."""
        return self.alpha_bars[timestep] if timestep >= 0 else torch.tensor(1.0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Sample q(x_t | x_0) in one shot (eq. 4): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        alpha_bar = self.alpha_bars.to(x0.device)[timesteps].view(-1, 1, 1, 1)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise

    def inference_timesteps(self, num_steps: int) -> list[int]:
        """The timesteps a sampler visits, largest first: every (T // num_steps)-th one, starting at 0
        ("leading" spacing, the diffusers default, so both sides visit the same ones)."""
        if not 1 <= num_steps <= self.num_train_timesteps:
            raise ValueError(f"the number of steps must be between 1 and {self.num_train_timesteps}, not {num_steps}")
        stride = self.num_train_timesteps // num_steps
        return [step * stride for step in reversed(range(num_steps))]


def diffusion_loss(
    model: UNet,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    class_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_simple (eq. 14): || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2, t uniform.
    A class-conditional UNet also gets the labels (B,) of x0."""
    timesteps = torch.randint(0, schedule.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=x0.device)
    return F.mse_loss(model(schedule.add_noise(x0, noise, timesteps), timesteps, class_labels), noise)


def drop_labels(
    class_labels: torch.Tensor, null_label: int, share: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace a random `share` of the labels (B,) by the "no label" class, so that one network learns both
    eps(x_t, c) and eps(x_t, no label), as classifier-free guidance needs (Ho & Salimans 2021, Algorithm 1)."""
    dropped = torch.rand(class_labels.shape, generator=generator, device=class_labels.device) < share
    return torch.where(dropped, null_label, class_labels)


# --- Sampling ----------------------------------------------------------------------------------------


def predict_x0(
    schedule: NoiseSchedule, x_t: torch.Tensor, predicted_noise: torch.Tensor, timestep: int
) -> torch.Tensor:
    """Invert eq. 4 with the predicted noise: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

    With `clip_sample` (on by default, as in diffusers' DDPMScheduler and DDIMScheduler and in the DDPM
    authors' released sampler) the estimate is clamped to the data range [-1, 1]. Neither paper's equations
    clip: see ddpm_step and ddim_step for what that changes."""
    alpha_bar = schedule.alpha_bar(timestep)
    x0 = (x_t - (1 - alpha_bar) ** 0.5 * predicted_noise) / alpha_bar**0.5
    return x0.clamp(-1, 1) if schedule.config.clip_sample else x0


def ddpm_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    predicted_noise: torch.Tensor,
    timestep: int,
    previous_timestep: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ancestral step x_t -> x_{t'} (t' = previous_timestep < t), sampling the posterior q(x_{t'} | x_t, x_0).

    With t' = t - 1 this is eq. 6-7 of DDPM: mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
    + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t, variance beta~_t = (1 - alpha_bar_{t-1}) /
    (1 - alpha_bar_t) beta_t. Skipping steps uses the same formula with the effective
    alpha_t = alpha_bar_t / alpha_bar_{t'}. Returns (x_{t'}, the x_0 estimate).

    Departure from the paper: Algorithm 2 writes the mean as (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) /
    sqrt(alpha_t), which is this posterior mean with the UNCLIPPED x_0 estimate. We form the mean from the
    x_0 estimate, clamped to [-1, 1] when `clip_sample` is on (the default, like diffusers' DDPMScheduler
    and the authors' code), which keeps early steps inside the data range; with clip_sample=False this
    step is Algorithm 2 exactly."""
    alpha_bar, alpha_bar_previous = schedule.alpha_bar(timestep), schedule.alpha_bar(previous_timestep)
    alpha = alpha_bar / alpha_bar_previous
    beta = 1 - alpha
    x0 = predict_x0(schedule, x_t, predicted_noise, timestep)
    mean = (alpha_bar_previous**0.5 * beta / (1 - alpha_bar)) * x0 + (
        alpha**0.5 * (1 - alpha_bar_previous) / (1 - alpha_bar)
    ) * x_t
    if timestep == 0:
        return mean, x0  # the last step adds no noise
    variance = torch.clamp((1 - alpha_bar_previous) / (1 - alpha_bar) * beta, min=1e-20)
    noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
    return mean + variance**0.5 * noise, x0


def ddim_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    predicted_noise: torch.Tensor,
    timestep: int,
    previous_timestep: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DDIM step (eq. 12): x_{t'} = sqrt(alpha_bar_{t'}) x_0 + sqrt(1 - alpha_bar_{t'} - sigma^2) eps + sigma z,
    with sigma = eta * sqrt((1 - alpha_bar_{t'}) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_{t'})
    (eq. 16). eta = 0: deterministic; eta = 1: the DDPM posterior's noise. Returns (x_{t'}, the x_0 estimate).

    Departure from the paper: eq. 12 uses one consistent pair (x_0, eps) from the same prediction. With
    `clip_sample` on (the default) we pair the CLIPPED x_0 with the UNCLIPPED predicted noise in the
    "direction pointing to x_t" term, as diffusers' DDIMScheduler does unless `use_clipped_model_output`
    recomputes eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t) from the clipped x_0. With
    clip_sample=False this step is eq. 12 exactly."""
    alpha_bar, alpha_bar_previous = schedule.alpha_bar(timestep), schedule.alpha_bar(previous_timestep)
    x0 = predict_x0(schedule, x_t, predicted_noise, timestep)
    sigma = eta * ((1 - alpha_bar_previous) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_previous)) ** 0.5
    x_previous = alpha_bar_previous**0.5 * x0 + (1 - alpha_bar_previous - sigma**2) ** 0.5 * predicted_noise
    if eta > 0:
        x_previous = x_previous + sigma * torch.randn(
            x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype
        )
    return x_previous, x0


def guided_noise(
    model: UNet, x_t: torch.Tensor, timestep: int, class_labels: torch.Tensor | None, guidance: float
) -> torch.Tensor:
    """The noise prediction a sampler uses. Unconditional: eps(x_t, t). With class labels and guidance w,
    classifier-free guidance (Ho & Salimans 2021, eq. 6):

        eps~ = (1 + w) eps(x_t, t, c) - w eps(x_t, t, no label)

    w = 0 is the plain conditional model; larger w pushes samples towards what distinguishes class c,
    trading variety for fidelity. Both predictions come from one batch of 2B."""
    timestep = torch.tensor(timestep, device=x_t.device)
    if class_labels is None:
        return model(x_t, timestep)
    if guidance == 0:
        return model(x_t, timestep, class_labels)
    unlabelled = torch.full_like(class_labels, model.null_label)
    both = model(torch.cat([x_t, x_t]), timestep, torch.cat([class_labels, unlabelled]))  # (2B, C, H, W)
    conditional, unconditional = both.chunk(2)
    return (1 + guidance) * conditional - guidance * unconditional


# Called after each step with (step index, timestep, x_t after the step, x_0 estimate).
StepCallback = Callable[[int, int, torch.Tensor, torch.Tensor], None]


@torch.no_grad()
def sample(
    model: UNet,
    schedule: NoiseSchedule,
    noise: torch.Tensor,
    sampler: str = "ddim",
    num_steps: int = 50,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    on_step: StepCallback | None = None,
    class_labels: torch.Tensor | None = None,
    guidance: float = 0.0,
) -> torch.Tensor:
    """Denoise `noise` (x_T, (B, C, H, W)) into images in [0, 1]. `generator` draws the noise DDPM (and
    DDIM with eta > 0) adds at each step; draw `noise` from the same generator first to reproduce a
    diffusers pipeline run exactly. A class-conditional UNet takes `class_labels` (B,) and the
    classifier-free guidance scale `guidance` (w >= 0, see guided_noise)."""
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', not {sampler!r}")
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be between 0 (deterministic DDIM) and 1 (DDPM-like noise), not {eta}")
    if guidance < 0:
        raise ValueError(f"the guidance scale must be 0 (no guidance) or more, not {guidance}")
    timesteps = schedule.inference_timesteps(num_steps)
    x = noise
    for index, timestep in enumerate(timesteps):
        previous_timestep = timesteps[index + 1] if index + 1 < len(timesteps) else -1
        predicted_noise = guided_noise(model, x, timestep, class_labels, guidance)
        if sampler == "ddpm":
            x, x0 = ddpm_step(schedule, x, predicted_noise, timestep, previous_timestep, generator)
        else:
            x, x0 = ddim_step(schedule, x, predicted_noise, timestep, previous_timestep, eta, generator)
        if on_step is not None:
            on_step(index, timestep, x, x0)
    return (x / 2 + 0.5).clamp(0, 1)  # from the model's [-1, 1] to pixel values
