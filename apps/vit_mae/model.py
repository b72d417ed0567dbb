"""
The Vision Transformer (ViT) and the Masked Autoencoder (MAE), from scratch, in one file.

ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", section 3.1) reads an image as a
sentence of patches. The H x W image is cut into N = (H/p)(W/p) patches of p x p pixels, each patch is
flattened and projected to D dimensions by one shared matrix E, a learned class token is put in front,
and a learned position embedding is added:

    z_0 = [x_class; x_p^1 E; ...; x_p^N E] + E_pos                     (eq. 1)
    z'_l = MSA(LN(z_{l-1})) + z_{l-1}                                    (eq. 2)
    z_l = MLP(LN(z'_l)) + z'_l                                           (eq. 3)
    y = LN(z_L^0)                                                        (eq. 4)

so the Transformer blocks are pre-LN (LayerNorm at the input of each residual branch) and the class is
read from the class token's final state y by a linear head. "Flatten then multiply by E" is exactly a
convolution with kernel size = stride = p, which is how it is computed here.

MAE (He et al. 2021, "Masked Autoencoders Are Scalable Vision Learners", section 3) pre-trains such an
encoder without labels: hide a random 75% of the patches, run the encoder on the visible quarter only
(plus the class token), and let a small decoder rebuild the pixels of the hidden patches from the
encoded visible ones and a shared learned "mask token" put at every hidden position. The loss is the
mean squared error on the hidden patches only; optionally each target patch is first normalised by
its own mean and variance ("norm_pix_loss", Table 1c). The encoder is asymmetric to the decoder:
it never sees a mask token, so it does a quarter of the work, and it is the part kept for fine-tuning
(`vit_from_mae_encoder`). MAE's position embeddings are fixed 2-D sine-cosine tables, not learned.

Attention rollout (Abnar & Zuidema 2020, section 3) turns the attention weights of every layer into one
map of where the class token's information came from (`attention_rollout`).

The parameters carry Hugging Face's block-level names (`layernorm_before`, `attention.q_proj`,
`mlp.fc1`, ...), and reference.py maps the few top-level ones (`patch_embedding`, `blocks`, `norm`,
`head`, ...) onto `ViTForImageClassification` and `ViTMAEForPreTraining`. Tensors: B batch, C channels,
L = N patches, T = tokens (1 + patches), D width, p patch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class EncoderConfig:
    """The fields ViT and MAE's encoder share (defaults: ViT-Base/16 at 224 x 224)."""

    image_size: int = 224  # square images only
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768  # D
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # width of the MLP in each block
    layer_norm_eps: float = 1e-12  # Hugging Face's ViT and ViT-MAE default
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0  # on embeddings (ViT only) and on each residual branch (training only)
    attention_probs_dropout_prob: float = 0.0  # on the attention weights (training only)

    def __post_init__(self):
        for name in (
            "image_size",
            "patch_size",
            "num_channels",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            check_positive_int(self, name)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"{type(self).__name__}.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}): each head gets hidden_size // num_attention_heads dimensions"
            )
        if self.image_size % self.patch_size != 0:
            raise ValueError(
                f"{type(self).__name__}.image_size ({self.image_size}) must be divisible by patch_size "
                f"({self.patch_size}): the image is cut into whole patches"
            )
        if self.layer_norm_eps <= 0:
            raise ValueError(f"{type(self).__name__}.layer_norm_eps must be positive, got {self.layer_norm_eps}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{type(self).__name__}.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def grid_size(self) -> int:
        """Patches along each side of the image."""
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


@dataclass
class ViTConfig(EncoderConfig):
    num_labels: int = 1000
    label_names: tuple[str, ...] = ()  # the class of each output, or () for unnamed classes

    def __post_init__(self):
        super().__post_init__()
        check_positive_int(self, "num_labels")
        self.label_names = tuple(self.label_names)
        if self.label_names and len(self.label_names) != self.num_labels:
            raise ValueError(f"ViTConfig.label_names has {len(self.label_names)} names for {self.num_labels} labels")


@dataclass
class MAEConfig(EncoderConfig):
    mask_ratio: float = 0.75  # share of the patches hidden from the encoder (MAE section 3, Figure 5)
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    norm_pix_loss: bool = False  # targets: each patch normalised by its own mean and variance

    def __post_init__(self):
        super().__post_init__()
        for name in (
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
        ):
            check_positive_int(self, name)
        if self.decoder_hidden_size % self.decoder_num_attention_heads != 0:
            raise ValueError(
                f"MAEConfig.decoder_hidden_size ({self.decoder_hidden_size}) must be divisible by "
                f"decoder_num_attention_heads ({self.decoder_num_attention_heads})"
            )
        for name in ("hidden_size", "decoder_hidden_size"):
            if getattr(self, name) % 4 != 0:
                raise ValueError(
                    f"MAEConfig.{name} ({getattr(self, name)}) must be divisible by 4: the 2-D sine-cosine position "
                    "embedding gives a quarter of the dimensions to each of sin(x), cos(x), sin(y), cos(y)"
                )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"MAEConfig.mask_ratio must be in [0, 1), got {self.mask_ratio}")

    @property
    def kept_count(self) -> int:
        """Patches the encoder sees; int() rounds down, exactly as MAE's and Hugging Face's code do."""
        return int(self.num_patches * (1 - self.mask_ratio))


