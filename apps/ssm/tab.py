"""State-space models tab: our Mamba beside `transformers`' MambaForCausalLM on the same weights (and the
text generation GPT on the same prompt), S4D's kernel and its two computing modes, and the memory a
generated sequence holds. UI only: the work is in side_by_side.py."""

from __future__ import annotations

import gradio as gr

from shared.ui import Slider, WholeNumber, code_panel, comparison_badges, notes_markdown, pyplot, source_of, user_errors

MAX_NEW_TOKENS = 256
MAX_PROMPT_CHARACTERS = 20_000
EXAMPLE_PROMPT = "The history of mathematics"
STREAM_EVERY = 4  # tokens between screen updates while streaming
INITS = {"S4D-Lin": "lin", "S4D-Inv": "inv"}
CODE_SHOWN = {
    "mamba": ("apps.ssm.model:MambaMixer.forward", "apps.ssm.model:selective_scan", "apps.ssm.model:MambaLM.stream"),
    "s4d": (
        "apps.ssm.model:S4D.discretize",
        "apps.ssm.model:S4D.kernel",
        "apps.ssm.model:S4D.forward",
        "apps.ssm.model:S4D.step",
    ),
}

INTRODUCTION = """
## State-space models: S4D and Mamba from scratch
A state-space layer keeps a hidden state x and updates it at every position: x_k = A̅ x_(k-1) + B̅ u_k,
y_k = C x_k. **S4D** keeps A, B, C fixed, so the layer is also one long convolution with the kernel
K̅ = (C B̅, C A̅ B̅, C A̅² B̅, ...). **Mamba** makes the step Δ, B and C depend on the input, so it can
choose what to remember, and runs as a scan. Our Mamba (`apps/ssm/model.py`) was trained on the text
generation topic's Wikipedia sample and tokens by `python -m apps.ssm.train`; the middle column runs
`transformers`' `MambaForCausalLM.generate` on **the same weights**. The third column is the text
generation topic's GPT (about the same number of parameters) on the same prompt.
"""


@user_errors
def generate(prompt, max_new_tokens, temperature, seed):
    """Stream ours, run the reference on the same weights, then stream the GPT; yields the 6 outputs."""
    from apps.ssm import side_by_side as sbs

    if prompt is not None and len(prompt) > MAX_PROMPT_CHARACTERS:
        raise ValueError(f"The prompt is {len(prompt):,} characters long; give at most {MAX_PROMPT_CHARACTERS:,}.")
    request = sbs.GenerationRequest(prompt or "", max_new_tokens, temperature, None, None, seed)
    ids = sbs.prompt_ids(prompt or "", request)
    shown = "" if len(ids) == 1 and not (prompt or "").strip() else sbs.decode(ids)
    code = source_of(*CODE_SHOWN["mamba"])
    unchanged = gr.skip()
    yield notes_markdown(request.notes), shown, "", "", "", code
    ours = sbs.Run([], 0.0)
    for count, ours in enumerate(sbs.stream_ours(ids, request), start=1):
        if count % STREAM_EVERY == 1:
            yield unchanged, shown + sbs.decode(ours.ids), *[unchanged] * 4
    ours_text = shown + sbs.decode(ours.ids)
    yield unchanged, ours_text, "running transformers generate ...", unchanged, unchanged, unchanged
    reference = sbs.run_reference(ids, request)
    reference_text = shown + sbs.decode(reference.ids)
    label = "greedy tokens identical" if request.greedy else "sampled tokens identical (same seed)"
    badges = comparison_badges(
        ours.seconds, reference.seconds, identical=ours.ids == reference.ids, identical_label=label
    )
    speed = (
        f"Mamba, ours: {len(ours.ids)} tokens at {ours.tokens_per_second:,.0f} tokens/s; "
        f"transformers: {len(reference.ids)} tokens at {reference.tokens_per_second:,.0f} tokens/s"
    )
    yield unchanged, ours_text, reference_text, "", badges + speed, unchanged
    gpt = sbs.Run([], 0.0)
    for count, gpt in enumerate(sbs.stream_gpt(prompt or "", request), start=1):
        if count % STREAM_EVERY == 1:
            yield unchanged, unchanged, unchanged, shown + sbs.decode(gpt.ids), unchanged, unchanged
    speed += f"; GPT (text generation topic): {len(gpt.ids)} tokens at {gpt.tokens_per_second:,.0f} tokens/s"
    yield notes_markdown(request.notes), ours_text, reference_text, shown + sbs.decode(gpt.ids), badges + speed, code


def s4d_figure(demo):
    """Top: the kernel of each channel. Bottom: channel 0 in both modes and their difference."""
    plt = pyplot()
    figure, (kernel_axis, output_axis) = plt.subplots(2, 1, figsize=(8, 6))
    for channel, kernel in enumerate(demo.kernel.tolist()):
        kernel_axis.plot(kernel, label=f"channel {channel}", linewidth=1)
    kernel_axis.set_title("The S4D convolution kernel K̅[l] = 2 Re(Σ C B̅ A̅^l)")
    kernel_axis.set_xlabel("lag l")
    kernel_axis.legend(fontsize=8)
    output_axis.plot(demo.convolution.tolist(), label="convolution (FFT)", linewidth=2, alpha=0.6)
    output_axis.plot(demo.recurrence.tolist(), "--", label="recurrence (step by step)", linewidth=1)
    output_axis.set_xlabel("position k")
    output_axis.set_ylabel("y_k, channel 0")
    difference_axis = output_axis.twinx()
    difference_axis.plot((demo.convolution - demo.recurrence).abs().tolist(), color="tab:red", linewidth=0.7)
    difference_axis.set_ylabel("|difference|", color="tab:red")
    output_axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def s4d(init_name, state_size, step, length, seed):
    from apps.ssm import side_by_side as sbs

    if init_name not in INITS:
        raise ValueError(f"Unknown initialisation {init_name!r}; choose one of: {', '.join(INITS)}.")
    if state_size is None or length is None:
        raise ValueError("State size and sequence length are required whole numbers.")
    demo = sbs.s4d_demo(INITS[init_name], state_size, step, length, 0 if seed is None else seed)
    badges = comparison_badges(max_abs_diff=demo.max_difference, tolerance=1e-5) + (
        f"convolution mode (FFT, all positions at once) {demo.convolution_seconds * 1000:,.1f} ms; "
        f"recurrence mode (one position after the other) {demo.recurrence_seconds * 1000:,.1f} ms"
    )
    return s4d_figure(demo), badges, source_of(*CODE_SHOWN["s4d"])


