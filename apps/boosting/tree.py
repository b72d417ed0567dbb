"""Decision trees from scratch (NumPy): the array layout every tree of this topic uses, and CART.

A fitted tree is a handful of parallel arrays, one entry per node (the layout scikit-learn's
`tree_` uses): node i is a leaf when `left[i] == -1`; otherwise a sample goes to `left[i]` when
`x[feature[i]] <= threshold[i]` and to `right[i]` otherwise. A missing value (NaN) goes left when
`missing_left[i]`, which CART never learns (it refuses NaN) and the histogram booster learns per
split. Prediction walks all samples down the tree one level at a time, vectorised.

CART (Breiman et al. 1984, "Classification and Regression Trees"): grow depth-first; at each node
try every feature and every threshold between two consecutive distinct sorted values, keep the split
that lowers the weighted impurity the most (Gini or entropy for classes, squared error for numbers),
and stop at `max_depth`, `min_samples_split`, `min_samples_leaf` or a pure node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tree:
    """Parallel node arrays. `value[i]` is the prediction of node i: class probabilities (K,) for a
    classifier, a 1-vector for regression or a boosting leaf. `impurity` / `gain` describe the node
    and its split (0 for leaves); `weight` is the summed sample weight (CART) or hessian (boosting)."""

    feature: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    threshold: np.ndarray = field(default_factory=lambda: np.zeros(0))
    left: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    right: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    missing_left: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    value: np.ndarray = field(default_factory=lambda: np.zeros((0, 1)))
    impurity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0))
    n_samples: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def node_count(self) -> int:
        return len(self.feature)

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left == -1

    def depth(self) -> int:
        depths = np.zeros(self.node_count, dtype=np.int64)
        for node in range(self.node_count):  # children are always stored after their parent
            if self.left[node] != -1:
                depths[self.left[node]] = depths[self.right[node]] = depths[node] + 1
        return int(depths.max()) if self.node_count else 0

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row of X (n, d) ends in."""
        node = np.zeros(len(X), dtype=np.int64)
        rows = np.arange(len(X))
        active = ~self.is_leaf[node]
        while active.any():
            at, current = rows[active], node[active]
            values = X[at, self.feature[current]]
            go_left = np.where(np.isnan(values), self.missing_left[current], values <= self.threshold[current])
            node[at] = np.where(go_left, self.left[current], self.right[current])
            active[at] = ~self.is_leaf[node[at]]
        return node

    def predict_value(self, X: np.ndarray) -> np.ndarray:
        """value of the leaf of each row: (n, K)."""
        return self.value[self.apply(X)]

    def feature_gains(self, n_features: int) -> np.ndarray:
        """Summed split gain per feature (the 'gain' importance, unnormalised)."""
        internal = ~self.is_leaf
        return np.bincount(self.feature[internal], weights=self.gain[internal], minlength=n_features)

    def split_counts(self, n_features: int) -> np.ndarray:
        """How many splits use each feature (the 'split' / 'weight' importance)."""
        return np.bincount(self.feature[~self.is_leaf], minlength=n_features)


class TreeBuilder:
    """Collects nodes while a tree grows, then freezes them into a `Tree`."""

    def __init__(self):
        self.nodes: list[dict] = []

    def add(self, value: np.ndarray, impurity: float, weight: float, n_samples: int) -> int:
        self.nodes.append(
            dict(
                feature=-2,
                threshold=-2.0,
                left=-1,
                right=-1,
                missing_left=False,
                value=np.atleast_1d(value).astype(float),
                impurity=impurity,
                gain=0.0,
                weight=weight,
                n_samples=n_samples,
            )
        )
        return len(self.nodes) - 1

    def split(
        self, node: int, feature: int, threshold: float, left: int, right: int, gain: float, missing_left: bool = False
    ) -> None:
        self.nodes[node].update(
            feature=feature, threshold=threshold, left=left, right=right, gain=gain, missing_left=missing_left
        )

    def build(self) -> Tree:
        column = lambda name, dtype=float: np.array([node[name] for node in self.nodes], dtype=dtype)  # noqa: E731
        return Tree(
            feature=column("feature", np.int64),
            threshold=column("threshold"),
            left=column("left", np.int64),
            right=column("right", np.int64),
            missing_left=column("missing_left", bool),
            value=np.stack([node["value"] for node in self.nodes]),
            impurity=column("impurity"),
            gain=column("gain"),
            weight=column("weight"),
            n_samples=column("n_samples", np.int64),
        )


# ---------------------------------------------------------------------------------------------
# CART: exact greedy splits on sorted feature values
# ---------------------------------------------------------------------------------------------

FEATURE_THRESHOLD = 1e-7  # two values closer than this are one value (as scikit-learn)
CRITERIA = ("gini", "entropy", "squared_error")


