"""
Latent-variable generators from scratch: two ways to turn a simple latent z into an image.

The VAE (Kingma & Welling 2014, "Auto-Encoding Variational Bayes"). A decoder p(x|z) turns a latent
z ~ p(z) = N(0, I) into pixel probabilities; an encoder q(z|x) = N(mu(x), diag sigma^2(x)) guesses which
latents explain an image. Both train on the evidence lower bound (ELBO, eq. 3 and 10)

    log p(x) >= E_q[log p(x|z)] - KL(q(z|x) || p(z))

The expectation is estimated with one sample written as z = mu + sigma * eps, eps ~ N(0, I): the
**reparameterisation trick** (sec. 2.4), which lets the gradient flow through the sample into mu and sigma.
The KL of two Gaussians is analytic (Appendix B): 1/2 sum(mu^2 + sigma^2 - 1 - log sigma^2). Our decoder
is Bernoulli on binarised digits, so log p(x|z) = -BCE(logits, x) summed over the 784 pixels, and the
bound is in nats per image. Averaging k importance weights gives a tighter bound (IWAE, Burda et al.
2016, eq. 8): log p(x) >= E[log 1/k sum_i p(x, z_i) / q(z_i|x)], which tends to log p(x) as k grows.

Two Gaussian VAEs: an MLP with a 2-D latent (the whole latent space fits on one picture) and a
convolutional VAE in the layout of diffusers' `AutoencoderKL` (Encoder with double_z, quant_conv,
post_quant_conv, Decoder), built from the VQ-VAE topic's encoder and decoder (apps/vqgan/model.py),
with the parameter names of diffusers, so a state dict copies across by name (reference.py).

The categorical VAE (Jang et al. 2017, "Categorical Reparameterization with Gumbel-Softmax"): the latent
is N independent categorical variables with K classes each. A discrete sample has no gradient, but the
**Gumbel-max trick** writes it as argmax_k (log pi_k + g_k) with g_k ~ Gumbel(0, 1), and replacing the
argmax by a softmax at temperature tau (eq. 1) gives a differentiable relaxation that tends to the one-hot
sample as tau -> 0. The temperature is annealed during training; the "hard" (straight-through) variant
uses the one-hot sample forward and the softmax's gradient backward.

The GAN (Goodfellow et al. 2014): a generator G(z) and a discriminator D(x) play
min_G max_D E_data[log D(x)] + E_z[log(1 - D(G(z)))] (eq. 1); the generator maximises log D(G(z))
instead (the non-saturating loss, sec. 3), which gives strong gradients while D still wins. WGAN
(Arjovsky et al. 2017) replaces D by a critic f and minimises the Wasserstein-1 distance through its
Kantorovich-Rubinstein dual, W1(p, q) = sup_{||f||_L <= 1} E_p f - E_q f (eq. 2); the 1-Lipschitz
constraint is enforced by clipping the critic's weights to [-c, c] (WGAN) or by a gradient penalty
lambda E[(||grad f(x^)|| - 1)^2] on points between real and fake samples (WGAN-GP, Gulrajani et al. 2017,
eq. 3). Our DCGAN (Radford et al. 2016) is small: two transposed convolutions up, two convolutions down.

Images: the VAEs read binarised digits in {0, 1} (the encoders see them as 2x - 1 in [-1, 1], the range
diffusers' VAEs use) and their decoders output Bernoulli logits; the GAN works in [-1, 1] (tanh).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apps.vqgan.model import Decoder, Encoder, VQConfig  # deliberate reuse: the same Encoder/Decoder layout

LOGVAR_RANGE = (-30.0, 20.0)  # diffusers' DiagonalGaussianDistribution clamps log sigma^2 to this range
IMAGE_SIZE = 28
PIXELS = IMAGE_SIZE * IMAGE_SIZE


def to_encoder_range(x: torch.Tensor) -> torch.Tensor:
    """Binary (or [0, 1]) pixels -> [-1, 1], what the encoders read."""
    return 2 * x - 1


def sum_except_batch(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(dim=1)


# --- Posteriors ------------------------------------------------------------------------------------


class GaussianPosterior:
    """q(z|x) = N(mean, diag exp(logvar)), any shape (B, ...); diffusers' DiagonalGaussianDistribution."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean = mean
        self.logvar = logvar.clamp(*LOGVAR_RANGE)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The reparameterisation trick: z = mean + std * eps, eps ~ N(0, I) drawn from `generator`."""
        eps = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per image (B,): 1/2 sum(mean^2 + var - 1 - logvar) (Kingma & Welling, Appendix B)."""
        return 0.5 * sum_except_batch(self.mean.pow(2) + self.logvar.exp() - 1 - self.logvar)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) per image (B,)."""
        return sum_except_batch(
            -0.5 * (math.log(2 * math.pi) + self.logvar + (z - self.mean).pow(2) / self.logvar.exp())
        )


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per image (B,)."""
    return sum_except_batch(-0.5 * (math.log(2 * math.pi) + z.pow(2)))


