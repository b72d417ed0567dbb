"""Every loss against pytorch-metric-learning on random inputs: the value and the gradients with respect to
the embeddings and the class weights agree to 1e-5; the squared contrastive loss against its formula."""

import math

import pytest
import torch

from apps.metric import model
from apps.metric.reference import class_weights_from_pml, to_pml

TOLERANCE = 1e-5


def random_batch(seed: int, batch: int = 24, size: int = 5, classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, size, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return embeddings, labels


def value_and_gradients(loss, embeddings, labels, weight=None):
    embeddings = embeddings.clone().requires_grad_(True)
    value = loss(embeddings, labels)
    inputs = [embeddings] + ([weight] if weight is not None else [])
    return value.detach(), torch.autograd.grad(value, inputs)


def assert_matches(ours, seed, classes=4, size=5):
    ours = ours.double()
    reference = to_pml(ours).double()
    embeddings, labels = random_batch(seed, size=size, classes=classes)
    weights = (getattr(ours, "weight", None), getattr(reference, "W", None))
    our_value, our_gradients = value_and_gradients(ours, embeddings, labels, weights[0])
    pml_value, pml_gradients = value_and_gradients(reference, embeddings, labels, weights[1])
    assert our_value.item() > 0
    assert abs(our_value - pml_value).item() < TOLERANCE
    assert (our_gradients[0] - pml_gradients[0]).abs().max().item() < TOLERANCE
    if weights[0] is not None:  # PML's W is the transpose of ours
        assert (our_gradients[1] - pml_gradients[1].T).abs().max().item() < TOLERANCE


@pytest.mark.parametrize("margin", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_large_margin_softmax(margin, seed):
    torch.manual_seed(seed)
    assert_matches(model.LargeMarginSoftmaxLoss(4, 5, margin), seed)


@pytest.mark.parametrize("margin, scale", [(1, 1.0), (2, 4.0), (4, 1.0), (4, 10.0)])
def test_sphereface(margin, scale):
    torch.manual_seed(margin)
    assert_matches(model.SphereFaceLoss(4, 5, margin, scale), seed=margin)


@pytest.mark.parametrize("margin, scale", [(0.0, 1.0), (0.35, 64.0), (0.2, 16.0), (0.9, 5.0)])
def test_cosface(margin, scale):
    torch.manual_seed(3)
    assert_matches(model.CosFaceLoss(4, 5, margin, scale), seed=3)


@pytest.mark.parametrize("margin, scale", [(0.0, 1.0), (0.5, 64.0), (0.2, 16.0), (1.5, 8.0)])
def test_arcface_in_radians_against_pml_in_degrees(margin, scale):
    torch.manual_seed(4)
    ours = model.ArcFaceLoss(4, 5, margin, scale)
    assert to_pml(ours).margin == pytest.approx(margin)  # PML converts its degrees to radians inside
    assert_matches(ours, seed=4)


def test_softmax_is_pml_l_softmax_with_m_1():
    torch.manual_seed(5)
    assert_matches(model.SoftmaxLoss(4, 5), seed=5)


@pytest.mark.parametrize("temperature", [0.07, 0.5, 1.0])
@pytest.mark.parametrize("classes", [3, 12])
def test_infonce_is_pml_ntxent(temperature, classes):
    assert_matches(model.InfoNCELoss(temperature), seed=6, classes=classes)


@pytest.mark.parametrize(
    "margin, positive_margin, normalize", [(1.0, 0.0, True), (0.5, 0.2, True), (3.0, 0.5, False), (1.5, 0.0, False)]
)
def test_contrastive_plain_form_is_pml(margin, positive_margin, normalize):
    ours = model.ContrastiveLoss(margin, positive_margin, squared=False, normalize_embeddings=normalize)
    assert_matches(ours, seed=7)


@pytest.mark.parametrize("margin, normalize", [(1.0, True), (2.5, False), (0.3, True)])
def test_squared_contrastive_loss_is_hadsell_formula(margin, normalize):
    """L = 1/(2N) sum over pairs [y d^2 + (1 - y) max(margin - d, 0)^2], written out pair by pair in Python."""
    embeddings, labels = random_batch(8, batch=9)
    points = torch.nn.functional.normalize(embeddings, dim=1) if normalize else embeddings
    terms = []
    for i in range(len(points)):
        for j in range(len(points)):
            if i != j:
                distance = math.dist(points[i].tolist(), points[j].tolist())
                same = labels[i] == labels[j]
                terms.append(distance**2 if same else max(margin - distance, 0.0) ** 2)
    expected = sum(terms) / (2 * len(terms))
    ours = model.ContrastiveLoss(margin, squared=True, normalize_embeddings=normalize)(embeddings, labels)
    assert ours.item() == pytest.approx(expected, abs=1e-10)


def test_class_weights_round_trip_through_pml():
    ours = model.CosFaceLoss(10, 3)
    assert torch.equal(class_weights_from_pml(to_pml(ours)), ours.weight.detach())


def test_float32_parity_at_the_training_settings():
    torch.manual_seed(9)
    embeddings = torch.randn(64, 3)
    labels = torch.randint(0, 10, (64,))
    for ours in (
        model.ArcFaceLoss(10, 3, 0.5, 16.0),
        model.CosFaceLoss(10, 3, 0.35, 16.0),
        model.SphereFaceLoss(10, 3, 2, 4.0),
    ):
        assert abs(ours(embeddings, labels) - to_pml(ours)(embeddings, labels)).item() < 1e-4
