"""The histogram booster against its equations, a brute-force search, and XGBoost itself."""

import json

import numpy as np
import pytest
import xgboost
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification, make_friedman1
from sklearn.metrics import log_loss
from sklearn.model_selection import cross_val_score, train_test_split

from apps.boosting.hist import (
    HistBoostingClassifier,
    HistBoostingRegressor,
    best_split,
    bin_data,
    bin_edges,
    bin_thresholds,
)
from apps.boosting.tree import Tree


def rms(values):
    return float(np.sqrt(np.mean(np.square(values))))


def with_missing(X, fraction, seed=0):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < fraction] = np.nan
    return X


# --------------------------------------------------------------------------------------------------
# Binning


def test_few_distinct_values_get_one_bin_each_and_missing_the_last_bin():
    X = np.array([[3.0], [1.0], [np.nan], [2.0], [1.0], [3.0]])
    edges = bin_edges(X, max_bins=256)
    np.testing.assert_allclose(edges[0], [1.5, 2.5])
    np.testing.assert_array_equal(bin_data(X, edges, max_bins=256)[0], [2, 0, 255, 1, 0, 2])


def test_every_value_lands_between_the_edges_of_its_bin():
    rng = np.random.default_rng(0)
    X = with_missing(
        np.column_stack([rng.standard_normal(1000), rng.integers(0, 5, 1000), rng.exponential(size=1000)]), 0.1
    )
    max_bins = 16
    edges = bin_edges(X, max_bins)
    binned = bin_data(X, edges, max_bins)
    assert binned.shape == (3, 1000) and binned.dtype == np.uint8
    for feature, feature_edges in enumerate(edges):
        assert len(feature_edges) <= max_bins - 2 and np.all(np.diff(feature_edges) > 0)
        present = ~np.isnan(X[:, feature])
        assert np.all(binned[feature, ~present] == max_bins - 1)
        bins, values = binned[feature, present], X[present, feature]
        lower = np.concatenate([[-np.inf], feature_edges])[bins]
        upper = np.concatenate([feature_edges, [np.inf]])[bins]
        assert np.all((lower < values) & (values <= upper))
    assert len(edges[1]) == 4  # 5 distinct values: 5 bins


def test_many_distinct_values_get_quantile_bins_of_equal_size():
    x = np.random.default_rng(0).standard_normal((10_000, 1))
    binned = bin_data(x, bin_edges(x, max_bins=11), max_bins=11)
    counts = np.bincount(binned[0], minlength=11)
    assert counts[-1] == 0  # no missing value
    np.testing.assert_allclose(counts[:-1], 1000, atol=2)


def test_thresholds_route_raw_values_exactly_like_bins():
    X = with_missing(np.random.default_rng(1).standard_normal((500, 3)) * 100, 0.1)
    edges = bin_edges(X, max_bins=32)
    binned, thresholds = bin_data(X, edges, 32), bin_thresholds(edges, 32)
    for feature in range(3):
        present = ~np.isnan(X[:, feature])
        for b in range(31):
            np.testing.assert_array_equal(X[present, feature] <= thresholds[feature, b], binned[feature, present] <= b)


# --------------------------------------------------------------------------------------------------
# Split finding


def hand_made_histogram(G, H, missing=0j):
    """One feature: present bins with sums G, H, then the missing bin."""
    return np.array([[*(np.array(G) + 1j * np.array(H)), missing]])


def loss_change(G_L, H_L, G_R, H_R, reg_lambda=1.0):
    """XGBoost's score of a split: eq. 7 of the paper without its 1/2 and without gamma."""
    return G_L**2 / (H_L + reg_lambda) + G_R**2 / (H_R + reg_lambda) - (G_L + G_R) ** 2 / (H_L + H_R + reg_lambda)


def test_gain_on_a_hand_made_histogram():
    hist = hand_made_histogram(G=[1.0, -2.0, 3.0], H=[1.0, 1.0, 1.0])
    split = best_split(hist, reg_lambda=1.0, min_child_weight=1.0)
    # "bin <= 1": G_L = -1, H_L = 2, G_R = 3, H_R = 1, G = 2, H = 3
    assert (split.feature, split.bin) == (0, 1)
    assert split.gain == pytest.approx(1 / 3 + 9 / 2 - 4 / 4) == pytest.approx(loss_change(-1, 2, 3, 1))
    assert split.left == pytest.approx(-1 + 2j) and split.right == pytest.approx(3 + 1j)
    assert split.missing_left  # no missing value: missing goes where most hessian went
    # gamma is compared with the loss change itself (XGBoost), not with half of it (eq. 7)
    assert split.worth_making(gamma=split.gain) and not split.worth_making(gamma=split.gain + 1e-9)
    assert best_split(hist, 1.0, min_child_weight=1.5).gain == -np.inf  # no split leaves 1.5 hessian on both sides