def check_positive_int(config: object, name: str):
    value = getattr(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}")


def check_pixel_values(pixel_values: torch.Tensor, config: EncoderConfig):
    expected = (config.num_channels, config.image_size, config.image_size)
    if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            f"expected images of shape (B, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
        )


# -----------------------------------------------------------------------------
# Building blocks shared by ViT, MAE's encoder and MAE's decoder: patch embedding, pre-LN block (ViT eq. 2-3)


class PatchEmbedding(nn.Conv2d):
    """Each p x p patch, flattened, times one shared matrix E (ViT eq. 1): a convolution with stride p."""

    def __init__(self, config: EncoderConfig):
        super().__init__(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) -> (B, D, H/p, W/p) -> (B, L, D), patches in row-major order (left to right, top to bottom)
        return super().forward(pixel_values).flatten(2).transpose(1, 2)


class SelfAttention(nn.Module):
    """Multi-head self-attention, softmax(q k^T / sqrt(d)) v per head (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, hidden_size: int, num_heads: int, config: EncoderConfig):
        super().__init__()
        self.num_heads = num_heads
        self.head_size = hidden_size // num_heads
        self.q_proj = nn.Linear(hidden_size, hidden_size, bias=config.qkv_bias)
        self.k_proj = nn.Linear(hidden_size, hidden_size, bias=config.qkv_bias)
        self.v_proj = nn.Linear(hidden_size, hidden_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(hidden_size, hidden_size)  # mixes the heads back together
        self.attention_dropout = config.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, D = x.shape
        q, k, v = (
            projection(x).view(B, T, self.num_heads, self.head_size).transpose(1, 2)  # each (B, heads, T, d)
            for projection in (self.q_proj, self.k_proj, self.v_proj)
        )
        dropout = self.attention_dropout if self.training else 0.0
        if return_attention:  # the explicit formula, to hand out the weights
            weights = torch.softmax(q @ k.transpose(-2, -1) * self.head_size**-0.5, dim=-1)  # (B, heads, T, T)
            y = F.dropout(weights, dropout, self.training) @ v  # (B, heads, T, d)
        else:  # the same numbers from one fused kernel
            weights = None
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        y = y.transpose(1, 2).reshape(B, T, D)  # heads side by side again
        return self.o_proj(y), weights


class MLP(nn.Module):
    """Two linear layers with the exact (erf) GELU between them (ViT section 3.1)."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.fc2 = nn.Linear(intermediate_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """A pre-LN Transformer block: ViT eq. 2 then eq. 3."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, config: EncoderConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.attention = SelfAttention(hidden_size, num_heads, config)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=config.layer_norm_eps)
        self.mlp = MLP(hidden_size, intermediate_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.layernorm_before(x), return_attention)
        x = x + self.dropout(attended)  # eq. 2
        x = x + self.dropout(self.mlp(self.layernorm_after(x)))  # eq. 3
        return x, weights


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, return_attentions: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """x (B, T, D) through every block; also the attention weights of each, (B, heads, T, T), when asked."""
    attentions = []
    for block in blocks:
        x, weights = block(x, return_attentions)
        if return_attentions:
            attentions.append(weights)
    return x, attentions


def init_weights(module: nn.Module):
    """MAE's initialisation (its official code): Xavier-uniform linear layers, the patch embedding
    treated as the linear layer it is, zero biases, unit LayerNorms."""
    if isinstance(module, (nn.Linear, PatchEmbedding)):
        nn.init.xavier_uniform_(module.weight.view(module.weight.shape[0], -1))
        if module.bias is not None:  # q/k/v have none when qkv_bias=False
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# -----------------------------------------------------------------------------
# ViT


