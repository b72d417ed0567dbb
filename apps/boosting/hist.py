"""Histogram gradient boosting from scratch (NumPy), the way XGBoost's `tree_method="hist"` works.

Gradient boosting builds an additive model F(x) = base_score + f_1(x) + f_2(x) + ... one tree per round.
XGBoost (Chen & Guestrin 2016, "XGBoost: A Scalable Tree Boosting System") fits each new tree to a
second-order Taylor expansion of the loss around the current predictions: row i brings its gradient
g_i = dL/dF and hessian h_i = d2L/dF2, and a leaf holding the rows I, with G = sum g_i and H = sum h_i,
gets the weight and reaches the objective (eqs. 5 and 6 of the paper)

    w* = -G / (H + lambda)          obj = -1/2 * G^2 / (H + lambda) + gamma    (per leaf).

So splitting a node into a left part L and a right part R lowers the objective by (eq. 7)

    gain = 1/2 * (G_L^2 / (H_L + lambda) + G_R^2 / (H_R + lambda) - G^2 / (H + lambda)) - gamma.

XGBoost's code scores a candidate by its "loss change", the bracket of eq. 7 without the 1/2 and without
gamma (the `gain` its tree dumps report), and makes the best split of a node when its loss change is at
least gamma (`min_split_loss`) and above 1e-6; so gamma weighs twice what eq. 7 says. We do the same,
and like XGBoost's hist grower we apply gamma when the split is chosen: a node whose best split falls
short stays a leaf. (XGBoost's exact grower instead grows first and then prunes, bottom-up, every split
whose children are leaves and whose loss change is below gamma, so a weak split can survive there when
the splits below it are strong; its hist grower, which this module follows, never makes the weak one.)

Trying every threshold of every feature needs the rows sorted at every node. The histogram method bins
each feature once per fit instead, into at most `max_bins - 1` quantile bins plus one bin for missing
values (NaN). A node then only adds up the g and h of its rows per bin; the candidate thresholds are the
bin edges, and G_L, H_L for all of them are one cumulative sum over the bins. What keeps it fast:
  * the data is stored as one byte per value (its bin number), feature after feature;
  * a whole level of the tree is counted at once, one pass per feature over (node, bin) indices, with
    g and h travelling together as one complex number g + ih;
  * histogram subtraction: a parent's histogram is the sum of its children's, so only the smaller child
    is counted, and its sibling is parent minus child.
Each split tries sending the missing bin left and right and keeps the better: the learned default
direction of XGBoost's sparsity-aware split finding (Algorithm 3). Trees grow level by level to
`max_depth` (XGBoost's default "depthwise" policy), and each leaf stores its weight times
`learning_rate` (shrinkage, section 2.3), so a fitted tree predicts by itself on raw feature values.

Losses: squared error (regression), logistic loss (binary), softmax (multiclass, one tree per class and
round, with XGBoost's hessian 2 p (1 - p)). Fitted trees are `Tree`s, the node arrays every tree of this
topic uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.model_selection import train_test_split

from apps.boosting.checks import fit_data, predict_data
from apps.boosting.tree import Tree, TreeBuilder

# ---------------------------------------------------------------------------------------------------
# Binning: once per fit, every value becomes a small integer, its bin.


def bin_edges(X: np.ndarray, max_bins: int) -> list[np.ndarray]:
    """Upper edges of the bins of each feature of X (n, d), from its non-missing values.

    A feature with at most `max_bins - 1` distinct values gets one bin per value (edges halfway between
    neighbours, as LightGBM and scikit-learn do); otherwise the edges are its `max_bins - 2` inner
    quantiles, fewer where quantiles coincide. Value x lands in bin `#(edges < x)`, so `x <= edges[b]`
    exactly when its bin is <= b; the last bin is open to the right.
    """
    edges = []
    for column in X.T:
        present = np.sort(column[~np.isnan(column)])
        distinct = present[np.diff(present, prepend=-np.inf) > 0]
        if len(distinct) <= max_bins - 1:
            edges.append((distinct[:-1] + distinct[1:]) / 2)
        else:  # np.quantile's linear interpolation, read off the sorted values
            quantiles = np.interp(np.linspace(0, len(present) - 1, max_bins)[1:-1], np.arange(len(present)), present)
            edges.append(np.unique(quantiles))
    return edges


def bin_data(X: np.ndarray, edges: list[np.ndarray], max_bins: int) -> np.ndarray:
    """Bin numbers of X (n, d) as uint8, stored feature-major (d, n) so each feature's bins are
    contiguous. A missing value goes to the last bin, `max_bins - 1`, for every feature."""
    binned = np.empty((X.shape[1], X.shape[0]), dtype=np.uint8)
    for feature, (column, feature_edges) in enumerate(zip(X.T, edges)):
        binned[feature] = np.where(np.isnan(column), max_bins - 1, np.searchsorted(feature_edges, column, side="left"))
    return binned


def bin_thresholds(edges: list[np.ndarray], max_bins: int) -> np.ndarray:
    """(d, max_bins - 1): the real threshold of the split "bin <= b", the upper edge of bin b. A
    feature's last bin has no upper edge: +inf, the split that sends every present value left."""
    thresholds = np.full((len(edges), max_bins - 1), np.inf)
    for feature, feature_edges in enumerate(edges):
        thresholds[feature, : len(feature_edges)] = feature_edges
    return thresholds