def test_missing_bin_goes_to_the_side_that_gains_more():
    hist = hand_made_histogram(G=[-4.0, 4.0], H=[2.0, 2.0], missing=-3.0 + 1j)
    split = best_split(hist, reg_lambda=1.0, min_child_weight=0.0)
    assert split.missing_left  # the missing rows' negative gradients belong with the left bin
    assert split.gain == pytest.approx(max(loss_change(-4 - 3, 2 + 1, 4, 2), loss_change(-4, 2, 4 - 3, 2 + 1)))
    mirrored = best_split(hand_made_histogram(G=[-4.0, 4.0], H=[2.0, 2.0], missing=3.0 + 1j), 1.0, 0.0)
    assert not mirrored.missing_left


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_a_stump_is_the_brute_force_best_split(task):
    rng = np.random.default_rng(0)
    X = np.round(
        rng.standard_normal((150, 4)), 1
    )  # few distinct values: one bin each, so every threshold is a candidate
    score = X[:, 2] - X[:, 0] + 0.5 * rng.standard_normal(150)
    if task == "regression":
        y = score
        model = HistBoostingRegressor(n_estimators=1, max_depth=1, learning_rate=1.0).fit(X, y)
        g, h = model.base_score_[0] - y, np.ones_like(y)
    else:
        y = (score > 0.3).astype(int)
        model = HistBoostingClassifier(n_estimators=1, max_depth=1, learning_rate=1.0).fit(X, y)
        p = 1 / (1 + np.exp(-model.base_score_[0]))
        g, h = p - y, np.full(len(y), p * (1 - p))
    best = (-np.inf, None, None)
    for feature in range(4):
        values = np.unique(X[:, feature])
        for threshold in (values[:-1] + values[1:]) / 2:
            left = X[:, feature] <= threshold
            gain = loss_change(g[left].sum(), h[left].sum(), g[~left].sum(), h[~left].sum())
            if gain > best[0]:
                best = (gain, feature, threshold)
    tree = model.trees_[0][0]
    assert tree.gain[0] == pytest.approx(best[0])
    assert tree.feature[0] == best[1] and tree.threshold[0] == pytest.approx(best[2])
    left = X[:, best[1]] <= best[2]
    for child, rows in ((tree.left[0], left), (tree.right[0], ~left)):
        assert tree.value[child, 0] == pytest.approx(-g[rows].sum() / (h[rows].sum() + 1.0))  # eq. 5, learning_rate 1
        assert tree.n_samples[child] == rows.sum() and tree.weight[child] == pytest.approx(h[rows].sum())


# --------------------------------------------------------------------------------------------------
# Trees


def test_tree_apply_on_raw_X_reproduces_the_routing_by_bins():
    X, y = make_friedman1(n_samples=400, n_features=5, random_state=0)
    X = with_missing(X, 0.15)
    model = HistBoostingRegressor(max_depth=5)
    edges = bin_edges(X, model.max_bins)
    g = np.random.default_rng(0).standard_normal(len(X))
    tree, leaf_of_row = model._grow_tree(
        bin_data(X, edges, model.max_bins), bin_thresholds(edges, model.max_bins), np.arange(5), g + 1j
    )
    assert isinstance(tree, Tree) and tree.node_count > 20 and tree.depth() == 5
    np.testing.assert_array_equal(tree.apply(X), leaf_of_row)
    assert tree.missing_left.any() and not tree.missing_left.all()


def test_training_loss_agrees_with_predictions_of_the_stored_trees():
    X, y = make_friedman1(n_samples=300, n_features=5, random_state=1)
    X = with_missing(X, 0.1)
    model = HistBoostingRegressor(n_estimators=15).fit(X, y)
    assert len(model.train_loss_) == 15 and np.all(np.diff(model.train_loss_) < 0)
    assert model.train_loss_[-1] == pytest.approx(np.mean((model.predict(X) - y) ** 2), rel=1e-9)


# --------------------------------------------------------------------------------------------------
# Against XGBoost


