"""
Our ViT and MAE (apps/vit_mae/model.py) against Hugging Face's ViTForImageClassification and
ViTMAEForPreTraining holding the same weights.

Tiny random configs with odd sizes, no downloads: every Hugging Face weight is perturbed (frozen position
tables included) so that no zero or unit default hides a mapping bug. Equal logits and attention maps,
equal MAE loss, reconstructions and masks for the same noise, lossless conversions both ways, loading a
save_pretrained folder, refusing what we do not build, attention rollout and MAE -> ViT fine-tuning.
"""

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import pytest
import torch
import transformers
from transformers import ViTForImageClassification, ViTMAEForPreTraining
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

from apps.vit_mae.model import (
    MAE,
    MAEConfig,
    ViT,
    ViTConfig,
    attention_rollout,
    patchify,
    sincos_position_embeddings,
    unpatchify,
    vit_from_mae_encoder,
)
from apps.vit_mae.reference import (
    VIT_NAMES,
    load_hub_mae,
    load_hub_vit,
    mae_config_from_hf,
    mae_config_to_hf,
    mae_from_hf,
    mae_to_hf,
    rename,
    vit_config_from_hf,
    vit_config_to_hf,
    vit_from_hf,
    vit_to_hf,
)
from shared.checkpoint import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")
TOLERANCE = 1e-5
# Patch sizes 7 and 4, 3 and 1 channels, an odd width (33) with odd heads (11), odd MLP widths, no q/k/v bias.
VIT_CONFIGS = {
    "28px-patch7-rgb": dict(
        image_size=28,
        patch_size=7,
        num_channels=3,
        hidden_size=33,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=45,
        num_labels=5,
    ),
    "16px-patch4-grey-no-qkv-bias": dict(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=33,
        num_hidden_layers=1,
        num_attention_heads=3,
        intermediate_size=45,
        num_labels=3,
        qkv_bias=False,
    ),
}
# MAE's sine-cosine tables need widths divisible by 4: 36 (heads of 12) and 44 (heads of 11); decoders of 20 and 28.
MAE_CONFIGS = {
    "28px-patch7-rgb": dict(
        image_size=28,
        patch_size=7,
        num_channels=3,
        hidden_size=36,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=45,
        decoder_hidden_size=20,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=5,
        decoder_intermediate_size=23,
    ),
    "16px-patch4-grey": dict(
        image_size=16,
        patch_size=4,
        num_channels=1,
        hidden_size=44,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=45,
        decoder_hidden_size=28,
        decoder_num_hidden_layers=2,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=33,
    ),
}


