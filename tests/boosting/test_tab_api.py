"""The boosting tab through its API, as a remote user or the browser calls it."""

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

HYPERPARAMETERS = ("Gradient boosting", 10, 0.1, 3, 1.0, 1.0, 0.0, 0)


def test_training_shows_ours_and_the_reference(client):
    notes, results, curves, importances, tree, code = client.predict(
        "wine", None, None, *HYPERPARAMETERS, api_name="/boosting_train"
    )
    models = [row[0] for row in results["data"]]
    assert models == ["ours", "scikit-learn"] and "accuracy" in results["headers"]
    assert "classification into 3 classes" in notes
    assert curves is not None and importances is not None and tree is not None and "def _leaf_value" in code


def test_histogram_booster_is_compared_with_three_libraries(client):
    _, results, *_ = client.predict(
        "titanic",
        None,
        None,
        "Histogram boosting (XGBoost-style)",
        10,
        0.3,
        3,
        1.0,
        1.0,
        0.0,
        0,
        api_name="/boosting_train",
    )
    assert [row[0] for row in results["data"]] == ["ours", "xgboost", "lightgbm", "scikit-learn HistGradientBoosting"]
    assert "AUC" in results["headers"]


def test_an_uploaded_csv_is_cleaned_and_trained_on(client, tmp_path):
    rows = ["passenger_id,cabin_class,age,fare,constant,survived"]
    rows += [
        f"{i},{['first', 'second', 'third'][i % 3]},{'' if i % 7 == 0 else 20 + i % 50},{10 + (i * 37) % 90},same,"
        f"{'yes' if (i % 3 == 0) != (i % 5 == 0) else 'no'}"
        for i in range(200)
    ]
    path = tmp_path / "passengers.csv"
    path.write_text("\n".join(rows) + "\n")
    target, first, second, notes = client.predict("upload a CSV", handle_file(str(path)), api_name="/boosting_table")
    first, second, notes = client.predict(
        "upload a CSV", handle_file(str(path)), "survived", api_name="/boosting_target"
    )
    assert "classification" in notes and "passenger_id" in notes and "constant" in notes
    notes, results, *_ = client.predict(
        "upload a CSV", handle_file(str(path)), "survived", *HYPERPARAMETERS, api_name="/boosting_train"
    )
    assert [row[0] for row in results["data"]] == ["ours", "scikit-learn"]
    assert "median" in notes  # missing ages filled for the exact trees


@pytest.mark.parametrize(
    "content, target, message",
    [
        ("a,b\n1,x\n2,x\n3,x\n4,x\n5,x\n6,x\n7,x\n8,x\n9,x\n10,x\n11,x\n", "b", "single class"),
        ("a,b\n1,2\n", "b", r"Only 1 row\(s\) have a value for the target .b.; at least 10"),
        ("a,b\n1,2\n3,4\n", None, "(?i)choose|target"),
    ],
)
def test_bad_csv_gives_a_clear_message(client, tmp_path, content, target, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(AppError, match=message):
        client.predict("upload a CSV", handle_file(str(path)), target, *HYPERPARAMETERS, api_name="/boosting_train")


def test_adaboost_on_a_regression_table_is_refused_clearly(client):
    with pytest.raises(AppError, match="AdaBoost .* classifier"):
        client.predict(
            "diabetes", None, None, "AdaBoost (SAMME)", 10, 0.1, 1, 1.0, 1.0, 0.0, 0, api_name="/boosting_train"
        )


def test_upload_without_a_file(client):
    with pytest.raises(AppError, match="Upload a CSV file first"):
        client.predict("upload a CSV", None, "y", *HYPERPARAMETERS, api_name="/boosting_train")


def test_boundary_needs_two_different_features(client):
    with pytest.raises(AppError, match="two different features"):
        client.predict(
            "iris",
            None,
            None,
            *HYPERPARAMETERS,
            "petal length (cm)",
            "petal length (cm)",
            api_name="/boosting_boundary",
        )
    figure = client.predict("diabetes", None, None, *HYPERPARAMETERS, "bmi", "bp", api_name="/boosting_boundary")
    assert figure is not None
