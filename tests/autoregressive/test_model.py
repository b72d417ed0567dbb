"""The properties that make these models exact likelihoods, checked on random weights at tiny sizes:
probabilities over all 2^10 images sum to one, output d ignores pixels d, d+1, ... (zero Jacobian), and
ancestral sampling draws images as often as the model's own probabilities say."""

import itertools
import math

import pytest
import scipy.stats
import torch

from apps.autoregressive.model import (
    MADE,
    NADE,
    MaskedConv2d,
    PixelCNN,
    binarise,
    bits_per_dim,
    conditional_probabilities,
    receptive_field,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The model in float64 with every weight and bias redrawn at a scale that makes the conditionals far
    from 1/2 and far from each other (default initialisations give nearly uniform models)."""
    generator = torch.Generator().manual_seed(seed)
    model = model.double()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * 0.7)
    return model


# Ten binary pixels in each model's own example shape (PixelCNN: a 2 x 5 image), a few architectures each.
TEN_PIXEL_MODELS = {
    "NADE": lambda: NADE(10, 7),
    "MADE natural order": lambda: MADE(10, (16, 16)),
    "MADE random order": lambda: MADE(10, (12, 9, 12), ordering_seed=3, connectivity_seed=5),
    "PixelCNN": lambda: PixelCNN(2, 5, channels=8, layers=2, first_kernel_size=3, output_channels=8),
    "PixelCNN 7x7 first layer": lambda: PixelCNN(2, 5, channels=6, layers=1, output_channels=6),
    "gated PixelCNN": lambda: PixelCNN(2, 5, channels=6, layers=2, gated=True, output_channels=6),
}


def every_image(model) -> torch.Tensor:
    """All 2^D binary examples in the model's shape, float64."""
    rows = torch.tensor(list(itertools.product([0.0, 1.0], repeat=model.dims)), dtype=torch.float64)
    return rows.reshape(len(rows), *model.data_shape)


@pytest.mark.parametrize("name", TEN_PIXEL_MODELS)
def test_probabilities_of_all_1024_images_sum_to_one(name):
    model = randomised(TEN_PIXEL_MODELS[name]())
    log_probabilities = model.log_prob(every_image(model))  # (1024,)
    assert log_probabilities.shape == (1024,)
    assert abs(log_probabilities.exp().sum().item() - 1) < 1e-5
    # not a uniform model in disguise: the images' probabilities differ by orders of magnitude
    assert log_probabilities.max() - log_probabilities.min() > 3


def jacobian_of_logits(model, x: torch.Tensor) -> torch.Tensor:
    """(D, D): d logit_i / d x_j at one example x, in the flat pixel order."""
    shape = model.data_shape
    return torch.autograd.functional.jacobian(lambda flat: model.conditional_logits(flat.view(1, *shape)).flatten(), x)


@pytest.mark.parametrize("name", TEN_PIXEL_MODELS)
def test_output_d_does_not_depend_on_pixel_d_or_any_later_one(name):
    model = randomised(TEN_PIXEL_MODELS[name](), seed=1)
    order = model.sampling_order
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))  # position[d]: when pixel d is drawn
    later_or_same = position[None, :] >= position[:, None]  # (i, j): pixel j comes at or after pixel i
    used = torch.zeros(model.dims, model.dims, dtype=torch.bool)
    for seed in range(5):
        x = torch.bernoulli(
            torch.full((model.dims,), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(seed)
        )
        jacobian = jacobian_of_logits(model, x)
        assert torch.all(jacobian[later_or_same] == 0)  # exactly zero, not small
        used |= jacobian != 0
    # and the earlier pixels do matter: a good share of the allowed entries is non-zero for some input
    # (not all: MADE's sparse random connectivity and inactive ReLUs cut some paths)
    assert used[~later_or_same].float().mean() > 0.4


def test_nade_sees_every_earlier_pixel():
    model = randomised(NADE(10, 7), seed=2)
    jacobian = jacobian_of_logits(model, torch.ones(10, dtype=torch.float64))
    assert torch.all(jacobian.tril(-1)[torch.ones(10, 10).tril(-1).bool()] != 0)


@pytest.mark.parametrize("name", ["NADE", "MADE random order", "PixelCNN", "gated PixelCNN"])
def test_sampling_frequencies_match_the_model_probabilities(name):
    """20,000 ancestral samples of a 10-pixel model, binned by image; Pearson's chi-square against the
    model's exact probabilities (images expected fewer than 5 times pooled into one bin)."""
    model = randomised(TEN_PIXEL_MODELS[name](), seed=3)
    images = every_image(model)
    probabilities = model.log_prob(images).exp().detach()
    count = 20_000
    samples = model.sample(count, torch.Generator().manual_seed(0)).reshape(count, -1)
    codes = (samples.long() * (2 ** torch.arange(model.dims - 1, -1, -1))).sum(1)  # itertools.product order
    observed = torch.bincount(codes, minlength=len(images)).double()
    expected = probabilities * count
    frequent = expected >= 5
    observed = torch.cat([observed[frequent], observed[~frequent].sum()[None]])
    expected = torch.cat([expected[frequent], expected[~frequent].sum()[None]])
    statistic = ((observed - expected) ** 2 / expected).sum().item()
    assert statistic < scipy.stats.chi2.ppf(0.999, len(expected) - 1)
    # the same test rejects samples of another model (a different random draw of the weights)
    other = randomised(TEN_PIXEL_MODELS[name](), seed=4).log_prob(images).exp().detach() * count
    other = torch.cat([other[frequent], other[~frequent].sum()[None]])
    assert ((observed - other) ** 2 / other).sum().item() > scipy.stats.chi2.ppf(0.999, len(expected) - 1)


def test_nade_running_sum_sampler_draws_what_the_generic_sampler_draws():
    model = randomised(NADE(12, 5), seed=5)
    fast = model.sample(64, torch.Generator().manual_seed(7))
    generic = torch.zeros(64, 12, dtype=torch.float64)
    for _, generic in super(NADE, model).sampling_steps(64, torch.Generator().manual_seed(7)):
        pass
    assert torch.equal(fast, generic.to(fast))


@pytest.mark.parametrize("gated", [False, True])
def test_pixelcnn_strip_logit_equals_the_full_pass(gated):
    model = randomised(PixelCNN(12, 9, channels=6, layers=2, gated=gated, output_channels=6), seed=6)
    x = torch.bernoulli(torch.full((3, 1, 12, 9), 0.4, dtype=torch.float64), generator=torch.Generator().manual_seed(1))
    full = model.conditional_logits(x).flatten(1)
    for index in (0, 8, 40, 95, 107):
        assert torch.allclose(model.logit_at(x, index), full[:, index], atol=1e-12)


def test_completion_keeps_the_given_pixels_and_draws_the_rest():
    model = randomised(MADE(20, (30,)), seed=7).float()
    given = torch.ones(1, 20)
    samples = model.sample(50, torch.Generator().manual_seed(0), given=given, start=8)
    assert torch.all(samples[:, :8] == 1) and samples[:, 8:].std() > 0


def test_mask_a_hides_the_centre_and_mask_b_keeps_it():
    a, b = MaskedConv2d(1, 1, 5, "A").mask[0, 0], MaskedConv2d(1, 1, 5, "B").mask[0, 0]
    assert a[2, 2] == 0 and b[2, 2] == 1 and a[:2].all() and b[:2].all()
    assert not a[3:].any() and not b[3:].any() and not a[2, 3:].any() and not b[2, 3:].any()
    above = MaskedConv2d(1, 1, 3, "A", shape="above").mask[0, 0]
    assert above[0].all() and not above[1:].any()
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, "C")