def xgboost_params(n_estimators=20):
    return dict(
        tree_method="hist",
        max_bin=256,
        n_estimators=n_estimators,
        max_depth=6,
        learning_rate=0.3,
        reg_lambda=1.0,
        min_child_weight=1.0,
        n_jobs=1,
    )


def test_same_trees_as_xgboost_when_every_value_has_its_own_bin():
    # fewer rows than bins: both libraries try every threshold, so the training partitions coincide
    X, y = make_friedman1(n_samples=200, n_features=5, noise=0.5, random_state=0)
    ours = HistBoostingRegressor(n_estimators=20).fit(X, y)
    theirs = xgboost.XGBRegressor(**xgboost_params()).fit(X, y)
    assert rms(ours.predict(X) - theirs.predict(X)) < 1e-5 * y.std()  # xgboost computes in float32
    root = json.loads(theirs.get_booster().get_dump(dump_format="json", with_stats=True)[0])
    assert root["split"] == f"f{ours.trees_[0][0].feature[0]}"
    assert root["gain"] == pytest.approx(ours.trees_[0][0].gain[0], rel=1e-5)  # the loss change, as XGBoost reports it

    labels = (y > np.median(y)).astype(int)
    ours = HistBoostingClassifier(n_estimators=20).fit(X, labels)
    theirs = xgboost.XGBClassifier(**xgboost_params()).fit(X, labels)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)


def fewer_values_than_bins(X, max_bins=256):
    """Every feature has its own bin per value in both libraries, so both see the same candidate splits."""
    return max(len(np.unique(column)) for column in X.T) < max_bins - 1


@pytest.mark.parametrize("load, gamma", [(load_iris, 0.0), (load_iris, 1.0), (load_wine, 0.5)])
def test_multiclass_matches_xgboost(load, gamma):
    # softmax with XGBoost's hessian 2 p (1 - p); XGBoost's intercept is the centred log priors, ours the log
    # priors: the same probabilities. (wine at gamma 0 is left out: a round-1 split has two candidates whose
    # loss changes differ by 5e-6 relative, below what XGBoost's float32 gradients resolve.)
    X, y = load(return_X_y=True)
    assert fewer_values_than_bins(X)
    ours = HistBoostingClassifier(n_estimators=20, gamma=gamma).fit(X, y)
    theirs = xgboost.XGBClassifier(**xgboost_params(), gamma=gamma).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5, rtol=0)
    assert sum(tree.node_count for tree in ours.trees_[-1]) == sum(
        dump.count("\n") for dump in theirs.get_booster().get_dump()[-3:]
    )  # the last round's trees have as many nodes


@pytest.mark.parametrize("gamma", [0.5, 2.0, 10.0])
def test_gamma_matches_xgboost(gamma):
    X, y = make_friedman1(n_samples=200, n_features=5, noise=0.5, random_state=0)
    assert fewer_values_than_bins(X)
    ours = HistBoostingRegressor(n_estimators=20, gamma=gamma).fit(X, y)
    theirs = xgboost.XGBRegressor(**xgboost_params(), gamma=gamma).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-5, rtol=0)
    labels = (y > np.median(y)).astype(int)
    ours = HistBoostingClassifier(n_estimators=20, gamma=gamma / 5).fit(X, labels)
    theirs = xgboost.XGBClassifier(**xgboost_params(), gamma=gamma / 5).fit(X, labels)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5, rtol=0)


@pytest.mark.parametrize("gamma, leaves", [(0.5, 4), (0.7, 1)])
def test_gamma_is_compared_with_the_loss_change_when_the_split_is_chosen(gamma, leaves):
    # XOR: the root split changes the loss by only 0.616, its children by 47 and 52. XGBoost's hist grower
    # makes the root split when 0.616 >= gamma (not half of it, as eq. 7 would say), and otherwise leaves
    # the root a leaf: it does not grow the strong splits below and prune afterwards.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (400, 2)).astype(float)
    y = np.logical_xor(X[:, 0], X[:, 1]) + 0.01 * rng.integers(0, 2, 400) * X[:, 0]
    ours = HistBoostingRegressor(n_estimators=1, max_depth=2, learning_rate=1.0, gamma=gamma).fit(X, y)
    theirs = xgboost.XGBRegressor(**{**xgboost_params(1), "max_depth": 2, "learning_rate": 1.0}, gamma=gamma).fit(X, y)
    assert ours.trees_[0][0].is_leaf.sum() == theirs.get_booster().get_dump()[0].count("leaf") == leaves
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-6, rtol=0)


