"""Input checks shared by every estimator of the topic.

They go through scikit-learn's own `validate_data`, so our estimators accept and refuse what its
estimators do, with its messages (and pass its conformance suite, `check_estimator`): 2-D numeric X,
dense only (sparse matrices are refused with a message saying so), no complex numbers, at least one
row and one feature, `n_features_in_` and `feature_names_in_` recorded by `fit` and checked by every
prediction, a classification target that really holds classes. On top of that, our own messages say
what to do about missing and infinite values.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import is_regressor
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


def _check_finite(estimator, X: np.ndarray, allow_nan: bool) -> np.ndarray:
    if allow_nan:
        if np.isinf(X).any():
            raise ValueError("X contains infinite values (inf); only NaN (missing) is allowed besides finite numbers.")
    elif not np.isfinite(X).all():
        raise ValueError(
            f"X contains missing (NaN) or infinite (inf) values; {type(estimator).__name__} needs them filled in "
            "(impute first), or use the histogram booster, which learns where missing values go."
        )
    return X


def fit_data(
    estimator, X, y, *, allow_nan: bool = False, min_samples: int = 1, reset: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) for `fit`: X float64 (n, d); y 1-D (float64 for a regressor, checked to hold classes for a
    classifier). Records `n_features_in_` (and `feature_names_in_` for a data frame), or with
    `reset=False` (a validation set) checks X against them."""
    X, y = validate_data(
        estimator,
        X,
        y,
        reset=reset,
        dtype=np.float64,
        ensure_all_finite=False,
        ensure_min_samples=min_samples,
        y_numeric=is_regressor(estimator),
    )
    if not is_regressor(estimator):
        check_classification_targets(y)
    return _check_finite(estimator, X, allow_nan), y


def predict_data(estimator, X, *, allow_nan: bool = False) -> np.ndarray:
    """X for a prediction of a fitted estimator: float64 with the features `fit` saw."""
    check_is_fitted(estimator)
    X = validate_data(estimator, X, dtype=np.float64, ensure_all_finite=False, reset=False)
    return _check_finite(estimator, X, allow_nan)


def sample_weights(sample_weight, n_samples: int) -> np.ndarray:
    """Non-negative float weights, one per row, not all zero (ones when None)."""
    if sample_weight is None:
        return np.ones(n_samples)
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},); got {weight.shape}.")
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("sample_weight must hold finite, non-negative numbers.")
    if not (weight > 0).any():
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weight
