"""Boosting tab: a table (bundled or an uploaded CSV) and an algorithm -> our ensemble and the
reference libraries trained side by side: scores, times, learning curves, importances, our first
tree and a 2-D decision boundary. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import gradio as gr

from apps.boosting import ALGORITHMS
from shared.ui import Slider, WholeNumber, code_panel, pyplot, source_of, user_errors

if TYPE_CHECKING:
    from apps.boosting import data
    from apps.boosting import side_by_side as sbs

INTRODUCTION = """
## Boosting and forests: our trees beside scikit-learn, XGBoost and LightGBM
Our ensembles (`apps/boosting/`, NumPy only) and the reference libraries are trained on the **same
rows with the same hyperparameters** and scored on the same held-out quarter of the table. Pick a
bundled table (some have categories and missing values) or upload a CSV and choose its target.
"""
UPLOAD = "upload a CSV"
MODEL = "apps.boosting.model:"
CODE_SHOWN = {
    "Random forest": (MODEL + "RandomForestClassifier.fit",),
    "AdaBoost (SAMME)": (MODEL + "AdaBoostClassifier.fit",),
    "Gradient boosting": (MODEL + "GradientBoostingClassifier._leaf_value", "apps.boosting.tree:best_split"),
    "Histogram boosting (XGBoost-style)": (MODEL + "HistBoostingClassifier.fit",),
}
FIRST_TABLE = "breast_cancer"


@functools.lru_cache(maxsize=4)
def uploaded_table(path: str, target: str | None, modified: float | None) -> data.Table:
    """An uploaded CSV, parsed once for the events that follow (choosing the target, training, the
    boundary); a file changed on disk is parsed again."""
    from apps.boosting import csv_upload

    return csv_upload.table_from_csv(path, target)


def load(choice: str, csv_file, target: str | None) -> data.Table:
    from apps.boosting import data

    if choice == UPLOAD:
        if csv_file is None:
            raise ValueError("Upload a CSV file first (or pick a bundled table).")
        return uploaded_table(csv_file, target, os.path.getmtime(csv_file) if os.path.exists(csv_file) else None)
    if choice not in data.TABLES:
        raise ValueError(f"Unknown table {choice!r}; choose one of: {', '.join(data.TABLES)}.")
    return data.load_table(choice)


@user_errors
def describe_table(choice, csv_file):
    """After a table or file is chosen: its target choices and its feature names for the boundary."""
    from apps.boosting import csv_upload

    if choice == UPLOAD:
        if csv_file is None:
            return (
                gr.update(choices=[], value=None, visible=True),
                gr.update(choices=[], value=None),
                gr.update(choices=[], value=None),
                "Upload a CSV, then choose the column to predict.",
            )
        columns = csv_upload.csv_columns(csv_file)
        return (
            gr.update(choices=columns, value=None, visible=True),
            gr.update(choices=[], value=None),
            gr.update(choices=[], value=None),
            f"{len(columns)} columns. Choose the column to predict.",
        )
    table = load(choice, None, None)
    return (gr.update(choices=[], value=None, visible=False), *feature_choices(table), table_summary(table))


@user_errors
def describe_upload(csv_file):
    """A file was uploaded (or cleared): switch the table choice to the upload and list its columns."""
    if csv_file is None:
        return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
    return (gr.update(value=UPLOAD), *describe_table(UPLOAD, csv_file))


@user_errors
def describe_target(choice, csv_file, target):
    if choice != UPLOAD or not target:
        return gr.update(), gr.update(), ""
    table = load(UPLOAD, csv_file, target)
    return (*feature_choices(table), table_summary(table))


@user_errors
def describe_features(choice, csv_file, target):
    """The boundary's feature choices for the chosen table (filled when the boundary panel opens)."""
    return feature_choices(load(choice, csv_file, target))


def feature_choices(table: data.Table):
    names = table.feature_names
    return gr.update(choices=names, value=names[0]), gr.update(choices=names, value=names[min(1, len(names) - 1)])