def test_close_to_xgboost_when_bin_edges_differ():
    X, y = make_friedman1(n_samples=600, n_features=6, noise=0.5, random_state=0)
    ours = HistBoostingRegressor(n_estimators=20).fit(X, y)
    theirs = xgboost.XGBRegressor(**xgboost_params()).fit(X, y)
    assert rms(ours.predict(X) - theirs.predict(X)) < 0.1 * y.std()  # measured: 0.05


def test_breast_cancer_accuracy_within_two_points_of_xgboost():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    ours = HistBoostingClassifier().fit(X_train, y_train).score(X_test, y_test)
    theirs = xgboost.XGBClassifier(n_estimators=100, n_jobs=1).fit(X_train, y_train).score(X_test, y_test)
    assert ours >= theirs - 0.02 and ours > 0.93


# --------------------------------------------------------------------------------------------------
# Missing values


@pytest.mark.parametrize("missing_label", [0.0, 1.0])
def test_missingness_that_predicts_y_learns_the_default_direction(missing_label):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=600)
    y = (x > 0.5).astype(float)
    missing = rng.random(600) < 0.3
    x[missing], y[missing] = np.nan, missing_label
    model = HistBoostingRegressor(n_estimators=30, max_depth=1).fit(x[:, None], y)
    root = model.trees_[0][0]
    assert root.threshold[0] == pytest.approx(0.5, abs=0.02)
    assert root.missing_left[0] == (missing_label == 0.0)
    assert model.predict(np.array([[np.nan]]))[0] == pytest.approx(missing_label, abs=0.01)


@pytest.mark.parametrize("cut, expect_left", [(0.8, True), (0.2, False)])
def test_without_missing_training_values_missing_follows_the_heavier_child(cut, expect_left):
    x = np.random.default_rng(0).uniform(size=(500, 1))
    model = HistBoostingRegressor(n_estimators=1, max_depth=1).fit(x, (x[:, 0] > cut).astype(float))
    assert model.trees_[0][0].missing_left[0] == expect_left


# --------------------------------------------------------------------------------------------------
# Classification, early stopping, sampling, attributes


@pytest.mark.parametrize("load", [load_iris, load_wine])
def test_multiclass_trains_one_tree_per_class_and_round(load):
    X, y = load(return_X_y=True)
    names = np.array(["first", "second", "third"])[y]
    X_train, X_test, y_train, y_test = train_test_split(X, names, test_size=0.3, random_state=0, stratify=names)
    model = HistBoostingClassifier(n_estimators=30).fit(X_train, y_train)
    assert list(model.classes_) == ["first", "second", "third"]
    assert len(model.trees_) == 30 and all(len(round_trees) == 3 for round_trees in model.trees_)
    proba = model.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert model.score(X_test, y_test) > 0.9
    assert model.raw_predict(X_test).shape == (len(X_test), 3)
    np.testing.assert_allclose(
        model.base_score_, np.log(np.unique(y_train, return_counts=True)[1] / len(y_train))
    )  # log class priors
    for k, tree in enumerate(model.trees_[0]):  # round 1 starts from the priors: h_k = 2 p_k (1 - p_k) in every row
        prior = np.mean(y_train == model.classes_[k])
        assert tree.weight[0] == pytest.approx(2 * len(y_train) * prior * (1 - prior))


def test_staged_predictions_follow_the_rounds():
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    model = HistBoostingClassifier(n_estimators=12).fit(X, y)
    stages = list(model.staged_predict_proba(X))
    assert len(stages) == 12
    np.testing.assert_allclose(stages[-1], model.predict_proba(X))
    np.testing.assert_allclose([log_loss(y, proba) for proba in stages], model.train_loss_, rtol=1e-9)
    np.testing.assert_array_equal(list(model.staged_predict(X))[-1], model.predict(X))
    assert model.base_score_[0] == pytest.approx(np.log(y.mean() / (1 - y.mean())))
    regressor = HistBoostingRegressor(n_estimators=5).fit(X, y.astype(float))
    np.testing.assert_allclose(list(regressor.staged_predict(X))[-1], regressor.predict(X))


