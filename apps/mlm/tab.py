"""Masked language models tab: a sentence with [MASK]s -> the top-k fillers from our encoder beside
`transformers`' fill-mask pipeline on the same weights, for each position kind; attention maps per head;
the three position encodings drawn; held-out accuracy against length; gradient checkpointing measured.
UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from shared.ui import WholeNumber, code_panel, comparison_badges, pyplot, source_of, user_errors

MODEL = "apps.mlm.model:"
CODE_SHOWN = {
    "fill": (MODEL + "SelfAttention.forward", MODEL + "rotate_pairs", MODEL + "MaskedLanguageModel.encode"),
    "positions": (MODEL + "sinusoidal_table", MODEL + "rotary_angles", MODEL + "rotate_pairs"),
    "figures": (MODEL + "mask_tokens", MODEL + "MaskedLanguageModel.masked_loss"),
}
KIND_LABELS = {
    "learned absolute (BERT)": "learned",
    "sinusoidal (Vaswani et al.)": "sinusoidal",
    "rotary (RoFormer)": "rotary",
}
EXAMPLE_SENTENCE = "The [MASK] of France is Paris, and the [MASK] is the euro."
PROBABILITY_TOLERANCE = 1e-5  # |ours - pipeline| on probabilities: float rounding only

INTRODUCTION = """
## Masked language models: BERT, and three ways to tell a Transformer where a word is
A BERT-style encoder reads a sentence in both directions and guesses the tokens hidden behind **[MASK]**.
It was trained here (`python -m apps.mlm.train`) by masking 15% of the tokens of the Wikipedia sample
(80% [MASK], 10% a random token, 10% unchanged) in three versions that differ only in how positions enter:
a **learned** table added to the tokens (BERT), fixed **sinusoids** added to the tokens (Vaswani et al.), or
**rotary** positions that turn each query and key by an angle proportional to its position (RoFormer), so
that attention sees only the offset between two words. The right-hand column runs `transformers`'
`fill-mask` pipeline on **the same weights** (BertForMaskedLM or RoFormerForMaskedLM) with our tokenizer
exported as a `tokenizer.json`. The models are small (1.3 M parameters, a few minutes of CPU each):
expect frequent words and punctuation more than facts.
"""


def fillers_table(result) -> list[list]:
    rows = []
    for mask, (ours, reference) in enumerate(zip(result.ours, result.reference), start=1):
        for rank, (a, b) in enumerate(zip(ours, reference), start=1):
            rows.append([mask, rank, repr(a.piece), round(a.probability, 4), repr(b.piece), round(b.probability, 4)])
    return rows


def attention_figure(result):
    """One heat map per layer (rows) and head (columns): where each token (row) looks (column)."""
    plt = pyplot()
    attentions = result.attentions.numpy()
    layers, heads, length, _ = attentions.shape
    figure, axes = plt.subplots(layers, heads, figsize=(2.6 * heads + 1, 2.6 * layers + 0.5), squeeze=False)
    labels = [piece.replace("\n", "\\n") for piece in result.pieces] if length <= 24 else None
    for layer in range(layers):
        for head in range(heads):
            axis = axes[layer][head]
            axis.imshow(attentions[layer, head], cmap="viridis", vmin=0)  # each map on its own scale
            axis.set_xticks([])
            axis.set_yticks([])
            if layer == 0:
                axis.set_title(f"head {head + 1}", fontsize=9)
            if head == 0:
                axis.set_ylabel(f"layer {layer + 1}", fontsize=9)
                if labels:
                    axis.set_yticks(range(length), labels=labels, fontsize=6)
            if layer == layers - 1 and labels:
                axis.set_xticks(range(length), labels=labels, fontsize=6, rotation=90)
    figure.suptitle("Attention probabilities of our encoder (row: query token, column: key token)")
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def fill(sentence, kind_label, top_k):
    """Our top-k beside the fill-mask pipeline's, the verdict badges, the attention maps and the code."""
    from apps.mlm import side_by_side as sbs

    if kind_label not in KIND_LABELS:
        raise ValueError(f"Unknown position kind {kind_label!r}; choose one of: {', '.join(KIND_LABELS)}.")
    result = sbs.fill_masks(sentence, KIND_LABELS[kind_label], top_k)
    badges = comparison_badges(
        result.ours_seconds,
        result.reference_seconds,
        max_abs_diff=result.max_probability_difference,
        tolerance=PROBABILITY_TOLERANCE,
        identical=result.identical_ranking,
        identical_label="top-k ranking identical",
    )
    note = (
        "<small>Times: ours is one forward pass; the pipeline's includes its own tokenization and "
        "post-processing.</small>"
    )
    return badges + note, fillers_table(result), attention_figure(result), source_of(*CODE_SHOWN["fill"])