def test_made_masks_follow_the_degrees_and_new_seeds_change_the_ordering():
    model = MADE(6, (8, 8))
    hidden, _, output = model.masks
    assert hidden.shape == (8, 6) and output.shape == (6, 8)
    assert not output[0].any()  # the first input in the ordering depends on nothing
    assert torch.equal(model.sampling_order, torch.arange(6))
    model.set_masks(ordering_seed=1)
    assert not torch.equal(model.sampling_order, torch.arange(6)) and model.config.ordering_seed == 1


def test_plain_pixelcnn_has_a_blind_spot_and_the_gated_one_does_not():
    row, column = 6, 4
    before = torch.zeros(10, 10, dtype=torch.bool)
    before[:row] = True
    before[row, :column] = True
    nearby = torch.zeros(10, 10, dtype=torch.bool)
    nearby[row - 3 : row + 1, column - 3 : column + 4] = True  # within 3 rows up and 3 columns either side
    plain = receptive_field(PixelCNN(10, 10, channels=4, layers=3, first_kernel_size=3, output_channels=4), row, column)
    gated = receptive_field(PixelCNN(10, 10, channels=4, layers=2, gated=True, output_channels=4), row, column)
    for field in (plain, gated):
        assert not field[~before].any()  # never the pixel itself or a later one
    assert field[before & nearby].all()  # the gated stacks cover every earlier pixel near by
    assert not plain[before & nearby].all()  # the plain stack misses some: the blind spot, up and to the right
    assert not plain[row - 1, column + 3]
    with pytest.raises(ValueError, match="outside"):
        receptive_field(PixelCNN(10, 10, channels=4, layers=1), 10, 0)


def test_binarisation_is_fixed_by_its_seed_and_follows_the_grey_level():
    grey = torch.full((20_000,), 64, dtype=torch.uint8)
    first, second = (binarise(grey, torch.Generator().manual_seed(0)) for _ in range(2))
    assert torch.equal(first, second) and set(first.unique().tolist()) == {0.0, 1.0}
    assert abs(first.mean().item() - 64 / 255) < 0.02
    assert binarise(torch.tensor([0, 255], dtype=torch.uint8), torch.Generator()).tolist() == [0.0, 1.0]


def test_conditional_probabilities_surprises_sum_to_the_negative_log_likelihood():
    model = randomised(PixelCNN(4, 4, channels=4, layers=1, output_channels=4), seed=8)
    x = torch.bernoulli(torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    probabilities, surprise = conditional_probabilities(model, x)
    assert probabilities.shape == x.shape and torch.all((probabilities > 0) & (probabilities < 1))
    assert torch.allclose(surprise.flatten(1).sum(1), -model.log_prob(x).detach())
    assert abs(bits_per_dim(784 * math.log(2), 784) - 1) < 1e-12  # one bit per pixel is uniform