def test_early_stopping_keeps_the_best_round_on_a_noisy_problem():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 5))
    y = X[:, 0] + 2 * rng.standard_normal(400)  # mostly noise: the validation loss soon rises
    model = HistBoostingRegressor(n_estimators=200, early_stopping_rounds=5).fit(X, y)
    assert model.best_iteration_ < 50
    assert len(model.trees_) == model.best_iteration_ + 1
    assert len(model.validation_loss_) == len(model.train_loss_) == model.best_iteration_ + 1 + 5
    assert np.argmin(model.validation_loss_) == model.best_iteration_

    X_val = rng.standard_normal((200, 5))
    y_val = X_val[:, 0] + 2 * rng.standard_normal(200)
    with_eval_set = HistBoostingRegressor(n_estimators=200, early_stopping_rounds=5).fit(X, y, eval_set=(X_val, y_val))
    assert with_eval_set.validation_loss_[with_eval_set.best_iteration_] == pytest.approx(
        np.mean((with_eval_set.predict(X_val) - y_val) ** 2)
    )
    without = HistBoostingRegressor(n_estimators=10).fit(X, y)
    assert without.validation_loss_ == [] and without.best_iteration_ == 9


def test_row_and_column_subsampling():
    X, y = make_classification(n_samples=400, n_features=10, n_informative=4, random_state=0)
    model = HistBoostingClassifier(n_estimators=20, subsample=0.5, colsample_bytree=0.3, random_state=1).fit(X, y)
    for (tree,) in model.trees_:
        assert len(np.unique(tree.feature[~tree.is_leaf])) <= 3
    again = HistBoostingClassifier(n_estimators=20, subsample=0.5, colsample_bytree=0.3, random_state=1).fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X), again.predict_proba(X))
    other = HistBoostingClassifier(n_estimators=20, subsample=0.5, colsample_bytree=0.3, random_state=2).fit(X, y)
    assert not np.array_equal(model.predict_proba(X), other.predict_proba(X))
    assert model.score(X, y) > 0.85


def test_importances_are_normalised_total_gain():
    X, y = make_friedman1(n_samples=300, n_features=8, random_state=0)  # features 5, 6, 7 are noise
    model = HistBoostingRegressor(n_estimators=10, max_depth=3).fit(X, y)
    trees = [tree for (tree,) in model.trees_]
    total_gain = sum(tree.feature_gains(8) for tree in trees)
    np.testing.assert_allclose(model.feature_importances_, total_gain / total_gain.sum())
    assert model.feature_importances_[:5].sum() > 0.9
    assert model.split_counts_.sum() == sum((~tree.is_leaf).sum() for tree in trees)


def test_scikit_learn_clone_and_cross_validation():
    X, y = load_breast_cancer(return_X_y=True)
    model = HistBoostingClassifier(n_estimators=10, max_depth=3, learning_rate=0.5)
    copy = clone(model)
    assert copy.get_params() == model.get_params() and not hasattr(copy, "trees_")
    scores = cross_val_score(model, X, y, cv=3)
    assert len(scores) == 3 and scores.min() > 0.85
    assert cross_val_score(HistBoostingRegressor(n_estimators=10), X, y.astype(float), cv=3).min() > 0.5


# --------------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros(5), np.zeros(5), "Expected 2D array"),
        (np.zeros((1, 2)), np.zeros(1), "1 sample.*minimum of 2"),
        (np.array([["a", "b"], ["c", "d"]]), np.zeros(2), "could not convert string to float"),
        (np.array([[1.0, np.inf], [2.0, 3.0]]), np.zeros(2), "infinite"),
        (np.zeros((3, 2)), np.zeros(4), "inconsistent numbers of samples"),
        (np.zeros((3, 2)), np.array(["a", "b", "c"]), "numeric"),
    ],
)
def test_regressor_rejects_bad_input(X, y, message):
    with pytest.raises(ValueError, match=message):
        HistBoostingRegressor().fit(X, y)


def test_classifier_and_parameters_reject_bad_input():
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match="at least 2 classes"):
        HistBoostingClassifier().fit(X, np.ones(10))
    model = HistBoostingClassifier(n_estimators=2).fit(X, np.arange(10) % 2)
    with pytest.raises(ValueError, match="X has 2 features, but HistBoostingClassifier is expecting 3"):
        model.predict(X[:, :2])
    with pytest.raises(ValueError, match="not seen in training"):
        HistBoostingClassifier(n_estimators=2, early_stopping_rounds=1).fit(
            X, np.arange(10) % 2, eval_set=(X, np.full(10, 7))
        )
    for bad in (
        dict(max_bins=300),
        dict(learning_rate=0),
        dict(subsample=1.5),
        dict(max_depth=0),
        dict(early_stopping_rounds=0),
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            HistBoostingClassifier(**bad).fit(X, np.arange(10) % 2)
