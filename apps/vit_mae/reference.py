"""
The bridge between our ViT and MAE (model.py) and Hugging Face's `ViTForImageClassification` and
`ViTMAEForPreTraining`: configs and weights, both ways.

Names. Inside a Transformer block our parameters carry Hugging Face's names (`layernorm_before`,
`attention.q_proj`, `attention.o_proj`, `layernorm_after`, `mlp.fc1`, `mlp.fc2`), so blocks copy
as they are. Above the blocks model.py keeps short flat names that read like the papers
(`patch_embedding`, `cls_token`, `blocks`, `norm`, `head`, `decoder_blocks`), where Hugging Face
nests them (`vit.embeddings.patch_embeddings.projection`, `vit.layers`, `decoder.decoder_layers`).
The tables below rename those prefixes, one to one, and nothing else: no tensor is reshaped or
transposed, and a name missing from a table is an error rather than a silent skip. (Checkpoints
written by older transformers versions use other block names, `attention.attention.query`, ...;
`from_pretrained` renames them to the current ones before we see them.)

Position tables. MAE's fixed sine-cosine tables are stored with the weights on both sides (Hugging Face
keeps them as frozen parameters, we as buffers), so they are copied like everything else. Note that a
freshly constructed `ViTMAEForPreTraining` of the pinned transformers leaves both tables, the class
token and the mask token at zero (its weight initialisation skips them); pre-trained checkpoints hold
the real tables, and `mae_to_hf` writes ours.

Configs. Options our models do not build are refused with a ValueError that names them: an activation
other than the exact GELU, a per-head size other than hidden_size // num_attention_heads, non-square
images or patches, images that do not split into whole patches. `encoder_stride`, `pooler_output_size`
and `pooler_act` configure only heads that `ViTForImageClassification` does not have
(ViTForMaskedImageModeling's decoder, ViTModel's pooler), so they are ignored.
"""

from __future__ import annotations

import os
from dataclasses import fields

import torch
import transformers
from transformers import ViTForImageClassification, ViTMAEForPreTraining

from apps.vit_mae.model import MAE, EncoderConfig, MAEConfig, ViT, ViTConfig
from shared.checkpoint import load_transformers_model

# our name prefix -> Hugging Face's, for the parts ViT and MAE's encoder share
ENCODER_NAMES = {
    "patch_embedding.": "vit.embeddings.patch_embeddings.projection.",
    "cls_token": "vit.embeddings.cls_token",
    "position_embeddings": "vit.embeddings.position_embeddings",
    "blocks.": "vit.layers.",
    "norm.": "vit.layernorm.",
}
VIT_NAMES = {**ENCODER_NAMES, "head.": "classifier."}
MAE_NAMES = {
    **ENCODER_NAMES,
    "decoder_embed.": "decoder.decoder_embed.",
    "mask_token": "decoder.mask_token",
    "decoder_position_embeddings": "decoder.decoder_pos_embed",
    "decoder_blocks.": "decoder.decoder_layers.",
    "decoder_norm.": "decoder.decoder_norm.",
    "decoder_pred.": "decoder.decoder_pred.",
}
# What a ViT or ViT-MAE repository needs on the Hub: config, safetensors weights (never pickles), and
# the image processor's settings (resize, mean and std), which the UI reads.
HUB_FILES = ["config.json", "*.safetensors", "preprocessor_config.json"]


def rename(state_dict: dict[str, torch.Tensor], table: dict[str, str]) -> dict[str, torch.Tensor]:
    """Replace each name's prefix by the one the table gives it; ValueError for a name with no entry."""
    renamed = {}
    for name, tensor in state_dict.items():
        prefix = next((prefix for prefix in table if name.startswith(prefix)), None)
        if prefix is None:
            raise ValueError(
                f"no counterpart for the weight {name!r}: the model has a part the other side does not build"
            )
        renamed[table[prefix] + name[len(prefix) :]] = tensor
    return renamed


def inverted(table: dict[str, str]) -> dict[str, str]:
    return {theirs: ours for ours, theirs in table.items()}


# -----------------------------------------------------------------------------
# Configs


def square(value: int | list[int] | tuple[int, int], name: str, unsupported: list[str]) -> int:
    """Hugging Face allows (height, width) pairs; we build square images and patches only."""
    if isinstance(value, int):
        return value
    if len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    unsupported.append(f"{name}={value!r} (only square sizes)")
    return 0


def encoder_fields_from_hf(hf_config: transformers.PretrainedConfig) -> dict:
    """The fields of EncoderConfig from a ViTConfig or ViTMAEConfig; ValueError naming what we do not build."""
    unsupported = []
    image_size = square(hf_config.image_size, "image_size", unsupported)
    patch_size = square(hf_config.patch_size, "patch_size", unsupported)
    if patch_size and image_size % patch_size != 0:
        unsupported.append(
            f"image_size={image_size} with patch_size={patch_size} (the image must split into whole patches)"
        )
    if hf_config.hidden_act != "gelu":
        unsupported.append(f"hidden_act={hf_config.hidden_act!r} (we use the exact GELU, 'gelu')")
    head_dim = getattr(hf_config, "head_dim", None)
    if head_dim is not None and head_dim * hf_config.num_attention_heads != hf_config.hidden_size:
        unsupported.append(f"head_dim={head_dim} (we use hidden_size // num_attention_heads)")
    if unsupported:
        raise ValueError(f"this {type(hf_config).__name__} is not supported: " + ", ".join(unsupported))
    return dict(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=hf_config.num_channels,
        hidden_size=hf_config.hidden_size,
        num_hidden_layers=hf_config.num_hidden_layers,
        num_attention_heads=hf_config.num_attention_heads,
        intermediate_size=hf_config.intermediate_size,
        layer_norm_eps=hf_config.layer_norm_eps,
        qkv_bias=hf_config.qkv_bias,
        hidden_dropout_prob=float(hf_config.hidden_dropout_prob),
        attention_probs_dropout_prob=float(hf_config.attention_probs_dropout_prob),
    )


