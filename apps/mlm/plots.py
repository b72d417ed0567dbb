"""Figures of the topic, shared by the tab, the training script and the docs: the three position encodings
drawn, and held-out accuracy and perplexity against sequence length (the extrapolation study)."""

from __future__ import annotations

import torch

from apps.mlm.model import inverse_frequencies, rotary_angles, rotate_pairs, sinusoidal_table

KIND_COLOURS = {"learned": "tab:blue", "sinusoidal": "tab:orange", "rotary": "tab:green"}
ANCHORS = (16, 48, 80)  # key positions n whose score against every query position m is drawn


def score_against_offset(kind: str, length: int, head_size: int, learned_table: torch.Tensor | None) -> dict:
    """anchor n -> scores s(m, n) for m = 0 .. length-1, for one position kind, normalised by s(n, n).

    learned / sinusoidal: the dot product of the position vectors P(m) . P(n) (what the first layer's
    attention sees of position alone). rotary: one fixed random vector rotated to m as the query and to n
    as the key (RoFormer section 3.4.3: the score then decays, on average, with the distance). If the
    curves of all anchors coincide once plotted against m - n, the score depends on the offset only."""
    positions = torch.arange(length)
    if kind == "rotary":
        generator = torch.Generator().manual_seed(0)
        vector = torch.randn(1, 1, 1, head_size, generator=generator)
        cos, sin = rotary_angles(positions, head_size)
        rotated = rotate_pairs(vector.expand(1, 1, length, head_size), cos, sin)[0, 0]  # (T, D): the vector at each m
        scores = rotated @ rotated.T  # (T, T): s[m, n]
    else:
        table = learned_table[:length] if kind == "learned" else sinusoidal_table(positions, head_size)
        scores = table @ table.T
    return {n: (scores[:, n] / scores[n, n].abs()).numpy() for n in ANCHORS if n < len(scores)}


def draw_encodings(
    learned_table: torch.Tensor | None = None, length: int = 128, hidden_size: int = 128, head_size: int = 32
):
    """Three panels: the sinusoid matrix, the rotary angles pos * theta_i (mod 2 pi), and score against offset
    for the three kinds (learned from `learned_table`, the shipped encoder's position embedding)."""
    from shared.ui import pyplot

    plt = pyplot()
    kinds = ["sinusoidal", "rotary"] + (["learned"] if learned_table is not None else [])
    figure, axes = plt.subplots(1, 2 + len(kinds), figsize=(5.2 * (2 + len(kinds)), 4.2))
    shown = axes[0].imshow(sinusoidal_table(torch.arange(length), hidden_size).T, aspect="auto", cmap="RdBu")
    axes[0].set(xlabel="position", ylabel="coordinate", title="sinusoidal PE(pos, i), added to tokens")
    figure.colorbar(shown, ax=axes[0], fraction=0.046)
    angles = torch.arange(length, dtype=torch.float64)[:, None] * inverse_frequencies(head_size)[None, :]
    shown = axes[1].imshow(torch.remainder(angles, 2 * torch.pi).T, aspect="auto", cmap="twilight")
    axes[1].set(xlabel="position", ylabel="pair (2i, 2i+1)", title="rotary angle pos * theta_i (mod 2 pi)")
    figure.colorbar(shown, ax=axes[1], fraction=0.046)
    for axis, kind in zip(axes[2:], kinds):
        size = hidden_size if kind != "rotary" else head_size
        for n, scores in score_against_offset(kind, length, size, learned_table).items():
            axis.plot(torch.arange(length) - n, scores, label=f"n = {n}", alpha=0.8)
        axis.set(xlabel="offset m - n", ylabel="score / score at m = n", title=f"{kind}: score against offset")
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def draw_extrapolation(report: dict):
    """Held-out masked-token accuracy and perplexity at each evaluation length, one line per kind. A
    learned-position encoder refuses lengths past its table (marked x); the dashed line scores it with
    the positions clamped to the table's last row."""
    from shared.ui import pyplot

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    train_length = report["train_length"]
    for metric, axis in zip(("accuracy", "perplexity"), axes):
        for kind, entry in report["encoders"].items():
            rows = list(entry["held_out"].values())
            scored = [row for row in rows if metric in row]
            colour = KIND_COLOURS[kind]
            axis.plot([r["length"] for r in scored], [r[metric] for r in scored], "o-", color=colour, label=kind)
            refused = [r for r in rows if "refused" in r]
            if refused:
                clamped = [scored[-1]] + [r["clamped"] for r in refused]
                axis.plot(
                    [r["length"] for r in clamped],
                    [r[metric] for r in clamped],
                    "x--",
                    color=colour,
                    label=f"{kind}: refuses; clamped positions",
                )
        axis.axvline(train_length, color="grey", linestyle=":", linewidth=1)
        axis.set(xlabel="sequence length (tokens)", ylabel=f"held-out masked-token {metric}")
        axis.set_xscale("log", base=2)
        axis.set_xticks([128, 256, 512], labels=["128", "256", "512"])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    axes[0].set_title(f"accuracy (trained at {train_length})")
    axes[1].set_title("perplexity (lower is better)")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return figure
