"""Metric and contrastive learning from scratch: the losses that shape an embedding space, a small CNN that
embeds digits, and the SimCLR augmentations. Pure PyTorch; each loss is a module named after its paper with
`forward(embeddings, labels) -> loss` and its hyperparameters in the paper's units.

Two families of losses:

1. Pair losses look at distances between embeddings of the same batch.
   - Contrastive loss (Hadsell, Chopra & LeCun 2006, Eq. 4): pull pairs of the same class together, push
     pairs of different classes apart until they are `margin` away.
   - InfoNCE / NT-Xent (van den Oord et al. 2018, CPC; Chen et al. 2020, SimCLR Eq. 1): a softmax over
     cosine similarities that picks the positive out of N candidates. Since I(x; y) >= log N - L_InfoNCE,
     minimising it maximises a lower bound on the mutual information between two views.

2. Classification losses with a margin: a softmax over the classes whose logit for the true class is made
   harder to win, so classes end up separated by an angle, not just by a decision boundary.
   - L-Softmax (Liu et al. 2016): the true class's cos(theta) becomes psi(theta) = (-1)^k cos(m theta) - 2k.
   - SphereFace / A-Softmax (Liu et al. 2017): the same psi with unit-norm class weights.
   - CosFace (Wang et al. 2018): s (cos(theta) - m), weights and embeddings on the unit sphere.
   - ArcFace (Deng et al. 2019): s cos(theta + m), the margin added to the angle itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shared.conv_blocks import pooling_conv_stack

IMAGE_SIZE = 28
NUM_CLASSES = 10


# ---------------------------------------------------------------------------------------------
# Pair losses
# ---------------------------------------------------------------------------------------------


def all_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every ordered pair (i, j), i != j, of a batch: (first, second, same_label) index and mask tensors (P,)."""
    same = labels[:, None] == labels[None, :]  # (B, B)
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    first, second = torch.nonzero(off_diagonal, as_tuple=True)
    return first, second, same[first, second]


class ContrastiveLoss(nn.Module):
    """Contrastive loss on all pairs of a batch, in one of two forms (`squared` picks):

    - squared=True, Hadsell et al. (2006) Eq. 4 with y = 1 for a same-class pair:
          L = 1/(2P) sum_pairs [ y d^2 + (1 - y) max(margin - d, 0)^2 ]
      over the P ordered pairs; positive pairs are pulled together however close they already are.
    - squared=False, pytorch-metric-learning's form: plain hinges on the distance,
          L = mean_nonzero[ max(d - positive_margin, 0) over positives ] + mean_nonzero[ max(margin - d, 0) over negatives ]
      where each mean runs over the pairs whose hinge is still active (above zero), so the loss does not
      fade as more pairs are satisfied.

    `normalize_embeddings` measures distances between unit vectors (pytorch-metric-learning's default), so
    the margin is on a fixed scale: two unit vectors are at most 2 apart."""

    def __init__(
        self, margin: float = 1.0, positive_margin: float = 0.0, squared: bool = True, normalize_embeddings: bool = True
    ):
        super().__init__()
        check_nonnegative("The contrastive margin", margin)
        check_nonnegative("The positive margin", positive_margin)
        if squared and positive_margin != 0:
            raise ValueError("Hadsell et al.'s squared form has no positive margin; set positive_margin=0.")
        self.margin, self.positive_margin = margin, positive_margin
        self.squared, self.normalize_embeddings = squared, normalize_embeddings

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.normalize_embeddings:
            embeddings = F.normalize(embeddings, dim=1)  # (B, D)
        first, second, same = all_pairs(labels)  # (P,) each
        distance = torch.cdist(embeddings, embeddings)[first, second]  # (P,) Euclidean distance of each pair
        if self.squared:
            positive_term = same * distance**2
            negative_term = ~same * F.relu(self.margin - distance) ** 2
            return (positive_term + negative_term).sum() / (2 * len(distance))
        positive_hinge = F.relu(distance[same] - self.positive_margin)
        negative_hinge = F.relu(self.margin - distance[~same])
        return mean_of_nonzero(positive_hinge, embeddings) + mean_of_nonzero(negative_hinge, embeddings)


