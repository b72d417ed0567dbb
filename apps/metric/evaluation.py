"""How good is an embedding? Classification accuracy, face-recognition-style verification on pairs (ROC AUC and
the true-accept rate at a fixed false-accept rate), k-nearest neighbours and a linear probe."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from apps.metric.model import MetricModel


def pixels(images: np.ndarray) -> torch.Tensor:
    """(N, 28, 28) uint8 -> (N, 1, 28, 28) float in [0, 1]."""
    return torch.from_numpy(np.asarray(images, dtype=np.float32) / 255)[:, None]


@torch.no_grad()
def embed(network: torch.nn.Module, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, D) embeddings, in eval mode."""
    network.eval()
    return torch.cat([network(chunk) for chunk in pixels(images).split(batch_size)]).numpy()


@torch.no_grad()
def held_out_accuracy(model: MetricModel, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    predictions = torch.cat([model.predict(chunk) for chunk in pixels(images).split(500)]).numpy()
    return float((predictions == labels).mean())


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> each row divided by its length, so dot products are cosine similarities."""
    return vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)


def verification(embeddings: np.ndarray, labels: np.ndarray, false_accept_rate: float = 0.01) -> dict[str, float]:
    """Every pair of distinct samples, scored by cosine similarity; "same digit" is the genuine class.

    ROC AUC: the chance that a random genuine pair scores above a random impostor pair. TAR at FAR 1%: with the
    threshold that accepts 1% of impostor pairs, the fraction of genuine pairs accepted (face verification's
    headline number)."""
    unit = F.normalize(torch.from_numpy(embeddings).double(), dim=1)
    similarity = (unit @ unit.T).numpy()
    first, second = np.triu_indices(len(labels), k=1)
    scores, genuine = similarity[first, second], labels[first] == labels[second]
    impostor_scores = np.sort(scores[~genuine])
    threshold = impostor_scores[int(np.ceil((1 - false_accept_rate) * len(impostor_scores))) - 1]
    # ROC AUC through ranks (Mann-Whitney U), with ties counted half
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives, negatives = genuine.sum(), (~genuine).sum()
    auc = (ranks[genuine].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    return {
        "roc_auc": float(auc),
        "tar_at_far": float((scores[genuine] > threshold).mean()),
        "threshold": float(threshold),
    }


def pair_distances(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances between the unit-normalised embeddings of every same-digit and different-digit pair."""
    unit = F.normalize(torch.from_numpy(embeddings).double(), dim=1)
    distance = torch.cdist(unit, unit).numpy()
    first, second = np.triu_indices(len(labels), k=1)
    same = labels[first] == labels[second]
    values = distance[first, second]
    return values[same], values[~same]


def knn_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray, k: int = 5
) -> float:
    """k nearest neighbours by cosine similarity, majority vote (ties: the nearest neighbour's class among them)."""
    train = F.normalize(torch.from_numpy(train_features).float(), dim=1)
    test = F.normalize(torch.from_numpy(test_features).float(), dim=1)
    k = min(k, len(train))
    nearest = (test @ train.T).topk(k, dim=1).indices.numpy()  # (T, k), nearest first
    votes = train_labels[nearest]  # (T, k)
    counts = np.stack([(votes == c).sum(1) for c in range(10)], axis=1)  # (T, 10)
    # the most votes wins; a tie goes to the class that appears first (nearest) among the neighbours
    first_seen = np.stack([np.where((votes == c).any(1), (votes == c).argmax(1), k) for c in range(10)], axis=1)
    predictions = (counts * (k + 1) - first_seen).argmax(1)
    return float((predictions == test_labels).mean())


def linear_probe_accuracy(
    train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray, test_labels: np.ndarray
) -> float:
    """A multinomial logistic regression on frozen, standardised features (SimCLR's linear evaluation protocol)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    probe.fit(train_features, train_labels)
    return float(probe.score(test_features, test_labels))


def labelled_subset(labels: np.ndarray, per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of `per_class` training examples of each digit (all when None), a fixed random choice."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(10)]))