def memory_figure(curve):
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.loglog(curve.lengths, curve.mamba_bytes, "o-", label="Mamba (ours): recurrent state, constant")
    inside = [(n, b) for n, b in zip(curve.lengths, curve.gpt_bytes) if n <= curve.gpt_context]
    beyond = [(n, b) for n, b in zip(curve.lengths, curve.gpt_bytes) if n >= inside[-1][0]]
    axis.loglog(*zip(*inside), "s-", label="GPT: KV cache, grows with every token")
    if len(beyond) > 1:
        axis.loglog(*zip(*beyond), "s:", color="tab:orange", label=f"GPT past its {curve.gpt_context}-token window")
    axis.set_xlabel("tokens in the sequence")
    axis.set_ylabel("bytes held per sequence (float32)")
    axis.set_title("Memory a sequence holds while generating")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    plt.close(figure)
    return figure


@user_errors
def memory(max_length):
    from apps.ssm import side_by_side as sbs

    if max_length is None:
        raise ValueError("The longest sequence is a required whole number (for example 4096).")
    curve = sbs.memory_curve(max_length)
    crossing = next((n for n, g in zip(curve.lengths, curve.gpt_bytes) if g > curve.mamba_bytes[0]), None)
    text = (
        f"Mamba holds **{curve.mamba_bytes[0] / 1024:,.0f} KiB** per sequence at any length; the GPT's cache holds "
        f"**{curve.gpt_bytes[-1] / curve.lengths[-1] / 1024:,.1f} KiB per token**"
        + (f", more than Mamba's state from about {crossing:,} tokens on." if crossing else ".")
    )
    return memory_figure(curve), text


def build_tab() -> None:
    gr.Markdown(INTRODUCTION)
    with gr.Row():
        with gr.Column(scale=2):
            prompt = gr.Textbox(label="Prompt", value=EXAMPLE_PROMPT, lines=3)
            with gr.Row():
                max_new_tokens = Slider(1, MAX_NEW_TOKENS, value=48, step=1, label="Max new tokens")
                temperature = Slider(0, 2, value=0, step=0.05, label="Temperature (0 = greedy)")
                seed = WholeNumber(0, label="Seed")
            generate_button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=3):
            notes = gr.Markdown()
            with gr.Row():
                ours_text = gr.Textbox(label="Mamba, ours", lines=8, interactive=False)
                reference_text = gr.Textbox(label="Mamba, transformers (same weights)", lines=8, interactive=False)
                gpt_text = gr.Textbox(label="GPT (text generation topic)", lines=8, interactive=False)
            badges = gr.HTML()
    code = code_panel(*CODE_SHOWN["mamba"])
    generate_button.click(
        generate,
        inputs=[prompt, max_new_tokens, temperature, seed],
        outputs=[notes, ours_text, reference_text, gpt_text, badges, code],
        api_name="ssm_generate",
    )

    gr.Markdown("### S4D: one layer, two ways to compute it")
    with gr.Row():
        with gr.Column(scale=2):
            init = gr.Radio(list(INITS), value="S4D-Lin", label="Initialisation of A")
            state_size = WholeNumber(16, label="State size N (even)")
            step = Slider(0.001, 1.0, value=0.05, step=0.001, label="Step Δ")
            length = WholeNumber(256, label="Sequence length")
            s4d_seed = WholeNumber(0, label="Seed")
            s4d_button = gr.Button("Draw the kernel and run both modes")
        with gr.Column(scale=3):
            s4d_plot = gr.Plot(label="Kernel and outputs")
            s4d_badges = gr.HTML()
    s4d_code = code_panel(*CODE_SHOWN["s4d"], label="Read the S4D code")
    s4d_button.click(
        s4d,
        inputs=[init, state_size, step, length, s4d_seed],
        outputs=[s4d_plot, s4d_badges, s4d_code],
        api_name="ssm_s4d",
    )

    gr.Markdown("### Memory while generating: a constant state against a growing KV cache")
    with gr.Row():
        with gr.Column(scale=2):
            max_length = WholeNumber(8192, label="Longest sequence (tokens)")
            memory_button = gr.Button("Plot memory per sequence")
        with gr.Column(scale=3):
            memory_plot = gr.Plot(label="Bytes per sequence")
            memory_text = gr.Markdown()
    memory_button.click(memory, inputs=[max_length], outputs=[memory_plot, memory_text], api_name="ssm_memory")


# For the tests: example arguments of every event, and what the browser test presses and expects.
API_EXAMPLES = {
    "ssm_generate": (EXAMPLE_PROMPT, 8, 0, 0),
    "ssm_s4d": ("S4D-Lin", 16, 0.05, 256, 0),
    "ssm_memory": (8192,),
}
BROWSER_CHECK = {"button": "Generate", "expect_text": "tokens identical"}