@user_errors
def positions():
    """The sinusoid matrix, the rotary angles, and score against offset for the three kinds."""
    from apps.mlm import side_by_side as sbs
    from apps.mlm.plots import draw_encodings

    figure = draw_encodings(sbs.learned_position_table())
    pyplot().close(figure)
    return figure, source_of(*CODE_SHOWN["positions"])


def held_out_markdown(report: dict) -> str:
    lines = [
        "| position kind | parameters | steps | train CPU s | held-out accuracy @128 | perplexity @128 "
        "| accuracy @256 | accuracy @512 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, entry in report["encoders"].items():
        rows = entry["held_out"]

        def at(length: str, entry_rows=rows) -> str:
            row = entry_rows[length]
            if "refused" in row:
                return f"refused (clamped: {row['clamped']['accuracy']:.3f})"
            return f"{row['accuracy']:.3f}"

        lines.append(
            f"| {kind} | {entry['parameters']:,} | {report['recipe']['steps']} | {entry['cpu_seconds']:.0f} | "
            f"{rows['128']['accuracy']:.3f} | {rows['128']['perplexity']:.1f} | {at('256')} | {at('512')} |"
        )
    baseline = report.get("unigram_baseline")
    if baseline:
        lines.append(
            f"| no context (most frequent token; unigram) | - | - | - | {baseline['accuracy']:.3f} | "
            f"{baseline['perplexity']:.1f} | - | - |"
        )
    return "\n".join(lines)


def checkpointing_markdown(rows: list[dict] | None) -> str:
    if not rows:
        return "_Run `python -m bench mlm` to measure gradient checkpointing on this machine._"
    lines = [
        "| depth | activations kept, plain | with checkpointing | ratio | step time, plain | with checkpointing |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['depth']} | {row['saved_mb_plain']:.1f} MB | {row['saved_mb_checkpointed']:.1f} MB | "
            f"{row['saved_mb_plain'] / row['saved_mb_checkpointed']:.1f}x | {row['step_ms_plain']:.0f} ms | "
            f"{row['step_ms_checkpointed']:.0f} ms |"
        )
    return "\n".join(lines)


@user_errors
def figures():
    """Held-out accuracy and perplexity against length, the accuracy table, the checkpointing table."""
    from apps.mlm import side_by_side as sbs
    from apps.mlm.plots import draw_extrapolation

    report = sbs.report()
    figure = draw_extrapolation(report)
    pyplot().close(figure)
    text = (
        "#### Held-out masked-token accuracy (10 held-out Wikipedia articles, the same masks for all)\n"
        + held_out_markdown(report)
        + "\n\n#### Gradient checkpointing on this CPU (activations kept for the backward pass, counted "
        "with `torch.autograd.graph.saved_tensors_hooks`)\n" + checkpointing_markdown(sbs.checkpointing_rows())
    )
    return figure, text, source_of(*CODE_SHOWN["figures"])


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=2):
            sentence = gr.Textbox(label="Sentence with one or more [MASK]", value=EXAMPLE_SENTENCE, lines=2)
            kind = gr.Radio(list(KIND_LABELS), value=next(iter(KIND_LABELS)), label="Position encoding")
            top_k = WholeNumber(
                value=5, minimum=1, maximum=20, label="Top-k fillers per [MASK]"
            )  # by name: a positional value is lost
            fill_button = gr.Button("Fill the masks", variant="primary")
        with gr.Column(scale=3):
            badges = gr.HTML()
            table = gr.Dataframe(
                headers=["mask", "rank", "ours: token", "ours: p", "fill-mask pipeline: token", "pipeline: p"],
                label="Top-k fillers, ours beside transformers (same weights)",
                interactive=False,
            )
    attention = gr.Plot(label="Attention maps, per layer and head")
    code = code_panel(*CODE_SHOWN["fill"])
    fill_button.click(
        fill, inputs=[sentence, kind, top_k], outputs=[badges, table, attention, code], api_name="mlm_fill"
    )
    with gr.Accordion("The three position encodings, drawn", open=False):
        positions_button = gr.Button("Draw the encodings")
        encodings = gr.Plot(label="sinusoid matrix, rotary angles, score against offset")
        positions_code = code_panel(*CODE_SHOWN["positions"])
    positions_button.click(positions, outputs=[encodings, positions_code], api_name="mlm_positions")
    with gr.Accordion("Held-out accuracy, length extrapolation, gradient checkpointing", open=False):
        figures_button = gr.Button("Show the measured figures")
        extrapolation = gr.Plot(label="trained at 128 tokens, evaluated at 128 / 256 / 512")
        tables = gr.Markdown()
        figures_code = code_panel(*CODE_SHOWN["figures"])
    figures_button.click(figures, outputs=[extrapolation, tables, figures_code], api_name="mlm_figures")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "mlm_fill": (EXAMPLE_SENTENCE, "rotary (RoFormer)", 5),
    "mlm_positions": (),
    "mlm_figures": (),
}
BROWSER_CHECK = {"button": "Fill the masks", "expect_text": "top-k ranking identical"}
