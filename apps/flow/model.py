"""
Flows from scratch: normalizing flows with exact likelihoods (NICE, RealNVP, Glow) and rectified flow.

**Normalizing flows.** An invertible map f sends data x to a latent z = f(x) with a simple prior p_Z
(a standard Gaussian, or NICE's logistic). The change-of-variables formula gives the exact density

    log p_X(x) = log p_Z(f(x)) + log |det df/dx|                                  (NICE eq. 1, RealNVP eq. 3)

so f is built from layers whose inverse and Jacobian determinant are cheap:
- coupling layers (NICE section 3, RealNVP section 3.2-3.4): a mask keeps half of the input x_a as it is
  and transforms the other half with a shift t(x_a) and (RealNVP) a log-scale s(x_a),
  y_b = x_b * exp(s(x_a)) + t(x_a). The Jacobian is triangular: log|det| = sum s(x_a); NICE's additive
  layer (s = 0) has log|det| = 0 and a final diagonal scaling layer carries the volume change (NICE eq. 5);
- Glow (Kingma & Dhariwal 2018, table 1): actnorm (a per-channel affine map, initialised from the first
  batch), an invertible 1x1 convolution with an LU-decomposed weight W = P L (U + diag(s)), so
  log|det| = H W sum log|s|, and an affine coupling;
- squeeze (space to channels, RealNVP fig. 3) and multi-scale split: after each level half the channels
  leave as latents (RealNVP section 3.6), the rest go on to coarser levels.

Likelihoods of 8-bit images: add uniform noise u in [0, 1) to the integer pixels (uniform dequantization,
RealNVP section 4.1; its log-likelihood lower-bounds the discrete model's), map x in [0, 256)^D to the
model's space y (a shift and scale, or RealNVP's logit) and count that map's log-determinant too:
bits/dim = -(log p_Y(y) + log|dy/dx|) / (D ln 2).

**Rectified flow** (Liu, Gong & Liu 2022, "Flow Straight and Fast"; also flow matching, Lipman et al.
2022). Draw noise x_0 ~ N(0, I) and data x_1, interpolate on the straight line x_t = t x_1 + (1 - t) x_0
and regress a velocity field on the direction of that line (eq. 1 of the paper):

    min_v  E_{t ~ U(0, 1)} || (x_1 - x_0) - v(x_t, t) ||^2

Sampling integrates dx/dt = v(x, t) from t = 0 (noise) to t = 1 (an image) with Euler or Heun steps.
The learned paths cross and curve (the velocity averages over all lines through a point), so few steps
blur. Reflow (section 2.2) retrains on pairs (x_0, ODE(x_0)) produced by the previous flow: those
pairs are coupled, their lines rarely cross, and the new flow's paths are straighter, so 1-2 steps work.

The velocity network for MNIST is the diffusion topic's UNet (`apps.diffusion.model.UNet`, diffusers'
`UNet2DModel` layout with a sinusoidal time embedding): a deliberate, documented reuse, as the VQGAN
prior reuses the GPT. Tensors are (B, C, H, W) for images and (B, D) for vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apps.diffusion.model import UNet, UNetConfig  # deliberate reuse: the velocity network (see above)

PIXEL_LEVELS = 256  # 8-bit images
PRIORS = ("gaussian", "logistic")
PREPROCESSINGS = ("unit", "logit")


# --- Priors ------------------------------------------------------------------------------------------


def prior_log_prob(z: torch.Tensor, prior: str) -> torch.Tensor:
    """log p_Z(z) summed over all but the batch axis. (B, ...) -> (B,)."""
    if prior == "gaussian":
        log_density = -0.5 * (z**2 + math.log(2 * math.pi))
    else:  # the standard logistic of NICE (section 3.4): log p(z) = -log(1 + e^z) - log(1 + e^-z)
        log_density = -(F.softplus(z) + F.softplus(-z))
    return log_density.flatten(1).sum(1)


def prior_sample(
    shape: tuple[int, ...], prior: str, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw z from the prior with its spread multiplied by `temperature` (Glow section 5: T < 1 gives cleaner samples)."""
    if prior == "gaussian":
        z = torch.randn(shape, generator=generator)
    else:  # inverse CDF of the logistic: z = log(u / (1 - u))
        u = torch.rand(shape, generator=generator).clamp(1e-6, 1 - 1e-6)
        z = torch.log(u) - torch.log1p(-u)
    return temperature * z


