"""
VQ-VAE and VQGAN from scratch: a convolutional encoder, a codebook that turns every latent vector into
the index of its nearest entry, a decoder, and for VQGAN a patch discriminator and a perceptual loss.
An autoregressive transformer over the code indices (our GPT) then generates new images.

VQ-VAE (van den Oord et al. 2017, "Neural Discrete Representation Learning"). The encoder maps an
image x to a grid of vectors z_e(x); each is replaced by its nearest codebook entry e_k,
k = argmin_j ||z_e - e_j|| (eq. 1-2), and the decoder reconstructs x from the quantized grid z_q. The
argmin has no gradient, so the decoder's gradient is copied straight through to the encoder
(z_q = z_e + sg[e_k - z_e]). The loss (eq. 3) is

    L = ||x - D(z_q)||^2 + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2

reconstruction, codebook term (moves the entries towards the encoder outputs) and commitment term
(keeps the encoder near its entries; beta = 0.25). The codebook term can be replaced by exponential
moving averages of the vectors assigned to each entry (Appendix A.1, eq. 6-8), which is what we use by
default, in the paper's order: a batch is quantised with the codebook as it stands, then the averages
take in the vectors each entry received. Entries that no vector picks any more are restarted on a random
encoder output of the batch (dead-code restarts, as in Jukebox, Dhariwal et al. 2020; not in the paper),
so the whole codebook stays in use.

VQGAN (Esser et al. 2021, "Taming Transformers for High-Resolution Image Synthesis") keeps the codec
and changes the loss: a perceptual distance between features of x and x^ (LPIPS in the paper; here the
features of our own small MNIST classifier, shared/image_metric.py, since VGG cannot be downloaded),
and a patch discriminator D_phi trained against the decoder (Isola et al. 2017's PatchGAN, hinge loss).
The GAN term is weighted adaptively (eq. 7):

    lambda = ||grad_GL[L_rec]|| / (||grad_GL[L_GAN]|| + 1e-4)

with GL the decoder's last layer, so that neither loss drowns the other whatever their scales. The
discriminator starts after some steps of plain reconstruction training (the paper's `disc_start`).

Where our VQGAN departs from Taming Transformers' code: the pixel term is the squared error of VQ-VAE
(Taming uses L1); the perceptual features come from a digit classifier, not VGG; the codebook keeps its
moving-average update; the discriminator uses GroupNorm instead of BatchNorm (see PatchDiscriminator);
and it starts learning some steps before its loss reaches the decoder (apps/vqgan/train.py), where
Taming switches both on at `disc_start`.

Layout: the encoder, quantizer and decoder carry the parameter names of diffusers' `VQModel` (Encoder
and Decoder of DownEncoderBlock2D / UpDecoderBlock2D with a UNetMidBlock2D, quant_conv, quantize.embedding,
post_quant_conv), built from the same blocks as our DDPM UNet (shared/conv_blocks.py), so a state
dict copies across by name (see reference.py). Images are in [-1, 1]; tensors are (B, C, H, W).

The prior (Taming Transformers, sec. 3.2): the code indices of an image, read in raster order after a
start token, are a sequence a GPT models as p(s) = prod_i p(s_i | s_<i). We reuse the GPT of the text
generation topic (apps/textgen/model.py) as it is, with the codebook (plus the start token) as its
vocabulary: a deliberate reuse across topics. Sampling the sequence index by index, with a temperature
and top-k, and decoding the grid gives a new image.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from apps.textgen.model import GPT, GPTConfig, sample_next_token  # deliberate reuse: our GPT is the prior
from shared.conv_blocks import Downsample, ResnetBlock, SelfAttention, Upsample

VAE_NORM_EPS = 1e-6  # diffusers' VAE encoder and decoder use this GroupNorm epsilon everywhere
CODEBOOK_UPDATES = ("ema", "loss")


@dataclass
class VQConfig:
    """The codec's shape (diffusers VQModel's names) and how the codebook learns."""

    sample_size: int = 28
    in_channels: int = 1
    out_channels: int = 1
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # channels per resolution; each level but the last halves it
    layers_per_block: int = 1  # ResNet blocks per encoder level (the decoder has one more)
    latent_channels: int = 4  # channels the encoder outputs (before quant_conv)
    num_vq_embeddings: int = 128  # K, the codebook size
    vq_embed_dim: int | None = None  # D, the width of a codebook entry (None: latent_channels)
    norm_num_groups: int = 8
    mid_block_add_attention: bool = True
    scaling_factor: float = 0.18215  # carried for diffusers (latent diffusion scales latents by it); unused here
    commitment_beta: float = 0.25  # beta of eq. 3
    codebook_update: str = "ema"  # "ema": moving averages (Appendix A.1); "loss": the codebook term of eq. 3
    ema_decay: float = 0.99  # gamma of eq. 6-8
    dead_code_threshold: float = 1.0  # restart an entry whose moving-average use per batch falls below this (0: never)

    def __post_init__(self):
        self.block_out_channels = tuple(self.block_out_channels)
        if self.codebook_update not in CODEBOOK_UPDATES:
            raise ValueError(f"codebook_update must be one of {CODEBOOK_UPDATES}, not {self.codebook_update!r}")
        if any(channels % self.norm_num_groups for channels in self.block_out_channels):
            raise ValueError(
                f"every entry of block_out_channels must be divisible by norm_num_groups={self.norm_num_groups}"
            )
        if self.sample_size % self.downsampling_factor:
            raise ValueError(
                f"sample_size {self.sample_size} must be divisible by {self.downsampling_factor} (2 per level but the last)"
            )

    @property
    def embed_dim(self) -> int:
        return self.vq_embed_dim if self.vq_embed_dim is not None else self.latent_channels

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.block_out_channels) - 1)

    @property
    def latent_size(self) -> int:
        """h = w of the code grid: 28 / 4 = 7 for the shipped model."""
        return self.sample_size // self.downsampling_factor


# --- Encoder and decoder (diffusers' Encoder / Decoder with double_z=False) ---------------------------


def vae_resnet(in_channels: int, out_channels: int, config: VQConfig) -> ResnetBlock:
    """A ResNet block without a time embedding (diffusers' temb_channels=None)."""
    return ResnetBlock(in_channels, out_channels, None, config.norm_num_groups, VAE_NORM_EPS)


class MidBlock(nn.Module):
    """At the lowest resolution: ResNet, one-head self-attention over the whole grid, ResNet (UNetMidBlock2D)."""

    def __init__(self, channels: int, config: VQConfig):
        super().__init__()
        self.resnets = nn.ModuleList(vae_resnet(channels, channels, config) for _ in range(2))
        self.attentions = nn.ModuleList(
            [SelfAttention(channels, None, config.norm_num_groups, VAE_NORM_EPS)]
            if config.mid_block_add_attention
            else []
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.resnets[0](x)
        if len(self.attentions):
            x = self.attentions[0](x)
        return self.resnets[1](x)


class DownEncoderBlock(nn.Module):
    """ResNet blocks, then (but at the last level) a stride-2 convolution with VQGAN's asymmetric padding."""

    def __init__(self, in_channels: int, out_channels: int, add_downsample: bool, config: VQConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            vae_resnet(in_channels if i == 0 else out_channels, out_channels, config)
            for i in range(config.layers_per_block)
        )
        self.downsamplers = nn.ModuleList([Downsample(out_channels, padding=0)]) if add_downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.downsamplers is None else self.downsamplers[0](x)


class UpDecoderBlock(nn.Module):
    """ResNet blocks (one more than the encoder's), then (but at the last level) nearest-neighbour upsampling."""

    def __init__(self, in_channels: int, out_channels: int, add_upsample: bool, config: VQConfig):
        super().__init__()
        self.resnets = nn.ModuleList(
            vae_resnet(in_channels if i == 0 else out_channels, out_channels, config)
            for i in range(config.layers_per_block + 1)
        )
        self.upsamplers = nn.ModuleList([Upsample(out_channels)]) if add_upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            x = resnet(x)
        return x if self.upsamplers is None else self.upsamplers[0](x)


class Encoder(nn.Module):
    """x (B, C_in, S, S) -> z (B, latent_channels, h, w), h = S / downsampling_factor."""

    def __init__(self, config: VQConfig):
        super().__init__()
        channels = config.block_out_channels
        self.conv_in = nn.Conv2d(config.in_channels, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList(
            DownEncoderBlock(channels[max(level - 1, 0)], channels[level], level < len(channels) - 1, config)
            for level in range(len(channels))
        )
        self.mid_block = MidBlock(channels[-1], config)
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, channels[-1], eps=VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(channels[-1], config.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_in(x)
        for block in self.down_blocks:
            x = block(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    """z_q (B, latent_channels, h, w) -> x^ (B, C_out, S, S): the encoder's mirror image."""

    def __init__(self, config: VQConfig):
        super().__init__()
        reversed_channels = config.block_out_channels[::-1]
        self.conv_in = nn.Conv2d(config.latent_channels, reversed_channels[0], 3, padding=1)
        self.mid_block = MidBlock(reversed_channels[0], config)
        self.up_blocks = nn.ModuleList(
            UpDecoderBlock(
                reversed_channels[max(level - 1, 0)],
                reversed_channels[level],
                level < len(reversed_channels) - 1,
                config,
            )
            for level in range(len(reversed_channels))
        )
        self.conv_norm_out = nn.GroupNorm(config.norm_num_groups, reversed_channels[-1], eps=VAE_NORM_EPS)
        self.conv_out = nn.Conv2d(reversed_channels[-1], config.out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.mid_block(self.conv_in(z))
        for block in self.up_blocks:
            x = block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# --- The vector quantizer ------------------------------------------------------------------------------


@dataclass
class Quantized:
    z_q: torch.Tensor  # (B, D, h, w): the chosen entries, with the straight-through gradient to z_e
    indices: torch.Tensor  # (B, h, w) long: which entry each position took
    loss: torch.Tensor  # scalar: commitment term (+ codebook term when the codebook learns by the loss), eq. 3
    perplexity: torch.Tensor  # scalar: exp(entropy) of the batch's code use, from 1 (one code) to K (all equally)


def perplexity_of(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """exp(-sum_k p_k log p_k) of the code frequencies p_k among `indices`: the effective number of codes used."""
    frequencies = torch.bincount(indices.flatten(), minlength=codebook_size).float() / indices.numel()  # (K,)
    return torch.exp(-(frequencies * torch.log(frequencies.clamp_min(1e-10))).sum())


def vq_loss(z_e: torch.Tensor, z_q: torch.Tensor, beta: float, codebook_term: bool = True) -> torch.Tensor:
    """Eq. 3 without the reconstruction: ||sg[z_e] - e||^2 (if `codebook_term`) + beta ||z_e - sg[e]||^2,
    means over all elements. diffusers' VectorQuantizer (legacy=True, its default) gives the same value but
    puts beta on the other term, so its encoder gets the full gradient and its codebook a quarter of it."""
    commitment = beta * F.mse_loss(z_e, z_q.detach())
    return commitment + F.mse_loss(z_q, z_e.detach()) if codebook_term else commitment


class VectorQuantizer(nn.Module):
    """Nearest-entry lookup in a codebook of K vectors of width D (eq. 1-2) with the straight-through
    estimator; in training, moving-average codebook updates (eq. 6-8) and dead-code restarts."""

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        codebook_size, dim = config.num_vq_embeddings, config.embed_dim
        self.embedding = nn.Embedding(codebook_size, dim)  # the codebook, (K, D): diffusers' quantize.embedding
        self.embedding.weight.data.uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        # Training state of the moving averages; not saved (a checkpoint is for inference, and stays
        # name-for-name equal to diffusers'). N_k: vectors assigned to entry k, m_k: their sum.
        self.register_buffer("ema_cluster_size", torch.zeros(codebook_size), persistent=False)  # (K,)
        self.register_buffer("ema_embedding_sum", torch.zeros(codebook_size, dim), persistent=False)  # (K, D)
        self.register_buffer("initialised", torch.tensor(False), persistent=False)
        self.restarted = 0  # entries restarted by the last update (for the training log)
        self.register_load_state_dict_post_hook(VectorQuantizer.keep_loaded_codebook)

    @staticmethod
    @torch.no_grad()
    def keep_loaded_codebook(module: VectorQuantizer, incompatible_keys) -> None:
        """After weights are loaded, training continues from that codebook instead of re-initialising it on a
        batch: the moving averages start at the loaded entries with a modest weight each."""
        weight = max(1.0, 2 * module.config.dead_code_threshold)
        module.ema_cluster_size.fill_(weight)
        module.ema_embedding_sum.copy_(module.embedding.weight * weight)
        module.initialised.fill_(True)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(N, D) vectors -> (N,) indices of their nearest entries (Euclidean, as diffusers computes it)."""
        return torch.argmin(torch.cdist(z, self.embedding.weight), dim=1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) entries."""
        return self.embedding(indices).permute(0, 3, 1, 2)

    def forward(self, z_e: torch.Tensor) -> Quantized:
        """z_e (B, D, h, w) -> the quantized grid and its indices. In training mode with the EMA update, the
        batch is quantised with the codebook as it stands, then the codebook moves towards the vectors each
        entry received (Appendix A.1's order; no gradient takes part in that update)."""
        z_e = z_e.float()  # distances and averages in fp32, also under bf16 autocast
        batch, dim, height, width = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, dim)  # (B*h*w, D)
        ema = self.config.codebook_update == "ema"
        if ema and self.training and not bool(self.initialised):
            self.initialise_codebook(flat.detach())
        indices = self.nearest(flat)  # (B*h*w,)
        z_q = self.embedding(indices).view(batch, height, width, dim).permute(0, 3, 1, 2)  # (B, D, h, w)
        loss = vq_loss(z_e, z_q, self.config.commitment_beta, codebook_term=not ema)
        z_q = z_e + (z_q - z_e).detach()  # straight-through: the decoder's gradient flows to z_e unchanged
        if ema and self.training:
            self.update_codebook(flat.detach(), indices)
        indices = indices.view(batch, height, width)
        return Quantized(z_q, indices, loss, perplexity_of(indices, self.config.num_vq_embeddings))

    @torch.no_grad()
    def initialise_codebook(self, flat: torch.Tensor) -> None:
        """A data-dependent start: every entry becomes a random vector of the first batch `flat` (N, D)."""
        codebook_size = self.config.num_vq_embeddings
        chosen = flat[torch.randint(0, len(flat), (codebook_size,), device=flat.device)]
        self.embedding.weight.data.copy_(chosen)
        self.ema_cluster_size.fill_(len(flat) / codebook_size)
        self.ema_embedding_sum.copy_(chosen * len(flat) / codebook_size)
        self.initialised.fill_(True)

    @torch.no_grad()
    def update_codebook(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        """One step of eq. 6-8 on the vectors `flat` (N, D) assigned to the entries `indices` (N,):
            N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) sum_{z -> k} z,   e_k = m_k / N_k
        (N_k Laplace-smoothed so that e_k stays defined), then dead-code restarts: entries with N_k below the
        threshold become random vectors of this batch."""
        codebook_size, gamma = self.config.num_vq_embeddings, self.config.ema_decay
        assignments = F.one_hot(indices, codebook_size).type(flat.dtype)  # (N, K)
        self.ema_cluster_size.mul_(gamma).add_(assignments.sum(0), alpha=1 - gamma)
        self.ema_embedding_sum.mul_(gamma).add_(assignments.t() @ flat, alpha=1 - gamma)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + 1e-5) / (total + codebook_size * 1e-5) * total  # (K,)
        self.embedding.weight.data.copy_(self.ema_embedding_sum / smoothed[:, None])
        dead = self.ema_cluster_size < self.config.dead_code_threshold  # (K,)
        self.restarted = int(dead.sum())
        if self.restarted:
            replacements = flat[torch.randint(0, len(flat), (self.restarted,), device=flat.device)]
            self.embedding.weight.data[dead] = replacements
            self.ema_embedding_sum[dead] = replacements * self.config.dead_code_threshold
            self.ema_cluster_size[dead] = self.config.dead_code_threshold


# --- The codec ----------------------------------------------------------------------------------------


@dataclass
class VQOutput:
    reconstruction: torch.Tensor  # (B, C_out, S, S), in [-1, 1] if trained so (not clipped)
    quantized: Quantized


class VQModel(nn.Module):
    """Encoder -> quant_conv -> codebook -> post_quant_conv -> decoder (diffusers' VQModel)."""

    def __init__(self, config: VQConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.quant_conv = nn.Conv2d(config.latent_channels, config.embed_dim, 1)
        self.quantize = VectorQuantizer(config)
        self.post_quant_conv = nn.Conv2d(config.embed_dim, config.latent_channels, 1)
        self.decoder = Decoder(config)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, S, S) -> z_e (B, D, h, w), before quantization (diffusers' `encode(x).latents`)."""
        return self.quant_conv(self.encoder(x))

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """A quantized grid (B, D, h, w) -> image (diffusers' `decode(z_q, force_not_quantize=True)`)."""
        return self.decoder(self.post_quant_conv(z_q))

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """A grid of code indices (B, h, w) -> image (B, C_out, S, S)."""
        return self.decode(self.quantize.lookup(indices))

    def forward(self, x: torch.Tensor) -> VQOutput:
        quantized = self.quantize(self.encode(x))
        return VQOutput(self.decode(quantized.z_q), quantized)

    @property
    def last_layer(self) -> torch.Tensor:
        """GL of eq. 7: the weight of the decoder's last convolution."""
        return self.decoder.conv_out.weight


@torch.no_grad()
def reconstruction_metrics(model: VQModel, images: torch.Tensor, batch_size: int = 500) -> dict:
    """Held-out figures of a codec on images (N, C, S, S) in [-1, 1]: mean squared error and PSNR on the
    [0, 1] pixel scale (reconstructions clipped to it), the perplexity of the code use over all images and
    how many of the K entries occur at all."""
    model.eval()
    squared_error, indices = 0.0, []
    for chunk in images.split(batch_size):
        output = model(chunk)
        squared_error += ((output.reconstruction.clamp(-1, 1) - chunk) / 2).pow(2).sum().item()
        indices.append(output.quantized.indices)
    indices = torch.cat(indices)
    mse = squared_error / images.numel()
    codebook_size = model.config.num_vq_embeddings
    return {
        "mse": mse,
        "psnr_db": 10 * math.log10(1 / mse),
        "perplexity": perplexity_of(indices, codebook_size).item(),
        "codes_used": int(torch.bincount(indices.flatten(), minlength=codebook_size).gt(0).sum()),
    }


def gradient_energy(images: torch.Tensor) -> float:
    """Sharpness as the mean squared finite difference between neighbouring pixels (the energy of the image
    gradient), on the [0, 1] scale, of images (N, C, S, S) in [-1, 1]: blur lowers it, crisp strokes raise it."""
    unit = (images.clamp(-1, 1) + 1) / 2
    vertical = unit[..., 1:, :-1] - unit[..., :-1, :-1]  # (N, C, S-1, S-1)
    horizontal = unit[..., :-1, 1:] - unit[..., :-1, :-1]
    return (vertical.pow(2) + horizontal.pow(2)).mean().item()


def high_frequency_power(images: torch.Tensor, cutoff: float = 0.25) -> float:
    """Sharpness as the share of each image's spectral power (mean removed) above `cutoff` cycles per pixel
    (0.5 is the highest a pixel grid holds), averaged over images (N, C, S, S) in [-1, 1]."""
    unit = (images.clamp(-1, 1) + 1) / 2
    power = torch.fft.fft2(unit - unit.mean(dim=(-2, -1), keepdim=True)).abs().pow(2)  # (N, C, S, S)
    frequencies = torch.fft.fftfreq(images.shape[-1])  # cycles per pixel
    radius = (frequencies[:, None] ** 2 + frequencies[None, :] ** 2).sqrt()  # (S, S)
    share = power[..., radius > cutoff].sum(-1) / power.flatten(-2).sum(-1).clamp_min(1e-12)  # (N, C)
    return share.mean().item()


# --- The VQGAN losses -----------------------------------------------------------------------------------


@dataclass
class DiscriminatorConfig:
    in_channels: int = 1
    channels: int = 32  # width of the first layer; doubled by each further layer
    layers: int = 2  # stride-2 layers: 28 -> 14 -> 7, then two stride-1 layers give a 5x5 grid of patch logits
    norm_num_groups: int = 8  # GroupNorm groups of the inner layers


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017, as in VQGAN): a small convnet whose output is a grid of logits, one per
    overlapping patch, each saying "real" (> 0) or "reconstructed" (< 0) for its part of the image.

    Departure from Taming Transformers' `NLayerDiscriminator`: GroupNorm instead of BatchNorm (the code
    there also offers ActNorm). GroupNorm normalises each image on its own, so the discriminator computes
    the same function when it judges reconstructions for the decoder's loss and when it takes its own
    step on a batch of real digits and one of reconstructions; BatchNorm would mix the statistics of the
    batch in train mode and use running averages in eval mode."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = [
            nn.Conv2d(config.in_channels, config.channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        width = config.channels
        for index in range(1, config.layers + 1):
            stride = 2 if index < config.layers else 1
            layers += [
                nn.Conv2d(width, width * 2, 4, stride=stride, padding=1, bias=False),
                nn.GroupNorm(config.norm_num_groups, width * 2),
                nn.LeakyReLU(0.2),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, 1, P, P) patch logits."""
        return self.layers(x)


def discriminator_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss (Lim & Ye 2017; VQGAN's choice): 1/2 (E[relu(1 - D(x))] + E[relu(1 + D(x^))])."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The decoder's side of the game: L_GAN = -E[D(x^)], lower when the patches look real."""
    return -fake_logits.mean()


def adaptive_weight(
    reconstruction_loss: torch.Tensor, gan_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """Eq. 7 of VQGAN: lambda = ||grad_GL[L_rec]|| / (||grad_GL[L_GAN]|| + 1e-4), a constant (no gradient)
    that scales the GAN term so that both losses pull on the decoder's last layer about equally hard."""
    reconstruction_gradient = torch.autograd.grad(reconstruction_loss, last_layer, retain_graph=True)[0]
    gan_gradient = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    weight = reconstruction_gradient.norm() / (gan_gradient.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


class PerceptualLoss(nn.Module):
    """A learned perceptual distance in the manner of LPIPS (Zhang et al. 2018): run both images through a
    frozen feature network, unit-normalise each feature map along its channels, and average the squared
    differences, summed over the tapped layers. `network` is a Sequential; its output after every ReLU is
    tapped. We pass the convolutions of our MNIST classifier (shared/image_metric.py), which read [0, 1]
    images: the codec's [-1, 1] images are mapped first."""

    def __init__(self, network: nn.Sequential):
        super().__init__()
        self.network = network.eval().requires_grad_(False)

    def train(self, mode: bool = True):  # the feature network stays in eval mode (fixed BatchNorm statistics)
        super().train(mode)
        self.network.eval()
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for layer in self.network:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                taps.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))  # unit length along channels
        return taps

    def forward(self, reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ours, theirs = self.features((reconstruction + 1) / 2), self.features((target + 1) / 2)
        return sum((a - b).pow(2).sum(dim=1).mean() for a, b in zip(ours, theirs))


# --- The prior: our GPT over code indices ----------------------------------------------------------------


def prior_config(
    codebook_size: int, grid_tokens: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128, dropout: float = 0.1
) -> GPTConfig:
    """A GPT whose vocabulary is the K codes plus one start token (id K), with room for the whole grid."""
    return GPTConfig(
        vocab_size=codebook_size + 1,
        block_size=grid_tokens + 1,
        n_layer=n_layer,
        n_head=n_head,
        n_embd=n_embd,
        dropout=dropout,
    )


def prior_sequences(indices: torch.Tensor, start_token: int) -> torch.Tensor:
    """(B, h, w) code grids -> (B, 1 + h*w) token sequences: the start token, then the codes in raster order."""
    flat = indices.flatten(1)  # (B, h*w), row by row
    return torch.cat([torch.full((len(flat), 1), start_token, dtype=flat.dtype, device=flat.device), flat], dim=1)


def prior_loss(gpt: GPT, indices: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood (nats per code) of the grids: every code predicted from those before it."""
    tokens = prior_sequences(indices, gpt.config.vocab_size - 1)  # (B, 1 + hw)
    return gpt(tokens[:, :-1], targets=tokens[:, 1:])[1]


@torch.no_grad()
def sample_codes(
    gpt: GPT,
    count: int,
    grid_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Draw `count` code grids (count, h, w) from the prior, one index at a time with the GPT's KV cache:
    softmax(logits / temperature) over the top_k codes (temperature 0: the most likely code). The start
    token is never drawn."""
    start_token = gpt.config.vocab_size - 1
    tokens_needed = grid_size * grid_size
    if tokens_needed + 1 > gpt.config.block_size:
        raise ValueError(
            f"a {grid_size}x{grid_size} grid needs a context of {tokens_needed + 1}; this prior holds {gpt.config.block_size}"
        )
    device = gpt.transformer.wte.weight.device
    cache = gpt.new_cache(count)
    context = torch.full((count, 1), start_token, dtype=torch.long, device=device)  # (B, 1)
    codes = torch.empty(count, tokens_needed, dtype=torch.long, device=device)
    for position in range(tokens_needed):
        logits = gpt(context, cache=cache)[0][:, -1, :].clone()  # (B, K + 1)
        logits[:, start_token] = float("-inf")  # a grid holds codes only
        codes[:, position] = sample_next_token(logits, temperature, top_k, None, generator)
        context = codes[:, position : position + 1]
        if on_step is not None:
            on_step(position + 1, tokens_needed)
    return codes.view(count, grid_size, grid_size)
