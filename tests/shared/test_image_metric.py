"""The shared image-quality metric: the shipped classifier, the Fréchet distance, reports on real and
broken images, image preparation, and sample grids."""

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from shared.data import mnist5k
from shared.image_metric import (
    accuracy,
    default_metric,
    frechet_distance,
    gaussian_statistics,
    image_quality,
    prepare_images,
)
from shared.images import image_grid, save_grid


@pytest.fixture(scope="module")
def metric():
    return default_metric()


@pytest.fixture(scope="module")
def held_out():
    split = mnist5k()
    return split.validation_images, split.validation_labels  # (500, 28, 28) uint8, (500,)


def independent_frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Tr((S1 S2)^(1/2)) as the sum of square roots of the eigenvalues of S1^(1/2) S2 S1^(1/2)."""
    values, vectors = scipy.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    trace_root = np.sqrt(np.clip(scipy.linalg.eigvalsh(root1 @ sigma2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_root)


def random_gaussian(generator, dimension, samples):
    """Mean and covariance of `samples` correlated Gaussian draws (singular when samples <= dimension)."""
    mixing = generator.normal(size=(dimension, dimension))
    return gaussian_statistics(generator.normal(size=(samples, dimension)) @ mixing + generator.normal(size=dimension))


def test_shipped_classifier_recognises_held_out_digits(metric, held_out):
    assert accuracy(metric.model, *held_out) >= 0.98  # 0.986 when trained


@pytest.mark.parametrize("dimension, samples", [(5, 50), (40, 200), (40, 20)])
def test_frechet_distance_matches_an_eigenvalue_computation(dimension, samples):
    generator = np.random.default_rng(dimension + samples)
    first, second = random_gaussian(generator, dimension, samples), random_gaussian(generator, dimension, samples)
    expected = independent_frechet_distance(*first, *second)
    assert frechet_distance(*first, *second) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(*second, *first) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(*first, *first) == pytest.approx(0, abs=1e-6 * expected)


def test_frechet_distance_of_one_dimensional_gaussians_is_the_closed_form():
    # N(0, 4) vs N(3, 1): (0 - 3)^2 + (2 - 1)^2 = 10
    assert frechet_distance(np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])) == pytest.approx(10)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Expected two means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_real_held_out_digits_score_as_real(metric, held_out):
    report = image_quality(held_out[0])
    assert report.frechet_distance == pytest.approx(0, abs=1e-6)
    assert report.mean_confidence == pytest.approx(report.real_mean_confidence)
    assert report.real_mean_confidence > 0.98
    assert report.classes_present == 10 and sum(report.class_histogram) == report.sample_count == 500
    assert 0 < report.real_frechet_distance < 50
    assert (
        metric.real_frechet_distance(100) > metric.real_frechet_distance(500) > metric.real_frechet_distance(4500)
    )  # FD falls with the sample count
    assert "10/10 classes" in report.summary() and report.as_row()["classes present"] == "10/10"


def test_noise_and_blank_images_score_far_from_real():
    noise = image_quality(np.random.default_rng(0).random((500, 28, 28)))
    blank = image_quality(np.zeros((500, 28, 28), dtype=np.uint8))
    for report in (noise, blank):
        assert report.frechet_distance > 20 * report.real_frechet_distance
        assert report.classes_present <= 2
    assert blank.confident_fraction < 0.5 and blank.mean_confidence < blank.real_mean_confidence - 0.1


def test_a_missing_digit_class_shows_in_the_coverage(held_out):
    images, labels = held_out
    report = image_quality(images[labels != 7])
    assert report.classes_present == 9 and report.class_histogram[7] <= 2  # at most a couple of misreadings


def test_padded_32_pixel_digits_crop_back_exactly(held_out):
    images = held_out[0][:20]
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))  # (20, 32, 32), as the generators train on
    assert torch.equal(prepare_images(padded), prepare_images(images))
    assert prepare_images(images).shape == (20, 1, 28, 28)


def test_uint8_float_and_signed_inputs_agree(held_out):
    images = held_out[0][:20]
    from_uint8 = prepare_images(images)
    unit_float = torch.from_numpy(images).float()[:, None] / 255  # (20, 1, 28, 28) tensor
    torch.testing.assert_close(prepare_images(unit_float), from_uint8)
    torch.testing.assert_close(prepare_images(unit_float * 2 - 1, value_range=(-1, 1)), from_uint8)


def test_other_sizes_are_resized_and_still_read_correctly(metric, held_out):
    images, labels = held_out
    doubled = images.repeat(2, axis=1).repeat(2, axis=2)  # (500, 56, 56)
    assert prepare_images(doubled).shape == (500, 1, 28, 28)
    assert accuracy(metric.model, doubled, labels) >= 0.95


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (np.zeros((28, 28)), {}, "batch axis"),
        (np.zeros((4, 3, 28, 28)), {}, "1 channel"),
        (np.zeros((0, 28, 28)), {}, "empty"),
        (np.zeros((4, 28, 28), dtype=np.int64), {}, "uint8"),
        (np.full((4, 28, 28), 255.0), {}, "far outside value_range"),
        (-np.ones((4, 28, 28)), {}, "value_range=\\(-1, 1\\)"),
        (np.full((4, 28, 28), np.nan), {}, "NaN"),
        (np.zeros((4, 28, 28)), {"value_range": (1, 0)}, "high > low"),
    ],
)
def test_caller_mistakes_raise_clear_errors(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare_images(images, **kwargs)


def test_a_single_image_cannot_have_a_frechet_distance(held_out):
    with pytest.raises(ValueError, match="at least 2 images"):
        image_quality(held_out[0][:1])


def test_image_grid_layout_and_scale(held_out, tmp_path):
    images = held_out[0][:10]
    grid = image_grid(images, columns=5, padding=2)
    assert grid.shape == (2 * 30 + 2, 5 * 30 + 2) and grid.dtype == np.uint8
    assert np.array_equal(grid[2:30, 32:60], images[1])  # second tile, first row
    assert image_grid(images, columns=5, padding=2, scale=3).shape == (3 * 62, 3 * 152)
    assert image_grid(np.repeat(images[:, None], 3, axis=1), columns=5).shape == (62, 152, 3)
    path = save_grid(images, tmp_path / "grid" / "digits.png", columns=5)
    assert np.array_equal(np.asarray(Image.open(path)), grid)