def check_temperature(temperature: float) -> None:
    if temperature is None or not 0 < temperature <= 2:
        raise ValueError(
            (
                "The temperature must be above 0 and at most 2 (1 = the prior as trained, below 1 = sharper "
                f"samples); got {temperature}."
            )
        )


# --- Between pixels and the model's space ------------------------------------------------------------


def dequantize(pixels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Integer pixels 0..255 -> x = pixels + u, u ~ U[0, 1): a continuous variable in [0, 256)."""
    pixels = pixels.float()
    return pixels + torch.rand(pixels.shape, generator=generator, device=pixels.device)


def to_model_space(x: torch.Tensor, preprocessing: str, logit_alpha: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """x in [0, 256) -> (y, log|dy/dx| summed per example).

    "unit": y = x / 256 - 1/2 (Glow), log|dy/dx| = -D log 256.
    "logit": p = alpha + (1 - 2 alpha) x / 256, y = log p - log(1 - p) (RealNVP section 4.1), so
    log|dy/dx| = sum log((1 - 2 alpha) / 256) - log p - log(1 - p)."""
    dims = x[0].numel()
    if preprocessing == "unit":
        return x / PIXEL_LEVELS - 0.5, torch.full((x.shape[0],), -dims * math.log(PIXEL_LEVELS), device=x.device)
    p = logit_alpha + (1 - 2 * logit_alpha) * x / PIXEL_LEVELS
    y = torch.log(p) - torch.log1p(-p)
    log_det = (math.log((1 - 2 * logit_alpha) / PIXEL_LEVELS) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
    return y, log_det


def to_pixels(y: torch.Tensor, preprocessing: str, logit_alpha: float = 0.05) -> torch.Tensor:
    """The model's space -> pixel values in [0, 1] (the inverse of to_model_space, divided by 256)."""
    if preprocessing == "unit":
        unit = y + 0.5
    else:
        unit = (torch.sigmoid(y) - logit_alpha) / (1 - 2 * logit_alpha)
    return unit.clamp(0, 1)


def bits_per_dim(log_prob_y: torch.Tensor, log_det_preprocessing: torch.Tensor, dims: int) -> torch.Tensor:
    """-log p_X(x) / (D ln 2) with log p_X(x) = log p_Y(y) + log|dy/dx|: per example, (B,)."""
    return -(log_prob_y + log_det_preprocessing) / (dims * math.log(2))


# --- Flow layers: each returns (output, log|det J| per example) and has an exact inverse ----------------


class Coupling(nn.Module):
    """A masked coupling layer (RealNVP eq. 9): y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x)).

    `mask` (1 = kept) broadcasts against one example; `net` maps the masked input to the shift t (additive,
    NICE eq. 4) or to t and the raw log-scale (affine). The log-scale is soft-clamped to (-2, 2) by a tanh
    so one layer cannot blow up the volume early in training; the net's last layer starts at zero, so the
    layer starts as the identity. log|det| = sum over the transformed entries of s (RealNVP eq. 6)."""

    def __init__(self, mask: torch.Tensor, net: nn.Module, affine: bool, scale_limit: float = 2.0):
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = net
        self.affine = affine
        self.scale_limit = scale_limit

    def shift_and_log_scale(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net(kept)
        if not self.affine:
            return h, torch.zeros_like(h)
        shift, raw_scale = h.chunk(2, dim=1)
        return shift, self.scale_limit * torch.tanh(raw_scale / self.scale_limit)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x * self.mask
        shift, log_scale = self.shift_and_log_scale(kept)
        changed = 1 - self.mask
        y = kept + changed * (x * torch.exp(log_scale) + shift)
        return y, (changed * log_scale).flatten(1).sum(1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept = y * self.mask  # the kept half passes unchanged, so s and t can be recomputed
        shift, log_scale = self.shift_and_log_scale(kept)
        return kept + (1 - self.mask) * (y - shift) * torch.exp(-log_scale)


class DiagonalScaling(nn.Module):
    """NICE's last layer (eq. 5): z = x * exp(S), log|det| = sum S; it lets the additive flow change volume.

    Our addition: a shift b, z = (x + b) * exp(S), both set from the first training batch so that every
    entry starts with zero mean and unit variance (Glow's actnorm idea). Our NICE also starts with such a
    layer: MNIST's background pixels vary only by the dequantization noise (a spread of 1/256), so S must
    reach about +7 there, which Adam at a learning rate of 1e-3 takes thousands of steps to find from
    S = 0; and the couplings learn better on inputs of unit scale."""

    def __init__(self, dims: int):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(dims))
        self.log_scale = nn.Parameter(torch.zeros(dims))
        self.register_buffer("initialized", torch.tensor(0.0))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        self.shift.copy_(-x.mean(0))
        self.log_scale.copy_(-torch.log(x.std(0) + 1e-6))
        self.initialized.fill_(1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not self.initialized:
            self.initialize(x)
        return (x + self.shift) * torch.exp(self.log_scale), self.log_scale.sum().expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.shift


class ActNorm(nn.Module):
    """Glow's activation normalisation (section 3.1): y = (x + b) * exp(log_s) per channel, with b and log_s
    set from the first batch so that its output has zero mean and unit variance per channel. log|det| =
    H W sum log_s."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0.0))  # a float: saved and loaded like the weights

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std + 1e-6))
        self.initialized.fill_(1.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not self.initialized:
            self.initialize(x)
        height, width = x.shape[-2:]
        return (x + self.bias) * torch.exp(self.log_scale), (height * width * self.log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvertibleConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution (section 3.2) with the LU parametrisation (eq. 10-11):
    W = P L (U + diag(sign(s) exp(log|s|))), P a fixed permutation, L unit lower-triangular, U strictly upper-
    triangular; log|det W| = sum log|s|, so log|det| = H W sum log|s|. Starts from a random rotation."""

    def __init__(self, channels: int, generator: torch.Generator | None = None):
        super().__init__()
        rotation, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        permutation, lower, upper = torch.linalg.lu(rotation)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation)
        self.register_buffer("sign_s", torch.sign(diagonal))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diagonal.abs()))

    def weight(self) -> torch.Tensor:
        eye = torch.eye(self.lower.shape[0], device=self.lower.device, dtype=self.lower.dtype)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.permutation @ lower @ upper  # (C, C)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = x.shape[1]
        height, width = x.shape[-2:]
        y = F.conv2d(x, self.weight().view(channels, channels, 1, 1))
        return y, (height * width * self.log_s.sum()).expand(x.shape[0])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        channels = y.shape[1]
        return F.conv2d(y, torch.linalg.inv(self.weight()).view(channels, channels, 1, 1))


