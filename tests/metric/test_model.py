"""Mathematical properties of our losses, the augmentations and the evaluation, where no twin is needed."""

import math

import numpy as np
import pytest
import torch

from apps.metric import evaluation, model


def test_l_softmax_with_m_1_is_plain_softmax():
    torch.manual_seed(0)
    softmax = model.SoftmaxLoss(10, 4)
    large_margin = model.LargeMarginSoftmaxLoss(10, 4, margin=1)
    large_margin.weight.data.copy_(softmax.weight.data)
    embeddings, labels = torch.randn(32, 4), torch.randint(0, 10, (32,))
    assert torch.allclose(softmax(embeddings, labels), large_margin(embeddings, labels), atol=1e-6)


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_multiple_angle_polynomial_is_cos_m_theta_and_psi_decreases_monotonically(m):
    theta = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    assert torch.allclose(model.multiple_angle_cosine(theta.cos(), m), torch.cos(m * theta), atol=1e-9)
    values = model.psi(theta.cos(), m)
    assert (values.diff() <= 1e-9).all()  # monotone: a larger angle never earns a larger logit
    assert values[0].item() == pytest.approx(1.0) and values[-1].item() == pytest.approx(1 - 2 * m)
    assert values.diff().abs().max().item() < 0.02  # continuous: no jumps at the piece boundaries k pi / m


def test_arcface_target_is_cos_of_angle_plus_margin_and_keeps_decreasing_past_pi_minus_m():
    loss = model.ArcFaceLoss(10, 3, margin=0.5)
    theta = torch.tensor([0.3, 1.0, 2.5, 3.0], dtype=torch.float64)
    expected = torch.tensor([math.cos(0.8), math.cos(1.5), math.cos(3.0), math.cos(3.0) - 0.5 * math.sin(0.5)])
    assert torch.allclose(loss.target_logit(theta.cos()), expected.double(), atol=1e-6)


def test_cosface_subtracts_the_margin_from_the_true_class_only():
    loss = model.CosFaceLoss(3, 2, margin=0.35, scale=1.0)
    loss.weight.data = torch.eye(3, 2) + torch.tensor([[0, 0], [0, 0], [1.0, 1.0]])
    embeddings = torch.tensor([[1.0, 0.0]])
    cosines = loss.cosines(embeddings)[0]
    logits = cosines.clone()
    logits[0] -= 0.35
    expected = torch.nn.functional.cross_entropy(logits[None], torch.tensor([0]))
    assert torch.allclose(loss(embeddings, torch.tensor([0])), expected)


def test_infonce_of_identical_embeddings_is_log_of_the_candidates():
    """Nothing tells the positive from the negatives: each anchor's loss is log N, so the bound log N - L is 0."""
    pairs = 8
    labels = torch.arange(pairs).repeat(2)
    loss = model.InfoNCELoss(0.5)(torch.ones(2 * pairs, 5), labels)
    assert loss.item() == pytest.approx(math.log(2 * pairs - 1), abs=1e-5)


def test_infonce_without_negatives_is_zero_and_finite():
    embeddings = torch.randn(6, 3, requires_grad=True)
    loss = model.InfoNCELoss(0.1)(embeddings, torch.zeros(6, dtype=torch.long))
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and torch.isfinite(embeddings.grad).all()


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: model.ArcFaceLoss(10, 3, margin=math.pi / 2), "below pi/2"),
        (lambda: model.ArcFaceLoss(10, 3, margin=-0.1), "below pi/2"),
        (lambda: model.ArcFaceLoss(10, 3, margin=0.5, scale=0), "scale s"),
        (lambda: model.LargeMarginSoftmaxLoss(10, 3, margin=2.5), "whole number from 1 to 10"),
        (lambda: model.LargeMarginSoftmaxLoss(10, 3, margin=0), "whole number from 1 to 10"),
        (lambda: model.SphereFaceLoss(10, 3, margin=4, scale=-1), "scale s"),
        (lambda: model.CosFaceLoss(10, 3, margin=1.5), "use 0 to 1"),
        (lambda: model.InfoNCELoss(0), "temperature must be above 0"),
        (lambda: model.ContrastiveLoss(margin=-1), "at least 0"),
        (lambda: model.ContrastiveLoss(margin=1, positive_margin=0.2, squared=True), "no positive margin"),
        (lambda: model.make_loss(model.MetricConfig(loss="triplet")), "Unknown loss 'triplet'"),
    ],
)
def test_hyperparameters_outside_what_a_loss_allows_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_simclr_views_differ_stay_in_range_and_keep_the_digit_roughly_in_place():
    torch.manual_seed(0)
    digit = torch.zeros(2, 1, 28, 28)
    digit[:, :, 6:22, 12:16] = 1.0  # a "1"
    first, second = model.simclr_augment(digit), model.simclr_augment(digit)
    assert first.shape == digit.shape and 0 <= first.min() and first.max() <= 1
    assert (first - second).abs().mean() > 0.01
    assert (model.simclr_augment(digit, noise=0.0) * digit).sum() > 0.4 * digit.sum()  # overlaps the original


def test_verification_and_knn_on_separable_and_on_random_embeddings():
    labels = np.repeat(np.arange(10), 20)
    separable = np.eye(10)[labels] + 0.01 * np.random.default_rng(0).normal(size=(200, 10))
    perfect = evaluation.verification(separable, labels)
    assert perfect["roc_auc"] == pytest.approx(1.0) and perfect["tar_at_far"] == pytest.approx(1.0)
    random = evaluation.verification(np.random.default_rng(1).normal(size=(200, 10)), labels)
    assert 0.4 < random["roc_auc"] < 0.6 and random["tar_at_far"] < 0.1
    assert evaluation.knn_accuracy(separable, labels, separable, labels) == 1.0


def test_labelled_subset_takes_that_many_of_each_digit():
    labels = np.repeat(np.arange(10), 30)
    chosen = evaluation.labelled_subset(labels, 10)
    assert len(chosen) == 100 and (np.bincount(labels[chosen]) == 10).all()


def test_embedding_net_and_checkpoint_model_shapes():
    config = model.MetricConfig(embedding_size=3, loss="cosface", margin=0.35, scale=16)
    network = model.MetricModel(config).eval()
    images = torch.rand(4, 1, 28, 28)
    assert network(images).shape == (4, 3) and network.predict(images).shape == (4,)
    assert network.loss.weight.shape == (10, 3)
    simclr = model.MetricModel(model.MetricConfig(embedding_size=32, loss="simclr", projection_size=8))
    assert simclr.training_loss(torch.rand(6, 1, 28, 28), torch.arange(3).repeat(2)).ndim == 0