class ViT(nn.Module):
    """The Vision Transformer classifier: eq. 1-4, then a linear head on the class token."""

    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.patch_embedding = PatchEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))  # x_class
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + config.num_patches, D))  # E_pos, learned
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.blocks = nn.ModuleList(
            Block(D, config.num_attention_heads, config.intermediate_size, config)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.head = nn.Linear(D, config.num_labels)

        self.apply(init_weights)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.position_embeddings, std=0.02)
        # ViT section 3.2 fine-tunes with a zero-initialised head: every class starts equally likely
        nn.init.zeros_(self.head.weight)

    def encode(
        self, pixel_values: torch.Tensor, return_attentions: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Images (B, C, H, W) -> final states of every token, (B, 1 + L, D), class token first (eq. 1-4);
        plus each layer's attention weights, (B, heads, T, T), when asked (else an empty list)."""
        check_pixel_values(pixel_values, self.config)
        patches = self.patch_embedding(pixel_values)  # (B, L, D)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # (B, 1, D)
        x = self.dropout(torch.cat((cls, patches), dim=1) + self.position_embeddings)  # z_0, (B, T, D)
        x, attentions = run_blocks(self.blocks, x, return_attentions)
        return self.norm(x), attentions

    def forward(
        self, pixel_values: torch.Tensor, return_attentions: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Images (B, C, H, W) -> logits (B, num_labels); with return_attentions, (logits, attentions)."""
        states, attentions = self.encode(pixel_values, return_attentions)
        logits = self.head(states[:, 0])  # y = LN(z_L^0), the class token only
        return (logits, attentions) if return_attentions else logits


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """
    Where the class token's final state draws from, as a (B, grid, grid) map over the patches that
    sums to 1 per image (Abnar & Zuidema 2020, section 3).

    Each layer's weights (B, heads, T, T) are averaged over the heads; the residual connection carries
    each token's own state forward as much as attention does, so the identity is added and the rows
    are renormalised (A = 0.5 W + 0.5 I); the layers then compose by matrix products,
    rollout_l = A_l rollout_{l-1}. The class token's row, over the patches, renormalised, is the map.
    """
    B, _, T, _ = attentions[0].shape
    grid = math.isqrt(T - 1)
    if grid * grid != T - 1:
        raise ValueError(f"expected 1 class token + a square grid of patches, got {T} tokens")
    identity = torch.eye(T, dtype=attentions[0].dtype, device=attentions[0].device)
    rollout = identity.expand(B, T, T)
    for weights in attentions:
        mixed = weights.mean(dim=1) + identity  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True)
        rollout = mixed @ rollout
    from_patches = rollout[:, 0, 1:]  # (B, L): the class token's row, patch columns
    return (from_patches / from_patches.sum(dim=-1, keepdim=True)).view(B, grid, grid)


# -----------------------------------------------------------------------------
# MAE: masking, fixed position embeddings, patches as reconstruction targets


def sincos_position_embeddings(grid_size: int, dim: int) -> torch.Tensor:
    """
    MAE's fixed 2-D sine-cosine position table, (1 + grid_size^2, dim): a zero row for the class token,
    then one row per patch in row-major order. A quarter of the dimensions each holds sin(x w_i),
    cos(x w_i), sin(y w_i), cos(y w_i), with x the patch's column, y its row and frequencies
    w_i = 10000^(-i / (dim/4)) (the Transformer's 1-D encoding, Vaswani et al. 2017 section 3.5, once
    per axis). The column comes first, as in MAE's released code and weights.
    """
    quarter = dim // 4
    frequencies = 1.0 / 10000.0 ** (torch.arange(quarter, dtype=torch.float64) / quarter)  # (dim/4,)
    rows, columns = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64), torch.arange(grid_size, dtype=torch.float64), indexing="ij"
    )  # (g, g) each
    x_angles = columns.flatten().outer(frequencies)  # (L, dim/4)
    y_angles = rows.flatten().outer(frequencies)
    table = torch.cat((x_angles.sin(), x_angles.cos(), y_angles.sin(), y_angles.cos()), dim=1)  # (L, dim)
    table = torch.cat((torch.zeros(1, dim, dtype=torch.float64), table), dim=0)
    return table.float().unsqueeze(0)  # float64 arithmetic, as the reference builds it, then fp32


def random_masking(
    tokens: torch.Tensor, kept_count: int, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    Keep a random subset of each image's patches (MAE section 3, "Masking"): sort the patches by their
    noise value and keep the kept_count lowest. tokens (B, L, D), noise (B, L) ->
      visible (B, kept_count, D): the kept tokens, in the shuffled order;
      mask (B, L): 1 where the patch was removed, 0 where kept, in image order;
      ids_restore (B, L): each patch's place in the shuffled order, which puts a shuffled sequence
        back in image order (gather with it).
    """
    shuffle = torch.argsort(noise, dim=1)  # (B, L): patch indices, lowest noise first
    ids_restore = torch.argsort(shuffle, dim=1)  # the inverse permutation
    kept = shuffle[:, :kept_count]  # (B, kept_count)
    visible = tokens.gather(1, kept.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    mask = (ids_restore >= kept_count).to(tokens.dtype)  # removed = placed after the kept ones
    return visible, mask, ids_restore


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Images (B, C, H, W) -> patches (B, L, p*p*C), row-major patches, each flattened as (row, column, channel)."""
    B, C, H, W = pixel_values.shape
    p = patch_size
    patches = pixel_values.reshape(B, C, H // p, p, W // p, p)
    patches = patches.permute(0, 2, 4, 3, 5, 1)  # (B, H/p, W/p, p, p, C)
    return patches.reshape(B, (H // p) * (W // p), p * p * C)


def unpatchify(patches: torch.Tensor, patch_size: int, num_channels: int) -> torch.Tensor:
    """Patches (B, L, p*p*C) -> square images (B, C, H, W); the inverse of patchify."""
    B, L, _ = patches.shape
    grid, p = math.isqrt(L), patch_size
    if grid * grid != L:
        raise ValueError(f"expected a square grid of patches, got {L}")
    images = patches.reshape(B, grid, grid, p, p, num_channels)
    images = images.permute(0, 5, 1, 3, 2, 4)  # (B, C, H/p, p, W/p, p)
    return images.reshape(B, num_channels, grid * p, grid * p)


def patch_mean_std(patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each patch's mean and standard deviation, (B, L, 1) each, for norm_pix_loss. As in MAE's code:
    the unbiased variance (divided by p*p*C - 1), plus 1e-6 so a flat patch does not divide by zero."""
    return patches.mean(dim=-1, keepdim=True), (patches.var(dim=-1, keepdim=True) + 1e-6) ** 0.5


class MAE(nn.Module):
    """The masked autoencoder: a ViT encoder on the visible patches, a lightweight decoder, the pixel loss."""

    def __init__(self, config: MAEConfig):
        super().__init__()
        self.config = config
        D, decoder_D = config.hidden_size, config.decoder_hidden_size
        # encoder: ViT without a head (names as in ViT, so vit_from_mae_encoder copies them across)
        self.patch_embedding = PatchEmbedding(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        # fixed, not learned (MAE appendix A.1): buffers, saved with the weights as the reference saves them
        self.register_buffer("position_embeddings", sincos_position_embeddings(config.grid_size, D))  # (1, T, D)
        self.blocks = nn.ModuleList(
            Block(D, config.num_attention_heads, config.intermediate_size, config)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(D, eps=config.layer_norm_eps)
        # decoder: narrower and shallower; it only exists during pre-training (MAE section 3, "MAE decoder")
        self.decoder_embed = nn.Linear(D, decoder_D)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_D))  # one learned vector for every hidden patch
        self.register_buffer("decoder_position_embeddings", sincos_position_embeddings(config.grid_size, decoder_D))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_D, config.decoder_num_attention_heads, config.decoder_intermediate_size, config)
            for _ in range(config.decoder_num_hidden_layers)
        )
        self.decoder_norm = nn.LayerNorm(decoder_D, eps=config.layer_norm_eps)
        self.decoder_pred = nn.Linear(decoder_D, config.patch_size**2 * config.num_channels)  # pixels of a patch

        self.apply(init_weights)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)

    def encode(
        self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Images (B, C, H, W) -> (latent (B, 1 + kept_count, D), mask (B, L), ids_restore (B, L)).
        noise (B, L) decides which patches are kept (the lowest values); uniform random when None.
        """
        check_pixel_values(pixel_values, self.config)
        patches = self.patch_embedding(pixel_values) + self.position_embeddings[:, 1:]  # (B, L, D)
        B, L, _ = patches.shape
        if noise is None:
            noise = torch.rand(B, L, device=pixel_values.device)
        elif tuple(noise.shape) != (B, L):
            raise ValueError(f"noise must have shape (B, num_patches) = ({B}, {L}), got {tuple(noise.shape)}")
        # positions are added before shuffling, so each kept token still knows where it came from
        visible, mask, ids_restore = random_masking(patches, self.config.kept_count, noise)  # (B, kept, D)
        cls = (self.cls_token + self.position_embeddings[:, :1]).expand(B, -1, -1)  # (B, 1, D)
        x, _ = run_blocks(self.blocks, torch.cat((cls, visible), dim=1))
        return self.norm(x), mask, ids_restore

    def decode(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + kept_count, D) -> predicted pixels of every patch (B, L, p*p*C), in image order."""
        x = self.decoder_embed(latent)  # (B, 1 + kept, D')
        B, L = ids_restore.shape
        mask_tokens = self.mask_token.expand(B, L - (x.shape[1] - 1), -1)  # one per hidden patch
        shuffled = torch.cat((x[:, 1:], mask_tokens), dim=1)  # (B, L, D'): kept first, as random_masking shuffled them
        patches = shuffled.gather(1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))  # image order
        x = torch.cat((x[:, :1], patches), dim=1) + self.decoder_position_embeddings  # (B, T, D')
        x, _ = run_blocks(self.decoder_blocks, x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop the class token

    def targets(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """What the decoder learns to output: the patches' pixels (B, L, p*p*C), each patch normalised
        to zero mean and unit variance if norm_pix_loss."""
        target = patchify(pixel_values, self.config.patch_size)
        if self.config.norm_pix_loss:
            mean, std = patch_mean_std(target)
            target = (target - mean) / std
        return target

    def loss(self, pixel_values: torch.Tensor, predictions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only (MAE section 3,
        "Reconstruction target"): the visible ones are copied, not predicted. NaN if nothing was removed."""
        per_patch = ((predictions - self.targets(pixel_values)) ** 2).mean(dim=-1)  # (B, L)
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self, pixel_values: torch.Tensor, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) -> (loss, predicted patches (B, L, p*p*C), mask (B, L) with 1 = removed)."""
        latent, mask, ids_restore = self.encode(pixel_values, noise)
        predictions = self.decode(latent, ids_restore)
        return self.loss(pixel_values, predictions, mask), predictions, mask

    def reconstruct_image(
        self, pixel_values: torch.Tensor, predictions: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """
        The image to show (B, C, H, W): visible patches as they were, removed ones as predicted. With
        norm_pix_loss the predictions are normalised patches; each is mapped back with the true patch's
        mean and standard deviation, as MAE's visualisation does (the model never saw those).
        """
        target = patchify(pixel_values, self.config.patch_size)  # (B, L, p*p*C)
        if self.config.norm_pix_loss:
            mean, std = patch_mean_std(target)
            predictions = predictions * std + mean
        removed = mask.unsqueeze(-1)  # (B, L, 1)
        patches = removed * predictions + (1 - removed) * target
        return unpatchify(patches, self.config.patch_size, self.config.num_channels)


def hidden_patch_mse(
    pixel_values: torch.Tensor, reconstruction: torch.Tensor, mask: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """Per image (B,): the mean squared pixel error of a reconstruction (B, C, H, W) over the removed
    patches only (mask (B, L), 1 = removed). Without norm_pix_loss this is the MAE loss per image; on
    reconstruct_image's output it measures any MAE in pixel units, normalised targets or not."""
    per_patch = ((patchify(reconstruction, patch_size) - patchify(pixel_values, patch_size)) ** 2).mean(
        dim=-1
    )  # (B, L)
    return (per_patch * mask).sum(dim=1) / mask.sum(dim=1)


ENCODER_PARTS = ("patch_embedding", "cls_token", "position_embeddings", "blocks", "norm")


@torch.no_grad()
def vit_from_mae_encoder(mae: MAE, num_labels: int, label_names: tuple[str, ...] = ()) -> ViT:
    """
    A ViT classifier that starts from a pre-trained MAE encoder (MAE section 4, fine-tuning): the patch
    embedding, class token, blocks and final LayerNorm are copied; MAE's fixed sine-cosine table becomes
    the initial value of the ViT's learned position embeddings; the head is new (zero).
    """
    shared = {field.name: getattr(mae.config, field.name) for field in fields(EncoderConfig)}
    vit = ViT(ViTConfig(**shared, num_labels=num_labels, label_names=label_names))
    encoder_weights = {name: tensor for name, tensor in mae.state_dict().items() if name.split(".")[0] in ENCODER_PARTS}
    missing, unexpected = vit.load_state_dict(encoder_weights, strict=False)
    assert not unexpected and sorted(missing) == ["head.bias", "head.weight"], (missing, unexpected)
    return vit.to(next(mae.parameters()).device)