def squeeze(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H/2, W/2): each 2x2 block of pixels becomes 4 channels (RealNVP fig. 3). log|det| = 0."""
    batch, channels, height, width = x.shape
    x = x.view(batch, channels, height // 2, 2, width // 2, 2)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(batch, channels * 4, height // 2, width // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    """The inverse of squeeze: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    batch, channels, height, width = x.shape
    x = x.view(batch, channels // 4, 2, 2, height, width)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(batch, channels // 4, height * 2, width * 2)


class Squeeze(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return squeeze(x), torch.zeros(x.shape[0], device=x.device)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return unsqueeze(y)


class FlowSequence(nn.Module):
    """Layers applied in order; log-determinants add up, the inverse runs them backwards."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        total = torch.zeros(x.shape[0], device=x.device)
        for layer in self.layers:
            x, log_det = layer(x)
            total = total + log_det
        return x, total

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y


# --- The networks inside the couplings ---------------------------------------------------------------


def zero_initialized(layer: nn.Module) -> nn.Module:
    """The last layer of a coupling net starts at zero: every coupling starts as the identity (Glow section 3.3)."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_features: int, hidden: int, out_features: int, hidden_layers: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(in_features, hidden), nn.ReLU()]
    for _ in range(hidden_layers - 1):
        layers += [nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, zero_initialized(nn.Linear(hidden, out_features)))


def conv_net(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
    """Glow's coupling network: 3x3 conv, ReLU, 1x1 conv, ReLU, zero-initialised 3x3 conv."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, hidden, 1),
        nn.ReLU(),
        zero_initialized(nn.Conv2d(hidden, out_channels, 3, padding=1)),
    )


def alternating_mask(dims: int, parity: int) -> torch.Tensor:
    """(1, D): keep the entries whose index has the given parity (NICE's odd/even partition)."""
    return ((torch.arange(dims) % 2) == parity).float()[None]


def checkerboard_mask(height: int, width: int, parity: int) -> torch.Tensor:
    """(1, 1, H, W): RealNVP's spatial checkerboard (fig. 3, left)."""
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return (((rows + columns) % 2) == parity).float()[None, None]


def channel_mask(channels: int, parity: int) -> torch.Tensor:
    """(1, C, 1, 1): keep the first half of the channels (parity 0) or the second (RealNVP fig. 3, right)."""
    first_half = torch.arange(channels) < channels // 2
    return (first_half if parity == 0 else ~first_half).float()[None, :, None, None]


# --- Whole flows -------------------------------------------------------------------------------------


class NormalizingFlow(nn.Module):
    """What every flow offers: encode (x -> latents, log|det|), decode (latents -> x), log_prob and sample.
    `prior` and `data_shape` (one example) are set by the subclasses."""

    prior: str
    data_shape: tuple[int, ...]

    def log_prob(self, y: torch.Tensor) -> torch.Tensor:
        """Exact log density of examples y (in the model's space): log p_Z(f(y)) + log|det df/dy|. (B,)."""
        latents, log_det = self.encode(y)
        return sum(prior_log_prob(z, self.prior) for z in latents) + log_det

    @torch.no_grad()
    def sample(self, count: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw latents from the prior (spread times `temperature`) and decode them: (count, *data_shape)."""
        check_temperature(temperature)
        device = next(self.parameters()).device
        latents = [
            prior_sample((count, *shape), self.prior, temperature, generator).to(device)
            for shape in self.latent_shapes()
        ]
        return self.decode(latents)


@dataclass
class CouplingFlowConfig:
    """A flow on vectors made of coupling layers with MLP nets: NICE (additive, logistic prior, final
    scaling) or a RealNVP on vectors (affine, Gaussian prior), as the 2-D toy uses."""

    dims: int = 784
    couplings: int = 4
    hidden: int = 1000
    hidden_layers: int = 5  # NICE on MNIST: 4 couplings of 5 hidden layers of 1000 units (section 5.1)
    coupling: str = "additive"  # "additive" (NICE) or "affine" (RealNVP)
    prior: str = "logistic"
    final_scaling: bool = True
    preprocessing: str = "unit"
    logit_alpha: float = 0.05

    def __post_init__(self):
        if self.coupling not in ("additive", "affine"):
            raise ValueError(f"coupling must be 'additive' or 'affine', not {self.coupling!r}")
        if self.prior not in PRIORS or self.preprocessing not in PREPROCESSINGS:
            raise ValueError(f"prior must be one of {PRIORS} and preprocessing one of {PREPROCESSINGS}")


class CouplingFlow(NormalizingFlow):
    """Couplings whose masks alternate between the even and the odd entries (NICE section 5.1), then the
    diagonal scaling. Images are flattened: data_shape is (D,) unless `image_shape` is given."""

    def __init__(self, config: CouplingFlowConfig, image_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.config = config
        self.prior = config.prior
        self.data_shape = tuple(image_shape) if image_shape else (config.dims,)
        outputs = config.dims * (2 if config.coupling == "affine" else 1)
        layers: list[nn.Module] = [
            Coupling(
                alternating_mask(config.dims, index % 2),
                mlp(config.dims, config.hidden, outputs, config.hidden_layers),
                config.coupling == "affine",
            )
            for index in range(config.couplings)
        ]
        if config.final_scaling:
            layers = [DiagonalScaling(config.dims), *layers, DiagonalScaling(config.dims)]
        self.flow = FlowSequence(layers)

    def latent_shapes(self) -> list[tuple[int, ...]]:
        return [(self.config.dims,)]

    def encode(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        z, log_det = self.flow(y.flatten(1))  # (B, D)
        return [z], log_det

    def decode(self, latents: list[torch.Tensor]) -> torch.Tensor:
        return self.flow.inverse(latents[0]).view(-1, *self.data_shape)


class NICE(CouplingFlow):
    """NICE on 28x28 digits: the vector flow with MNIST's image shape."""

    def __init__(self, config: CouplingFlowConfig):
        super().__init__(config, image_shape=(1, 28, 28) if config.dims == 784 else None)


@dataclass
class MultiScaleFlowConfig:
    """RealNVP or Glow on images: `levels` times (squeeze, `steps_per_level` flow steps, split off half the
    channels), the last level without the split."""

    # "realnvp": masked affine couplings (checkerboard then channel masks); "glow": actnorm + 1x1 conv + coupling
    kind: str = "glow"
    image_shape: tuple[int, int, int] = (1, 28, 28)
    levels: int = 2
    steps_per_level: int = 4
    hidden_channels: int = 64
    prior: str = "gaussian"
    preprocessing: str = "logit"
    logit_alpha: float = 0.05
    seed: int = 0  # the random rotations that start Glow's 1x1 convolutions

    def __post_init__(self):
        self.image_shape = tuple(self.image_shape)
        if self.kind not in ("realnvp", "glow"):
            raise ValueError(f"kind must be 'realnvp' or 'glow', not {self.kind!r}")
        channels, height, width = self.image_shape
        if height % 2**self.levels or width % 2**self.levels:
            raise ValueError(
                (
                    f"{self.levels} levels halve the image {self.levels} times: height and width must be divisible "
                    f"by {2**self.levels}"
                )
            )
        if self.prior not in PRIORS or self.preprocessing not in PREPROCESSINGS:
            raise ValueError(f"prior must be one of {PRIORS} and preprocessing one of {PREPROCESSINGS}")


class MultiScaleFlow(NormalizingFlow):
    """The multi-scale architecture of RealNVP (section 3.6) and Glow (fig. 2): each level squeezes,
    runs its steps and, except the last, factors out half of its channels as latents.

    Where this departs from the papers:
    - RealNVP: a scale of the paper runs three checkerboard couplings at the full resolution of that scale,
      THEN squeezes, then three channel-wise couplings. Here every level squeezes first, so the
      checkerboard couplings act on the squeezed (4C, H/2, W/2) grid (each position of that checkerboard
      holds a 2x2 block of pixels), and the last level ends with channel-wise couplings rather than the
      paper's four checkerboard ones.
    - Glow: the paper's split (its code's `split2d`) gives the factored-out half z_i a learned
      conditional prior N(mu(h), sigma(h)^2), (mu, log sigma) = a zero-initialised conv of the half h that
      goes on. Here every latent, split-off or final, has the same fixed prior (N(0, I) by default;
      `prior_log_prob` and `prior_sample`), which costs some bits per dimension and makes the sampling
      temperature act on all latents alike."""

    def __init__(self, config: MultiScaleFlowConfig):
        super().__init__()
        self.config = config
        self.prior = config.prior
        self.data_shape = config.image_shape
        generator = torch.Generator().manual_seed(config.seed)
        channels, height, width = config.image_shape
        self.levels = nn.ModuleList()
        self.shapes = []  # the latent shapes, in the order encode returns them
        for level in range(config.levels):
            channels, height, width = channels * 4, height // 2, width // 2
            steps: list[nn.Module] = [Squeeze()]
            for index in range(config.steps_per_level):
                net = conv_net(channels, config.hidden_channels, 2 * channels)
                if config.kind == "glow":
                    steps += [
                        ActNorm(channels),
                        InvertibleConv1x1(channels, generator),
                        Coupling(channel_mask(channels, 0), net, affine=True),
                    ]
                else:  # RealNVP: the first half of the steps checkerboard, the rest channel-wise, alternating which half is kept
                    spatial = index < config.steps_per_level // 2
                    mask = checkerboard_mask(height, width, index % 2) if spatial else channel_mask(channels, index % 2)
                    steps.append(Coupling(mask, net, affine=True))
            self.levels.append(FlowSequence(steps))
            if level < config.levels - 1:
                self.shapes.append((channels // 2, height, width))
                channels //= 2
        self.shapes.append((channels, height, width))

    def latent_shapes(self) -> list[tuple[int, ...]]:
        return list(self.shapes)

    def encode(self, y: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, C, H, W) -> one latent per level (the split-off halves, then the last level's output), log|det|."""
        latents, total = [], torch.zeros(y.shape[0], device=y.device)
        x = y
        for index, level in enumerate(self.levels):
            x, log_det = level(x)
            total = total + log_det
            if index < len(self.levels) - 1:
                z, x = x.chunk(2, dim=1)  # factor out half the channels (RealNVP eq. 13-14); z ~ the fixed prior
                latents.append(z)
        latents.append(x)
        return latents, total

    def decode(self, latents: list[torch.Tensor]) -> torch.Tensor:
        x = latents[-1]
        for index in reversed(range(len(self.levels))):
            if index < len(self.levels) - 1:
                x = torch.cat([latents[index], x], dim=1)
            x = self.levels[index].inverse(x)
        return x


def image_bits_per_dim(
    flow: NormalizingFlow, pixels: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bits per dimension of 8-bit images (B, C, H, W) or (B, H, W) under `flow`, with one uniform
    dequantization draw: per example, (B,)."""
    if pixels.ndim == 3:
        pixels = pixels[:, None]
    config = flow.config
    y, log_det = to_model_space(dequantize(pixels, generator), config.preprocessing, config.logit_alpha)
    return bits_per_dim(flow.log_prob(y), log_det, pixels[0].numel())


def sample_pixels(
    flow: NormalizingFlow, count: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Samples of an image flow as pixel values in [0, 1], (count, C, H, W)."""
    config = flow.config
    return to_pixels(flow.sample(count, temperature, generator), config.preprocessing, config.logit_alpha)


# --- Rectified flow ----------------------------------------------------------------------------------

MAX_ODE_STEPS = 1000
SOLVERS = ("euler", "heun")
# The UNet's sinusoidal time embedding was designed for integer timesteps 0..999 (DDPM): t in [0, 1] is
# fed to it as 1000 t, the scale diffusers' flow-matching pipelines use for sigma.
UNET_TIME_SCALE = 1000.0

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # v(x_t, t) with t of shape (B,)


class UNetVelocity(nn.Module):
    """v_theta(x_t, t) for images: the diffusion topic's UNet (deliberate reuse), its timestep input fed with 1000 t."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        self.unet = UNet(config)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return self.unet(x, UNET_TIME_SCALE * t)


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The straight line from noise (t = 0) to data (t = 1): x_t = t x_1 + (1 - t) x_0; t is (B,)."""
    t = t.view(-1, *([1] * (data.ndim - 1)))
    return t * data + (1 - t) * noise


def rectified_flow_loss(
    velocity: Velocity, data: torch.Tensor, noise: torch.Tensor | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Eq. 1 of Liu et al.: E_t || (x_1 - x_0) - v(x_t, t) ||^2, t ~ U(0, 1). `noise` given: reflow on
    coupled pairs (x_0, x_1); else x_0 is fresh Gaussian noise (independent coupling, 1-rectified flow)."""
    if noise is None:
        noise = torch.randn(data.shape, generator=generator, device=data.device)
    t = torch.rand(data.shape[0], generator=generator, device=data.device)
    return F.mse_loss(velocity(interpolate(noise, data, t), t), data - noise)


def time_grid(steps: int) -> torch.Tensor:
    """Uniform times 0 = t_0 < t_1 < ... < t_N = 1, (N + 1,)."""
    check_steps(steps)
    return torch.linspace(0, 1, steps + 1)


def check_steps(steps: int) -> None:
    if steps is None or isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= MAX_ODE_STEPS:
        raise ValueError(f"The number of ODE steps must be a whole number from 1 to {MAX_ODE_STEPS:,}; got {steps}.")


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """x_{t'} = x_t + (t' - t) v(x_t, t): first order, exact when the path is a straight line."""
    return x + (t_next - t) * velocity


def heun_step(velocity: Velocity, x: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor) -> torch.Tensor:
    """Heun's method (the trapezoid rule with an Euler predictor): second order, two velocity calls."""
    batch = x.shape[0]
    v_start = velocity(x, t.expand(batch))
    predicted = euler_step(x, v_start, t, t_next)
    v_end = velocity(predicted, t_next.expand(batch))
    return x + (t_next - t) * 0.5 * (v_start + v_end)


@torch.no_grad()
def sample_ode(
    velocity: Velocity,
    noise: torch.Tensor,
    steps: int = 50,
    solver: str = "euler",
    times: torch.Tensor | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from x_0 = `noise` at t = 0 to t = 1 over `steps` steps (uniform times
    unless `times`, (steps + 1,), is given). `on_step(index, x)` sees the state after each step."""
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver {solver!r}; choose one of {', '.join(SOLVERS)}.")
    times = time_grid(steps) if times is None else times
    x = noise
    for index in range(len(times) - 1):
        t, t_next = times[index].to(x.device), times[index + 1].to(x.device)
        if solver == "euler":
            x = euler_step(x, velocity(x, t.expand(x.shape[0])), t, t_next)
        else:
            x = heun_step(velocity, x, t, t_next)
        if on_step is not None:
            on_step(index, x)
    return x


@torch.no_grad()
def trajectories(velocity: Velocity, noise: torch.Tensor, steps: int, solver: str = "euler") -> torch.Tensor:
    """The whole path of each starting point: (steps + 1, B, ...), the noise first."""
    states = [noise]
    sample_ode(velocity, noise, steps, solver, on_step=lambda index, x: states.append(x))
    return torch.stack(states)


@torch.no_grad()
def reflow_pairs(
    velocity: Velocity, noise: torch.Tensor, steps: int, solver: str = "euler", batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflow's training data (section 2.2): each noise x_0 with the flow's own image of it, ODE(x_0).
    Returns (x_0, x_1), both the shape of `noise`."""
    outputs = [sample_ode(velocity, chunk, steps, solver) for chunk in noise.split(batch_size)]
    return noise, torch.cat(outputs)


def straightness(paths: torch.Tensor) -> torch.Tensor:
    """How far the paths bend (section 2.3 of Liu et al.): the mean over steps of ||(x_1 - x_0) - dx/dt||^2,
    0 for straight lines at constant speed. `paths` is (steps + 1, B, ...) on a uniform time grid. (B,)."""
    steps = paths.shape[0] - 1
    chord = paths[-1] - paths[0]  # (B, ...)
    speeds = (paths[1:] - paths[:-1]) * steps  # (steps, B, ...)
    return ((speeds - chord[None]) ** 2).flatten(2).sum(2).mean(0)
