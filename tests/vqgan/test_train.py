"""The training script end to end on a tiny codec and prior, one VQGAN step's gradients, and the shipped
checkpoints it produced."""

import copy
import json

import pytest
import torch
from diffusers import VQModel as DiffusersVQModel

from apps.textgen.model import GPT, GPTConfig
from apps.vqgan import train
from apps.vqgan.model import DiscriminatorConfig, VQConfig, VQModel, discriminator_hinge_loss, reconstruction_metrics
from shared.checkpoint import load_model
from shared.training import OptimizerRecipe, seeded_accelerator


def test_tiny_training_run_writes_loadable_checkpoints_and_diffusers_folders(tmp_path):
    report = train.main(
        [
            "--tiny",
            "--codec-steps",
            "3",
            "--gan-steps",
            "2",
            "--prior-steps",
            "2",
            "--batch-size",
            "8",
            "--samples",
            "4",
            "--prior-augmentations",
            "1",
            "--mixed-precision",
            "no",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "ours"),
            "--export-diffusers",
            str(tmp_path / "diffusers"),
        ]
    )
    for name in ("vqvae", "vqgan"):
        model = load_model(VQModel, VQConfig, tmp_path / "ours" / name)
        assert model.config.block_out_channels == (8, 16, 16)
        vqmodel = DiffusersVQModel.from_pretrained(tmp_path / "diffusers" / name)
        x = torch.rand(2, 1, 28, 28) * 2 - 1
        with torch.no_grad():
            assert (vqmodel(x).sample - model(x).reconstruction).abs().max().item() < 1e-4
    gpt = load_model(GPT, GPTConfig, tmp_path / "ours" / "prior")
    assert (
        gpt.config.vocab_size == 17 and gpt.config.block_size == 50
    )  # 16 codes + the start token; 1 + 7 x 7 positions
    assert report["prior_samples_quality"]["samples"] == 4 and report["prior_codes"]["training_grids"] == 2 * 4500
    assert "adaptive_weight" in report["logs"]["vqgan"][-1] and "adaptive_weight" not in report["logs"]["vqvae"][-1]
    assert (tmp_path / "ours" / "reconstructions.png").stat().st_size > 100 and (
        tmp_path / "ours" / "prior_samples.png"
    ).exists()


@pytest.mark.parametrize("updates", [1, 3])
def test_after_a_vqgan_step_the_discriminator_gradient_is_that_of_its_own_loss_alone(updates):
    """The decoder's adversarial term runs through the discriminator; none of its gradient may reach the
    discriminator's parameters, whose first update must follow its hinge loss on real digits and
    reconstructions (the later updates of the same step start from the moved discriminator)."""
    accelerator = seeded_accelerator("no", 0)
    recipe = OptimizerRecipe(steps=4, batch_size=8, learning_rate=1e-3, warmup_steps=1, weight_decay=0.0)
    warm_up = train.CodecTrainer(VQModel(train.TINY_CODEC), recipe, accelerator)
    warm_up.add_discriminator(
        DiscriminatorConfig(channels=8, norm_num_groups=4), learning_rate=1e-3, updates_per_step=updates
    )
    trainer = warm_up.branch(disc_weight=1.0)  # the VQGAN: the discriminator moves over, the GAN term turns on
    assert trainer.adversarial and warm_up.discriminator is None
    discriminator = trainer.discriminator
    before_step = copy.deepcopy(discriminator)
    judged, gradients_at_update = [], []
    discriminator.register_forward_pre_hook(lambda module, inputs: judged.append(inputs[0].detach().clone()))
    trainer.discriminator_optimizer.optimizer.register_step_pre_hook(  # the torch optimizer Accelerate wraps
        lambda optimizer, args, kwargs: gradients_at_update.append([p.grad.clone() for p in discriminator.parameters()])
    )
    batch = torch.rand(8, 1, 28, 28) * 2 - 1
    row = trainer.step(0, batch)

    assert row["adaptive_weight"] > 0 and row["gan"] != 0  # the decoder did get an adversarial term
    assert len(judged) == 1 + 2 * updates and len(gradients_at_update) == updates  # the decoder's loss, then its own
    reconstruction_for_decoder, real, reconstruction = judged[:3]
    assert torch.equal(real, batch) and torch.equal(reconstruction, reconstruction_for_decoder)
    own_loss = discriminator_hinge_loss(before_step(real), before_step(reconstruction))
    expected = torch.autograd.grad(own_loss, list(before_step.parameters()))
    actual = gradients_at_update[0]
    for ours, theirs in zip(actual, expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-8)
    assert row["discriminator"] == pytest.approx(own_loss.item(), rel=1e-6)


def test_a_discriminator_learning_during_the_warm_up_leaves_the_codec_untouched():
    accelerator = seeded_accelerator("no", 0)
    recipe = OptimizerRecipe(steps=4, batch_size=8, learning_rate=1e-3, warmup_steps=1, weight_decay=0.0)
    codec = VQModel(train.TINY_CODEC)
    plain, watched = (train.CodecTrainer(copy.deepcopy(codec), recipe, accelerator) for _ in range(2))
    watched.add_discriminator(DiscriminatorConfig(channels=8, norm_num_groups=4), learning_rate=1e-3)
    batch = torch.rand(8, 1, 28, 28) * 2 - 1
    for trainer in (plain, watched):
        torch.manual_seed(1)  # the codebook's first-batch start draws from the global generator
        row = trainer.step(0, batch)
    assert "discriminator" in row and "gan" not in row  # it learned, and the codec's loss has no GAN term
    for ours, theirs in zip(plain.model.state_dict().values(), watched.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def shipped_report() -> dict:
    return json.loads((train.CHECKPOINT_DIR / "training_report.json").read_text())


@pytest.mark.parametrize("name", ["vqvae", "vqgan"])
def test_shipped_codec_reconstruction_mse_matches_its_report(shipped_report, name):
    folder = train.CHECKPOINT_DIR / name
    assert (folder / "model.safetensors").stat().st_size < 3_000_000
    model = load_model(VQModel, VQConfig, folder)
    assert sum(p.numel() for p in model.parameters()) == shipped_report["codec_parameters"]
    held_out = train.to_model_range(train.mnist5k().validation_images)
    metrics = reconstruction_metrics(model, held_out)
    reported = shipped_report["held_out"][name]
    assert metrics["mse"] == pytest.approx(reported["mse"], rel=1e-3)
    assert metrics["codes_used"] == reported["codes_used"] and metrics["perplexity"] == pytest.approx(
        reported["perplexity"], rel=1e-3
    )
    assert metrics["psnr_db"] > 20  # a 7x7 grid of 7-bit codes keeps a digit recognisable


def test_shipped_prior_matches_its_report(shipped_report):
    gpt = load_model(GPT, GPTConfig, train.CHECKPOINT_DIR / "prior")
    codec = load_model(VQModel, VQConfig, train.CHECKPOINT_DIR / "vqgan")
    codes = train.encode_codes(codec, train.to_model_range(train.mnist5k().validation_images))
    nats = train.held_out_nll(gpt, codes)
    assert nats == pytest.approx(shipped_report["held_out"]["prior_nats_per_code"], abs=1e-3)
    assert nats < shipped_report["logs"]["prior"][0]["held_out_nats_per_code"]  # it learned something
    assert shipped_report["prior_samples_quality"]["classes present"] == "10/10"