def mean_of_nonzero(losses: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of the terms above zero; zero (still attached to the graph) when none is."""
    active = losses[losses > 0]
    return active.mean() if len(active) else (embeddings * 0).sum()


class InfoNCELoss(nn.Module):
    """InfoNCE in SimCLR's form, NT-Xent (normalised temperature-scaled cross entropy), SimCLR Eq. 1:

        l(i, p) = -log [ exp(sim(z_i, z_p) / tau) / ( exp(sim(z_i, z_p) / tau) + sum_{n: y_n != y_i} exp(sim(z_i, z_n) / tau) ) ]

    averaged over every positive pair (i, p): two samples with the same label. In SimCLR the "label" is the
    index of the source image, so the positives are the two augmented views of one image and every other
    image's views are negatives. sim is the cosine similarity; tau the temperature. With N candidates per
    anchor (one positive and N - 1 negatives), log N - L is a lower bound on the mutual information between
    the two views (van den Oord et al. 2018, Eq. 10 and Appendix)."""

    def __init__(self, temperature: float = 0.5):
        super().__init__()
        if temperature is None or not temperature > 0:
            raise ValueError(f"The temperature must be above 0; got {temperature}.")
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(embeddings, dim=1)  # (B, D)
        logits = unit @ unit.T / self.temperature  # (B, B) cosine similarities over tau
        first, second, same = all_pairs(labels)
        anchor, positive = first[same], second[same]  # (Q,) the positive pairs
        different = labels[:, None] != labels[None, :]  # (B, B)
        # (B,) log of the sum over each anchor's negatives (the dtype's lowest number, not -inf, keeps an anchor
        # without negatives finite: its loss is then 0)
        negatives = torch.logsumexp(logits.masked_fill(~different, torch.finfo(logits.dtype).min), dim=1)
        positive_logit = logits[anchor, positive]  # (Q,)
        # -log softmax of the positive among {positive} U negatives of its anchor
        return (torch.logaddexp(positive_logit, negatives[anchor]) - positive_logit).mean()


# ---------------------------------------------------------------------------------------------
# Classification losses with a margin
# ---------------------------------------------------------------------------------------------


class SoftmaxLoss(nn.Module):
    """Plain softmax cross entropy on logits W x (no bias), the baseline of the margin losses: it only asks
    the true class to win, with no margin. Equals L-Softmax with m = 1.

    `weight` is (num_classes, embedding_size), as in nn.Linear; pytorch-metric-learning stores the transpose."""

    def __init__(self, num_classes: int, embedding_size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_size))

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, C) class scores without any margin (what inference uses)."""
        return embeddings @ self.weight.T

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(embeddings), labels)


class AngularMarginLoss(SoftmaxLoss):
    """The shared skeleton of the margin losses: cosines between embeddings and class weights, the true class's
    cosine replaced by `target_logit(cos)`, then a per-sample scale, then softmax cross entropy. Subclasses
    choose the margin function and the scale."""

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(embeddings, dim=1) @ F.normalize(self.weight, dim=1).T  # (B, C) cos(theta_j)

    def scale(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, D) -> the factor (B, C) or scalar that multiplies the cosines into logits; each margin loss
        (L-Softmax, SphereFace, CosFace, ArcFace) defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define scale")

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        """(B,) cos(theta_y) of the true class -> (B,) its value with the margin applied; each margin loss
        defines it."""
        raise NotImplementedError(f"{type(self).__name__} must define target_logit")

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.cosines(embeddings) * self.scale(embeddings)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = self.cosines(embeddings)  # (B, C)
        rows = torch.arange(len(labels), device=labels.device)
        with_margin = cosine.index_put((rows, labels), self.target_logit(cosine[rows, labels]))  # (B, C)
        return F.cross_entropy(with_margin * self.scale(embeddings), labels)


