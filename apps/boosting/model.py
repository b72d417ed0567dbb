"""Tree ensembles from scratch (NumPy), with scikit-learn's estimator API.

- `DecisionTreeClassifier` / `DecisionTreeRegressor`: CART (see tree.py).
- `RandomForestClassifier` / `RandomForestRegressor` (Breiman 2001): many deep trees, each on a
  bootstrap sample and choosing each split among a random subset of the features; their average is
  far less variable than any one tree.
- `AdaBoostClassifier`, SAMME (Zhu et al. 2009, "Multi-class AdaBoost", Algorithm 2): weak trees
  fitted in turn on re-weighted samples; misclassified samples gain weight, and each tree votes
  with weight alpha = log((1 - err) / err) + log(K - 1).
- `GradientBoostingClassifier` / `GradientBoostingRegressor` (Friedman 2001, "Greedy Function
  Approximation", Algorithm 1): each tree fits the negative gradient of the loss at the current
  prediction; its leaves are then set by a line search (one Newton step for log loss), shrunk by the
  learning rate. Row subsampling gives stochastic gradient boosting (Friedman 2002).
- `HistBoostingClassifier` / `HistBoostingRegressor`: the XGBoost-style booster (hist.py).

Every ensemble has `feature_importances_` (impurity decrease / gain) and `split_counts_`, and
`staged_predict` (and `staged_predict_proba`) for learning curves.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from apps.boosting.checks import fit_data, predict_data, sample_weights
from apps.boosting.hist import HistBoostingClassifier, HistBoostingRegressor
from apps.boosting.tree import Tree, grow_cart, presort, sorted_subset

__all__ = [
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "AdaBoostClassifier",
    "GradientBoostingClassifier",
    "GradientBoostingRegressor",
    "HistBoostingClassifier",
    "HistBoostingRegressor",
]


def encode_classes(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    classes, encoded = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"The target has one class ({classes[0]!r}); a classifier needs at least two.")
    return classes, encoded


def resolve_max_features(max_features, n_features: int) -> int:
    if max_features is None:
        return n_features
    if max_features == "sqrt":
        return max(1, int(np.sqrt(n_features)))
    if max_features == "log2":
        return max(1, int(np.log2(n_features)))
    if isinstance(max_features, float):
        return max(1, int(max_features * n_features))
    return max(1, min(int(max_features), n_features))


def normalized(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else values


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def sigmoid(scores: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-scores))


# ---------------------------------------------------------------------------------------------
# Single trees
# ---------------------------------------------------------------------------------------------


class _CART(BaseEstimator):
    def _grow(self, X, statistics, criterion, rng, sorted_rows=None) -> Tree:
        return grow_cart(
            X,
            statistics,
            criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            resolve_max_features(self.max_features, X.shape[1]),
            rng,
            sorted_rows,
        )

    @property
    def feature_importances_(self) -> np.ndarray:
        return normalized(self.tree_.feature_gains(self.n_features_in_))

    @property
    def split_counts_(self) -> np.ndarray:
        return self.tree_.split_counts(self.n_features_in_)


class DecisionTreeClassifier(ClassifierMixin, _CART):
    def __init__(
        self,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        random_state=None,
    ):
        (
            self.criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            self.max_features,
            self.random_state,
        ) = criterion, max_depth, min_samples_split, min_samples_leaf, max_features, random_state

    def fit(self, X, y, sample_weight=None, sorted_rows=None):
        """`sorted_rows`: `presort(X)`, from a caller that fits many trees on the same X."""
        if self.criterion not in ("gini", "entropy"):
            raise ValueError(f"Unknown criterion {self.criterion!r} for classification; choose gini or entropy.")
        X, y = fit_data(self, X, y)
        self.classes_, encoded = encode_classes(y)
        weight = sample_weights(sample_weight, len(X))
        statistics = np.zeros((len(X), len(self.classes_)))
        statistics[np.arange(len(X)), encoded] = weight  # weighted one-hot
        self.tree_ = self._grow(X, statistics, self.criterion, np.random.default_rng(self.random_state), sorted_rows)
        return self

    def predict_proba(self, X):
        X = predict_data(self, X)
        return self.tree_.predict_value(X)

    def predict(self, X):
        probabilities = self.predict_proba(X)  # checks X (and that the model is fitted) first
        return self.classes_[probabilities.argmax(1)]


class DecisionTreeRegressor(RegressorMixin, _CART):
    def __init__(self, max_depth=None, min_samples_split=2, min_samples_leaf=1, max_features=None, random_state=None):
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y = fit_data(self, X, y)
        weight = sample_weights(sample_weight, len(X))
        self.tree_ = self._grow(
            X,
            np.stack([weight, weight * y, weight * y * y], 1),
            "squared_error",
            np.random.default_rng(self.random_state),
        )
        return self

    def predict(self, X):
        X = predict_data(self, X)
        return self.tree_.predict_value(X)[:, 0]


# ---------------------------------------------------------------------------------------------
# Random forest
# ---------------------------------------------------------------------------------------------


class _Forest(BaseEstimator):
    def _fit_trees(self, X, make_statistics, criterion):
        rng = np.random.default_rng(self.random_state)
        max_features = resolve_max_features(self.max_features, X.shape[1])
        sorted_rows = presort(X)  # every tree sees all rows (a bootstrap only reweighs them)
        self.trees_ = []
        for _ in range(self.n_estimators):
            # Bootstrap as sample weights: a row drawn k times weighs k, an undrawn row 0.
            weight = (
                np.bincount(rng.integers(0, len(X), len(X)), minlength=len(X)).astype(np.float64)
                if self.bootstrap
                else np.ones(len(X))
            )
            self.trees_.append(
                grow_cart(
                    X,
                    make_statistics(weight),
                    criterion,
                    self.max_depth,
                    self.min_samples_split,
                    self.min_samples_leaf,
                    max_features,
                    rng,
                    sorted_rows,
                )
            )
        return self

    def _staged_mean(self, X):
        X = predict_data(self, X)
        total = 0
        for count, tree in enumerate(self.trees_, start=1):
            total = total + tree.predict_value(X)
            yield total / count

    @property
    def feature_importances_(self) -> np.ndarray:
        return normalized(
            np.mean([normalized(tree.feature_gains(self.n_features_in_)) for tree in self.trees_], axis=0)
        )

    @property
    def split_counts_(self) -> np.ndarray:
        return np.sum([tree.split_counts(self.n_features_in_) for tree in self.trees_], axis=0)


class RandomForestClassifier(ClassifierMixin, _Forest):
    def __init__(
        self,
        n_estimators=100,
        criterion="gini",
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features="sqrt",
        bootstrap=True,
        random_state=None,
    ):
        (
            self.n_estimators,
            self.criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            self.max_features,
            self.bootstrap,
            self.random_state,
        ) = (
            n_estimators,
            criterion,
            max_depth,
            min_samples_split,
            min_samples_leaf,
            max_features,
            bootstrap,
            random_state,
        )

    def fit(self, X, y):
        X, y = fit_data(self, X, y)
        self.classes_, encoded = encode_classes(y)

        def one_hot(weight):
            statistics = np.zeros((len(X), len(self.classes_)))
            statistics[np.arange(len(X)), encoded] = weight
            return statistics

        return self._fit_trees(X, one_hot, self.criterion)

    def staged_predict_proba(self, X):
        yield from self._staged_mean(X)

    def staged_predict(self, X):
        for probabilities in self.staged_predict_proba(X):
            yield self.classes_[probabilities.argmax(1)]

    def predict_proba(self, X):
        *_, last = self.staged_predict_proba(X)
        return last

    def predict(self, X):
        probabilities = self.predict_proba(X)  # checks X (and that the model is fitted) first
        return self.classes_[probabilities.argmax(1)]


class RandomForestRegressor(RegressorMixin, _Forest):
    def __init__(
        self,
        n_estimators=100,
        max_depth=None,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=1.0,
        bootstrap=True,
        random_state=None,
    ):
        (
            self.n_estimators,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            self.max_features,
            self.bootstrap,
            self.random_state,
        ) = n_estimators, max_depth, min_samples_split, min_samples_leaf, max_features, bootstrap, random_state

    def fit(self, X, y):
        X, y = fit_data(self, X, y)
        return self._fit_trees(X, lambda weight: np.stack([weight, weight * y, weight * y * y], 1), "squared_error")

    def staged_predict(self, X):
        for mean in self._staged_mean(X):
            yield mean[:, 0]

    def predict(self, X):
        *_, last = self.staged_predict(X)
        return last


# ---------------------------------------------------------------------------------------------
# AdaBoost (SAMME)
# ---------------------------------------------------------------------------------------------


class AdaBoostClassifier(ClassifierMixin, BaseEstimator):
    def __init__(self, n_estimators=50, learning_rate=1.0, max_depth=1, random_state=None):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, X, y):
        X, y = fit_data(self, X, y)
        self.classes_, encoded = encode_classes(y)
        n_classes = len(self.classes_)
        weight = np.full(len(X), 1 / len(X))
        sorted_rows = presort(X)  # every round refits the same X, only the weights change
        self.estimators_, self.estimator_weights_, self.estimator_errors_ = [], [], []
        for _ in range(self.n_estimators):
            tree = DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state).fit(
                X, encoded, sample_weight=weight, sorted_rows=sorted_rows
            )
            wrong = tree.predict(X) != encoded
            error = weight[wrong].sum() / weight.sum()
            if error <= 0:  # a perfect tree: it decides alone
                self.estimators_.append(tree)
                self.estimator_weights_.append(1.0)
                self.estimator_errors_.append(0.0)
                break
            if error >= 1 - 1 / n_classes:  # no better than chance: stop (SAMME needs err < (K-1)/K)
                if not self.estimators_:
                    raise ValueError("The first weak learner is no better than chance; boosting cannot start.")
                break
            # SAMME, Algorithm 2 of Zhu et al.: alpha = log((1 - err) / err) + log(K - 1).
            alpha = self.learning_rate * (np.log((1 - error) / error) + np.log(n_classes - 1))
            weight = weight * np.exp(alpha * wrong)
            weight /= weight.sum()
            self.estimators_.append(tree)
            self.estimator_weights_.append(alpha)
            self.estimator_errors_.append(error)
        return self

    def staged_decision_function(self, X):
        """f(x) after each round: the votes of the trees so far over the sum of their weights.

        SAMME's symmetric coding (Zhu et al., section 2.1): tree m adds alpha_m to the class it predicts
        and -alpha_m / (K - 1) to each other class, so the K scores sum to 0; dividing by the running sum
        of the alphas keeps every stage on the same scale. (n, K) scores, or for two classes the single
        score f_1 - f_0 (positive: the second class), as scikit-learn returns them."""
        X = predict_data(self, X)
        n_classes = len(self.classes_)
        votes, total_weight = np.zeros((len(X), n_classes)), 0.0
        for tree, alpha in zip(self.estimators_, self.estimator_weights_):
            total_weight += alpha
            vote = np.full((len(X), n_classes), -alpha / (n_classes - 1))
            vote[np.arange(len(X)), tree.tree_.predict_value(X).argmax(1)] = alpha
            votes += vote
            decision = votes / total_weight
            yield decision[:, 1] - decision[:, 0] if n_classes == 2 else decision

    def decision_function(self, X):
        *_, last = self.staged_decision_function(X)
        return last

    def _probabilities(self, decision: np.ndarray) -> np.ndarray:
        """p_k = softmax(f(x) / (K - 1)) (eq. 15 of Zhu et al.); two classes: softmax of (-f/2, f/2)."""
        if decision.ndim == 1:
            return softmax(np.column_stack([-decision, decision]) / 2)
        return softmax(decision / (len(self.classes_) - 1))

    def staged_predict_proba(self, X):
        for decision in self.staged_decision_function(X):
            yield self._probabilities(decision)

    def _class_of(self, decision: np.ndarray) -> np.ndarray:
        return self.classes_[(decision > 0).astype(int) if decision.ndim == 1 else decision.argmax(1)]

    def staged_predict(self, X):
        for decision in self.staged_decision_function(X):
            yield self._class_of(decision)

    def predict_proba(self, X):
        return self._probabilities(self.decision_function(X))

    def predict(self, X):
        return self._class_of(self.decision_function(X))

    @property
    def feature_importances_(self) -> np.ndarray:
        weights = np.array(self.estimator_weights_)
        return normalized(sum(w * tree.feature_importances_ for w, tree in zip(weights, self.estimators_)))

    @property
    def split_counts_(self) -> np.ndarray:
        return np.sum([tree.split_counts_ for tree in self.estimators_], axis=0)

    @property
    def trees_(self) -> list[Tree]:
        return [tree.tree_ for tree in self.estimators_]


# ---------------------------------------------------------------------------------------------
# Gradient boosting (Friedman)
# ---------------------------------------------------------------------------------------------


def lower_median(values: np.ndarray) -> float:
    """A median that is always one of the values: the lower middle one for an even count (as
    scikit-learn's leaf update, a weighted 50th percentile). Anything between the two middle
    values minimises sum |y - c| equally."""
    return float(np.sort(values)[(len(values) - 1) // 2])


class _GradientBoosting(BaseEstimator):
    """The loop of Algorithm 1 (Friedman 2001) shared by both tasks. A subclass gives the initial
    raw prediction F0, the negative gradient, the leaf line search and the loss."""

    def _fit_stages(self, X, y, raw_columns: int):
        rng = np.random.default_rng(self.random_state)
        X_fit, y_fit, X_valid, y_valid = X, y, None, None
        if self.n_iter_no_change is not None:
            validation = rng.permutation(len(X))[: max(1, int(self.validation_fraction * len(X)))]
            mask = np.zeros(len(X), dtype=bool)
            mask[validation] = True
            X_fit, y_fit, X_valid, y_valid = X[~mask], y[~mask], X[mask], y[mask]
        self.init_ = self._initial_raw(y_fit)  # (raw_columns,)
        raw = np.tile(self.init_, (len(X_fit), 1))
        raw_valid = None if X_valid is None else np.tile(self.init_, (len(X_valid), 1))
        self.trees_, self.train_score_, self.validation_score_ = [], [], []
        max_features = resolve_max_features(self.max_features, X.shape[1])
        best_loss, rounds_without_gain = np.inf, 0
        presorted = presort(X_fit)  # sorted once; every stage's trees grow on (a sample of) these rows
        for _ in range(self.n_estimators):
            if self.subsample < 1:  # stochastic gradient boosting: each stage sees a random sample
                rows = np.sort(rng.permutation(len(X_fit))[: max(1, int(self.subsample * len(X_fit)))])
                in_sample = np.zeros(len(X_fit), dtype=bool)
                in_sample[rows] = True
                sorted_rows = sorted_subset(presorted, in_sample)
            else:
                rows, sorted_rows = np.arange(len(X_fit)), presorted
            residual = self._negative_gradient(y_fit, raw)  # (n, raw_columns)
            stage = []
            for column in range(raw_columns):
                # Fit a regression tree to the negative gradient (step 4), then set each leaf by
                # the line search of its loss (step 5), shrunk by the learning rate (Friedman's nu).
                target = residual[:, column]  # rows outside the sample are never read
                tree = grow_cart(
                    X_fit,
                    np.stack([np.ones(len(X_fit)), target, target * target], 1),
                    "squared_error",
                    self.max_depth,
                    self.min_samples_split,
                    self.min_samples_leaf,
                    max_features,
                    rng,
                    sorted_rows,
                )
                leaves = tree.apply(X_fit[rows])
                for leaf in np.nonzero(tree.is_leaf)[0]:
                    in_leaf = rows[leaves == leaf]
                    tree.value[leaf, 0] = self.learning_rate * self._leaf_value(
                        y_fit[in_leaf], raw[in_leaf], residual[in_leaf, column], column
                    )
                raw[:, column] += tree.predict_value(X_fit)[:, 0]
                if raw_valid is not None:
                    raw_valid[:, column] += tree.predict_value(X_valid)[:, 0]
                stage.append(tree)
            self.trees_.append(stage)
            self.train_score_.append(self._loss(y_fit, raw))
            if raw_valid is not None:
                # Early stopping on the held-out rows, as scikit-learn's n_iter_no_change.
                validation_loss = self._loss(y_valid, raw_valid)
                self.validation_score_.append(validation_loss)
                if validation_loss < best_loss - self.tol:
                    best_loss, rounds_without_gain = validation_loss, 0
                else:
                    rounds_without_gain += 1
                    if rounds_without_gain >= self.n_iter_no_change:
                        break
        self.n_estimators_ = len(self.trees_)
        return self

    def staged_raw_predict(self, X):
        X = predict_data(self, X)
        raw = np.tile(self.init_, (len(X), 1))
        for stage in self.trees_:
            for column, tree in enumerate(stage):
                raw[:, column] += tree.predict_value(X)[:, 0]
            yield raw.copy()

    def raw_predict(self, X):
        *_, last = self.staged_raw_predict(X)
        return last

    @property
    def feature_importances_(self) -> np.ndarray:
        per_stage = [sum(tree.feature_gains(self.n_features_in_) for tree in stage) for stage in self.trees_]
        return normalized(np.mean(per_stage, axis=0))

    @property
    def split_counts_(self) -> np.ndarray:
        return np.sum([tree.split_counts(self.n_features_in_) for stage in self.trees_ for tree in stage], axis=0)


class GradientBoostingRegressor(RegressorMixin, _GradientBoosting):
    """loss "squared_error": the residual y - F, leaves the residual mean; "absolute_error": the
    residual's sign, leaves a median of y - F (least absolute deviation, Friedman's Algorithm 3),
    starting from the median of y."""

    def __init__(
        self,
        loss="squared_error",
        learning_rate=0.1,
        n_estimators=100,
        subsample=1.0,
        max_depth=3,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        validation_fraction=0.1,
        n_iter_no_change=None,
        tol=1e-4,
        random_state=None,
    ):
        self.loss = loss
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.subsample = subsample
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        if self.loss not in ("squared_error", "absolute_error"):
            raise ValueError(f"Unknown loss {self.loss!r}; choose squared_error or absolute_error.")
        return self._fit_stages(*fit_data(self, X, y), raw_columns=1)

    def _initial_raw(self, y):
        return np.array([y.mean() if self.loss == "squared_error" else np.median(y)])

    def _negative_gradient(self, y, raw):
        difference = y[:, None] - raw
        return difference if self.loss == "squared_error" else np.sign(difference)

    def _leaf_value(self, y, raw, residual, column):
        return residual.mean() if self.loss == "squared_error" else lower_median(y - raw[:, column])

    def _loss(self, y, raw):
        difference = y - raw[:, 0]
        return float(np.mean(difference**2) if self.loss == "squared_error" else np.mean(np.abs(difference)))

    def staged_predict(self, X):
        for raw in self.staged_raw_predict(X):
            yield raw[:, 0]

    def predict(self, X):
        return self.raw_predict(X)[:, 0]


class GradientBoostingClassifier(ClassifierMixin, _GradientBoosting):
    """Log loss: binary with one tree per stage on the log-odds, multiclass with one tree per class
    per stage on softmax scores. Leaves take one Newton step: sum(y - p) / sum(p (1 - p)), times
    (K - 1) / K for K > 2 classes (Friedman 2001, Algorithm 6)."""

    def __init__(
        self,
        learning_rate=0.1,
        n_estimators=100,
        subsample=1.0,
        max_depth=3,
        min_samples_split=2,
        min_samples_leaf=1,
        max_features=None,
        validation_fraction=0.1,
        n_iter_no_change=None,
        tol=1e-4,
        random_state=None,
    ):
        self.learning_rate = learning_rate
        self.n_estimators = n_estimators
        self.subsample = subsample
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y):
        X, y = fit_data(self, X, y)
        self.classes_, encoded = encode_classes(y)
        return self._fit_stages(X, encoded, raw_columns=1 if len(self.classes_) == 2 else len(self.classes_))

    def _one_hot(self, y):
        return np.eye(len(self.classes_))[y] if len(self.classes_) > 2 else y[:, None].astype(np.float64)

    def _probabilities(self, raw):
        return sigmoid(raw) if raw.shape[1] == 1 else softmax(raw)

    def _initial_raw(self, y):
        prior = np.clip(np.bincount(y, minlength=len(self.classes_)) / len(y), 1e-15, 1 - 1e-15)
        return np.array([np.log(prior[1] / prior[0])]) if len(self.classes_) == 2 else np.log(prior)

    def _negative_gradient(self, y, raw):
        return self._one_hot(y) - self._probabilities(raw)

    def _leaf_value(self, y, raw, residual, column):
        probability = self._one_hot(y)[:, column] - residual
        denominator = np.sum(probability * (1 - probability))
        scale = 1.0 if len(self.classes_) == 2 else (len(self.classes_) - 1) / len(self.classes_)
        return 0.0 if abs(denominator) < 1e-150 else scale * residual.sum() / denominator

    def _loss(self, y, raw):
        probabilities = np.clip(self._probabilities(raw), 1e-15, 1)
        if raw.shape[1] == 1:
            return float(
                -np.mean(
                    np.where(y == 1, np.log(probabilities[:, 0]), np.log(np.clip(1 - probabilities[:, 0], 1e-15, 1)))
                )
            )
        return float(-np.mean(np.log(probabilities[np.arange(len(y)), y])))

    def _class_probabilities(self, raw):
        """(n, K) probabilities from raw scores (the binary model keeps one log-odds column)."""
        probabilities = self._probabilities(raw)
        return np.hstack([1 - probabilities, probabilities]) if raw.shape[1] == 1 else probabilities

    def staged_predict_proba(self, X):
        for raw in self.staged_raw_predict(X):
            yield self._class_probabilities(raw)

    def staged_predict(self, X):
        for probabilities in self.staged_predict_proba(X):
            yield self.classes_[probabilities.argmax(1)]

    def predict_proba(self, X):
        return self._class_probabilities(self.raw_predict(X))

    def predict(self, X):
        probabilities = self.predict_proba(X)  # checks X (and that the model is fitted) first
        return self.classes_[probabilities.argmax(1)]