def perturbed(hf_model: transformers.PreTrainedModel, seed: int = 0) -> transformers.PreTrainedModel:
    """The model with 0.1 * N(0, 1) added to every parameter, frozen ones included; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in hf_model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return hf_model.eval()


def random_hf_vit(options: dict) -> ViTForImageClassification:
    hf_model = ViTForImageClassification(transformers.ViTConfig(**options))
    hf_model.set_attn_implementation("eager")  # the implementation that returns attention weights
    return perturbed(hf_model)


def random_hf_mae(options: dict, **overrides) -> ViTMAEForPreTraining:
    return perturbed(ViTMAEForPreTraining(transformers.ViTMAEConfig(**options, **overrides)))


def images(options: dict, batch: int = 3, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(
        batch, options["num_channels"], options["image_size"], options["image_size"], generator=generator
    )


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def assert_same_weights(model: torch.nn.Module, expected: torch.nn.Module):
    """The same names holding bit-identical tensors."""
    weights, expected_weights = model.state_dict(), expected.state_dict()
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[name], tensor) for name, tensor in expected_weights.items())


# -----------------------------------------------------------------------------
# ViT


@pytest.mark.parametrize("name", VIT_CONFIGS)
def test_vit_logits_and_attentions_equal_hf(name):
    options = VIT_CONFIGS[name]
    hf_model = random_hf_vit(options)
    ours = vit_from_hf(hf_model)
    pixel_values = images(options)
    with torch.no_grad():
        expected = hf_model(pixel_values, output_attentions=True)
        logits, attentions = ours(pixel_values, return_attentions=True)  # explicit softmax attention
        assert max_difference(logits, expected.logits) < TOLERANCE
        assert max_difference(ours(pixel_values), expected.logits) < TOLERANCE  # the fused SDPA path
        assert len(attentions) == len(expected.attentions) == options["num_hidden_layers"]
        tokens = 1 + (options["image_size"] // options["patch_size"]) ** 2
        for ours_layer, hf_layer in zip(attentions, expected.attentions):
            assert ours_layer.shape == (3, options["num_attention_heads"], tokens, tokens)
            assert max_difference(ours_layer, hf_layer) < TOLERANCE


def test_vit_label_names_travel_with_the_config():
    config = ViTConfig(**{**VIT_CONFIGS["28px-patch7-rgb"], "num_labels": 3}, label_names=("cat", "dog", "fox"))
    hf_config = vit_config_to_hf(config)
    assert hf_config.id2label == {0: "cat", 1: "dog", 2: "fox"} and hf_config.label2id["fox"] == 2
    assert vit_config_from_hf(hf_config) == config
    assert vit_config_from_hf(transformers.ViTConfig(num_labels=4)).label_names == ()  # LABEL_0... are placeholders


# -----------------------------------------------------------------------------
# MAE


@pytest.mark.parametrize("norm_pix_loss", [False, True])
@pytest.mark.parametrize("mask_ratio", [0.75, 0.5])
@pytest.mark.parametrize("name", MAE_CONFIGS)
def test_mae_loss_reconstruction_and_mask_equal_hf(name, mask_ratio, norm_pix_loss):
    options = MAE_CONFIGS[name]
    hf_model = random_hf_mae(options, mask_ratio=mask_ratio, norm_pix_loss=norm_pix_loss)
    ours = mae_from_hf(hf_model)
    pixel_values = images(options)
    num_patches = (options["image_size"] // options["patch_size"]) ** 2
    noise = torch.rand(3, num_patches, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = hf_model(pixel_values, noise=noise)
        loss, reconstruction, mask = ours(pixel_values, noise)
        latent, _, ids_restore = ours.encode(pixel_values, noise)
        expected_latent = hf_model.vit(pixel_values, noise=noise).last_hidden_state
    assert abs(loss.item() - expected.loss.item()) < TOLERANCE
    assert reconstruction.shape == (3, num_patches, options["patch_size"] ** 2 * options["num_channels"])
    assert max_difference(reconstruction, expected.logits) < TOLERANCE
    assert torch.equal(mask, expected.mask) and torch.equal(ids_restore, expected.ids_restore)
    assert max_difference(latent, expected_latent) < TOLERANCE
    removed = num_patches - int(num_patches * (1 - mask_ratio))
    assert mask.sum(dim=1).tolist() == [removed] * 3


@pytest.mark.parametrize("grid_size, dim", [(4, 36), (7, 20), (14, 768)])
def test_sincos_tables_equal_hf_layout(grid_size, dim):
    table = build_2d_sinusoidal_position_embedding(grid_size, grid_size, embed_dim=dim, cls_token=True)
    # Hugging Face builds [sin y | cos y | sin x | cos x] and swaps the halves to match MAE's released weights
    table = torch.cat((table[:, dim // 2 :], table[:, : dim // 2]), dim=1)
    assert torch.equal(sincos_position_embeddings(grid_size, dim), table.unsqueeze(0))


def test_fresh_mae_carries_its_tables_to_hf():
    ours = MAE(MAEConfig(**MAE_CONFIGS["28px-patch7-rgb"]))
    assert torch.equal(ours.position_embeddings, sincos_position_embeddings(4, 36))
    assert torch.equal(ours.decoder_position_embeddings, sincos_position_embeddings(4, 20))
    hf_model = mae_to_hf(ours)
    assert torch.equal(hf_model.vit.embeddings.position_embeddings, ours.position_embeddings)
    assert torch.equal(hf_model.decoder.decoder_pos_embed, ours.decoder_position_embeddings)
    assert "position_embeddings" not in dict(ours.named_parameters())  # fixed, not trained


@pytest.mark.parametrize("name", MAE_CONFIGS)
def test_patchify_and_unpatchify_equal_hf(name):
    options = MAE_CONFIGS[name]
    hf_model = ViTMAEForPreTraining(transformers.ViTMAEConfig(**options))
    pixel_values = images(options)
    patches = patchify(pixel_values, options["patch_size"])
    assert torch.equal(patches, hf_model.patchify(pixel_values))
    assert torch.equal(unpatchify(patches, options["patch_size"], options["num_channels"]), pixel_values)
    assert torch.equal(hf_model.unpatchify(patches), pixel_values)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_reconstruct_image_puts_true_patches_back(norm_pix_loss):
    options = MAE_CONFIGS["28px-patch7-rgb"]
    model = MAE(MAEConfig(**options, norm_pix_loss=norm_pix_loss)).eval()
    pixel_values = images(options)
    with torch.no_grad():
        _, predictions, mask = model(pixel_values)
        # a perfect prediction of the targets gives the image back, normalised or not
        assert (
            max_difference(model.reconstruct_image(pixel_values, model.targets(pixel_values), mask), pixel_values)
            < TOLERANCE
        )
        shown = patchify(model.reconstruct_image(pixel_values, predictions, mask), options["patch_size"])
    visible = mask == 0
    assert torch.equal(shown[visible], patchify(pixel_values, options["patch_size"])[visible])


def test_vit_from_mae_encoder_equals_mae_encoder_without_masking():
    options = MAE_CONFIGS["28px-patch7-rgb"]
    hf_model = random_hf_mae(options, mask_ratio=0.0)
    mae = mae_from_hf(hf_model)
    vit = vit_from_mae_encoder(mae, num_labels=4).eval()
    assert vit.position_embeddings.requires_grad and torch.equal(vit.position_embeddings, mae.position_embeddings)
    pixel_values = images(options)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        states, _ = vit.encode(pixel_values)
        expected = hf_model.vit(pixel_values, noise=noise)
    # mask_ratio 0 keeps every patch, but still in the noise's shuffled order. Attention does not care about
    # order (the positions were added before the shuffle), so the class token agrees as it is and the
    # patch tokens agree once put back in image order.
    assert not expected.mask.any()
    assert max_difference(states[:, 0], expected.last_hidden_state[:, 0]) < TOLERANCE
    unshuffled = expected.last_hidden_state[:, 1:].gather(1, expected.ids_restore.unsqueeze(-1).expand(-1, -1, 36))
    assert max_difference(states[:, 1:], unshuffled) < TOLERANCE
    assert torch.equal(vit(pixel_values), torch.zeros(3, 4))  # the new head starts at zero


# -----------------------------------------------------------------------------
# Conversions both ways, for both families


class Bridge(NamedTuple):
    configs: dict
    random_hf: Callable  # options -> a perturbed Hugging Face model
    ours: Callable  # options -> our freshly initialised model
    from_hf: Callable
    to_hf: Callable
    config_from_hf: Callable
    config_to_hf: Callable


BRIDGES = {
    "vit": Bridge(
        VIT_CONFIGS,
        random_hf_vit,
        lambda options: ViT(ViTConfig(**options)),
        vit_from_hf,
        vit_to_hf,
        vit_config_from_hf,
        vit_config_to_hf,
    ),
    "mae": Bridge(
        MAE_CONFIGS,
        lambda options: random_hf_mae(options, norm_pix_loss=True, mask_ratio=0.6),
        lambda options: MAE(MAEConfig(**options)),
        mae_from_hf,
        mae_to_hf,
        mae_config_from_hf,
        mae_config_to_hf,
    ),
}


@pytest.mark.parametrize(
    "family, name", [(family, name) for family, bridge in BRIDGES.items() for name in bridge.configs]
)
def test_weights_and_config_round_trip(family, name):
    bridge = BRIDGES[family]
    options = bridge.configs[name]
    hf_model = bridge.random_hf(options)
    assert_same_weights(bridge.to_hf(bridge.from_hf(hf_model)), hf_model)
    ours = bridge.ours(options)
    again = bridge.from_hf(bridge.to_hf(ours))
    assert_same_weights(again, ours)
    assert again.config == ours.config
    hf_config = bridge.config_to_hf(ours.config)
    assert bridge.config_to_hf(bridge.config_from_hf(hf_config)).to_dict() == hf_config.to_dict()


# -----------------------------------------------------------------------------
# Attention rollout


def test_attention_rollout_is_a_distribution_over_the_patch_grid():
    model = ViT(ViTConfig(**VIT_CONFIGS["28px-patch7-rgb"])).eval()
    with torch.no_grad():
        _, attentions = model(images(VIT_CONFIGS["28px-patch7-rgb"]), return_attentions=True)
    rollout = attention_rollout(attentions)
    assert rollout.shape == (3, 4, 4)
    assert (rollout > 0).all()
    assert torch.allclose(rollout.sum(dim=(1, 2)), torch.ones(3), atol=1e-6)


def test_attention_rollout_of_uniform_attention_is_uniform():
    model = ViT(ViTConfig(**{**VIT_CONFIGS["16px-patch4-grey-no-qkv-bias"], "qkv_bias": True})).eval()
    with torch.no_grad():
        for projection in (model.blocks[0].attention.q_proj, model.blocks[0].attention.k_proj):
            projection.weight.zero_()
            projection.bias.zero_()  # every score is 0: each token attends to all 17 equally
        _, attentions = model(images(VIT_CONFIGS["16px-patch4-grey-no-qkv-bias"]), return_attentions=True)
    assert torch.allclose(attentions[0], torch.full_like(attentions[0], 1 / 17))
    assert torch.allclose(attention_rollout(attentions), torch.full((3, 4, 4), 1 / 16))


# -----------------------------------------------------------------------------
# Hub folders and refusals


def test_load_hub_from_save_pretrained_folders(tmp_path):
    vit_options, mae_options = VIT_CONFIGS["16px-patch4-grey-no-qkv-bias"], MAE_CONFIGS["16px-patch4-grey"]
    hf_vit, hf_mae = random_hf_vit(vit_options), random_hf_mae(mae_options, norm_pix_loss=True)
    hf_vit.save_pretrained(tmp_path / "vit")
    hf_mae.save_pretrained(tmp_path / "mae")
    vit, mae = load_hub_vit(tmp_path / "vit"), load_hub_mae(str(tmp_path / "mae"))
    pixel_values, noise = images(vit_options), torch.rand(3, 16)
    with torch.no_grad():
        assert max_difference(vit(pixel_values), hf_vit(pixel_values).logits) < TOLERANCE
        assert max_difference(mae(pixel_values, noise)[1], hf_mae(pixel_values, noise=noise).logits) < TOLERANCE
    with pytest.raises(ValueError, match="'vit_mae' checkpoint, not 'vit'"):
        load_hub_vit(tmp_path / "mae")
    with pytest.raises(ValueError, match="No checkpoint folder"):
        load_hub_mae(tmp_path / "missing")


@pytest.mark.parametrize(
    "loader, hub_id", [(load_hub_vit, "google/vit-base-patch16-224"), (load_hub_mae, "facebook/vit-mae-base")]
)
def test_offline_hub_id_gives_a_clear_error(loader, hub_id):
    with pytest.raises(CheckpointError, match="Hugging Face Hub is unavailable"):
        loader(hub_id)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"hidden_act": "relu"}, "hidden_act='relu'"),
        ({"hidden_act": "gelu_new"}, "hidden_act='gelu_new'"),
        ({"patch_size": (4, 8)}, "patch_size=\\(4, 8\\)"),
        ({"image_size": 30}, "whole patches"),
    ],
)
def test_unsupported_hf_options_are_refused(option, message):
    vit_options = {**VIT_CONFIGS["28px-patch7-rgb"], **option}
    with pytest.raises(ValueError, match=message):
        vit_config_from_hf(transformers.ViTConfig(**vit_options))
    mae_options = {**MAE_CONFIGS["28px-patch7-rgb"], **option}
    with pytest.raises(ValueError, match=message):
        mae_config_from_hf(transformers.ViTMAEConfig(**mae_options))


def test_invalid_configs_and_inputs_are_refused():
    with pytest.raises(ValueError, match="divisible by num_attention_heads"):
        ViTConfig(hidden_size=32, num_attention_heads=3)
    with pytest.raises(ValueError, match="divisible by patch_size"):
        ViTConfig(image_size=28, patch_size=5)
    with pytest.raises(ValueError, match="divisible by 4"):
        mae_config_from_hf(transformers.ViTMAEConfig(**{**MAE_CONFIGS["28px-patch7-rgb"], "hidden_size": 33}))
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="label_names"):
        ViTConfig(num_labels=2, label_names=("one",))
    mae = MAE(MAEConfig(**MAE_CONFIGS["16px-patch4-grey"]))
    with pytest.raises(ValueError, match="expected images of shape"):
        mae(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="noise must have shape"):
        mae(torch.zeros(2, 1, 16, 16), noise=torch.rand(2, 15))
    extra = dict(ViT(ViTConfig(**VIT_CONFIGS["28px-patch7-rgb"])).state_dict(), pooler=torch.zeros(1))
    with pytest.raises(ValueError, match="no counterpart for the weight 'pooler'"):
        rename(extra, VIT_NAMES)


def test_config_dataclasses_survive_json():
    """Checkpoints store configs as JSON (shared/checkpoint.py): tuples come back as lists."""
    config = ViTConfig(**VIT_CONFIGS["28px-patch7-rgb"] | {"num_labels": 2}, label_names=("a", "b"))
    assert ViTConfig(**{**dataclasses.asdict(config), "label_names": ["a", "b"]}) == config