def table_summary(table: data.Table) -> str:
    task = (
        (
            f"classification into {len(table.class_names)} classes "
            f"({', '.join(map(str, table.class_names[:6]))}{'…' if len(table.class_names) > 6 else ''})"
        )
        if table.task == "classification"
        else "regression (a numeric target)"
    )
    lines = [
        (
            f"**{table.name}**: {table.n_rows:,} rows, {table.n_features} features ({sum(table.categorical)} "
            f"categorical), {table.n_missing:,} missing values; task detected: {task}."
        )
    ]
    return "\n".join(lines + [f"- {note}" for note in table.notes])


def results_frame(comparison: sbs.Comparison):
    import pandas as pd

    rows = []
    for contender in comparison.contenders:
        row = {"model": contender.name}
        row.update({name: round(value, 4) for name, value in contender.scores.items()})
        row.update(
            {
                "fit s": round(contender.fit_seconds, 3),
                "predict s": round(contender.predict_seconds, 4),
                "ours' fit time / this": round(comparison.ours.fit_seconds / max(contender.fit_seconds, 1e-9), 2),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def curves_figure(comparison: sbs.Comparison):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for contender in comparison.contenders:
        if contender.curve:
            trees, scores = zip(*contender.curve)
            axis.plot(
                trees,
                scores,
                marker="o",
                markersize=3,
                label=contender.name,
                linewidth=2.5 if contender.name == "ours" else 1.5,
            )
    axis.set_xlabel("trees (boosting rounds)")
    axis.set_ylabel(f"held-out {comparison.metric}")
    axis.set_title("Learning curves on the held-out rows")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure


def importance_figure(comparison: sbs.Comparison, top: int = 15):
    import numpy as np

    plt = pyplot()
    names = comparison.table.feature_names
    ours, reference = comparison.ours.importances, comparison.reference.importances
    order = np.argsort(-ours)[:top]
    figure, axis = plt.subplots(figsize=(6.5, 0.3 * len(order) + 1.2))
    positions = np.arange(len(order))
    axis.barh(positions - 0.2, ours[order], height=0.4, label="ours")
    if reference is not None:
        axis.barh(
            positions + 0.2, reference[order] / max(reference.sum(), 1e-12), height=0.4, label=comparison.reference.name
        )
    axis.set_yticks(positions)
    axis.set_yticklabels([names[i] for i in order])
    axis.invert_yaxis()
    axis.set_xlabel("importance (share of the total)")
    axis.set_title("Feature importances")
    axis.legend()
    figure.tight_layout()
    plt.close(figure)
    return figure


def tree_figure(tree, table: data.Table, max_depth: int = 3):
    """Our first tree, boxes and arrows, down to `max_depth` levels."""
    import numpy as np

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(11, 4.8))
    axis.axis("off")
    positions: dict[int, tuple[float, float]] = {}

    def place(node: int, depth: int, left: float, right: float) -> None:
        positions[node] = ((left + right) / 2, -depth)
        if tree.left[node] != -1 and depth < max_depth:
            middle = (left + right) / 2
            place(int(tree.left[node]), depth + 1, left, middle)
            place(int(tree.right[node]), depth + 1, middle, right)

    place(0, 0, 0.0, 1.0)
    for node, (x, y) in positions.items():
        if tree.left[node] != -1 and int(tree.left[node]) in positions:
            for child, side in ((int(tree.left[node]), "yes"), (int(tree.right[node]), "no")):
                cx, cy = positions[child]
                axis.annotate(
                    "", xy=(cx, cy + 0.12), xytext=(x, y - 0.12), arrowprops=dict(arrowstyle="->", color="#888")
                )
                axis.text((x + cx) / 2, (y + cy) / 2, side, fontsize=7, color="#666", ha="center")
        if tree.left[node] != -1:
            name = table.feature_names[tree.feature[node]]
            missing = " (missing: yes)" if tree.missing_left[node] else ""
            test = (
                f"{name} is known"
                if np.isinf(tree.threshold[node])
                else f"{name} ≤ {tree.threshold[node]:.4g}{missing}"
            )
            label = f"{test}\n{tree.n_samples[node]} rows"
            if int(tree.left[node]) not in positions:
                label += "\n…"
            colour = "#e8eaf0"
        else:
            value = tree.value[node]
            shown = (
                f"value {value[0]:+.4g}"
                if len(value) == 1
                else f"class {table.class_names[int(np.argmax(value))]} ({value.max():.0%})"
            )
            label = f"leaf: {shown}\n{tree.n_samples[node]} rows"
            colour = "#d7f5dd"
        axis.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=7.5,
            bbox=dict(boxstyle="round", facecolor=colour, edgecolor="#999"),
        )
    axis.set_ylim(-min(max_depth, tree.depth()) - 0.5, 0.5)
    axis.set_title(f"Our first tree (first {max_depth} levels of {tree.depth()}; x ≤ threshold goes left)")
    plt.close(figure)
    return figure