# ---------------------------------------------------------------------------------------------------
# Histograms and split finding. A bin holds its two sums as one complex number G + iH: complex addition
# adds the real parts (gradients) and the imaginary parts (hessians) separately, so one pass over the
# rows builds both histograms.


def histograms(binned: np.ndarray, gradients: np.ndarray, node: np.ndarray, n_nodes: int, n_bins: int) -> np.ndarray:
    """G + iH per (node, feature, bin): complex (n_nodes, d, n_bins).

    `binned` (d, m) holds the bins of m rows, `gradients` (m,) their g + ih and `node` (m,) their node,
    in [0, n_nodes). A row adds into index node * n_bins + bin of each feature's histogram, so one
    np.add.at per feature covers every node of the level.
    """
    offset = node * n_bins
    hist = np.zeros((len(binned), n_nodes * n_bins), dtype=complex)
    index = np.empty(len(gradients), dtype=np.intp)  # one buffer, reused by every feature
    for feature, bins in enumerate(binned):
        np.add(offset, bins, out=index)
        np.add.at(hist[feature], index, gradients)
    return hist.reshape(len(binned), n_nodes, n_bins).transpose(1, 0, 2)


MIN_LOSS_CHANGE = 1e-6  # XGBoost's kRtEps: a split must change the loss by more than this


@dataclass
class Split:
    """The best split of a node."""

    gain: float  # XGBoost's loss change: eq. 7 without the 1/2 and gamma; -inf when no split is valid
    feature: int  # row of `binned` (column of the histograms)
    bin: int  # present values with bin <= this go left
    missing_left: bool  # the default direction of missing values
    left: complex  # G_L + iH_L
    right: complex  # G_R + iH_R

    def worth_making(self, gamma: float) -> bool:
        """XGBoost's test: a loss change of at least gamma, and above MIN_LOSS_CHANGE."""
        return self.gain > MIN_LOSS_CHANGE and self.gain >= gamma


