"""Properties of our ViT and MAE that hold whatever the weights: masking, patches, the loss on hidden
patches only, attention rollout, and that a few training steps lower the MAE loss."""

import pytest
import torch

from apps.vit_mae.model import MAE, MAEConfig, attention_rollout, hidden_patch_mse, patchify, random_masking, unpatchify
from shared.data import mnist5k
from shared.images import to_unit_batch

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MAE = dict(
    image_size=28,
    patch_size=7,
    num_channels=1,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=32,
)


@pytest.mark.parametrize("num_patches", [16, 49, 196])
@pytest.mark.parametrize("mask_ratio", [0.0, 0.1, 0.5, 0.75, 0.9, 0.99])
def test_masking_keeps_exactly_int_L_times_one_minus_ratio_patches(num_patches, mask_ratio):
    kept_count = int(num_patches * (1 - mask_ratio))
    tokens = (
        torch.arange(4 * num_patches, dtype=torch.float32).view(4, num_patches, 1).expand(-1, -1, 3)
    )  # each token holds its index
    noise = torch.rand(4, num_patches, generator=torch.Generator().manual_seed(0))
    visible, mask, ids_restore = random_masking(tokens, kept_count, noise)
    assert visible.shape == (4, kept_count, 3)
    assert mask.sum(dim=1).tolist() == [num_patches - kept_count] * 4
    for image in range(4):
        kept = visible[image, :, 0].long() - image * num_patches  # which patches survived
        assert sorted(kept.tolist()) == sorted(noise[image].argsort()[:kept_count].tolist())  # the lowest noise values
        assert (mask[image, kept] == 0).all() and mask[image].sum() == num_patches - kept_count
        assert torch.equal(
            noise[image].argsort()[ids_restore[image]], torch.arange(num_patches)
        )  # ids_restore undoes the shuffle


@pytest.mark.parametrize("mask_ratio", [0.25, 0.75, 0.95])
def test_the_encoder_sees_only_the_kept_patches(mask_ratio):
    model = MAE(MAEConfig(**TINY_MAE, mask_ratio=mask_ratio)).eval()
    with torch.no_grad():
        latent, mask, _ = model.encode(torch.rand(3, 1, 28, 28))
    kept = int(16 * (1 - mask_ratio))
    assert latent.shape == (3, 1 + kept, 16) and model.config.kept_count == kept
    assert mask.sum(dim=1).tolist() == [16 - kept] * 3


@pytest.mark.parametrize("channels, patch_size, image_size", [(1, 4, 28), (1, 7, 28), (3, 4, 16), (3, 16, 32)])
def test_patchify_round_trip_and_layout(channels, patch_size, image_size):
    images = torch.rand(2, channels, image_size, image_size)
    patches = patchify(images, patch_size)
    grid = image_size // patch_size
    assert patches.shape == (2, grid * grid, patch_size * patch_size * channels)
    assert torch.equal(unpatchify(patches, patch_size, channels), images)
    # patch number row * grid + column holds that block's pixels, flattened as (row, column, channel)
    row, column = grid - 1, grid // 2
    block = images[1, :, row * patch_size : (row + 1) * patch_size, column * patch_size : (column + 1) * patch_size]
    assert torch.equal(patches[1, row * grid + column], block.permute(1, 2, 0).flatten())


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_loss_counts_only_the_hidden_patches(norm_pix_loss):
    model = MAE(MAEConfig(**TINY_MAE, norm_pix_loss=norm_pix_loss)).eval()
    images = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        loss, predictions, mask = model(images, torch.rand(2, 16, generator=torch.Generator().manual_seed(1)))
        visible, hidden = mask == 0, mask == 1
        changed_visible = predictions.clone()
        changed_visible[visible] += 10.0
        assert torch.equal(model.loss(images, changed_visible, mask), loss)
        changed_hidden = predictions.clone()
        changed_hidden[hidden] += 10.0
        assert model.loss(images, changed_hidden, mask) > loss + 50
        # a perfect prediction of the hidden patches costs nothing, whatever is predicted for the visible ones
        assert model.loss(images, torch.where(hidden.unsqueeze(-1), model.targets(images), changed_visible), mask) == 0


def test_hidden_patch_mse_is_the_pixel_loss_per_image():
    model = MAE(MAEConfig(**TINY_MAE)).eval()
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        loss, predictions, mask = model(images)
        per_image = hidden_patch_mse(images, model.reconstruct_image(images, predictions, mask), mask, 7)
    assert per_image.shape == (3,)
    assert torch.allclose(per_image.mean(), loss, atol=1e-6)  # every image hides as many patches


def attention_layer(weights: torch.Tensor, heads: int = 2) -> torch.Tensor:
    """(T, T) weights -> (1, heads, T, T), the same in every head."""
    return weights.expand(1, heads, *weights.shape)


def test_rollout_of_one_layer_is_the_class_tokens_attention_over_the_patches():
    weights = torch.softmax(
        torch.randn(5, 5, generator=torch.Generator().manual_seed(0)), dim=-1
    )  # 1 class token + 2 x 2 patches
    rollout = attention_rollout([attention_layer(weights)])
    # 0.5 W + 0.5 I: the identity touches only the class token's own column, which is dropped
    assert torch.allclose(rollout[0].flatten(), weights[0, 1:] / weights[0, 1:].sum(), atol=1e-6)


def test_rollout_composes_layers_by_matrix_products():
    generator = torch.Generator().manual_seed(1)
    layers = [torch.softmax(torch.randn(10, 10, generator=generator), dim=-1) for _ in range(3)]  # 1 + 3 x 3 tokens
    expected = torch.eye(10)
    for weights in layers:
        expected = (0.5 * weights + 0.5 * torch.eye(10)) @ expected
    rollout = attention_rollout([attention_layer(weights) for weights in layers])
    assert torch.allclose(rollout[0].flatten(), expected[0, 1:] / expected[0, 1:].sum(), atol=1e-6)


def test_rollout_follows_where_the_class_token_looks():
    weights = torch.eye(17)  # every token keeps to itself ...
    weights[0] = 0
    weights[0, 1 + 6] = 1  # ... except the class token, which reads patch 6 only (row 1, column 2 of 4 x 4)
    rollout = attention_rollout([attention_layer(weights), attention_layer(weights)])
    assert rollout.shape == (1, 4, 4) and rollout[0, 1, 2] == 1 and rollout.sum() == 1


def test_rollout_averages_the_heads():
    first, second = torch.eye(5), torch.full((5, 5), 0.2)
    both = torch.stack((first, second)).unsqueeze(0)  # (1, 2 heads, 5, 5)
    assert torch.allclose(attention_rollout([both]), attention_rollout([attention_layer((first + second) / 2)]))


def test_a_few_steps_lower_the_mae_loss_on_digits():
    torch.manual_seed(0)
    model = MAE(MAEConfig(**TINY_MAE))
    images = to_unit_batch(mnist5k().train_images[:64])  # (64, 1, 28, 28)
    noise = torch.rand(64, 16, generator=torch.Generator().manual_seed(2))  # the same masks at every step
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = model(images, noise)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