def boundary_figure(table: data.Table, first: str, second: str, grid_x, grid_y, surfaces, X_test, y_test):
    import numpy as np

    plt = pyplot()
    figure, axes = plt.subplots(1, len(surfaces), figsize=(11, 4.5), sharey=True)
    for axis, (name, surface) in zip(np.atleast_1d(axes), surfaces):
        if table.task == "classification":
            levels = np.arange(len(table.class_names) + 1) - 0.5
            axis.contourf(grid_x, grid_y, surface, levels=levels, cmap="tab10", alpha=0.35, vmin=0, vmax=9)
            axis.scatter(
                X_test[:, 0], X_test[:, 1], c=y_test, cmap="tab10", vmin=0, vmax=9, s=10, edgecolors="k", linewidths=0.3
            )
        else:
            image = axis.contourf(grid_x, grid_y, surface, levels=20, cmap="viridis")
            axis.scatter(X_test[:, 0], X_test[:, 1], c=y_test, cmap="viridis", s=10, edgecolors="k", linewidths=0.3)
            figure.colorbar(image, ax=axis)
        axis.set_title(name)
        axis.set_xlabel(first)
    np.atleast_1d(axes)[0].set_ylabel(second)
    figure.suptitle("Trained on these two features only; points are held-out rows")
    figure.tight_layout()
    plt.close(figure)
    return figure


def settings_from(
    algorithm, n_estimators, learning_rate, max_depth, subsample, reg_lambda, gamma, seed
) -> sbs.Settings:
    from apps.boosting import side_by_side as sbs

    return sbs.Settings(
        algorithm=algorithm,
        n_estimators=int(n_estimators),
        learning_rate=float(learning_rate),
        max_depth=int(max_depth),
        subsample=float(subsample),
        reg_lambda=float(reg_lambda),
        gamma=float(gamma),
        seed=int(seed or 0),
    )


@user_errors
def train(
    choice,
    csv_file,
    target,
    algorithm,
    n_estimators,
    learning_rate,
    max_depth,
    subsample,
    reg_lambda,
    gamma,
    seed,
    progress=gr.Progress(),
):
    from apps.boosting import side_by_side as sbs

    table = load(choice, csv_file, target)
    settings = settings_from(algorithm, n_estimators, learning_rate, max_depth, subsample, reg_lambda, gamma, seed)
    comparison = sbs.compare(table, settings, progress=lambda fraction, text: progress(fraction, desc=text))
    notes = table_summary(table) + "".join(f"\n- {note}" for note in comparison.notes if note not in table.notes)
    return (
        notes,
        results_frame(comparison),
        curves_figure(comparison),
        importance_figure(comparison),
        tree_figure(sbs.first_tree(comparison), table),
        source_of(*CODE_SHOWN[algorithm]),
    )


@user_errors
def draw_boundary(
    choice,
    csv_file,
    target,
    algorithm,
    n_estimators,
    learning_rate,
    max_depth,
    subsample,
    reg_lambda,
    gamma,
    seed,
    first,
    second,
    progress=gr.Progress(),
):
    from apps.boosting import side_by_side as sbs

    progress(0.1, desc="training on two features")
    table = load(choice, csv_file, target)
    settings = settings_from(algorithm, n_estimators, learning_rate, max_depth, subsample, reg_lambda, gamma, seed)
    grid_x, grid_y, surfaces, X_test, y_test = sbs.boundary(table, settings, first, second)
    return boundary_figure(table, first, second, grid_x, grid_y, surfaces, X_test, y_test)


