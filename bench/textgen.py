"""Text generation, ours vs `transformers`, on the shipped checkpoint:

- held-out bits per character of the GPT, the LSTM and the best Kneser-Ney n-gram on the same split
  and the same tokens (every held-out token scored once);
- parity: max |logit difference| between our GPT and GPT2LMHeadModel holding the same weights, and
  whether 256 greedy tokens are identical;
- generation speed (ours with the exact column-major layout of fast_layers.py, and its int8 copy):
  greedy, 16-token prompts, 256 new tokens, batch 1 and 8, both models in this
  process with the same threads, median of several alternating runs; against the memory-bandwidth
  bound (bytes of weights a step reads / the measured matrix-vector bandwidth);
- the tokenizer: characters per token, and whether `transformers` gives identical ids.
"""

from __future__ import annotations

import statistics
import time

import torch

from apps.textgen import side_by_side as sbs
from apps.textgen.baselines import bits_per_character, choose_order
from apps.textgen.evaluate import gpt_total_nll
from apps.textgen.fast_layers import Int8Linear, quantize_int8, use_fast_linears
from shared.data import wiki_text_split

NEW_TOKENS = 256
PROMPT_TOKENS = 16
REPEATS = 5
THREADS = 2


def memory_bandwidth_bytes_per_second(size: int = 64 * 2**20, repeats: int = 10) -> float:
    """Bytes per second that a matrix-vector product streams from a matrix too large for the caches:
    the ceiling of a batch-1 decoding step, which is a chain of such products."""
    matrix, vector = torch.rand(size // 4 // 1024, 1024), torch.rand(1024)
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mv(matrix, vector)
        timings.append(time.perf_counter() - started)
    return size / min(timings)


def bytes_read_per_step(model: torch.nn.Module) -> int:
    """Bytes of the matrices a decoding step streams: every Linear (fp32 or int8), the tied head
    included; embedding lookups read one row and are left out."""
    tensors = {}
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, Int8Linear)):
            for tensor in (module.weight, module.bias, getattr(module, "scale", None)):
                if tensor is not None:
                    tensors[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(tensors.values())


def generation_seconds(
    models: sbs.TextModels, int8_gpt, prompts: torch.Tensor
) -> dict[str, tuple[float, torch.Tensor]]:
    """Median seconds and output of NEW_TOKENS greedy tokens for ours (fp32 and int8) and HF generate,
    the three run in turn so that machine noise hits them alike."""
    runners = {
        "ours": lambda: models.gpt.generate(prompts, NEW_TOKENS, temperature=0),
        "ours int8": lambda: int8_gpt.generate(prompts, NEW_TOKENS, temperature=0),
        "hf": lambda: models.hf_gpt.generate(
            prompts,
            attention_mask=torch.ones_like(prompts),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            pad_token_id=models.eot_id,
        ),
    }
    timings, outputs = {name: [] for name in runners}, {}
    for _ in range(REPEATS):
        for name, runner in runners.items():
            started = time.perf_counter()
            with torch.inference_mode():
                outputs[name] = runner()
            timings[name].append(time.perf_counter() - started)
    return {name: (statistics.median(timings[name]), outputs[name]) for name in runners}


def run() -> dict:
    torch.set_num_threads(THREADS)
    split = wiki_text_split()
    models = sbs.text_models(sbs.SHIPPED)
    use_fast_linears(models.gpt)  # the exact fast layout (fast_layers.py): same weights, same logits
    tokenizer = models.tokenizer
    train_ids, validation_ids = tokenizer.encode(split.train), tokenizer.encode(split.validation)
    validation_tokens = torch.tensor(validation_ids)
    characters = len(split.validation)

    # Quality: bits per character on the held-out articles.
    order, _ = choose_order(train_ids, validation_ids, orders=(2, 3, 4, 5, 6), vocab_size=tokenizer.vocab_size)
    ngram = sbs.shipped_ngram()
    bits = {
        "GPT (ours)": bits_per_character(gpt_total_nll(models.gpt, validation_tokens), characters),
        "LSTM (ours)": bits_per_character(sbs.shipped_lstm().total_nll(validation_tokens), characters),
        f"Kneser-Ney {ngram.config.order}-gram (ours)": bits_per_character(ngram.total_nll(validation_ids), characters),
    }

    # Parity on the shipped weights: logits of held-out windows, and long greedy continuations.
    block = models.gpt.config.block_size
    windows = torch.stack([validation_tokens[s : s + block] for s in range(0, 8 * block, block)])
    with torch.inference_mode():
        max_logit_difference = (models.gpt(windows)[0] - models.hf_gpt(windows).logits).abs().max().item()

    # Speed: greedy generation, batch 1 and 8.
    bandwidth = memory_bandwidth_bytes_per_second()
    int8_gpt = quantize_int8(models.gpt)
    step_bytes = {"ours": bytes_read_per_step(models.gpt), "ours int8": bytes_read_per_step(int8_gpt)}
    speed_rows, identical_everywhere, ratios = [], True, {}
    for batch in (1, 8):
        starts = torch.arange(batch) * 997
        prompts = torch.stack([validation_tokens[s : s + PROMPT_TOKENS] for s in starts.tolist()])
        measured = generation_seconds(models, int8_gpt, prompts)
        reference_seconds, reference_tokens = measured["hf"]
        reference_rate = batch * NEW_TOKENS / reference_seconds
        for name in ("ours", "ours int8"):
            seconds, tokens = measured[name]
            rate = batch * NEW_TOKENS / seconds
            identical = torch.equal(tokens, reference_tokens)
            bound = bandwidth / step_bytes[name] * batch  # tokens/s if each step only streamed its weights
            if name == "ours":
                identical_everywhere &= identical
                ratios[batch] = rate / reference_rate
            mode = "fp32 (exact)" if name == "ours" else "int8 weights (approximate)"
            speed_rows.append(
                [
                    batch,
                    mode,
                    f"{rate:,.0f}",
                    f"{reference_rate:,.0f}",
                    f"{rate / reference_rate:.2f}x",
                    f"{rate / bound:.0%}",
                    "yes" if identical else "no",
                ]
            )

    # Tokenizer.
    hf_identical = models.hf_tokenizer.encode(split.validation) == validation_ids
    best_baseline = min(value for name, value in bits.items() if not name.startswith("GPT"))
    gpt_bits = bits["GPT (ours)"]
    return {
        "topic": "textgen",
        "title": "Text generation",
        "summary": [
            {
                "model": f"GPT, {models.gpt.num_parameters() / 1e6:.1f} M parameters, own byte-level BPE",
                "reference": "transformers GPT2LMHeadModel.generate",
                "parity": (
                    f"max |Δlogit| {max_logit_difference:.1e}; greedy tokens "
                    f"{'identical' if identical_everywhere else 'differ'}"
                ),
                "speed": f"{ratios[1]:.2f}x HF at batch 1, {ratios[8]:.2f}x at batch 8",
                "quality": f"{gpt_bits:.3f} bits/char held out (best baseline {best_baseline:.3f})",
            }
        ],
        "tables": [
            {
                "title": "Held-out bits per character (same split, same BPE tokens; lower is better)",
                "columns": ["model", "bits/char"],
                "rows": [[name, f"{value:.3f}"] for name, value in bits.items()],
            },
            {
                "title": (
                    f"Greedy generation, {PROMPT_TOKENS}-token prompts, {NEW_TOKENS} new tokens, {THREADS} threads, "
                    f"median of {REPEATS}"
                ),
                "columns": [
                    "batch",
                    "our weights",
                    "ours tokens/s",
                    "HF tokens/s",
                    "ours / HF",
                    "ours / bandwidth bound",
                    "greedy tokens identical to HF",
                ],
                "rows": speed_rows,
            },
            {
                "title": "Tokenizer",
                "columns": [
                    "vocabulary",
                    "characters per token (held out)",
                    "transformers ids identical on the held-out text",
                    "n-gram order chosen on held-out text",
                ],
                "rows": [
                    [
                        tokenizer.vocab_size,
                        f"{characters / len(validation_ids):.2f}",
                        "yes" if hf_identical else "no",
                        order,
                    ]
                ],
            },
        ],
        "images": [
            {"caption": "Training curves of the shipped GPT and LSTM", "path": "checkpoints/textgen/loss_curve.png"}
        ],
    }
