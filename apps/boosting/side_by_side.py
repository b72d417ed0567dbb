"""The boosting tab's engine: one table, one algorithm, its hyperparameters -> our ensemble and the
reference libraries trained on the same split with the same settings, with scores, times, learning
curves, importances and a decision boundary. No Gradio here; bad input raises ValueError."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from sklearn import ensemble as sk_ensemble
from sklearn import metrics
from sklearn.tree import DecisionTreeClassifier as SkDecisionTreeClassifier

from apps.boosting import ALGORITHMS
from apps.boosting import model as ours
from apps.boosting.data import Table, impute_median, train_test
from apps.boosting.tree import Tree

MAX_TRAIN_ROWS = {
    "Random forest": 20_000,
    "AdaBoost (SAMME)": 20_000,
    "Gradient boosting": 20_000,
    "Histogram boosting (XGBoost-style)": 100_000,
}
CURVE_POINTS = 25


@dataclass
class Settings:
    algorithm: str
    n_estimators: int = 100
    learning_rate: float = 0.1
    max_depth: int = 3  # 0 = unlimited (random forest)
    subsample: float = 1.0
    reg_lambda: float = 1.0
    gamma: float = 0.0
    seed: int = 0

    def check(self, task: str) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"Unknown algorithm {self.algorithm!r}; choose one of: {', '.join(ALGORITHMS)}.")
        if self.algorithm == "AdaBoost (SAMME)" and task == "regression":
            raise ValueError(
                "AdaBoost (SAMME) here is a classifier; this table's target is numeric (regression). Choose another algorithm."
            )
        if not 1 <= self.n_estimators <= 1000:
            raise ValueError(f"Number of trees must be from 1 to 1000; got {self.n_estimators}.")
        if not 0 < self.learning_rate <= 1:
            raise ValueError(f"Learning rate must be in (0, 1]; got {self.learning_rate}.")
        if not 0 <= self.max_depth <= 20 or (self.max_depth == 0 and self.algorithm != "Random forest"):
            raise ValueError(
                f"Max depth must be from 1 to 20 (0 = unlimited, random forest only); got {self.max_depth}."
            )
        if not 0 < self.subsample <= 1:
            raise ValueError(f"Row subsample must be in (0, 1]; got {self.subsample}.")


@dataclass
class Contender:
    """One trained model of the comparison."""

    name: str
    model: object
    fit_seconds: float
    predict_seconds: float
    scores: dict[str, float]
    curve: list[tuple[int, float]]  # (trees, held-out score)
    importances: np.ndarray | None


@dataclass
class Comparison:
    table: Table
    settings: Settings
    contenders: list[Contender]
    metric: str  # the learning-curve metric
    notes: list[str] = field(default_factory=list)

    @property
    def ours(self) -> Contender:
        return self.contenders[0]

    @property
    def reference(self) -> Contender:
        return self.contenders[1]


def models_for(settings: Settings, task: str, n_classes: int) -> list[tuple[str, Callable[[], object]]]:
    """(name, factory) for ours first, then the references, with the same hyperparameters."""
    classify = task == "classification"
    depth = None if settings.max_depth == 0 else settings.max_depth
    s = settings
    if s.algorithm == "Random forest":
        return [
            (
                "ours",
                lambda: (ours.RandomForestClassifier if classify else ours.RandomForestRegressor)(
                    n_estimators=s.n_estimators, max_depth=depth, random_state=s.seed
                ),
            ),
            (
                "scikit-learn",
                lambda: (sk_ensemble.RandomForestClassifier if classify else sk_ensemble.RandomForestRegressor)(
                    n_estimators=s.n_estimators, max_depth=depth, random_state=s.seed, n_jobs=1
                ),
            ),
        ]
    if s.algorithm == "AdaBoost (SAMME)":
        return [
            (
                "ours",
                lambda: ours.AdaBoostClassifier(
                    n_estimators=s.n_estimators, learning_rate=s.learning_rate, max_depth=depth, random_state=s.seed
                ),
            ),
            (
                "scikit-learn",
                lambda: sk_ensemble.AdaBoostClassifier(
                    SkDecisionTreeClassifier(max_depth=depth),
                    n_estimators=s.n_estimators,
                    learning_rate=s.learning_rate,
                    random_state=s.seed,
                ),
            ),
        ]
    if s.algorithm == "Gradient boosting":
        common = dict(
            n_estimators=s.n_estimators,
            learning_rate=s.learning_rate,
            max_depth=depth,
            subsample=s.subsample,
            random_state=s.seed,
        )
        return [
            (
                "ours",
                lambda: (ours.GradientBoostingClassifier if classify else ours.GradientBoostingRegressor)(**common),
            ),
            (
                "scikit-learn",
                lambda: (sk_ensemble.GradientBoostingClassifier if classify else sk_ensemble.GradientBoostingRegressor)(
                    **common
                ),
            ),
        ]
    import lightgbm
    import xgboost

    hist = dict(
        n_estimators=s.n_estimators,
        learning_rate=s.learning_rate,
        max_depth=depth,
        subsample=s.subsample,
        reg_lambda=s.reg_lambda,
    )
    return [
        (
            "ours",
            lambda: (ours.HistBoostingClassifier if classify else ours.HistBoostingRegressor)(
                gamma=s.gamma, random_state=s.seed, **hist
            ),
        ),
        (
            "xgboost",
            lambda: (xgboost.XGBClassifier if classify else xgboost.XGBRegressor)(
                tree_method="hist", gamma=s.gamma, random_state=s.seed, n_jobs=2, **hist
            ),
        ),
        (
            "lightgbm",
            lambda: (lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor)(
                n_estimators=s.n_estimators,
                learning_rate=s.learning_rate,
                max_depth=depth,
                num_leaves=min(2**depth, 131072),
                reg_lambda=s.reg_lambda,
                subsample=s.subsample,
                subsample_freq=1 if s.subsample < 1 else 0,
                min_child_samples=1,
                random_state=s.seed,
                n_jobs=2,
                verbose=-1,
            ),
        ),
        (
            "scikit-learn HistGradientBoosting",
            lambda: (
                sk_ensemble.HistGradientBoostingClassifier if classify else sk_ensemble.HistGradientBoostingRegressor
            )(
                max_iter=s.n_estimators,
                learning_rate=s.learning_rate,
                max_depth=depth,
                max_leaf_nodes=None,
                l2_regularization=s.reg_lambda,
                early_stopping=False,
                random_state=s.seed,
            ),
        ),
    ]


def scores_of(
    task: str, y_true: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None
) -> dict[str, float]:
    if task == "regression":
        return {
            "RMSE": float(np.sqrt(metrics.mean_squared_error(y_true, predicted))),
            "R²": float(metrics.r2_score(y_true, predicted)),
        }
    result = {"accuracy": float(metrics.accuracy_score(y_true, predicted))}
    if probabilities is not None and probabilities.shape[1] == 2 and len(np.unique(y_true)) == 2:
        result["AUC"] = float(metrics.roc_auc_score(y_true, probabilities[:, 1]))
    return result


def staged_outputs(name: str, model, X: np.ndarray, task: str, stages: list[int]):
    """Predictions after each of `stages` trees (rounds), for learning curves."""
    classify = task == "classification"
    wanted = set(stages)
    if hasattr(model, "staged_predict") and name != "lightgbm":
        for count, output in enumerate(model.staged_predict(X), start=1):
            if count in wanted:
                yield count, output
    elif name == "scikit-learn" and hasattr(model, "estimators_"):  # random forest: average the first m trees
        total = 0
        for count, tree in enumerate(model.estimators_, start=1):
            total = total + (tree.predict_proba(X) if classify else tree.predict(X))
            if count in wanted:
                yield count, (model.classes_[total.argmax(1)] if classify else total / count)
    elif name == "xgboost":
        for count in stages:
            yield count, model.predict(X, iteration_range=(0, count))
    elif name == "lightgbm":
        for count in stages:
            yield count, model.predict(X, num_iteration=count)


def curve_of(name: str, model, X: np.ndarray, y: np.ndarray, task: str, rounds: int) -> list[tuple[int, float]]:
    stages = sorted(set(np.linspace(1, rounds, min(CURVE_POINTS, rounds)).round().astype(int).tolist()))
    score = (
        (lambda predicted: metrics.accuracy_score(y, predicted))
        if task == "classification"
        else (lambda predicted: float(np.sqrt(metrics.mean_squared_error(y, predicted))))
    )
    return [(count, float(score(output))) for count, output in staged_outputs(name, model, X, task, stages)]


def rounds_of(model, settings: Settings) -> int:
    """Rounds actually trained (AdaBoost and early stopping may stop before n_estimators)."""
    for attribute in ("trees_", "estimators_"):
        fitted = getattr(model, attribute, None)
        if fitted is not None and len(fitted):
            return len(fitted)
    return settings.n_estimators


def limit_rows(X: np.ndarray, y: np.ndarray, limit: int, seed: int, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    if len(X) <= limit:
        return X, y
    rows = np.sort(np.random.default_rng(seed).permutation(len(X))[:limit])
    notes.append(
        f"Trained on a random {limit:,} of the {len(X):,} training rows, to keep the tab fast (the benchmark uses all of them)."
    )
    return X[rows], y[rows]


def compare(
    table: Table, settings: Settings, progress: Callable[[float, str], None] = lambda fraction, text: None
) -> Comparison:
    """Train ours and the references on the same split; score them on the held-out rows."""
    settings.check(table.task)
    notes = list(table.notes)
    X_train, X_test, y_train, y_test = train_test(table, seed=0)
    X_train, y_train = limit_rows(X_train, y_train, MAX_TRAIN_ROWS[settings.algorithm], settings.seed, notes)
    if settings.algorithm != "Histogram boosting (XGBoost-style)" and (
        np.isnan(X_train).any() or np.isnan(X_test).any()
    ):
        X_train, X_test = impute_median(X_train, X_test)
        notes.append(
            (
                "Missing values were filled with the training median for every model of this comparison (these "
                "exact trees need complete rows; the histogram booster learns where missing values go)."
            )
        )
    classify = table.task == "classification"
    factories = models_for(settings, table.task, len(table.class_names))
    contenders = []
    for index, (name, factory) in enumerate(factories):
        progress(index / len(factories), f"training {name}")
        model = factory()
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predicted = model.predict(X_test)
        predict_seconds = time.perf_counter() - start
        probabilities = model.predict_proba(X_test) if classify else None
        rounds = rounds_of(model, settings)
        contenders.append(
            Contender(
                name=name,
                model=model,
                fit_seconds=fit_seconds,
                predict_seconds=predict_seconds,
                scores=scores_of(table.task, y_test, predicted, probabilities),
                curve=curve_of(name, model, X_test, y_test, table.task, rounds),
                importances=np.asarray(model.feature_importances_, dtype=float)
                if hasattr(model, "feature_importances_")
                else None,
            )
        )
    progress(1.0, "done")
    return Comparison(table, settings, contenders, "accuracy" if classify else "RMSE", notes)


def first_tree(comparison: Comparison) -> Tree:
    """Our first tree (the first class's tree for a multiclass booster)."""
    model = comparison.ours.model
    for attribute in ("trees_", "estimators_"):
        trees = getattr(model, attribute, None)
        if trees:
            first = trees[0]
            first = first[0] if isinstance(first, list) else first
            return first.tree_ if hasattr(first, "tree_") else first
    raise ValueError("This model has no trees to draw.")


def boundary(table: Table, settings: Settings, first_feature: str, second_feature: str, resolution: int = 150):
    """Ours and the main reference trained on two features only: (grid x, grid y, ours (r, r),
    reference (r, r), test points (n, 2), test targets, names)."""
    names = table.feature_names
    for feature in (first_feature, second_feature):
        if feature not in names:
            raise ValueError(
                (
                    f"{feature!r} is not a feature of {table.name}; choose from: "
                    f"{', '.join(names[:30])}{' …' if len(names) > 30 else ''}."
                )
            )
    if first_feature == second_feature:
        raise ValueError("Choose two different features for the decision boundary.")
    columns = [names.index(first_feature), names.index(second_feature)]
    reduced = replace(
        table,
        X=table.X[:, columns],
        feature_names=[first_feature, second_feature],
        categorical=[table.categorical[c] for c in columns],
    )
    settings.check(table.task)
    X_train, X_test, y_train, y_test = train_test(reduced, seed=0)
    X_train, y_train = limit_rows(X_train, y_train, MAX_TRAIN_ROWS[settings.algorithm], settings.seed, [])
    if settings.algorithm != "Histogram boosting (XGBoost-style)":
        X_train, X_test = impute_median(X_train, X_test)
    shown = np.vstack([X_train, X_test])
    finite = shown[np.isfinite(shown).all(1)]
    low, high = finite.min(0), finite.max(0)
    pad = (high - low) * 0.05 + 1e-9
    grid_x, grid_y = np.meshgrid(
        np.linspace(low[0] - pad[0], high[0] + pad[0], resolution),
        np.linspace(low[1] - pad[1], high[1] + pad[1], resolution),
    )
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    surfaces = []
    for name, factory in models_for(settings, table.task, len(table.class_names))[:2]:
        model = factory().fit(X_train, y_train)
        surfaces.append((name, model.predict(grid).reshape(grid_x.shape).astype(float)))
    return grid_x, grid_y, surfaces, X_test, y_test
