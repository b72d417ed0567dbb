"""The pictures of the metric topic (matplotlib, imported on first use): embeddings on the plane or the sphere,
pair-distance histograms, the InfoNCE bound along training. The tab and the benchmark draw the same figures."""

from __future__ import annotations

import numpy as np

from shared.ui import pyplot

DIGIT_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def finished(figure):
    """Lay the figure out and detach it from pyplot's list of open figures (gr.Plot and savefig still draw it)."""
    figure.tight_layout()
    pyplot().close(figure)
    return figure


def draw_plane(axis, embeddings: np.ndarray, labels: np.ndarray, class_weights: np.ndarray, title: str) -> None:
    """2-D embeddings as they are (their lengths matter to softmax), and each class's weight direction as a ray:
    the classic "fan" of softmax-trained features."""
    for digit in range(10):
        chosen = embeddings[labels == digit]
        axis.scatter(chosen[:, 0], chosen[:, 1], s=5, alpha=0.6, color=DIGIT_COLOURS[digit], label=str(digit))
    reach = np.abs(embeddings).max() * 1.05
    for digit, direction in enumerate(class_weights):
        end = direction / (np.linalg.norm(direction) + 1e-12) * reach
        axis.plot([0, end[0]], [0, end[1]], color=DIGIT_COLOURS[digit], linewidth=1.2)
        axis.text(end[0], end[1], str(digit), fontsize=8, color=DIGIT_COLOURS[digit], weight="bold")
    axis.set(title=title, xticks=[], yticks=[], aspect="equal", xlim=(-reach, reach), ylim=(-reach, reach))


def draw_sphere(axis, embeddings: np.ndarray, labels: np.ndarray, class_weights: np.ndarray, title: str) -> None:
    """3-D embeddings projected onto the unit sphere (where the angular losses place them), class weights as stars."""
    unit = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 24), np.linspace(0, np.pi, 12))
    axis.plot_wireframe(np.cos(u) * np.sin(v), np.sin(u) * np.sin(v), np.cos(v), color="#dddddd", linewidth=0.4)
    for digit in range(10):
        chosen = unit[labels == digit]
        axis.scatter(chosen[:, 0], chosen[:, 1], chosen[:, 2], s=4, alpha=0.7, color=DIGIT_COLOURS[digit])
    weights = class_weights / (np.linalg.norm(class_weights, axis=1, keepdims=True) + 1e-12) * 1.15
    for digit, point in enumerate(weights):
        axis.scatter(*point, marker="*", s=80, color=DIGIT_COLOURS[digit], edgecolor="black", linewidth=0.5)
        axis.text(*point, f" {digit}", fontsize=8)
    axis.set(title=title, xticks=[], yticks=[], zticks=[])
    axis.set_box_aspect((1, 1, 1))


def embedding_figure(embeddings, labels, class_weights, title: str, query: np.ndarray | None = None):
    """One panel: the plane for 2-D embeddings, the sphere for 3-D; `query` (D,) is drawn as a large black star."""
    plt = pyplot()
    three_d = embeddings.shape[1] == 3
    figure = plt.figure(figsize=(6.4, 6))
    axis = figure.add_subplot(projection="3d" if three_d else None)
    (draw_sphere if three_d else draw_plane)(axis, embeddings, labels, class_weights, title)
    if query is not None:
        point = query / np.linalg.norm(query) * 1.05 if three_d else query
        axis.scatter(*point, marker="*", s=400, color="black", edgecolor="white", zorder=5)
    if not three_d:
        axis.legend(markerscale=3, fontsize=7, loc="upper right", ncols=2)
    return finished(figure)


def embedding_grid(panels: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]):
    """Every trained loss side by side: 2-D embeddings on the top row, 3-D on the bottom row."""
    plt = pyplot()
    columns = len(panels) // 2
    figure = plt.figure(figsize=(4.2 * columns, 8.4))
    for index, (embeddings, labels, class_weights, title) in enumerate(panels):
        three_d = embeddings.shape[1] == 3
        axis = figure.add_subplot(2, columns, index + 1, projection="3d" if three_d else None)
        (draw_sphere if three_d else draw_plane)(axis, embeddings, labels, class_weights, title)
    return finished(figure)


def distance_histograms(siamese: dict):
    """Held-out same-digit and different-digit pair distances, before and after contrastive training."""
    plt = pyplot()
    bins = np.asarray(siamese["bins"])
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for axis, moment in zip(axes, ("before", "after")):
        for kind, colour in (("same", "#2ca02c"), ("different", "#d62728")):
            counts = np.asarray(siamese[moment][kind], dtype=float)
            axis.stairs(counts / counts.sum(), bins, fill=True, alpha=0.5, color=colour, label=f"{kind} digit")
        axis.axvline(siamese["config"]["margin"], color="black", linestyle="--", linewidth=1)
        axis.set(title=f"{moment} training", xlabel="distance between unit embeddings")
    axes[0].set_ylabel("share of pairs")
    axes[1].legend()
    return finished(figure)


def infonce_bound_curve(simclr: dict):
    """log N - L_InfoNCE along SimCLR training, a lower bound on the mutual information between two views."""
    plt = pyplot()
    bound = np.asarray(simclr["infonce_bound"])
    window = max(1, len(bound) // 50)
    smooth = np.convolve(bound, np.ones(window) / window, mode="valid")
    figure, axis = plt.subplots(figsize=(7, 3.6))
    axis.plot(bound, color="#9ecae1", linewidth=0.8, label="per step")
    axis.plot(np.arange(len(smooth)) + window - 1, smooth, color="#08519c", label=f"mean of {window} steps")
    axis.axhline(simclr["log_candidates"], color="black", linestyle="--", linewidth=1, label="log N (the ceiling)")
    axis.set(
        xlabel="step", ylabel="nats", title=f"InfoNCE bound I(view1; view2) >= log N - L, N = {simclr['candidates']}"
    )
    axis.legend()
    return finished(figure)