def gumbel_noise(shape_like: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """g ~ Gumbel(0, 1) as -log(E), E ~ Exponential(1): the way torch.nn.functional.gumbel_softmax draws it."""
    return -torch.empty_like(shape_like).exponential_(generator=generator).log()


def gumbel_softmax(
    logits: torch.Tensor, temperature: float, hard: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A relaxed one-hot sample over the last dimension (Jang et al. eq. 1):
        y = softmax((logits + g) / tau),  g ~ Gumbel(0, 1).
    hard=True: the one-hot argmax forward, the softmax's gradient backward (straight-through)."""
    if temperature <= 0:
        raise ValueError(f"The Gumbel-softmax temperature must be positive, not {temperature}.")
    soft = ((logits + gumbel_noise(logits, generator)) / temperature).softmax(dim=-1)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft  # value: one_hot; gradient: the soft sample's


class CategoricalPosterior:
    """q(z|x): independent categoricals, logits (B, N, K); samples are one-hot (B, N, K)."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits.log_softmax(dim=-1)  # normalised: log q per class

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """An exact one-hot sample by the Gumbel-max trick: argmax_k (log pi_k + g_k)."""
        return F.one_hot((self.logits + gumbel_noise(self.logits, generator)).argmax(-1), self.logits.shape[-1]).to(
            self.logits.dtype
        )

    def relaxed_sample(
        self, temperature: float, hard: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return gumbel_softmax(self.logits, temperature, hard, generator)

    def kl(self) -> torch.Tensor:
        """KL(q || uniform) per image (B,): sum over the N variables of sum_k q_k log q_k + log K."""
        categories = self.logits.shape[-1]
        return sum_except_batch(self.logits.exp() * self.logits) + self.logits.shape[1] * math.log(categories)

    def log_prob(self, one_hot: torch.Tensor) -> torch.Tensor:
        return sum_except_batch(one_hot * self.logits)


# --- The Gaussian VAEs -------------------------------------------------------------------------------


class VAE(nn.Module):
    """What every VAE here offers: encode(x) -> posterior, decode(z) -> Bernoulli logits, latent_shape(),
    prior_log_prob(z) and sample_prior(count, generator) (defined by each subclass), and generate below."""

    @torch.no_grad()
    def generate(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """New digits (count, 1, 28, 28) in [0, 1]: z from the prior, the decoder's Bernoulli means."""
        return torch.sigmoid(self.decode(self.sample_prior(count, generator)))


class GaussianVAE(VAE):
    """The prior p(z) = N(0, I) over latent_shape()."""

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def sample_prior(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, *self.latent_shape(), generator=generator)


@dataclass
class MLPVAEConfig:
    hidden: tuple[int, ...] = (512, 256)
    latent_dim: int = 2

    def __post_init__(self):
        self.hidden = tuple(self.hidden)


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers with ReLU in between (none after the last)."""
    layers = []
    for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(width_in, width_out))
        if index < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPVAE(GaussianVAE):
    """784 -> hidden -> (mu, log sigma^2) of a `latent_dim` Gaussian; z -> hidden reversed -> 784 logits."""

    def __init__(self, config: MLPVAEConfig):
        super().__init__()
        self.config = config
        self.encoder = mlp([PIXELS, *config.hidden, 2 * config.latent_dim])
        self.decoder = mlp([config.latent_dim, *config.hidden[::-1], PIXELS])

    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """x (B, 1, 28, 28) in {0, 1} -> q(z|x) over (B, latent_dim)."""
        mean, logvar = self.encoder(to_encoder_range(x).flatten(1)).chunk(2, dim=1)
        return GaussianPosterior(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_dim) -> Bernoulli logits (B, 1, 28, 28)."""
        return self.decoder(z).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


@dataclass
class ConvVAEConfig:
    """diffusers AutoencoderKL's names and meanings (DownEncoderBlock2D / UpDecoderBlock2D levels)."""

    sample_size: int = 28
    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: tuple[int, ...] = (8, 16, 16)  # each level but the last halves the resolution: 28 -> 7
    layers_per_block: int = 1
    latent_channels: int = 2  # the latent is (latent_channels, 7, 7) = 98 numbers for the default
    norm_num_groups: int = 4
    mid_block_add_attention: bool = True
    scaling_factor: float = 0.18215  # carried for diffusers (latent diffusion scales latents by it); unused here

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        self.codec(self.latent_channels)  # the VQ codec's config checks divisibility and sizes

    def codec(self, latent_channels: int) -> VQConfig:
        """The VQ-VAE topic's config for an Encoder or Decoder with `latent_channels` at the bottleneck."""
        return VQConfig(
            sample_size=self.sample_size,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            block_out_channels=self.block_out_channels,
            layers_per_block=self.layers_per_block,
            latent_channels=latent_channels,
            norm_num_groups=self.norm_num_groups,
            mid_block_add_attention=self.mid_block_add_attention,
        )

    @property
    def latent_size(self) -> int:
        return self.codec(self.latent_channels).latent_size


class ConvVAE(GaussianVAE):
    """AutoencoderKL's layout: encoder (2 * latent channels: mean and log-variance, diffusers' double_z) ->
    quant_conv (1x1) -> posterior; z -> post_quant_conv (1x1) -> decoder -> Bernoulli logits."""

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        self.config = config
        latent = config.latent_channels
        self.encoder = Encoder(config.codec(2 * latent))
        self.decoder = Decoder(config.codec(latent))
        self.quant_conv = nn.Conv2d(2 * latent, 2 * latent, 1)
        self.post_quant_conv = nn.Conv2d(latent, latent, 1)

    def latent_shape(self) -> tuple[int, ...]:
        size = self.config.latent_size
        return (self.config.latent_channels, size, size)

    def encode(self, x: torch.Tensor) -> GaussianPosterior:
        """x (B, 1, 28, 28) in {0, 1} -> q(z|x) over (B, latent_channels, 7, 7)."""
        moments = self.quant_conv(self.encoder(to_encoder_range(x)))  # (B, 2 * latent_channels, 7, 7)
        mean, logvar = moments.chunk(2, dim=1)
        return GaussianPosterior(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_channels, 7, 7) -> Bernoulli logits (B, 1, 28, 28) (diffusers' decode(z).sample)."""
        return self.decoder(self.post_quant_conv(z))


# --- The categorical VAE -----------------------------------------------------------------------------


@dataclass
class CategoricalVAEConfig:
    hidden: tuple[int, ...] = (512, 256)
    latent_variables: int = 20  # N independent categoricals ...
    categories: int = 10  # ... of K classes each: K^N possible codes
    temperature_start: float = 1.0  # tau_0 of the annealing schedule
    temperature_min: float = 0.5  # Jang et al.: tau = max(0.5, exp(-r t))
    anneal_rate: float = 5e-4  # r, per step

    def __post_init__(self):
        self.hidden = tuple(self.hidden)

    def temperature_at(self, step: int) -> float:
        return max(self.temperature_min, self.temperature_start * math.exp(-self.anneal_rate * step))


class CategoricalVAE(VAE):
    """784 -> hidden -> N x K logits; a (relaxed) one-hot N x K code -> hidden reversed -> 784 logits."""

    def __init__(self, config: CategoricalVAEConfig):
        super().__init__()
        self.config = config
        code = config.latent_variables * config.categories
        self.encoder = mlp([PIXELS, *config.hidden, code])
        self.decoder = mlp([code, *config.hidden[::-1], PIXELS])

    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_variables, self.config.categories)

    def encode(self, x: torch.Tensor) -> CategoricalPosterior:
        """x (B, 1, 28, 28) -> q(z|x), logits (B, N, K)."""
        return CategoricalPosterior(self.encoder(to_encoder_range(x).flatten(1)).view(-1, *self.latent_shape()))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """A one-hot or relaxed code (B, N, K) -> Bernoulli logits (B, 1, 28, 28)."""
        return self.decoder(z.flatten(1)).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Uniform prior: log(1/K) per variable."""
        return torch.full((len(z),), -self.config.latent_variables * math.log(self.config.categories))

    def sample_prior(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        classes = torch.randint(0, self.config.categories, (count, self.config.latent_variables), generator=generator)
        return F.one_hot(classes, self.config.categories).float()

    def sample_relaxed_prior(
        self, count: int, temperature: float, hard: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Gumbel-softmax samples of the uniform prior (logits 0): soft codes blend classes, hard ones are one-hot."""
        return gumbel_softmax(torch.zeros(count, *self.latent_shape()), temperature, hard, generator)


# --- Bounds on log p(x) ------------------------------------------------------------------------------


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) per image (B,) for binary x: -BCE summed over pixels."""
    return -sum_except_batch(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def elbo(model: nn.Module, x: torch.Tensor, temperature: float | None = None, hard: bool = False) -> torch.Tensor:
    """The ELBO per image (B,), one posterior sample: log p(x|z) - KL(q(z|x) || p(z)). For the categorical VAE,
    `temperature` trains on the Gumbel-softmax relaxation; None uses exact one-hot samples (evaluation)."""
    posterior = model.encode(x)
    if temperature is not None:
        z = posterior.relaxed_sample(temperature, hard)
    else:
        z = posterior.sample()
    return bernoulli_log_likelihood(model.decode(z), x) - posterior.kl()


@torch.no_grad()
def iwae_bound(model: nn.Module, x: torch.Tensor, samples: int = 64, generator: torch.Generator | None = None):
    """The importance-weighted bound per image (B,) (Burda et al. eq. 8):
    log 1/k sum_i p(x|z_i) p(z_i) / q(z_i|x), z_i ~ q(z|x); k = 1 is the ELBO in expectation."""
    posterior = model.encode(x)
    log_weights = []
    for _ in range(samples):
        z = posterior.sample(generator)
        log_weights.append(
            bernoulli_log_likelihood(model.decode(z), x) + model.prior_log_prob(z) - posterior.log_prob(z)
        )
    return torch.logsumexp(torch.stack(log_weights), dim=0) - math.log(samples)  # (B,)


# --- GAN and WGAN ------------------------------------------------------------------------------------


@dataclass
class DCGANConfig:
    latent_dim: int = 64
    generator_channels: int = 64  # at 7x7; halved at 14x14
    critic_channels: int = 32  # at 14x14; doubled at 7x7


class Generator(nn.Module):
    """z (B, latent_dim) -> Linear -> (C, 7, 7) -> up 14x14 -> up 28x28, tanh: images in [-1, 1]."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        channels = config.generator_channels
        self.project = nn.Sequential(nn.Linear(config.latent_dim, channels * 7 * 7), nn.BatchNorm1d(channels * 7 * 7))
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1),  # (B, C/2, 14, 14)
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(),
            nn.ConvTranspose2d(channels // 2, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.project(z).view(len(z), self.config.generator_channels, 7, 7))

    def sample_prior(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(count, self.config.latent_dim, generator=generator)

    @torch.no_grad()
    def generate(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """New digits (count, 1, 28, 28) in [0, 1] (batch norm with its running statistics in eval mode)."""
        return (self(self.sample_prior(count, generator)) + 1) / 2


class Critic(nn.Module):
    """x (B, 1, 28, 28) -> one real number: a logit for the GAN's discriminator, a score for WGAN's critic.
    No batch norm (a gradient penalty is per sample, and batch statistics would couple the samples)."""

    def __init__(self, config: DCGANConfig):
        super().__init__()
        channels = config.critic_channels
        self.layers = nn.Sequential(
            nn.Conv2d(1, channels, 4, stride=2, padding=1),  # (B, C, 14, 14)
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),  # (B, 2C, 7, 7)
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * channels * 7 * 7, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)  # (B,)


GAN_LOSSES = ("non-saturating", "wgan-clip", "wgan-gp")


def critic_loss(loss: str, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """What the discriminator / critic minimises (the gradient penalty is added separately).
    GAN: -log D(x) - log(1 - D(G(z))) with D = sigmoid(score). WGAN: -(E_real f - E_fake f), the dual of W1."""
    if loss == "non-saturating":
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
    return fake_scores.mean() - real_scores.mean()


def generator_loss(loss: str, fake_scores: torch.Tensor) -> torch.Tensor:
    """GAN: -log D(G(z)) (the non-saturating loss); WGAN: -E f(G(z))."""
    if loss == "non-saturating":
        return F.softplus(-fake_scores).mean()
    return -fake_scores.mean()


def gradient_penalty(
    critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """E[(||grad_x f(x^)||_2 - 1)^2] at x^ = eps x_real + (1 - eps) x_fake, eps ~ U[0, 1] (WGAN-GP eq. 3)."""
    eps = torch.rand(len(real), *([1] * (real.dim() - 1)), generator=generator)
    between = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (gradient,) = torch.autograd.grad(critic(between).sum(), between, create_graph=True)
    return (gradient.flatten(1).norm(dim=1) - 1).pow(2).mean()


@torch.no_grad()
def clip_weights(critic: nn.Module, clip: float) -> None:
    """WGAN's crude Lipschitz constraint: every parameter clamped to [-c, c] after each critic step."""
    for parameter in critic.parameters():
        parameter.clamp_(-clip, clip)


@torch.no_grad()
def critic_w1_estimate(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    """E_real f - E_fake f: the dual's value, a lower bound on W1 when f is 1-Lipschitz (K * W1 with clipping)."""
    return float(critic(real).mean() - critic(fake).mean())