def node_impurity(statistics: np.ndarray, criterion: str) -> np.ndarray:
    """Impurity from summed statistics (..., m).

    Classification: statistics are weighted class counts c_k (W = sum c_k, p_k = c_k / W):
    Gini 1 - sum p_k^2, entropy -sum p_k log2 p_k. Regression: statistics are (W, sum w*y,
    sum w*y^2), the impurity is the weighted variance sum w*y^2 / W - (sum w*y / W)^2."""
    if criterion == "squared_error":
        weight = statistics[..., 0]
        mean = statistics[..., 1] / weight
        return statistics[..., 2] / weight - mean**2
    weight = statistics.sum(-1, keepdims=True)
    p = statistics / weight
    if criterion == "gini":
        return 1 - (p**2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(p > 0, p * np.log2(p), 0.0).sum(-1)


def node_weight(statistics: np.ndarray, criterion: str) -> np.ndarray:
    return statistics[..., 0] if criterion == "squared_error" else statistics.sum(-1)


def node_value(statistics: np.ndarray, criterion: str) -> np.ndarray:
    """What a node predicts: class probabilities, or the weighted mean."""
    if criterion == "squared_error":
        return np.array([statistics[1] / statistics[0]])
    return statistics / statistics.sum()


def best_split(
    X: np.ndarray,
    statistics: np.ndarray,
    sorted_rows: np.ndarray,
    features: np.ndarray,
    criterion: str,
    min_samples_leaf: int,
):
    """The split of one node that lowers W * impurity the most: (gain, feature, threshold) or None.

    `sorted_rows` (f, k) lists the node's rows in increasing order of each candidate feature, so
    every threshold between two consecutive distinct values of every feature is scored at once, from
    cumulative sums of the statistics: the rows before position p go left, the others right.
    Ties go to the first candidate feature, then the lowest threshold."""
    k = sorted_rows.shape[1]
    values = X[sorted_rows, features[:, None]]  # (f, k), increasing along each row
    left = np.cumsum(statistics[sorted_rows], axis=1)[:, :-1]  # (f, k - 1, m): statistics of rows 0..p-1
    total = left[0, -1] + statistics[sorted_rows[0, -1]]
    right = total - left
    position = np.arange(1, k)
    valid = (
        (values[:, 1:] > values[:, :-1] + FEATURE_THRESHOLD)
        & (position >= min_samples_leaf)
        & (k - position >= min_samples_leaf)
    )
    if not valid.any():
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        if criterion == "squared_error":
            # W * variance falls by S_l^2 / W_l + S_r^2 / W_r - S^2 / W (S = sum of w*y): no sum of
            # squares, so no cancellation between large numbers.
            decrease = left[..., 1] ** 2 / left[..., 0] + right[..., 1] ** 2 / right[..., 0] - total[1] ** 2 / total[0]
        else:
            parent = node_weight(total, criterion) * node_impurity(total, criterion)
            decrease = (
                parent
                - node_weight(left, criterion) * node_impurity(left, criterion)
                - node_weight(right, criterion) * node_impurity(right, criterion)
            )
    gain = np.where(valid, decrease, -np.inf)
    candidate, p = np.unravel_index(np.argmax(gain), gain.shape)
    if gain[candidate, p] <= 0:
        return None
    threshold = (values[candidate, p] + values[candidate, p + 1]) / 2
    if threshold == values[candidate, p + 1] or np.isinf(threshold):
        threshold = values[candidate, p]
    return float(gain[candidate, p]), int(features[candidate]), float(threshold)


def presort(X: np.ndarray) -> np.ndarray:
    """(d, n): the rows of X in increasing order of each feature (stable: equal values keep row order)."""
    return np.argsort(X, axis=0, kind="stable").T.copy()


def sorted_subset(sorted_rows: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The rows where `keep` (a mask over all rows) is True, still in each feature's order."""
    return sorted_rows[keep[sorted_rows]].reshape(len(sorted_rows), -1)


def grow_cart(
    X: np.ndarray,
    statistics: np.ndarray,
    criterion: str,
    max_depth: int | None,
    min_samples_split: int,
    min_samples_leaf: int,
    max_features: int,
    rng: np.random.Generator,
    sorted_rows: np.ndarray | None = None,
) -> Tree:
    """Grow a CART tree depth-first (left child first) from per-sample statistics (n, m): weighted
    one-hot classes for classification, (w, w*y, w*y^2) for regression. At each node `max_features`
    features are drawn without replacement (all of them for a plain tree; fewer in a random forest).
    Rows with zero weight (out of a bootstrap) are left out, as if they were not there (as scikit-learn
    does): they neither count as samples nor place thresholds.

    Every feature is sorted once, at the root; a split then keeps each child's rows in sorted order
    by filtering the parent's lists, so no node sorts again. An ensemble that grows many trees on the
    same X sorts it once and passes `sorted_rows` (`presort(X)`, or its `sorted_subset` for a sample
    of the rows: the tree is then grown on those rows only)."""
    builder = TreeBuilder()
    n_samples, n_features = X.shape
    depth_limit = np.inf if max_depth is None else max_depth
    goes_left = np.zeros(n_samples, dtype=bool)

    def grow(sorted_rows: np.ndarray, depth: int) -> int:  # sorted_rows: (d, k) for the node's k rows
        rows = sorted_rows[0]
        total = statistics[rows].sum(0)
        impurity = float(node_impurity(total, criterion))
        node = builder.add(node_value(total, criterion), impurity, float(node_weight(total, criterion)), len(rows))
        if (
            depth >= depth_limit
            or len(rows) < min_samples_split
            or len(rows) < 2 * min_samples_leaf
            or impurity <= 1e-12
        ):
            return node
        features = (
            np.sort(rng.permutation(n_features)[:max_features]) if max_features < n_features else np.arange(n_features)
        )
        split = best_split(X, statistics, sorted_rows[features], features, criterion, min_samples_leaf)
        if split is None:
            return node
        gain, feature, threshold = split
        goes_left[rows] = X[rows, feature] <= threshold
        in_left = goes_left[sorted_rows]  # (d, k), the same count of True in every row
        left_rows = sorted_rows[in_left].reshape(n_features, -1)
        right_rows = sorted_rows[~in_left].reshape(n_features, -1)
        left = grow(left_rows, depth + 1)
        right = grow(right_rows, depth + 1)
        builder.split(node, feature, threshold, left, right, gain)
        return node

    sorted_rows = presort(X) if sorted_rows is None else sorted_rows
    weighted = node_weight(statistics, criterion) > 0
    if not weighted.all():
        sorted_rows = sorted_subset(sorted_rows, weighted)
    grow(sorted_rows, 0)
    return builder.build()
