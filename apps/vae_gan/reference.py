"""
The bridges to the references: diffusers' `AutoencoderKL` for our convolutional VAE (configs and weights,
both ways), and the exact Wasserstein-1 distance for a WGAN critic.

Our ConvVAE carries AutoencoderKL's parameter names (encoder.down_blocks.0.resnets.0.conv1, quant_conv,
post_quant_conv, decoder.up_blocks.1.upsamplers.0.conv, ...), so the weights copy by name with no
reshaping. AutoencoderKL options our VAE does not build (other block types, activations, no quant_conv)
are refused with a clear message rather than loaded wrongly.

A critic's reference: between two samples of the same size n with uniform weights, an optimal transport
plan can be taken to be a permutation (Birkhoff), so W1 = min over assignments of the mean distance, which
`scipy.optimize.linear_sum_assignment` solves exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from diffusers import AutoencoderKL

from apps.vae_gan.model import ConvVAE, ConvVAEConfig, to_encoder_range
from apps.vqgan.reference import DOWN_BLOCK, UP_BLOCK  # the same encoder and decoder blocks

# AutoencoderKL options -> the value our VAE implements (anything else is refused).
FIXED_OPTIONS = {"act_fn": "silu", "use_quant_conv": True, "use_post_quant_conv": True}
# Config fields with the same name and meaning on both sides (sample_size and the block types aside).
SHARED_FIELDS = (
    "in_channels",
    "out_channels",
    "block_out_channels",
    "layers_per_block",
    "latent_channels",
    "norm_num_groups",
    "mid_block_add_attention",
    "scaling_factor",
)


def vae_config_from_diffusers(hf_config) -> ConvVAEConfig:
    """AutoencoderKL's config -> ours; ValueError for the options our VAE does not build."""
    levels = len(hf_config["block_out_channels"])
    refused = [
        f"{name}={hf_config.get(name)!r}"
        for name, value in FIXED_OPTIONS.items()
        if hf_config.get(name, value) != value
    ]
    if tuple(hf_config["down_block_types"]) != (DOWN_BLOCK,) * levels:
        refused.append(f"down_block_types={tuple(hf_config['down_block_types'])} (ours: {levels} x {DOWN_BLOCK})")
    if tuple(hf_config["up_block_types"]) != (UP_BLOCK,) * levels:
        refused.append(f"up_block_types={tuple(hf_config['up_block_types'])} (ours: {levels} x {UP_BLOCK})")
    if refused:
        raise ValueError("this AutoencoderKL uses options our VAE does not implement: " + ", ".join(refused))
    size = hf_config["sample_size"]
    return ConvVAEConfig(
        sample_size=size if isinstance(size, int) else size[0],
        **{name: hf_config[name] for name in SHARED_FIELDS if name in hf_config},
    )


def vae_config_to_diffusers(config: ConvVAEConfig) -> dict:
    """Our config -> keyword arguments of diffusers' AutoencoderKL."""
    levels = len(config.block_out_channels)
    return {
        "sample_size": config.sample_size,
        "down_block_types": (DOWN_BLOCK,) * levels,
        "up_block_types": (UP_BLOCK,) * levels,
        **{name: getattr(config, name) for name in SHARED_FIELDS},
        **FIXED_OPTIONS,
    }


def vae_from_diffusers(autoencoder: AutoencoderKL) -> ConvVAE:
    """Our ConvVAE holding the weights of a diffusers AutoencoderKL (same names, so a strict copy)."""
    model = ConvVAE(vae_config_from_diffusers(autoencoder.config))
    model.load_state_dict(autoencoder.state_dict(), strict=True)
    return model.to(autoencoder.device, autoencoder.dtype).eval()


def vae_to_diffusers(model: ConvVAE) -> AutoencoderKL:
    """A diffusers AutoencoderKL holding our VAE's weights."""
    autoencoder = AutoencoderKL(**vae_config_to_diffusers(model.config))
    autoencoder.load_state_dict(model.state_dict(), strict=True)
    parameter = next(model.parameters())
    return autoencoder.to(parameter.device, parameter.dtype).eval()


def reference_posterior_and_decode(
    autoencoder: AutoencoderKL, x: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """diffusers' own path on binary images `x` (B, C, H, W), given to it as 2x - 1 as our encoders read them:
    (mean, logvar, posterior sample drawn with `generator`, decode of the mean)."""
    posterior = autoencoder.encode(to_encoder_range(x)).latent_dist
    sample = posterior.sample(generator=generator)
    return posterior.mean, posterior.logvar, sample, autoencoder.decode(posterior.mean).sample


def exact_wasserstein1(first: np.ndarray, second: np.ndarray) -> float:
    """W1 between two equal-size point clouds (n, d) with uniform weights: the mean Euclidean distance of the
    optimal one-to-one matching (linear_sum_assignment on the n x n cost matrix)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    if len(first) != len(second):
        raise ValueError(f"exact W1 by assignment needs equal sample sizes, got {len(first)} and {len(second)}")
    cost = cdist(np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64))
    rows, columns = linear_sum_assignment(cost)
    return float(cost[rows, columns].mean())
