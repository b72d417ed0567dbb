"""State-space models, ours vs `transformers` MambaForCausalLM, on the shipped Mamba checkpoint:

- held-out bits per character beside the text generation topic's models (same split, same BPE tokens,
  every held-out token scored once);
- parity: max |logit difference| against MambaForCausalLM holding the same weights, on held-out windows;
- generation speed: greedy, 16-token prompts, NEW_TOKENS new tokens, batch 1 and 8, ours and
  `MambaForCausalLM.generate` (its recurrent cache, its PyTorch fallback path) in this process with the
  same threads, median of alternating runs, and whether the tokens are identical;
- training speed: tokens/s of a forward and backward pass, our scan against the reference's;
- memory per sequence while generating: Mamba's constant state against the GPT's growing KV cache (a plot).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch

from apps.ssm import side_by_side as sbs
from apps.ssm.reference import hf_generate, quiet_fallback
from shared.data import wiki_text_split
from shared.ui import pyplot

NEW_TOKENS = 128
PROMPT_TOKENS = 16
REPEATS = 3
THREADS = 1  # the machine is shared: one thread each gives steadier ratios
TRAIN_BATCH, TRAIN_LENGTH = 4, 128
RESULTS = Path(__file__).resolve().parent / "results"
TEXTGEN_REPORT = Path(__file__).resolve().parents[1] / "checkpoints" / "textgen" / "training_report.json"
SSM_REPORT = sbs.CHECKPOINT_DIR / "training_report.json"
SYNTHETIC_REPORT = sbs.CHECKPOINT_DIR / "synthetic_report.json"


def alternating_medians(runners: dict, repeats: int = REPEATS) -> dict[str, tuple[float, object]]:
    """Median seconds and the last output of each runner, run in turn so that machine noise hits all alike
    (after one untimed warm-up run each)."""
    for runner in runners.values():
        runner()
    timings, outputs = {name: [] for name in runners}, {}
    for _ in range(repeats):
        for name, runner in runners.items():
            started = time.perf_counter()
            outputs[name] = runner()
            timings[name].append(time.perf_counter() - started)
    return {name: (statistics.median(timings[name]), outputs[name]) for name in runners}


def training_step(model, forward) -> None:
    model.zero_grad(set_to_none=True)
    forward().backward()


def synthetic_table() -> dict:
    """The synthetic-task accuracies that `python -m apps.ssm.synthetic` measured."""
    report = json.loads(SYNTHETIC_REPORT.read_text())
    factors = list(report["results"][0]["accuracy"])
    return {
        "title": (
            f"Synthetic tasks (Mamba paper, section 4.1): accuracy when trained at length {report['train_length']} "
            f"for {report['steps']} steps and tested at {', '.join(factors)} that length"
        ),
        "columns": ["task", "model", "parameters", *[f"accuracy {factor}" for factor in factors]],
        "rows": [
            [row["task"], row["model"], f"{row['parameters']:,}", *[f"{row['accuracy'][f]:.2f}" for f in factors]]
            for row in report["results"]
        ],
    }


def memory_plot(curve: sbs.MemoryCurve, path: Path) -> None:
    from apps.ssm.tab import memory_figure

    figure = memory_figure(curve)
    figure.savefig(path, dpi=100)
    pyplot().close(figure)


def run() -> dict:
    torch.set_num_threads(THREADS)
    ours, hf_model = sbs.shipped_models()
    tokenizer = sbs.textgen.shipped_tokenizer()
    split = wiki_text_split()
    validation_tokens = torch.tensor(tokenizer.encode(split.validation))

    bits = json.loads(SSM_REPORT.read_text())["held_out_bits_per_character"]  # scored by train.py, every token once
    textgen_bits = json.loads(TEXTGEN_REPORT.read_text())["held_out_bits_per_character"]

    windows = torch.stack([validation_tokens[s : s + 256] for s in range(0, 4 * 256, 256)])
    with torch.inference_mode(), quiet_fallback():
        max_logit_difference = (ours(windows)[0] - hf_model(windows).logits).abs().max().item()

    speed_rows, identical_everywhere, ratios = [], True, {}
    for batch in (1, 8):
        starts = torch.arange(batch) * 997
        prompts = torch.stack([validation_tokens[s : s + PROMPT_TOKENS] for s in starts.tolist()])
        measured = alternating_medians(
            {
                "ours": lambda: ours.generate(prompts, NEW_TOKENS, temperature=0),
                "hf": lambda: hf_generate(hf_model, prompts, NEW_TOKENS),
            }
        )
        (ours_seconds, ours_tokens), (hf_seconds, hf_tokens) = measured["ours"], measured["hf"]
        identical = torch.equal(ours_tokens, hf_tokens)
        identical_everywhere &= identical
        ratios[batch] = hf_seconds / ours_seconds
        speed_rows.append(
            [
                batch,
                f"{batch * NEW_TOKENS / ours_seconds:,.0f}",
                f"{batch * NEW_TOKENS / hf_seconds:,.0f}",
                f"{ratios[batch]:.2f}x",
                "yes" if identical else "no",
            ]
        )

    batch_ids = torch.stack([validation_tokens[s : s + TRAIN_LENGTH + 1] for s in range(0, TRAIN_BATCH * 1000, 1000)])
    inputs, targets = batch_ids[:, :-1], batch_ids[:, 1:]
    ours.train()
    hf_model.train()
    with quiet_fallback():
        measured = alternating_medians(
            {
                "ours": lambda: training_step(ours, lambda: ours(inputs, targets)[1]),
                "hf": lambda: training_step(hf_model, lambda: hf_model(inputs, labels=inputs).loss),
            }
        )
    ours.eval().zero_grad(set_to_none=True)
    hf_model.eval().zero_grad(set_to_none=True)
    training_rate = {name: TRAIN_BATCH * TRAIN_LENGTH / seconds for name, (seconds, _) in measured.items()}

    curve = sbs.memory_curve(16384, points=8)
    memory_plot(curve, RESULTS / "ssm_memory.png")
    memory_rows = [
        [n, f"{m / 1024:,.0f}", f"{g / 1024:,.0f}"]
        for n, m, g in zip(curve.lengths, curve.mamba_bytes, curve.gpt_bytes)
    ]
    return {
        "topic": "ssm",
        "title": "State-space models",
        "summary": [
            {
                "model": f"Mamba, {ours.num_parameters() / 1e6:.1f} M parameters, text generation's BPE",
                "reference": "transformers MambaForCausalLM.generate",
                "parity": (
                    f"max |Δlogit| {max_logit_difference:.1e}; greedy tokens "
                    f"{'identical' if identical_everywhere else 'differ'}"
                ),
                "speed": f"{ratios[1]:.2f}x HF at batch 1, {ratios[8]:.2f}x at batch 8",
                "quality": f"{bits:.3f} bits/char held out (GPT {textgen_bits['gpt']:.3f})",
            }
        ],
        "tables": [
            {
                "title": (
                    "Held-out bits per character (same split, same BPE tokens, every held-out token scored once; "
                    "from the training reports; lower is better)"
                ),
                "columns": ["model", "bits/char"],
                "rows": [
                    ["Mamba (ours, this topic)", f"{bits:.3f}"],
                    ["GPT (text generation topic)", f"{textgen_bits['gpt']:.3f}"],
                    ["Kneser-Ney n-gram (text generation topic)", f"{textgen_bits['ngram']:.3f}"],
                    ["LSTM (text generation topic)", f"{textgen_bits['lstm']:.3f}"],
                ],
            },
            {
                "title": (
                    f"Greedy generation, {PROMPT_TOKENS}-token prompts, {NEW_TOKENS} new tokens, {THREADS} threads, "
                    f"median of {REPEATS} alternating runs"
                ),
                "columns": ["batch", "ours tokens/s", "HF tokens/s", "ours / HF", "greedy tokens identical"],
                "rows": speed_rows,
            },
            {
                "title": f"Training forward + backward, batch {TRAIN_BATCH} x {TRAIN_LENGTH} tokens, fp32",
                "columns": ["ours tokens/s", "HF tokens/s (its PyTorch fallback)", "ours / HF"],
                "rows": [
                    [
                        f"{training_rate['ours']:,.0f}",
                        f"{training_rate['hf']:,.0f}",
                        f"{training_rate['ours'] / training_rate['hf']:.2f}x",
                    ]
                ],
            },
            synthetic_table(),
            {
                "title": "Memory one sequence holds while generating (float32)",
                "columns": ["tokens", "Mamba state, KiB", "GPT KV cache, KiB"],
                "rows": memory_rows,
            },
        ],
        "images": [
            {
                "caption": "Memory per sequence: Mamba's state against the GPT's KV cache",
                "path": "bench/results/ssm_memory.png",
            },
            {"caption": "Training curve of the shipped Mamba", "path": "checkpoints/ssm/loss_curve.png"},
        ],
    }
