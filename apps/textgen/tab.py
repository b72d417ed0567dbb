"""Text generation tab: a prompt -> our GPT and `transformers` GPT-2 on the same weights, side by side,
streaming; or our LSTM / Kneser-Ney n-gram baselines. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from apps.textgen import MAX_NEW_TOKENS, SHIPPED
from shared.device import gpu_task
from shared.ui import (
    Slider,
    WholeNumber,
    code_panel,
    comparison_badges,
    hub_model_name,
    notes_markdown,
    pyplot,
    source_of,
    user_errors,
)

GPT_CHOICE, LSTM_CHOICE, NGRAM_CHOICE = "GPT (ours) vs transformers GPT-2", "LSTM (ours)", "Kneser-Ney n-gram (ours)"
MODEL_KINDS = {GPT_CHOICE: "gpt", LSTM_CHOICE: "lstm", NGRAM_CHOICE: "ngram"}
CODE_SHOWN = {
    "gpt": ("apps.textgen.model:GPT.stream", "apps.textgen.model:sample_next_token"),
    "lstm": ("apps.textgen.baselines:LSTMLanguageModel.generate",),
    "ngram": ("apps.textgen.baselines:KneserNeyNGram.next_token_distribution",),
}
EXAMPLE_PROMPT = "The history of mathematics"
STREAM_EVERY = 4  # tokens between screen updates while streaming
MAX_PROMPT_CHARACTERS = 20_000  # far more than the context window holds; only the prompt's end is used

INTRODUCTION = """
## Text generation: our GPT beside `transformers` GPT-2
Our byte-level BPE tokenizer and GPT (`apps/textgen/model.py`) were trained on the gensim Wikipedia
sample by `python -m apps.textgen.train`. The reference column runs `transformers`'
`GPT2LMHeadModel.generate` on **the same weights**, converted by `apps/textgen/reference.py`.
Temperature 0 is greedy decoding; with sampling, both sides draw from the same seed.
"""


def probability_figure(rows: list[tuple[str, int, str, float]]):
    """Horizontal bars of the top next-token probabilities (ours, and the reference's when given)."""
    plt = pyplot()

    tokens = list(dict.fromkeys((piece, token_id) for piece, token_id, _, _ in rows))
    implementations = list(dict.fromkeys(implementation for _, _, implementation, _ in rows))
    height = 0.8 / len(implementations)
    figure, axis = plt.subplots(figsize=(6, 0.35 * len(tokens) + 1))
    for offset, implementation in enumerate(implementations):
        values = {(piece, token_id): p for piece, token_id, who, p in rows if who == implementation}
        positions = [i + offset * height for i in range(len(tokens))]
        axis.barh(positions, [values[t] for t in tokens], height=height, label=implementation)
    axis.set_yticks([i + height * (len(implementations) - 1) / 2 for i in range(len(tokens))])
    axis.set_yticklabels([f"{piece!r}  #{token_id}" for piece, token_id in tokens])
    axis.invert_yaxis()
    axis.set_xlabel("probability of the next token")
    axis.legend(loc="lower right")
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    plt.close(figure)
    return figure


def highlighted_pieces(models, ids: list[int]) -> list[tuple[str, str]]:
    """(piece, "#id") pairs for gr.HighlightedText; newlines shown as ↵ so every piece is visible."""
    return [(piece.replace("\n", "↵"), f"#{token_id}") for piece, token_id in zip(models.pieces(ids), ids)]


@user_errors
def load_gpt(name: str, progress=gr.Progress()):
    """Switch the GPT column to a Hub / local GPT-2, or back to the shipped model when empty."""
    from apps.textgen import side_by_side as sbs

    name = hub_model_name(name) or SHIPPED
    progress(0.1, desc=f"loading {name}")
    models = sbs.text_models(name)
    parameters = models.gpt.num_parameters()
    return (
        name,
        (
            f"Using **{name}**: {parameters / 1e6:.1f} M parameters, context {models.gpt.config.block_size}, "
            f"vocabulary {models.gpt.config.vocab_size:,}."
        ),
    )


@gpu_task  # outermost: on a ZeroGPU Space the whole request holds the GPU
@user_errors
def generate(prompt, model_choice, max_new_tokens, temperature, top_k, top_p, seed, gpt_name):
    """Stream ours, then run the reference on the same weights; yields the 7 outputs of the tab.

    The prompt's pieces, the chart and the code go out with the first and the last update only; the
    updates while streaming carry the growing text (re-sending a chart each time costs more than the model)."""
    from apps.textgen import side_by_side as sbs

    if model_choice not in MODEL_KINDS:
        raise ValueError(f"Unknown model {model_choice!r}; choose one of: {', '.join(MODEL_KINDS)}.")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
        raise ValueError(
            f"The prompt is {len(prompt):,} characters long; give at most {MAX_PROMPT_CHARACTERS:,} "
            "(the model reads only its last few hundred tokens)."
        )
    kind = MODEL_KINDS[model_choice]
    request = sbs.GenerationRequest(prompt or "", max_new_tokens, temperature, top_k, top_p, seed)
    models = sbs.text_models(gpt_name if kind == "gpt" else SHIPPED)
    ids = sbs.prompt_ids(models, request)
    shown_prompt = "" if ids == [models.eot_id] else models.decode(ids)
    pieces = highlighted_pieces(models, ids)
    figure = probability_figure(sbs.next_token_table(kind, models, ids))
    rest = pieces, figure, source_of(*CODE_SHOWN[kind])  # sent first and last (the last is what an API caller gets)
    yield notes_markdown(request.notes), shown_prompt, "", "", *rest
    unchanged = gr.skip()
    stream = sbs.stream_ours(models, ids, request) if kind == "gpt" else sbs.stream_baseline(kind, ids, request)
    ours = sbs.Run([], 0.0)
    for count, ours in enumerate(stream, start=1):
        if count % STREAM_EVERY == 1:
            yield unchanged, shown_prompt + models.decode(ours.ids), *[unchanged] * 5
    ours_text = shown_prompt + models.decode(ours.ids)
    speed = f"ours: {len(ours.ids)} tokens at {ours.tokens_per_second:,.0f} tokens/s"
    if kind != "gpt":
        yield (
            notes_markdown(request.notes),
            ours_text,
            "(the reference column runs only for the GPT)",
            comparison_badges(ours.seconds) + speed,
            *rest,
        )
        return
    yield unchanged, ours_text, "running transformers generate ...", comparison_badges(ours.seconds), *[unchanged] * 3
    reference = sbs.run_reference(models, ids, request)
    label = "greedy tokens identical" if request.greedy else "sampled tokens identical (same seed)"
    badges = comparison_badges(
        ours.seconds, reference.seconds, identical=ours.ids == reference.ids, identical_label=label
    )
    speed += f"; transformers: {len(reference.ids)} tokens at {reference.tokens_per_second:,.0f} tokens/s"
    yield (
        notes_markdown(request.notes),
        ours_text,
        shown_prompt + models.decode(reference.ids),
        badges + speed,
        *rest,
    )


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    gpt_name = gr.State(SHIPPED)
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", value=EXAMPLE_PROMPT, lines=3)
            model_choice = gr.Radio(list(MODEL_KINDS), value=GPT_CHOICE, label="Model")
            with gr.Row():
                max_new_tokens = Slider(1, MAX_NEW_TOKENS, value=64, step=1, label="Max new tokens")
                temperature = Slider(0, 2, value=0.8, step=0.05, label="Temperature (0 = greedy)")
            with gr.Row():
                top_k = WholeNumber(0, minimum=0, label="Top-k (0 = off)")
                top_p = Slider(0, 1, value=0.95, step=0.01, label="Top-p")
                seed = WholeNumber(0, label="Seed")
            generate_button = gr.Button("Generate", variant="primary")
            with gr.Accordion("Use a GPT-2 from the Hugging Face Hub (needs the internet)", open=False):
                hub_name = gr.Textbox(
                    label="Hub id or local save_pretrained folder (empty: the shipped model)",
                    placeholder="gpt2, distilgpt2, ./my-gpt2",
                )
                load_button = gr.Button("Load into ours and transformers")
                hub_status = gr.Markdown(f"Using the **{SHIPPED}** model.")
        with gr.Column(scale=3):
            notes = gr.Markdown()
            with gr.Row():
                ours_text = gr.Textbox(label="Ours", lines=10, interactive=False)
                reference_text = gr.Textbox(label="transformers (same weights)", lines=10, interactive=False)
            badges = gr.HTML()
            pieces = gr.HighlightedText(
                label="The prompt as BPE pieces (hover for the token id)", show_legend=False, combine_adjacent=False
            )
            chart = gr.Plot(label="Most likely next tokens after the prompt")
    code = code_panel(*CODE_SHOWN["gpt"])
    generate_button.click(
        generate,
        inputs=[prompt, model_choice, max_new_tokens, temperature, top_k, top_p, seed, gpt_name],
        outputs=[notes, ours_text, reference_text, badges, pieces, chart, code],
        api_name="textgen_generate",
    )
    load_button.click(load_gpt, inputs=[hub_name], outputs=[gpt_name, hub_status], api_name="textgen_load")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "textgen_generate": (EXAMPLE_PROMPT, GPT_CHOICE, 8, 0, 0, 0.95, 0),
    "textgen_load": ("",),
}
BROWSER_CHECK = {"button": "Generate", "expect_text": "tokens identical"}
# What `python -m bench app` clicks (by default the first of API_EXAMPLES): 256 greedy tokens, streamed
MAIN_ACTION = ("textgen_generate", (EXAMPLE_PROMPT, GPT_CHOICE, 256, 0, 0, 0.95, 0))
