"""
The convolutional building blocks that diffusers' UNets and VAEs share, under diffusers' parameter
names (norm1, conv1, time_emb_proj, to_q, to_out.0, downsamplers.0.conv, ...), so that a state dict
copies across by name. Two topics build on them: the DDPM UNet (apps/diffusion, with a time
embedding in every ResNet block) and the VQ-VAE / VQGAN encoder and decoder (apps/vqgan, without one).

- ResnetBlock: GroupNorm-SiLU-conv twice with a residual connection (He et al. 2016, in the
  pre-activation form the DDPM and VQGAN code bases use); optionally a time embedding added between
  the two convolutions, or used as a scale and shift of the second norm.
- SelfAttention: multi-head attention over the H*W pixels, residual (Vaswani et al. 2017, as DDPM and
  VQGAN use it at low resolution).
- Downsample / Upsample: a stride-2 3x3 convolution; nearest-neighbour doubling then a 3x3 convolution.

And one plain stack for small digit networks (the digit metric's classifier, the metric topic's embedding CNN):
`pooling_conv_stack`, conv-BatchNorm-ReLU-maxpool per level.

Tensors are (B, C, H, W) throughout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResnetBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, plus a 1x1 shortcut if the width changes. With `time_channels`, the time
    embedding is added in between (or, with `time_scale_shift`, scales and shifts the second norm);
    with `time_channels=None` the block has no time input at all (diffusers' `temb_channels=None`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        time_channels: int | None,
        groups: int,
        eps: float,
        dropout: float = 0.0,
        time_scale_shift: bool = False,
        output_scale_factor: float = 1.0,
    ):
        super().__init__()
        self.time_scale_shift = time_scale_shift
        self.output_scale_factor = output_scale_factor
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = (
            nn.Linear(time_channels, out_channels * (2 if time_scale_shift else 1))
            if time_channels is not None
            else None
        )
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor, time_embedding: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is None:
            h = self.norm2(h)
        else:
            time = self.time_emb_proj(F.silu(time_embedding))[:, :, None, None]  # (B, C or 2C, 1, 1)
            if self.time_scale_shift:
                scale, shift = time.chunk(2, dim=1)
                h = self.norm2(h) * (1 + scale) + shift
            else:
                h = self.norm2(h + time)
        h = self.conv2(self.dropout(F.silu(h)))
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (shortcut + h) / self.output_scale_factor


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W pixels, with a residual connection; `head_dim=None` gives one
    head as wide as the channels (what diffusers' VAE encoder and decoder use)."""

    def __init__(
        self,
        channels: int,
        head_dim: int | None,
        groups: int,
        eps: float,
        output_scale_factor: float = 1.0,
        normalize: bool = True,
    ):
        super().__init__()
        head_dim = head_dim or channels
        self.heads = channels // head_dim
        self.output_scale_factor = output_scale_factor
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps) if normalize else nn.Identity()
        self.to_q = nn.Linear(channels, self.heads * head_dim)
        self.to_k = nn.Linear(channels, self.heads * head_dim)
        self.to_v = nn.Linear(channels, self.heads * head_dim)
        self.to_out = nn.ModuleList([nn.Linear(self.heads * head_dim, channels)])  # a list, as diffusers names it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        h = self.group_norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)

        def split_heads(projection: torch.Tensor) -> torch.Tensor:
            return projection.view(batch, -1, self.heads, projection.shape[-1] // self.heads).transpose(
                1, 2
            )  # (B, heads, HW, d)

        h = F.scaled_dot_product_attention(
            split_heads(self.to_q(h)), split_heads(self.to_k(h)), split_heads(self.to_v(h))
        )
        h = self.to_out[0](h.transpose(1, 2).reshape(batch, height * width, -1))  # (B, HW, C)
        return (x + h.transpose(1, 2).reshape(batch, channels, height, width)) / self.output_scale_factor


class Downsample(nn.Module):
    """A stride-2 3x3 convolution halves the resolution."""

    def __init__(self, channels: int, padding: int):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))  # the original DDPM / VQGAN code's asymmetric padding
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour doubling, then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def pooling_conv_stack(channels: tuple[int, ...], in_channels: int = 1) -> nn.Sequential:
    """(conv 3x3 - BatchNorm - ReLU - maxpool 2) per entry of `channels`: each level halves the resolution
    (28 -> 14 -> 7 -> 3 for three levels). No conv bias: the BatchNorm shift right after it does that job."""
    blocks = []
    for out_channels in channels:
        blocks += [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        in_channels = out_channels
    return nn.Sequential(*blocks)