def multiple_angle_cosine(cosine: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) as a polynomial in cos(theta) (L-Softmax Eq. 7), so no arccos sits in the gradient:
    cos(m theta) = sum_n (-1)^n C(m, 2n) cos^(m-2n)(theta) (1 - cos^2(theta))^n, n = 0 .. floor(m/2)."""
    return sum(
        (-1) ** n * math.comb(m, 2 * n) * cosine ** (m - 2 * n) * (1 - cosine**2) ** n for n in range(m // 2 + 1)
    )


def psi(cosine: torch.Tensor, m: int) -> torch.Tensor:
    """L-Softmax Eq. 6: psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m], k = 0 .. m-1.
    It equals cos(m theta) near theta = 0 and keeps decreasing monotonically all the way to theta = pi."""
    with torch.no_grad():
        theta = torch.acos(cosine.clamp(-1, 1))
        k = torch.floor(theta / (math.pi / m))  # which of the m pieces theta falls in
    return (-1) ** k * multiple_angle_cosine(cosine, m) - 2 * k


def check_integer_margin(margin) -> int:
    if isinstance(margin, bool) or margin is None or not float(margin).is_integer() or not 1 <= margin <= 10:
        raise ValueError(
            f"The L-Softmax / SphereFace margin m multiplies the angle and must be a whole number from 1 to 10 "
            f"(1 = no margin, 4 in the papers); got {margin}."
        )
    return int(margin)


def check_scale(scale) -> float:
    if scale is None or not 0 < scale <= 1000:
        raise ValueError(f"The scale s multiplies the cosines and must be above 0 (at most 1000); got {scale}.")
    return float(scale)


def check_nonnegative(name: str, value) -> None:
    if value is None or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a number of at least 0; got {value}.")


class LargeMarginSoftmaxLoss(AngularMarginLoss):
    """L-Softmax (Liu et al. 2016, Eq. 5): the true class's logit |W_y| |x| cos(theta_y) becomes
    |W_y| |x| psi(theta_y) with psi from Eq. 6, an integer margin m >= 1. The class weights keep their norms."""

    def __init__(self, num_classes: int, embedding_size: int, margin: int = 4):
        super().__init__(num_classes, embedding_size)
        self.margin = check_integer_margin(margin)

    def scale(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.norm(dim=1, keepdim=True) * self.weight.norm(dim=1)  # (B, C) |x| |W_j|

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        return psi(cosine, self.margin)


class SphereFaceLoss(LargeMarginSoftmaxLoss):
    """SphereFace, A-Softmax (Liu et al. 2017, Eq. 7): L-Softmax with unit-norm class weights, so the decision
    depends only on angles: logit_j = s |x| cos(theta_j), and s |x| psi(theta_y) for the true class.
    The paper has no s (s = 1); pytorch-metric-learning adds it."""

    def __init__(self, num_classes: int, embedding_size: int, margin: int = 4, scale: float = 1.0):
        super().__init__(num_classes, embedding_size, margin)
        self.scale_factor = check_scale(scale)

    def scale(self, embeddings: torch.Tensor) -> torch.Tensor:
        return embeddings.norm(dim=1, keepdim=True) * self.scale_factor  # (B, 1)


class CosFaceLoss(AngularMarginLoss):
    """CosFace, large-margin cosine loss (Wang et al. 2018, Eq. 4): embeddings and class weights on the unit
    sphere, logit_j = s cos(theta_j), and s (cos(theta_y) - m) for the true class: an additive cosine margin."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 0.35, scale: float = 64.0):
        super().__init__(num_classes, embedding_size)
        if margin is None or not 0 <= margin <= 1:
            raise ValueError(
                f"The CosFace margin is subtracted from a cosine; use 0 to 1 (0.35 in the paper); got {margin}."
            )
        self.margin, self.scale_factor = float(margin), check_scale(scale)

    def scale(self, embeddings: torch.Tensor) -> float:
        return self.scale_factor

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        return cosine - self.margin


class ArcFaceLoss(AngularMarginLoss):
    """ArcFace, additive angular margin (Deng et al. 2019, Eq. 3): logit_y = s cos(theta_y + m), m in radians.

    Past theta = pi - m, cos(theta + m) would rise again and reward a worse angle, so there the target is
    continued as cos(theta) - m sin(m), which keeps decreasing (the paper's implementation; PML does the same)."""

    def __init__(self, num_classes: int, embedding_size: int, margin: float = 0.5, scale: float = 64.0):
        super().__init__(num_classes, embedding_size)
        if margin is None or not 0 <= margin < math.pi / 2:
            raise ValueError(
                f"The ArcFace margin is an angle in radians from 0 to below pi/2 = {math.pi / 2:.4f} (0.5 in the "
                f"paper, about 28.6 degrees); got {margin}."
            )
        self.margin, self.scale_factor = float(margin), check_scale(scale)

    def scale(self, embeddings: torch.Tensor) -> float:
        return self.scale_factor

    def target_logit(self, cosine: torch.Tensor) -> torch.Tensor:
        theta = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))  # clamp: d arccos / d cos is infinite at +-1
        return torch.where(
            theta <= math.pi - self.margin, torch.cos(theta + self.margin), cosine - self.margin * math.sin(self.margin)
        )


# ---------------------------------------------------------------------------------------------
# The embedding network and the model a checkpoint holds
# ---------------------------------------------------------------------------------------------

LOSSES = {
    "softmax": SoftmaxLoss,
    "l-softmax": LargeMarginSoftmaxLoss,
    "sphereface": SphereFaceLoss,
    "cosface": CosFaceLoss,
    "arcface": ArcFaceLoss,
}