def build_tab() -> None:
    from apps.boosting.data import TABLES  # names and descriptions only: the tables load on first use

    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=2):
            choice = gr.Dropdown([*TABLES, UPLOAD], value=FIRST_TABLE, label="Table")
            csv_file = gr.File(
                label="or upload a CSV (at most 50 MB)",
                file_types=[".csv", ".txt", ".tsv"],
                type="filepath",
                height=110,
            )
            target = gr.Dropdown(
                [], label="Column to predict", visible=False, allow_custom_value=True
            )  # checked by the data layer, with the column list
            algorithm = gr.Radio(list(ALGORITHMS), value="Gradient boosting", label="Algorithm")
            with gr.Row():
                n_estimators = Slider(1, 500, value=100, step=1, label="Trees (rounds)")
                learning_rate = Slider(0.01, 1.0, value=0.1, step=0.01, label="Learning rate")
            with gr.Row():
                max_depth = Slider(0, 12, value=3, step=1, label="Max depth (0 = unlimited, forest only)")
                subsample = Slider(0.1, 1.0, value=1.0, step=0.05, label="Row subsample")
            with gr.Accordion("XGBoost-style regularisation", open=False):
                reg_lambda = Slider(0.0, 10.0, value=1.0, step=0.1, label="lambda (L2 on leaf weights)")
                gamma = Slider(0.0, 10.0, value=0.0, step=0.1, label="gamma (minimum gain to split)")
            seed = WholeNumber(0, label="Seed")
            train_button = gr.Button("Train side by side", variant="primary")
        with gr.Column(scale=3):
            notes = gr.Markdown(TABLES[FIRST_TABLE])
            results = gr.Dataframe(
                label="Held-out scores and times (same rows, same hyperparameters)", interactive=False
            )
            with gr.Row():
                curves = gr.Plot(label="Learning curves")
                importances = gr.Plot(label="Importances")
            tree = gr.Plot(label="Our first tree")
            with gr.Accordion("Decision boundary on two features", open=False) as boundary_panel:
                with gr.Row():  # the features are checked against the chosen table
                    first = gr.Dropdown([], label="x feature", allow_custom_value=True)
                    second = gr.Dropdown([], label="y feature", allow_custom_value=True)
                    boundary_button = gr.Button("Draw the boundary")
                boundary = gr.Plot(label="Ours | reference")
    code = code_panel(*CODE_SHOWN["Gradient boosting"])
    parameters = [
        choice,
        csv_file,
        target,
        algorithm,
        n_estimators,
        learning_rate,
        max_depth,
        subsample,
        reg_lambda,
        gamma,
        seed,
    ]
    choice.change(
        describe_table, inputs=[choice, csv_file], outputs=[target, first, second, notes], api_name="boosting_table"
    )
    csv_file.change(describe_upload, inputs=[csv_file], outputs=[choice, target, first, second, notes], api_name=False)
    target.change(
        describe_target, inputs=[choice, csv_file, target], outputs=[first, second, notes], api_name="boosting_target"
    )
    boundary_panel.expand(describe_features, inputs=[choice, csv_file, target], outputs=[first, second], api_name=False)
    train_button.click(
        train, inputs=parameters, outputs=[notes, results, curves, importances, tree, code], api_name="boosting_train"
    )
    boundary_button.click(
        draw_boundary, inputs=[*parameters, first, second], outputs=[boundary], api_name="boosting_boundary"
    )


API_EXAMPLES = {  # the first is the topic's main action
    "boosting_train": ("iris", None, None, "Gradient boosting", 20, 0.1, 3, 1.0, 1.0, 0.0, 0),
    "boosting_table": ("wine", None),
    "boosting_target": ("breast_cancer", None, None),
    "boosting_boundary": (
        "iris",
        None,
        None,
        "Random forest",
        10,
        0.1,
        0,
        1.0,
        1.0,
        0.0,
        0,
        "petal length (cm)",
        "petal width (cm)",
    ),
}
BROWSER_CHECK = {"button": "Train side by side", "expect_text": "ours' fit time", "timeout_ms": 60000}
