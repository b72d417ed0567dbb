"""
The bridge between our codec (model.py) and diffusers' `VQModel`: configs and weights, both ways.

Our modules carry diffusers' parameter names (encoder.down_blocks.0.resnets.0.conv1, quant_conv,
quantize.embedding, post_quant_conv, decoder.up_blocks.1.upsamplers.0.conv, ...), so the weights copy
by name with no reshaping, and the state dicts have the same keys (our moving-average codebook state
is training-only and not saved). What must be checked is the config: VQModel has options our codec
does not build (attention inside the down/up blocks, spatial norms, other activations); those are
refused with a clear message rather than loaded wrongly.

Two conventions to know when comparing: diffusers' `decode(z)` quantizes `z` first unless
`force_not_quantize=True` (ours decodes what it is given: `decode(quantize(encode(x)).z_q)`), and its
`VectorQuantizer` is built with `legacy=True`, which weights the two terms of eq. 3 the other way round
(same value, other gradients; see `vq_loss`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from diffusers import VQModel as DiffusersVQModel

from apps.vqgan.model import VQConfig, VQModel
from shared.checkpoint import resolve_folder

DOWN_BLOCK = "DownEncoderBlock2D"
UP_BLOCK = "UpDecoderBlock2D"
# VQModel options -> the value our codec implements (anything else is refused).
FIXED_OPTIONS = {"act_fn": "silu", "norm_type": "group"}
HUB_FILES = ["*.json", "*.safetensors"]


def vq_config_from_diffusers(hf_config) -> VQConfig:
    """VQModel's config -> ours; ValueError for the options our codec does not build."""
    unsupported = [
        f"{name}={hf_config.get(name)!r}"
        for name, value in FIXED_OPTIONS.items()
        if hf_config.get(name, value) != value
    ]
    unsupported += [f"down block {name!r}" for name in hf_config["down_block_types"] if name != DOWN_BLOCK]
    unsupported += [f"up block {name!r}" for name in hf_config["up_block_types"] if name != UP_BLOCK]
    levels = len(hf_config["block_out_channels"])
    if len(hf_config["down_block_types"]) != levels or len(hf_config["up_block_types"]) != levels:
        unsupported.append(
            (
                f"{len(hf_config['down_block_types'])} down and {len(hf_config['up_block_types'])} up blocks for "
                f"{levels} entries of block_out_channels"
            )
        )
    if unsupported:
        raise ValueError("this VQModel uses options our codec does not implement: " + ", ".join(unsupported))
    sample_size = hf_config["sample_size"]
    return VQConfig(
        sample_size=sample_size if isinstance(sample_size, int) else sample_size[0],
        in_channels=hf_config["in_channels"],
        out_channels=hf_config["out_channels"],
        block_out_channels=hf_config["block_out_channels"],
        layers_per_block=hf_config["layers_per_block"],
        latent_channels=hf_config["latent_channels"],
        num_vq_embeddings=hf_config["num_vq_embeddings"],
        vq_embed_dim=hf_config.get("vq_embed_dim"),
        norm_num_groups=hf_config["norm_num_groups"],
        mid_block_add_attention=hf_config.get("mid_block_add_attention", True),
        scaling_factor=hf_config.get("scaling_factor", 0.18215),
    )


def vq_config_to_diffusers(config: VQConfig) -> dict:
    """Our config -> keyword arguments of diffusers' VQModel."""
    levels = len(config.block_out_channels)
    return dict(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        down_block_types=(DOWN_BLOCK,) * levels,
        up_block_types=(UP_BLOCK,) * levels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        num_vq_embeddings=config.num_vq_embeddings,
        vq_embed_dim=config.vq_embed_dim,
        norm_num_groups=config.norm_num_groups,
        mid_block_add_attention=config.mid_block_add_attention,
        scaling_factor=config.scaling_factor,
        **FIXED_OPTIONS,
    )


def vq_from_diffusers(vqmodel: DiffusersVQModel) -> VQModel:
    """Our VQModel holding the weights of a diffusers VQModel (same names, so a strict copy)."""
    model = VQModel(vq_config_from_diffusers(vqmodel.config))
    model.load_state_dict(vqmodel.state_dict(), strict=True)
    return model.to(vqmodel.device, vqmodel.dtype).eval()


def vq_to_diffusers(model: VQModel) -> DiffusersVQModel:
    """A diffusers VQModel holding our codec's weights."""
    vqmodel = DiffusersVQModel(**vq_config_to_diffusers(model.config))
    vqmodel.load_state_dict(model.state_dict(), strict=True)
    parameter = next(model.parameters())
    return vqmodel.to(parameter.device, parameter.dtype).eval()


def export_vqmodel(model: VQModel, folder: str | os.PathLike) -> Path:
    """Write a folder that `diffusers.VQModel.from_pretrained(folder)` loads (config.json + safetensors)."""
    vq_to_diffusers(model).save_pretrained(folder)
    return Path(folder)


def load_diffusers_vq(name_or_path: str | os.PathLike) -> VQModel:
    """Our codec from a diffusers VQModel: a Hub id (when online; a repository with the VQModel in `vqvae/`,
    as the latent-diffusion pipelines store it, works too) or a folder written by `save_pretrained`."""
    folder = resolve_folder(os.path.expanduser(os.fspath(name_or_path)), allow_patterns=HUB_FILES)
    for candidate in (folder, folder / "vqvae"):
        if (candidate / "config.json").exists():
            try:
                vqmodel = DiffusersVQModel.from_pretrained(candidate, use_safetensors=True)
            except (OSError, ValueError, KeyError) as error:
                raise ValueError(
                    f"{str(name_or_path)!r} holds no diffusers VQModel that loads: {str(error).splitlines()[0]}"
                ) from error
            return vq_from_diffusers(vqmodel)
    raise ValueError(
        f"{str(name_or_path)!r} has no config.json (nor vqvae/config.json): expected a folder saved with VQModel.save_pretrained."
    )


def reference_encode_decode(
    vqmodel: DiffusersVQModel, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """diffusers' own path: latents = encode(x), indices from its quantizer, decode(latents) (which
    quantizes). Returns (latents (B, D, h, w), indices (B, h, w), reconstruction (B, C, S, S))."""
    latents = vqmodel.encode(x).latents
    _, _, (_, _, indices) = vqmodel.quantize(latents)
    reconstruction = vqmodel.decode(latents).sample
    return latents, indices.view(latents.shape[0], latents.shape[2], latents.shape[3]), reconstruction