def best_split(hist: np.ndarray, reg_lambda: float, min_child_weight: float) -> Split:
    """The best split of a node, from its histograms (d, bins), the missing bin last.

    The candidate "bin <= b" has G_L + iH_L = the cumulative sum over the present bins up to b; the
    missing bin then joins the right child or the left one (Algorithm 3), whichever gains more. A split
    is valid when both children have hessian sums >= min_child_weight, and more than nothing.
    """
    present, missing = hist[:, :-1], hist[:, -1:]
    cumulative = np.cumsum(present, axis=1)
    total = cumulative[:, -1:] + missing  # G + iH of the node (per feature: equal up to rounding)
    # axis 0 is where missing values go: right, or left; a node without missing values needs only one
    left = np.stack([cumulative, cumulative + missing]) if missing.any() else cumulative[None]
    right = total - left
    score = lambda sums: sums.real**2 / (sums.imag + reg_lambda)  # noqa: E731  (-2 x the objective of a leaf, eq. 6)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty child with reg_lambda = 0; masked below
        children_score = score(left) + score(right)  # the part of eq. 7 that depends on the split
    children_score[np.minimum(left.imag, right.imag) < max(min_child_weight, np.finfo(float).tiny)] = -np.inf

    best = np.unravel_index(children_score.argmax(), children_score.shape)
    direction, feature, bin = (int(i) for i in best)
    gain = children_score[best] - score(total[feature, 0])  # the loss change: 2 x (eq. 7 + gamma)
    best_left, best_right = complex(left[best]), complex(right[best])
    # no missing value in the node: both directions tie, so send missing values where most hessian went
    missing_left = direction == 1 if missing[feature, 0].imag > 0 else best_left.imag >= best_right.imag
    return Split(float(gain), feature, bin, missing_left, best_left, best_right)


# ---------------------------------------------------------------------------------------------------
# The booster. Subclasses supply the loss: base score, gradients and hessians, and its mean value.