def encoder_fields(config: EncoderConfig) -> dict:
    """Our shared fields, which Hugging Face's two configs name the same way; plus the activation."""
    return {field.name: getattr(config, field.name) for field in fields(EncoderConfig)} | {"hidden_act": "gelu"}


def vit_config_from_hf(hf_config: transformers.ViTConfig) -> ViTConfig:
    names = tuple(hf_config.id2label[index] for index in range(hf_config.num_labels))
    unnamed = names == tuple(f"LABEL_{index}" for index in range(hf_config.num_labels))  # transformers' placeholders
    return ViTConfig(
        **encoder_fields_from_hf(hf_config), num_labels=hf_config.num_labels, label_names=() if unnamed else names
    )


def vit_config_to_hf(config: ViTConfig) -> transformers.ViTConfig:
    labels = (
        {
            "id2label": dict(enumerate(config.label_names)),
            "label2id": {name: index for index, name in enumerate(config.label_names)},
        }
        if config.label_names
        else {}
    )
    return transformers.ViTConfig(**encoder_fields(config), num_labels=config.num_labels, **labels)


# MAE's own fields (mask ratio, decoder sizes, norm_pix_loss), which ViTMAEConfig names the same way
MAE_FIELDS = tuple(
    field.name for field in fields(MAEConfig) if field.name not in {shared.name for shared in fields(EncoderConfig)}
)


def mae_config_from_hf(hf_config: transformers.ViTMAEConfig) -> MAEConfig:
    return MAEConfig(**encoder_fields_from_hf(hf_config), **{name: getattr(hf_config, name) for name in MAE_FIELDS})


def mae_config_to_hf(config: MAEConfig) -> transformers.ViTMAEConfig:
    return transformers.ViTMAEConfig(**encoder_fields(config), **{name: getattr(config, name) for name in MAE_FIELDS})


# -----------------------------------------------------------------------------
# Weights


@torch.no_grad()
def vit_from_hf(hf_model: ViTForImageClassification) -> ViT:
    """Our ViT (fp32, eval mode) holding the same weights as a ViTForImageClassification."""
    model = ViT(vit_config_from_hf(hf_model.config))
    model.load_state_dict(rename(hf_model.state_dict(), inverted(VIT_NAMES)), strict=True)  # copies, casts to fp32
    return model.eval()


@torch.no_grad()
def vit_to_hf(model: ViT, attn_implementation: str = "sdpa") -> ViTForImageClassification:
    """A ViTForImageClassification (eval mode) holding our ViT's weights. attn_implementation="eager"
    makes it able to return its attention weights (output_attentions=True)."""
    hf_model = ViTForImageClassification(vit_config_to_hf(model.config))
    hf_model.load_state_dict(rename(model.state_dict(), VIT_NAMES), strict=True)
    hf_model.set_attn_implementation(attn_implementation)
    return hf_model.to(model.head.weight.device, model.head.weight.dtype).eval()


@torch.no_grad()
def mae_from_hf(hf_model: ViTMAEForPreTraining) -> MAE:
    """Our MAE (fp32, eval mode) holding the same weights, position tables included, as a ViTMAEForPreTraining."""
    model = MAE(mae_config_from_hf(hf_model.config))
    model.load_state_dict(rename(hf_model.state_dict(), inverted(MAE_NAMES)), strict=True)
    return model.eval()


@torch.no_grad()
def mae_to_hf(model: MAE, attn_implementation: str = "sdpa") -> ViTMAEForPreTraining:
    """A ViTMAEForPreTraining (eval mode) holding our MAE's weights: run both on the same images and noise."""
    hf_model = ViTMAEForPreTraining(mae_config_to_hf(model.config))
    hf_model.load_state_dict(rename(model.state_dict(), MAE_NAMES), strict=True)
    hf_model.set_attn_implementation(attn_implementation)
    return hf_model.to(model.decoder_pred.weight.device, model.decoder_pred.weight.dtype).eval()


# -----------------------------------------------------------------------------
# Hub checkpoints


def load_hub_vit(name_or_path: str | os.PathLike) -> ViT:
    """Our ViT with the weights of a ViT classifier: a Hub id such as "google/vit-base-patch16-224", or a
    folder written by ViTForImageClassification.save_pretrained."""
    return vit_from_hf(load_transformers_model(name_or_path, ViTForImageClassification, "vit", HUB_FILES))


def load_hub_mae(name_or_path: str | os.PathLike) -> MAE:
    """Our MAE with the weights of a ViT-MAE: a Hub id such as "facebook/vit-mae-base", or a folder
    written by ViTMAEForPreTraining.save_pretrained."""
    return mae_from_hf(load_transformers_model(name_or_path, ViTMAEForPreTraining, "vit_mae", HUB_FILES))
