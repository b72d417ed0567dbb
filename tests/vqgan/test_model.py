"""The pieces of model.py on their own: the quantizer's estimator, losses and codebook updates, the VQGAN
losses and adaptive weight on toys, the perceptual loss, and the GPT prior's training loss and sampling."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from apps.textgen.model import GPT
from apps.vqgan.model import (
    DiscriminatorConfig,
    PatchDiscriminator,
    PerceptualLoss,
    VectorQuantizer,
    VQConfig,
    VQModel,
    adaptive_weight,
    discriminator_hinge_loss,
    generator_hinge_loss,
    gradient_energy,
    high_frequency_power,
    perplexity_of,
    prior_config,
    prior_loss,
    prior_sequences,
    sample_codes,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def quantizer(codebook_size=4, dim=2, **options) -> VectorQuantizer:
    return VectorQuantizer(VQConfig(num_vq_embeddings=codebook_size, latent_channels=dim, **options))


def test_quantizer_picks_the_nearest_entry_and_passes_the_gradient_straight_through():
    vq = quantizer(codebook_update="loss").eval()
    vq.embedding.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    z_e = (
        torch.tensor([[0.9, 0.1], [0.2, 0.7], [4.0, 4.5], [0.1, -0.1]]).T.reshape(1, 2, 2, 2).requires_grad_()
    )  # 4 vectors on a 2x2 grid
    out = vq(z_e)
    assert out.indices.flatten().tolist() == [1, 2, 3, 0]
    assert torch.equal(out.z_q.detach(), vq.lookup(out.indices))  # the forward value is the codebook entry
    upstream = torch.randn_like(out.z_q)
    (gradient,) = torch.autograd.grad((out.z_q * upstream).sum(), z_e)
    assert torch.equal(gradient, upstream)  # d z_q / d z_e = identity


def test_commitment_and_codebook_terms_of_eq_3():
    vq = quantizer(codebook_update="loss", commitment_beta=0.25).train()
    z_e = torch.randn(2, 2, 3, 3, requires_grad=True)
    out = vq(z_e)
    squared = F.mse_loss(z_e, vq.lookup(out.indices)).item()
    assert math.isclose(out.loss.item(), 1.25 * squared, rel_tol=1e-5)
    (codebook_gradient,) = torch.autograd.grad(out.loss, vq.embedding.weight, retain_graph=True)
    assert codebook_gradient.abs().sum() > 0  # the codebook term moves the entries
    (encoder_gradient,) = torch.autograd.grad(out.loss, z_e)
    expected = 0.25 * 2 * (z_e - vq.lookup(out.indices)).detach() / z_e.numel()  # beta * d/dz ||z - sg[e]||^2
    assert torch.allclose(encoder_gradient, expected, atol=1e-7)
    ema = quantizer(codebook_update="ema", commitment_beta=0.25).eval()
    ema.embedding.weight.data = vq.embedding.weight.data.clone()
    assert math.isclose(
        ema(z_e).loss.item(), 0.25 * squared, rel_tol=1e-5
    )  # only the commitment term: the averages move the codebook


def test_moving_average_update_moves_each_entry_to_its_vectors_mean():
    vq = quantizer(codebook_size=2, ema_decay=0.0, dead_code_threshold=0.0).train()
    vq.embedding.weight.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    vq.initialised.fill_(True)
    near_zero = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    near_ten = torch.tensor([[9.0, 9.0], [11.0, 12.0]])
    vq.update_codebook(torch.cat([near_zero, near_ten]), torch.tensor([0, 0, 0, 1, 1]))
    assert torch.allclose(vq.embedding.weight[0], near_zero.mean(0), atol=1e-4)
    assert torch.allclose(vq.embedding.weight[1], near_ten.mean(0), atol=1e-4)
    # gamma = 0.5: half of the old average, half of the new vector
    slow = quantizer(codebook_size=2, ema_decay=0.5, dead_code_threshold=0.0).train()
    slow.embedding.weight.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    slow.ema_cluster_size.fill_(1.0)
    slow.ema_embedding_sum.copy_(slow.embedding.weight.data)
    slow.initialised.fill_(True)
    slow.update_codebook(torch.tensor([[2.0, 2.0]]), torch.tensor([0]))  # one vector, assigned to entry 0
    assert torch.allclose(
        slow.embedding.weight[0], torch.tensor([1.0, 1.0]), atol=1e-3
    )  # (0.5*0 + 0.5*2) / (0.5*1 + 0.5*1)


def test_dead_entries_restart_on_batch_vectors_and_the_first_batch_initialises_the_codebook():
    vq = quantizer(codebook_size=3, ema_decay=0.9, dead_code_threshold=1.0).train()
    batch = torch.randn(64, 2)
    vq(batch.T.reshape(1, 2, 8, 8))  # first batch: every entry starts as one of its vectors
    assert bool(vq.initialised)
    vq.embedding.weight.data[2] = torch.tensor([100.0, 100.0])  # far from every vector: never chosen
    vq.ema_embedding_sum[2] = vq.embedding.weight.data[2] * vq.ema_cluster_size[2]
    vq.ema_cluster_size[2] = 0.5  # and already below the threshold
    vq.update_codebook(batch, vq.nearest(batch))
    assert vq.restarted >= 1
    assert any(torch.allclose(vq.embedding.weight[2], vector) for vector in batch)  # restarted on a vector of the batch


def test_training_quantises_with_the_codebook_before_its_moving_average_update():
    vq = quantizer(codebook_size=2, ema_decay=0.0, dead_code_threshold=0.0).train()
    vq.embedding.weight.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    vq.initialised.fill_(True)
    z_e = torch.tensor([[1.0, 1.0], [3.0, 3.0]]).T.reshape(1, 2, 1, 2)
    out = vq(z_e)
    assert out.indices.flatten().tolist() == [0, 0]
    assert torch.equal(out.z_q, z_e + (torch.zeros_like(z_e) - z_e))  # the entry as it was, (0, 0)
    assert torch.allclose(vq.embedding.weight[0], torch.tensor([2.0, 2.0]), atol=1e-3)  # then moved to the mean


def test_a_loaded_codebook_is_kept_when_training_goes_on():
    trained = quantizer(codebook_size=3).train()
    trained(torch.randn(1, 2, 8, 8))  # initialised on a batch
    loaded = quantizer(codebook_size=3).train()
    loaded.load_state_dict(trained.state_dict())
    before = loaded.embedding.weight.clone()
    loaded(torch.randn(1, 2, 8, 8) + 6)  # a far-away batch: a fresh start would copy its vectors
    assert bool(loaded.initialised) and (loaded.embedding.weight - before).abs().max() < 2


def test_perplexity_counts_the_codes_in_effective_use():
    assert math.isclose(perplexity_of(torch.arange(8).repeat(5), 16).item(), 8.0, rel_tol=1e-5)
    assert math.isclose(perplexity_of(torch.zeros(20, dtype=torch.long), 16).item(), 1.0, rel_tol=1e-5)


def test_adaptive_weight_on_a_toy_last_layer():
    """With L_rec = a . w and L_GAN = b . w the gradients are a and b, so lambda = |a| / (|b| + 1e-4)."""
    w = torch.randn(5, requires_grad=True)
    a, b = torch.randn(5), torch.randn(5) * 30
    weight = adaptive_weight((a * w).sum(), (b * w).sum(), w)
    assert math.isclose(weight.item(), (a.norm() / (b.norm() + 1e-4)).item(), rel_tol=1e-5)
    assert not weight.requires_grad  # a constant factor, as in the paper
    assert adaptive_weight((a * w).sum(), (0 * w).sum(), w).item() == pytest.approx(
        min(a.norm().item() / 1e-4, 1e4)
    )  # no GAN gradient: capped


def test_hinge_losses():
    assert (
        discriminator_hinge_loss(torch.full((4,), 1.5), torch.full((4,), -2.0)).item() == 0.0
    )  # both sides beyond the margin
    assert discriminator_hinge_loss(torch.zeros(4), torch.zeros(4)).item() == pytest.approx(1.0)
    assert discriminator_hinge_loss(torch.tensor([0.5]), torch.tensor([0.0])).item() == pytest.approx(0.5 * (0.5 + 1.0))
    assert generator_hinge_loss(torch.tensor([1.0, 3.0])).item() == pytest.approx(-2.0)


def test_patch_discriminator_gives_a_grid_of_logits():
    assert PatchDiscriminator(DiscriminatorConfig(channels=8)).eval()(torch.randn(3, 1, 28, 28)).shape == (3, 1, 5, 5)


def test_patch_discriminator_judges_each_image_alone_in_train_and_eval_mode():
    discriminator = PatchDiscriminator(DiscriminatorConfig(channels=8))
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        batched = discriminator.train()(images)
        alone = torch.cat([discriminator.eval()(image[None]) for image in images])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)  # no batch statistics, no mode switch


def test_sharpness_measures_rank_a_checkerboard_above_its_blur_and_a_flat_image_at_zero():
    checkerboard = ((torch.arange(28)[:, None] // 2 + torch.arange(28)[None] // 2) % 2 * 2.0 - 1)[None, None]
    blurred = F.avg_pool2d(F.pad(checkerboard, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert gradient_energy(flat) == 0.0 and high_frequency_power(flat) == pytest.approx(0.0, abs=1e-9)
    assert gradient_energy(checkerboard) > 2 * gradient_energy(blurred) > 0
    assert high_frequency_power(checkerboard) > high_frequency_power(blurred)
    # 2x2 squares: a jump of 1 between 13 of the 27 neighbouring pairs along each axis
    assert gradient_energy(checkerboard) == pytest.approx(2 * 13 / 27)


def test_perceptual_loss_is_zero_for_equal_images_and_trains_only_the_image():
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
    )
    loss = PerceptualLoss(network).train()
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    target = torch.rand(2, 1, 8, 8) * 2 - 1
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-8)
    reconstruction = (target + 0.5 * torch.randn_like(target)).requires_grad_()
    value = loss(reconstruction, target)
    value.backward()
    assert value.item() > 0 and reconstruction.grad.abs().sum() > 0


def test_codec_shapes_and_config_checks():
    model = VQModel(VQConfig()).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert out.reconstruction.shape == (2, 1, 28, 28) and out.quantized.indices.shape == (2, 7, 7)
    with pytest.raises(ValueError, match="divisible by 4"):
        VQConfig(sample_size=30)
    with pytest.raises(ValueError, match="codebook_update"):
        VQConfig(codebook_update="kmeans")


def tiny_prior(codebook_size=8, grid=3) -> GPT:
    torch.manual_seed(0)
    return GPT(prior_config(codebook_size, grid * grid, n_layer=1, n_head=2, n_embd=16, dropout=0.0)).eval()


def test_prior_sequences_start_with_the_start_token_in_raster_order():
    grids = torch.arange(8).view(2, 2, 2)
    assert prior_sequences(grids, start_token=9).tolist() == [[9, 0, 1, 2, 3], [9, 4, 5, 6, 7]]


def test_prior_loss_is_the_next_code_cross_entropy():
    gpt, grids = tiny_prior(), torch.randint(0, 8, (4, 3, 3))
    tokens = prior_sequences(grids, 8)
    logits, _ = gpt(tokens[:, :-1])
    assert prior_loss(gpt, grids).item() == pytest.approx(
        F.cross_entropy(logits.reshape(-1, 9), grids.flatten()).item(), rel=1e-5
    )


def test_sampling_gives_grids_of_codes_only_and_respects_top_k():
    gpt = tiny_prior()
    with torch.no_grad():  # a strong preference for the start token must never leak into a grid
        gpt.lm_head.weight[8] += 5.0
    steps = []
    codes = sample_codes(
        gpt,
        6,
        3,
        temperature=1.0,
        generator=torch.Generator().manual_seed(0),
        on_step=lambda done, total: steps.append((done, total)),
    )
    assert codes.shape == (6, 3, 3) and codes.max() < 8 and steps[-1] == (9, 9)
    greedy = sample_codes(gpt, 2, 3, temperature=0.0)
    assert torch.equal(
        sample_codes(gpt, 2, 3, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(5)), greedy
    )
    # top-k 2: the first code is always one of the two most likely after the start token
    first_logits = gpt(torch.tensor([[8]]))[0][0, -1, :8]
    allowed = set(first_logits.topk(2).indices.tolist())
    drawn = sample_codes(gpt, 40, 3, temperature=2.0, top_k=2, generator=torch.Generator().manual_seed(1))[:, 0, 0]
    assert set(drawn.tolist()) <= allowed and len(set(drawn.tolist())) == 2
    with pytest.raises(ValueError, match="context"):
        sample_codes(gpt, 1, 4)