class _HistBoosting(BaseEstimator):
    """What the regressor and the classifier share. Parameters, with XGBoost's names and defaults:

    n_estimators: boosting rounds. learning_rate: the shrinkage of every leaf weight (eta).
    max_depth: depth of every tree. reg_lambda: L2 penalty lambda on leaf weights (eqs. 5 to 7).
    gamma: the least loss change a split needs (min_split_loss; see the module docstring).
    min_child_weight: least hessian sum a child needs. max_bins: bins per feature, the missing bin
    included (at most 256: bins are stored as bytes).
    subsample: fraction of the rows each round uses. colsample_bytree: fraction of the features each
    tree may split on. early_stopping_rounds, validation_fraction: see `fit`. random_state: seeds the
    row and column sampling and the held-out split.

    Fitted attributes: `trees_` (per round, a list of K `Tree`s: K = 1 except for K > 2 classes),
    `base_score_` (K,), `n_features_in_`, `train_loss_` and `validation_loss_` (per round; the latter
    empty without a validation set), `best_iteration_` (index of the last kept round),
    `feature_importances_` (total loss change per feature, normalised to sum 1) and `split_counts_`.
    """

    def __init__(
        self,
        n_estimators=100,
        learning_rate=0.3,
        max_depth=6,
        reg_lambda=1.0,
        gamma=0.0,
        min_child_weight=1.0,
        max_bins=256,
        subsample=1.0,
        colsample_bytree=1.0,
        early_stopping_rounds=None,
        validation_fraction=0.1,
        random_state=0,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.reg_lambda = reg_lambda
        self.gamma = gamma
        self.min_child_weight = min_child_weight
        self.max_bins = max_bins
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is a missing value, with a learned direction at every split
        return tags

    def _check_params(self) -> None:
        checks = {
            "n_estimators must be an integer >= 1": isinstance(self.n_estimators, (int, np.integer))
            and self.n_estimators >= 1,
            "learning_rate must be > 0": self.learning_rate > 0,
            "max_depth must be an integer >= 1": isinstance(self.max_depth, (int, np.integer)) and self.max_depth >= 1,
            "reg_lambda must be >= 0": self.reg_lambda >= 0,
            "gamma must be >= 0": self.gamma >= 0,
            "min_child_weight must be >= 0": self.min_child_weight >= 0,
            "max_bins must be an integer in [2, 256] (bins are stored as bytes)": isinstance(
                self.max_bins, (int, np.integer)
            )
            and 2 <= self.max_bins <= 256,
            "subsample must be in (0, 1]": 0 < self.subsample <= 1,
            "colsample_bytree must be in (0, 1]": 0 < self.colsample_bytree <= 1,
            "early_stopping_rounds must be None or an integer >= 1": self.early_stopping_rounds is None
            or (isinstance(self.early_stopping_rounds, (int, np.integer)) and self.early_stopping_rounds >= 1),
            "validation_fraction must be in (0, 1)": 0 < self.validation_fraction < 1,
        }
        for message, ok in checks.items():
            if not ok:
                raise ValueError(message)

    def fit(self, X, y, eval_set=None):
        """Boost `n_estimators` rounds on X (n, d), NaN = missing. With `early_stopping_rounds`, stop once
        the loss on `eval_set=(X_val, y_val)` (or on a held-out `validation_fraction` of X) has not
        improved for that many rounds, and keep the trees up to the best round."""
        self._check_params()
        X, y = fit_data(self, X, y, allow_nan=True, min_samples=2)
        y = self._fit_targets(y)
        if eval_set is not None:
            X_val, y_val = fit_data(self, *eval_set, allow_nan=True, reset=False)
            y_val = self._encode_targets(y_val)
        elif self.early_stopping_rounds is not None:
            stratify = y if is_classifier(self) else None
            X, X_val, y, y_val = train_test_split(
                X, y, test_size=self.validation_fraction, random_state=self.random_state, stratify=stratify
            )
        else:
            X_val = y_val = None

        edges = bin_edges(X, self.max_bins)
        binned, thresholds = bin_data(X, edges, self.max_bins), bin_thresholds(edges, self.max_bins)
        rng = np.random.default_rng(self.random_state)
        n_rows, n_features = X.shape
        self.base_score_ = self._base_score(y)
        raw = np.tile(self.base_score_, (n_rows, 1))  # F(x) of every training row, (n, K)
        raw_val = None if X_val is None else np.tile(self.base_score_, (len(X_val), 1))
        self.trees_, self.train_loss_, self.validation_loss_ = [], [], []
        for round_ in range(self.n_estimators):
            g, h = self._gradients(y, raw)  # (n, K) each
            gradients = g + 1j * h
            if self.subsample < 1:  # rows left out of this round add g = h = 0 to every histogram (as XGBoost does)
                gradients[rng.permutation(n_rows)[round(self.subsample * n_rows) :]] = 0
            round_trees = []
            for k in range(raw.shape[1]):
                if self.colsample_bytree < 1:
                    features = np.sort(
                        rng.choice(n_features, max(1, round(self.colsample_bytree * n_features)), replace=False)
                    )
                    tree, leaf_of_row = self._grow_tree(
                        binned[features], thresholds[features], features, gradients[:, k]
                    )
                else:
                    tree, leaf_of_row = self._grow_tree(binned, thresholds, np.arange(n_features), gradients[:, k])
                raw[:, k] += tree.value[leaf_of_row, 0]
                if raw_val is not None:
                    raw_val[:, k] += tree.predict_value(X_val)[:, 0]
                round_trees.append(tree)
            self.trees_.append(round_trees)
            self.train_loss_.append(self._loss(y, raw))
            if raw_val is not None:
                self.validation_loss_.append(self._loss(y_val, raw_val))
                if (
                    self.early_stopping_rounds is not None
                    and round_ - np.argmin(self.validation_loss_) >= self.early_stopping_rounds
                ):
                    break

        self.best_iteration_ = (
            int(np.argmin(self.validation_loss_)) if self.early_stopping_rounds is not None else len(self.trees_) - 1
        )
        self.trees_ = self.trees_[: self.best_iteration_ + 1]
        kept = [tree for round_trees in self.trees_ for tree in round_trees]
        total_gain = sum(tree.feature_gains(n_features) for tree in kept)
        self.feature_importances_ = total_gain / total_gain.sum() if total_gain.sum() > 0 else np.zeros(n_features)
        self.split_counts_ = sum(tree.split_counts(n_features) for tree in kept)
        return self

    def _grow_tree(
        self, binned: np.ndarray, thresholds: np.ndarray, features: np.ndarray, gradients: np.ndarray
    ) -> tuple[Tree, np.ndarray]:
        """One tree, grown level by level on `binned` (the tree's features, n) for `gradients` (n,) =
        g + ih. Returns the tree (feature numbers taken from `features`) and the leaf of every row."""
        n_features, n_rows = binned.shape
        builder = TreeBuilder()
        node_of_row = np.zeros(n_rows, dtype=np.intp)
        # the level being split: its tree nodes, the rows in them with the position in `level` of each
        # row's node, and the histograms (d, bins) of each node
        level = [self._add_node(builder, gradients.sum(), n_rows)]
        rows, position = np.arange(n_rows), np.zeros(n_rows, dtype=np.intp)
        hist = list(histograms(binned, gradients, position, 1, self.max_bins))
        for depth in range(self.max_depth):
            splits = [best_split(node_hist, self.reg_lambda, self.min_child_weight) for node_hist in hist]
            splitting = [p for p, split in enumerate(splits) if split.worth_making(self.gamma)]
            if not splitting:
                break
            parents, splits = [level[p] for p in splitting], [splits[p] for p in splitting]
            # rows of a splitting node follow its split; rows of the other nodes stay there, in a leaf
            split_of_position = np.full(len(level), -1)
            split_of_position[splitting] = np.arange(len(splitting))
            split_of_row = split_of_position[position]
            rows, split_of_row = rows[split_of_row >= 0], split_of_row[split_of_row >= 0]
            feature, bin, missing_left = (
                np.array([getattr(split, name) for split in splits]) for name in ("feature", "bin", "missing_left")
            )
            bins = binned[feature[split_of_row], rows]
            goes_left = np.where(bins == self.max_bins - 1, missing_left[split_of_row], bins <= bin[split_of_row])
            position = 2 * split_of_row + ~goes_left  # split s has children 2s (left) and 2s + 1 (right)
            child_sizes = np.bincount(position, minlength=2 * len(splits))
            level = []
            for s, (parent, split) in enumerate(zip(parents, splits)):
                left = self._add_node(builder, split.left, child_sizes[2 * s])
                right = self._add_node(builder, split.right, child_sizes[2 * s + 1])
                builder.split(
                    parent,
                    features[split.feature],
                    thresholds[split.feature, split.bin],
                    left,
                    right,
                    split.gain,
                    split.missing_left,
                )
                level += [left, right]
            node_of_row[rows] = np.array(level)[position]
            if depth + 1 < self.max_depth:
                # histogram subtraction: count only the smaller child of each split; its sibling's
                # histogram is the parent's minus the counted one
                left_smaller = child_sizes[0::2] <= child_sizes[1::2]
                counted = goes_left == left_smaller[split_of_row]
                counted_rows = rows[counted]
                counted_hist = histograms(
                    binned[:, counted_rows], gradients[counted_rows], split_of_row[counted], len(splits), self.max_bins
                )
                parent_hist, hist = hist, []
                for s, p in enumerate(splitting):
                    sibling_hist = parent_hist[p] - counted_hist[s]
                    hist += [counted_hist[s], sibling_hist] if left_smaller[s] else [sibling_hist, counted_hist[s]]
        return builder.build(), node_of_row

    def _add_node(self, builder: TreeBuilder, sums: complex, n_samples: int) -> int:
        """A node with sums G + iH: its value is the shrunken optimal weight (eq. 5), its impurity the
        objective it reaches as a leaf (eq. 6, without gamma), its weight the hessian sum."""
        G, H = sums.real, sums.imag
        weight = -G / (H + self.reg_lambda)
        return builder.add(
            value=self.learning_rate * weight,
            impurity=-0.5 * G**2 / (H + self.reg_lambda),
            weight=H,
            n_samples=n_samples,
        )

    def _staged_raw_predict(self, X):
        """Raw scores F(x) (n, K) after each round; one array, updated in place."""
        X = predict_data(self, X, allow_nan=True)
        raw = np.tile(self.base_score_, (len(X), 1))
        for round_trees in self.trees_:
            for k, tree in enumerate(round_trees):
                raw[:, k] += tree.predict_value(X)[:, 0]
            yield raw

    def raw_predict(self, X) -> np.ndarray:
        """Raw scores F(x): (n,) for regression and binary classification (log-odds), (n, K) for K classes."""
        for raw in self._staged_raw_predict(X):
            pass  # run through all rounds
        return raw[:, 0].copy() if raw.shape[1] == 1 else raw


class HistBoostingRegressor(RegressorMixin, _HistBoosting):
    """Histogram gradient boosting for squared error L = (y - F)^2 / 2: g = F - y, h = 1. `train_loss_`
    and `validation_loss_` hold the mean squared error after each round."""

    def _encode_targets(self, y):
        try:
            return y.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"y must be numeric for regression: {error}") from None

    _fit_targets = _encode_targets  # training and validation targets are checked alike

    def _base_score(self, y):
        return np.array([y.mean()])

    def _gradients(self, y, raw):
        return raw - y[:, None], np.ones_like(raw)

    def _loss(self, y, raw):
        return float(np.mean((y - raw[:, 0]) ** 2))

    def predict(self, X) -> np.ndarray:
        return self.raw_predict(X)

    def staged_predict(self, X):
        """Predictions after each round (for learning curves)."""
        for raw in self._staged_raw_predict(X):
            yield raw[:, 0].copy()