@dataclass
class MetricConfig:
    """The shape of a checkpoint: the CNN, the embedding size and, for a classification loss, its head."""

    channels: tuple[int, ...] = (16, 32, 32)  # one conv block per entry; each halves the resolution
    hidden_size: int = 128  # the representation before the last linear layer
    embedding_size: int = 3
    loss: str = "arcface"  # a key of LOSSES, or "contrastive" / "simclr" (no class weights)
    margin: float = 0.5
    scale: float = 16.0
    temperature: float = 0.5  # SimCLR's NT-Xent
    projection_size: int = 0  # SimCLR: the projection head's output size (0: no projection head)


class EmbeddingNet(nn.Module):
    """(conv-BatchNorm-ReLU-maxpool) x 3 (28 -> 14 -> 7 -> 3 pixels) -> linear -> ReLU -> linear to the embedding."""

    def __init__(self, config: MetricConfig):
        super().__init__()
        self.convolutions = pooling_conv_stack(config.channels)
        side = IMAGE_SIZE // 2 ** len(config.channels)
        self.hidden = nn.Linear(config.channels[-1] * side * side, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.embedding_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, embedding_size)."""
        return self.output(F.relu(self.hidden(self.convolutions(images).flatten(1))))


def make_loss(config: MetricConfig, num_classes: int = NUM_CLASSES) -> nn.Module:
    """The loss module a config names, with its hyperparameters."""
    if config.loss == "contrastive":
        return ContrastiveLoss(margin=config.margin)
    if config.loss == "simclr":
        return InfoNCELoss(temperature=config.temperature)
    if config.loss not in LOSSES:
        raise ValueError(f"Unknown loss {config.loss!r}; choose one of {', '.join(LOSSES)}, contrastive, simclr.")
    if config.loss == "softmax":
        return SoftmaxLoss(num_classes, config.embedding_size)
    if config.loss == "l-softmax":
        return LargeMarginSoftmaxLoss(num_classes, config.embedding_size, int(config.margin))
    if config.loss == "sphereface":
        return SphereFaceLoss(num_classes, config.embedding_size, int(config.margin), config.scale)
    return LOSSES[config.loss](num_classes, config.embedding_size, config.margin, config.scale)


class MetricModel(nn.Module):
    """What a checkpoint holds: the embedding network, and the loss with its class weights (classification
    losses), or SimCLR's projection head g(h) (a 2-layer MLP, SimCLR Section 2.1)."""

    def __init__(self, config: MetricConfig):
        super().__init__()
        self.config = config
        self.embedder = EmbeddingNet(config)
        self.loss = make_loss(config)
        self.projection = (
            nn.Sequential(
                nn.Linear(config.embedding_size, config.embedding_size),
                nn.ReLU(),
                nn.Linear(config.embedding_size, config.projection_size),
            )
            if config.projection_size
            else None
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, embedding_size)."""
        return self.embedder(images)

    def training_loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self.embedder(images)
        if self.projection is not None:
            embeddings = self.projection(embeddings)
        return self.loss(embeddings, labels)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B,) the class whose weights score highest (classification losses only)."""
        return self.loss.logits(self.embedder(images)).argmax(dim=1)


# ---------------------------------------------------------------------------------------------
# SimCLR augmentations for digits
# ---------------------------------------------------------------------------------------------


def simclr_augment(
    images: torch.Tensor,
    max_degrees: float = 20.0,
    scale_range: tuple[float, float] = (0.75, 1.15),
    max_shift: float = 3.0,
    elastic_strength: float = 1.5,
    noise: float = 0.1,
) -> torch.Tensor:
    """(B, 1, 28, 28) in [0, 1] -> one random view of each digit. SimCLR (Section 3) finds the composition of
    augmentations matters most; for digits, colour jitter means nothing and flips change the class, so a view is
    a random crop-and-resize (zoom), rotation and translation, a smooth elastic warp (Simard et al. 2003), then
    pixel noise. One grid_sample applies all the geometry at once."""
    count = len(images)
    device = images.device
    angle = (torch.rand(count, device=device) * 2 - 1) * math.radians(max_degrees)  # (B,)
    low, high = scale_range
    zoom = low + torch.rand(count, device=device) * (high - low)  # > 1 shows a smaller region: a crop, enlarged
    shift = (torch.rand(count, 2, device=device) * 2 - 1) * max_shift * 2 / IMAGE_SIZE  # (B, 2) in half-widths
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], dim=1), torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, 28, 28, 2)
    # elastic: a random 4 x 4 field of displacements, smoothly upsampled, `elastic_strength` pixels at most
    coarse = (torch.rand(count, 2, 4, 4, device=device) * 2 - 1) * elastic_strength * 2 / IMAGE_SIZE
    grid = grid + F.interpolate(coarse, size=images.shape[-2:], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    views = F.grid_sample(images, grid, align_corners=False)
    return (views + noise * torch.randn_like(views)).clamp(0, 1)
