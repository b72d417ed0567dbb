"""Our codec against diffusers' VQModel on the same random weights and inputs: encode, quantize (the same
indices), decode, the weight mapping both ways, and loading a save_pretrained folder."""

import pytest
import torch
from diffusers import VQModel as DiffusersVQModel
from diffusers.models.autoencoders.vae import VectorQuantizer as DiffusersQuantizer

from apps.vqgan.model import VQConfig, VQModel, vq_loss
from apps.vqgan.reference import (
    export_vqmodel,
    load_diffusers_vq,
    reference_encode_decode,
    vq_config_from_diffusers,
    vq_from_diffusers,
    vq_to_diffusers,
)
from tests.weights import perturb_parameters

pytestmark = pytest.mark.usefixtures("one_thread")

# Three layouts: two levels; three levels with two ResNets per level, a codebook wider than the latent
# and RGB; no attention in the middle blocks, more input than output channels.
TINY_CONFIGS = {
    "two-levels": dict(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=3,
        num_vq_embeddings=32,
        norm_num_groups=4,
    ),
    "three-levels-wide-codes-rgb": dict(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 16, 16),
        layers_per_block=2,
        latent_channels=4,
        vq_embed_dim=6,
        num_vq_embeddings=64,
        norm_num_groups=8,
    ),
    "no-mid-attention": dict(
        sample_size=8,
        in_channels=2,
        out_channels=1,
        block_out_channels=(16, 8),
        layers_per_block=1,
        latent_channels=2,
        num_vq_embeddings=16,
        norm_num_groups=8,
        mid_block_add_attention=False,
    ),
}


def random_vqmodel(options: dict, seed: int = 0) -> DiffusersVQModel:
    """A diffusers VQModel with every weight perturbed (so that no zero or unit default hides a mapping bug)."""
    torch.manual_seed(seed)
    levels = len(options["block_out_channels"])
    vqmodel = DiffusersVQModel(
        down_block_types=("DownEncoderBlock2D",) * levels, up_block_types=("UpDecoderBlock2D",) * levels, **options
    ).eval()
    return perturb_parameters(vqmodel, 0.3)


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_encode_quantize_decode_equal_diffusers(name):
    options = TINY_CONFIGS[name]
    vqmodel = random_vqmodel(options)
    ours = vq_from_diffusers(vqmodel)
    x = torch.randn(4, options["in_channels"], options["sample_size"], options["sample_size"])
    with torch.no_grad():
        latents, reference_indices, reconstruction = reference_encode_decode(vqmodel, x)
        z_e = ours.encode(x)
        assert (z_e - latents).abs().max().item() < 1e-4
        quantized = ours.quantize(z_e)
        assert torch.equal(quantized.indices, reference_indices)
        assert len(quantized.indices.unique()) > 1  # the comparison means something: several codes in use
        reference_z_q, _, _ = vqmodel.quantize(latents)
        assert (quantized.z_q - reference_z_q).abs().max().item() < 1e-4
        assert (
            ours.decode(quantized.z_q) - vqmodel.decode(reference_z_q, force_not_quantize=True).sample
        ).abs().max().item() < 1e-4
        assert (ours(x).reconstruction - reconstruction).abs().max().item() < 1e-4
        # decoding an index grid equals diffusers' lookup-then-decode
        entries = vqmodel.quantize.get_codebook_entry(
            quantized.indices.flatten(), (*quantized.indices.shape, ours.config.embed_dim)
        )
        assert (
            ours.decode_indices(quantized.indices) - vqmodel.decode(entries, force_not_quantize=True).sample
        ).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", TINY_CONFIGS)
def test_weights_round_trip_both_ways(name):
    vqmodel = random_vqmodel(TINY_CONFIGS[name])
    back = vq_to_diffusers(vq_from_diffusers(vqmodel))
    assert back.state_dict().keys() == vqmodel.state_dict().keys()
    assert all(torch.equal(back.state_dict()[key], value) for key, value in vqmodel.state_dict().items())
    assert vq_config_from_diffusers(back.config) == vq_config_from_diffusers(vqmodel.config)


def test_our_random_model_exports_to_diffusers_with_the_same_outputs():
    ours = VQModel(VQConfig(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4, num_vq_embeddings=8)).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert (vq_to_diffusers(ours)(x).sample - ours(x).reconstruction).abs().max().item() < 1e-4


def test_saved_folder_loads_back_into_ours(tmp_path):
    ours = vq_from_diffusers(random_vqmodel(TINY_CONFIGS["two-levels"]))
    export_vqmodel(ours, tmp_path / "vq")
    again = load_diffusers_vq(tmp_path / "vq")
    assert all(torch.equal(again.state_dict()[key], value) for key, value in ours.state_dict().items())
    (tmp_path / "pipeline" / "vqvae").mkdir(parents=True)  # a latent-diffusion pipeline keeps its VQModel in vqvae/
    export_vqmodel(ours, tmp_path / "pipeline" / "vqvae")
    assert load_diffusers_vq(tmp_path / "pipeline").config == ours.config


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(down_block_types=("AttnDownEncoderBlock2D", "DownEncoderBlock2D")), "AttnDownEncoderBlock2D"),
        (dict(norm_type="spatial"), "norm_type='spatial'"),
        (dict(act_fn="relu"), "act_fn='relu'"),
    ],
)
def test_unsupported_options_are_refused_clearly(change, message):
    config = {
        **TINY_CONFIGS["two-levels"],
        "down_block_types": ("DownEncoderBlock2D",) * 2,
        "up_block_types": ("UpDecoderBlock2D",) * 2,
        "act_fn": "silu",
        **change,
    }
    with pytest.raises(ValueError, match=message):
        vq_config_from_diffusers(config)


def test_missing_folder_and_offline_hub_give_clear_messages(tmp_path):
    with pytest.raises(ValueError, match="No checkpoint folder"):
        load_diffusers_vq(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="(?i)offline|internet"):
        load_diffusers_vq("some-user/some-vqgan")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_diffusers_vq(tmp_path / "empty")


def test_loss_value_equals_diffusers_but_beta_sits_on_the_commitment_term():
    """diffusers' legacy quantizer gives the same number; eq. 3 puts beta on the encoder's gradient."""
    torch.manual_seed(1)
    quantizer = DiffusersQuantizer(16, 4, beta=0.25)
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q, reference_loss, _ = quantizer(z_e)
    entries = quantizer.embedding.weight[quantizer(z_e.detach())[2][2].flatten()].view(2, 3, 3, 4).permute(0, 3, 1, 2)
    ours = vq_loss(z_e, entries, beta=0.25)
    assert abs(ours.item() - reference_loss.item()) < 1e-6
    (our_gradient,) = torch.autograd.grad(ours, z_e)
    (reference_gradient,) = torch.autograd.grad(reference_loss, z_e)
    assert torch.allclose(our_gradient, 0.25 * reference_gradient, atol=1e-7)