class HistBoostingClassifier(ClassifierMixin, _HistBoosting):
    """Histogram gradient boosting for classification. Two classes: logistic loss on the log-odds F,
    g = p - y, h = p (1 - p). K > 2 classes: softmax over K scores, one tree per class and round, with
    g_k = p_k - [y = k] and h_k = 2 p_k (1 - p_k): twice the diagonal of the softmax hessian, as XGBoost's
    softmax objective computes it, so every leaf takes about half the Newton step the diagonal alone would give.
    `train_loss_` and `validation_loss_` hold the mean log loss after each round."""

    def _fit_targets(self, y):
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"the classifier needs at least 2 classes in y; got {len(self.classes_)}")
        return self._encode_targets(y)

    def _encode_targets(self, y):
        """Labels as class numbers 0..K-1, the positions of the labels in `classes_`."""
        codes = np.searchsorted(self.classes_, y)
        unknown = (codes == len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise ValueError(f"y contains labels not seen in training: {np.unique(y[unknown])[:5]}")
        return codes

    def _base_score(self, y):
        priors = np.bincount(y, minlength=len(self.classes_)) / len(y)
        if len(self.classes_) == 2:
            return np.array([np.log(priors[1] / priors[0])])
        return np.log(priors)

    def _gradients(self, y, raw):
        if raw.shape[1] == 1:
            p = expit(raw)
            return p - y[:, None], p * (1 - p)
        p = softmax(raw, axis=1)
        return p - (y[:, None] == np.arange(raw.shape[1])), 2 * p * (1 - p)  # XGBoost's softmax hessian

    def _loss(self, y, raw):
        if raw.shape[1] == 1:
            return float(-np.mean(log_expit(np.where(y == 1, raw[:, 0], -raw[:, 0]))))  # log p of the true class
        return float(-np.mean(log_softmax(raw, axis=1)[np.arange(len(y)), y]))

    def _probabilities(self, raw):
        if raw.shape[1] == 1:
            p = expit(raw[:, 0])
            return np.column_stack([1 - p, p])
        return softmax(raw, axis=1)

    def predict_proba(self, X) -> np.ndarray:
        for raw in self._staged_raw_predict(X):
            pass  # run through all rounds
        return self._probabilities(raw)

    def predict(self, X) -> np.ndarray:
        probabilities = self.predict_proba(X)  # checks X (and that the model is fitted) first
        return self.classes_[probabilities.argmax(axis=1)]

    def staged_predict_proba(self, X):
        """Class probabilities after each round (for learning curves)."""
        for raw in self._staged_raw_predict(X):
            yield self._probabilities(raw)

    def staged_predict(self, X):
        for proba in self.staged_predict_proba(X):
            yield self.classes_[proba.argmax(axis=1)]
