"""The bridge to pytorch-metric-learning (PML): `to_pml(our_loss)` builds PML's loss with the same
hyperparameters and, for the classification losses, the same class weights.

PML's conventions, read from its 2.9.0 source:
- class weights `W` are (embedding_size, num_classes), the transpose of our (and nn.Linear's) `weight`;
- `ArcFaceLoss(margin=...)` takes DEGREES (default 28.6 = 0.5 rad); ours takes radians, as the paper writes it;
- `ContrastiveLoss(pos_margin, neg_margin)` hinges on the plain distance and averages each hinge over its
  non-zero terms (`AvgNonZeroReducer`); its distance is `LpDistance`, on unit vectors by default;
- `NTXentLoss(temperature)` treats every same-label pair as a positive and every different-label sample as
  a negative of the anchor; our InfoNCELoss does the same;
- `LargeMarginSoftmaxLoss(..., scale=1)` is L-Softmax; a plain softmax (no margin) is its m = 1.
"""

from __future__ import annotations

import math

import torch
from pytorch_metric_learning import distances, losses
from torch import nn

from apps.metric import model as ours


def to_pml(loss: nn.Module) -> nn.Module:
    """Our loss module -> the pytorch-metric-learning loss that computes the same value (and gradients)."""
    if isinstance(loss, ours.ContrastiveLoss):
        if loss.squared:
            raise ValueError(
                "Hadsell et al.'s squared contrastive loss has no PML twin; PML hinges on plain distances."
            )
        distance = distances.LpDistance(normalize_embeddings=loss.normalize_embeddings)
        return losses.ContrastiveLoss(pos_margin=loss.positive_margin, neg_margin=loss.margin, distance=distance)
    if isinstance(loss, ours.InfoNCELoss):
        return losses.NTXentLoss(temperature=loss.temperature)
    num_classes, embedding_size = loss.weight.shape
    if isinstance(loss, ours.SphereFaceLoss):  # before L-Softmax: it is a subclass of ours too
        reference = losses.SphereFaceLoss(num_classes, embedding_size, margin=loss.margin, scale=loss.scale_factor)
    elif isinstance(loss, ours.LargeMarginSoftmaxLoss):
        reference = losses.LargeMarginSoftmaxLoss(num_classes, embedding_size, margin=loss.margin, scale=1)
    elif isinstance(loss, ours.CosFaceLoss):
        reference = losses.CosFaceLoss(num_classes, embedding_size, margin=loss.margin, scale=loss.scale_factor)
    elif isinstance(loss, ours.ArcFaceLoss):
        reference = losses.ArcFaceLoss(
            num_classes, embedding_size, margin=math.degrees(loss.margin), scale=loss.scale_factor
        )
    elif isinstance(loss, ours.SoftmaxLoss):
        reference = losses.LargeMarginSoftmaxLoss(num_classes, embedding_size, margin=1, scale=1)
    else:
        raise ValueError(f"No pytorch-metric-learning twin for {type(loss).__name__}.")
    with torch.no_grad():
        reference.W.copy_(loss.weight.T)  # (C, D) -> PML's (D, C)
    return reference


def class_weights_from_pml(reference: nn.Module) -> torch.Tensor:
    """PML's W (embedding_size, num_classes) -> our weight (num_classes, embedding_size)."""
    return reference.W.detach().T.clone()
