"""Reproduce `checkpoints/mlm/`: three encoders of the same size and recipe, one per position kind (learned,
sinusoidal, rotary), trained by masked language modelling on the text generation topic's Wikipedia split
and tokenizer, then measured on the held-out articles at the training length (128) and beyond (256, 512).

    python -m apps.mlm.train            # three runs on one thread, one after the other: under 20 minutes of a quiet CPU
    python -m apps.mlm.train --steps 20 --out /tmp/mlm   # a smoke run

Writes, per kind, `<kind>/config.json + model.safetensors` (fp16 on disk); the exported `tokenizer.json`;
`training_report.json` (recipe, times, held-out accuracy and perplexity per length) and two plots.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from apps.mlm.model import IGNORE_INDEX, POSITION_KINDS, EncoderConfig, MaskedLanguageModel, mask_tokens
from apps.mlm.tokenizer import MaskedTokenizer
from shared.checkpoint import load_model, save_model
from shared.data import wiki_text_split
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "mlm"
TRAIN_COMMAND = "python -m apps.mlm.train"
REPORT_FILE = "training_report.json"
TRAIN_LENGTH = 128  # tokens per training sequence, [CLS] and [SEP] included
EVALUATION_LENGTHS = (128, 256, 512)
EVALUATION_TOKENS = 16384  # held-out tokens scored at each length (fewer windows as they grow)
EVALUATION_SEED = 1234


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--kinds", nargs="+", default=list(POSITION_KINDS), choices=POSITION_KINDS)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def windows_with_specials(tokens: torch.Tensor, starts: torch.Tensor, length: int, tokenizer) -> torch.Tensor:
    """(B,) start offsets -> (B, length) sequences `[CLS] tokens[s : s + length - 2] [SEP]`."""
    body = torch.stack([tokens[s : s + length - 2] for s in starts.tolist()])
    column = torch.full((len(starts), 1), 0, dtype=torch.long)
    return torch.cat([column + tokenizer.cls_id, body, column + tokenizer.sep_id], dim=1)


def masked_batch(sequences: torch.Tensor, tokenizer: MaskedTokenizer, generator: torch.Generator):
    """The masking recipe over (B, T) sequences whose first and last tokens are [CLS] and [SEP]."""
    special = torch.zeros_like(sequences, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    return mask_tokens(sequences, special, tokenizer.mask_id, tokenizer.vocab_size, generator)


@torch.no_grad()
def held_out_metrics(
    model: MaskedLanguageModel, tokens: torch.Tensor, length: int, tokenizer: MaskedTokenizer, clamp: bool = False
) -> dict:
    """Masked-token accuracy and perplexity on non-overlapping held-out windows of `length` tokens, with the
    same masks for every model (a fixed generator). `beyond_train_length` scores only the chosen tokens at
    positions >= TRAIN_LENGTH. `clamp=True` gives every position past the learned table the last row."""
    model.eval()
    count = max(1, EVALUATION_TOKENS // length)
    starts = torch.arange(count) * (length - 2)
    if int(starts[-1]) + length - 2 > len(tokens):
        raise ValueError(f"the held-out text is too short for {count} windows of {length} tokens")
    inputs, labels = masked_batch(
        windows_with_specials(tokens, starts, length, tokenizer),
        tokenizer,
        torch.Generator().manual_seed(EVALUATION_SEED),
    )
    positions = torch.arange(length)
    if clamp:
        positions = positions.clamp(max=model.config.max_positions - 1)
    losses, correct, far = [], [], []
    for index in range(0, count, 8):
        logits = model(inputs[index : index + 8], position_ids=positions)
        chosen = labels[index : index + 8] != IGNORE_INDEX
        target = labels[index : index + 8][chosen]
        losses.append(torch.nn.functional.cross_entropy(logits[chosen], target, reduction="none"))
        correct.append(logits[chosen].argmax(-1) == target)
        far.append(torch.arange(length).expand_as(chosen)[chosen] >= TRAIN_LENGTH)
    losses, correct, far = torch.cat(losses), torch.cat(correct), torch.cat(far)
    result = {
        "length": length,
        "masked_tokens": int(correct.numel()),
        "accuracy": round(correct.float().mean().item(), 4),
        "perplexity": round(math.exp(losses.mean().item()), 2),
    }
    if far.any():
        result["accuracy_beyond_train_length"] = round(correct[far].float().mean().item(), 4)
        result["perplexity_beyond_train_length"] = round(math.exp(losses[far].mean().item()), 2)
    return result


def unigram_baseline(train_tokens: torch.Tensor, validation_tokens: torch.Tensor, tokenizer: MaskedTokenizer) -> dict:
    """What a model that ignores the context scores on the same held-out masks at TRAIN_LENGTH: always the
    most frequent training token (accuracy) and the training unigram frequencies, add-one smoothed
    (perplexity). An encoder has learned something from the context only where it beats these."""
    counts = torch.bincount(train_tokens, minlength=tokenizer.vocab_size).double() + 1
    log_probabilities = (counts / counts.sum()).log()
    count = max(1, EVALUATION_TOKENS // TRAIN_LENGTH)
    windows = windows_with_specials(
        validation_tokens, torch.arange(count) * (TRAIN_LENGTH - 2), TRAIN_LENGTH, tokenizer
    )
    _, labels = masked_batch(windows, tokenizer, torch.Generator().manual_seed(EVALUATION_SEED))
    target = labels[labels != IGNORE_INDEX]
    return {
        "accuracy": round((target == counts.argmax()).double().mean().item(), 4),
        "perplexity": round(math.exp(-log_probabilities[target].mean().item()), 2),
    }


def extrapolation(model: MaskedLanguageModel, tokens: torch.Tensor, tokenizer: MaskedTokenizer) -> dict:
    """Held-out metrics at each evaluation length. Learned positions refuse lengths past their table
    (recorded with the model's message), and are also scored with positions clamped to the last row."""
    rows = {}
    for length in EVALUATION_LENGTHS:
        try:
            rows[str(length)] = held_out_metrics(model, tokens, length, tokenizer)
        except ValueError as refusal:
            rows[str(length)] = {"length": length, "refused": str(refusal)}
        if model.config.position_kind == "learned" and length > model.config.max_positions:
            rows[str(length)]["clamped"] = held_out_metrics(model, tokens, length, tokenizer, clamp=True)
    return rows


def train_encoder(
    config: EncoderConfig,
    recipe: OptimizerRecipe,
    train_tokens: torch.Tensor,
    tokenizer: MaskedTokenizer,
    seed: int,
) -> tuple[MaskedLanguageModel, list[dict], float, float]:
    """One encoder trained with the masking recipe; returns it, its loss log, wall and CPU seconds."""
    accelerator = seeded_accelerator(seed=seed)
    model = MaskedLanguageModel(config)
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(model, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(seed)
    log, wall, cpu = [], time.perf_counter(), time.process_time()
    progress = tqdm(range(recipe.steps), desc=f"training {config.position_kind}", mininterval=5)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        starts = torch.randint(len(train_tokens) - TRAIN_LENGTH, (recipe.batch_size,), generator=generator)
        inputs, labels = masked_batch(
            windows_with_specials(train_tokens, starts, TRAIN_LENGTH, tokenizer), tokenizer, generator
        )
        model.train()
        loss = model.masked_loss(inputs.to(accelerator.device), labels.to(accelerator.device))
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 25 == 0 or step == recipe.steps - 1:
            log.append({"step": step, "train_loss": round(loss.item(), 4)})
            progress.set_postfix(loss=log[-1]["train_loss"])
    return accelerator.unwrap_model(model).eval(), log, time.perf_counter() - wall, time.process_time() - cpu


def plot_report(report: dict, folder: Path) -> None:
    """loss_curve.png (training loss per kind) and extrapolation.png (held-out accuracy and perplexity
    against evaluation length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from apps.mlm.plots import draw_extrapolation

    figure, axis = plt.subplots(figsize=(7, 4))
    for kind, entry in report["encoders"].items():
        axis.plot([e["step"] for e in entry["log"]], [e["train_loss"] for e in entry["log"]], label=kind)
    axis.set(xlabel="optimizer step", ylabel="masked-token cross-entropy (nats)", title="MLM training loss")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(folder / "loss_curve.png", dpi=100)
    plt.close(figure)
    figure = draw_extrapolation(report)
    figure.savefig(folder / "extrapolation.png", dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(arguments.threads)
    tokenizer = MaskedTokenizer.shipped()
    split = wiki_text_split()
    train_tokens = torch.tensor(tokenizer.encode_text(split.train))
    validation_tokens = torch.tensor(tokenizer.encode_text(split.validation))
    recipe = OptimizerRecipe(
        steps=arguments.steps,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        warmup_steps=max(1, arguments.steps // 20),
        weight_decay=0.01,
        betas=(0.9, 0.98),
    )
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_hf(out)
    report = {
        "recipe": asdict(recipe),
        "train_length": TRAIN_LENGTH,
        "train_tokens": len(train_tokens),
        "validation_tokens": len(validation_tokens),
        "threads": arguments.threads,
        "unigram_baseline": unigram_baseline(train_tokens, validation_tokens, tokenizer),
        "encoders": {},
    }
    previous = json.loads((out / REPORT_FILE).read_text()) if (out / REPORT_FILE).exists() else {}
    if previous.get("recipe") == json.loads(
        json.dumps(report["recipe"])
    ):  # as stored: tuples became lists  # `--kinds rotary` retrains one kind, keeps the others
        report["encoders"] = {
            kind: entry for kind, entry in previous["encoders"].items() if kind not in arguments.kinds
        }
    for kind in arguments.kinds:
        config = EncoderConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=arguments.hidden_size,
            num_layers=arguments.layers,
            num_heads=arguments.heads,
            intermediate_size=4 * arguments.hidden_size,
            position_kind=kind,
            max_positions=TRAIN_LENGTH,
            dropout=0.0,  # a few hundred steps underfit; dropout would only slow them down
            pad_token_id=tokenizer.pad_id,
        )
        model, log, wall, cpu = train_encoder(config, recipe, train_tokens, tokenizer, arguments.seed)
        save_model(model, config, out / kind, dtype=torch.float16)
        shipped = load_model(MaskedLanguageModel, EncoderConfig, out / kind)  # score the weights as shipped
        report["encoders"][kind] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "final_train_loss": log[-1]["train_loss"],
            "held_out": extrapolation(shipped, validation_tokens, tokenizer),
            "log": log,
        }
        report["encoders"] = {name: report["encoders"][name] for name in POSITION_KINDS if name in report["encoders"]}
        print(kind, json.dumps(report["encoders"][kind]["held_out"]), flush=True)
        (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    plot_report(report, out)
    return report


if __name__ == "__main__":
    main()
