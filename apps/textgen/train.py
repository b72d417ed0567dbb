"""Reproduce `checkpoints/textgen/`: the BPE tokenizer, the GPT, the LSTM and the n-gram baseline,
all on the same tokens of the gensim Wikipedia sample (whole articles held out for validation).

    python -m apps.textgen.train                      # the shipped recipe, about 43 minutes on 2 CPU cores
    python -m apps.textgen.train --gpt-steps 20 --lstm-steps 20 --out /tmp/textgen   # a smoke run
    accelerate launch -m apps.textgen.train ...       # the same script on one or several GPUs

Training goes through Hugging Face Accelerate: the loop below is plain PyTorch, and Accelerate puts
the model, optimizer and batches on the right device(s) and handles mixed precision (bf16 autocast,
which also speeds up the CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from apps.textgen.baselines import (
    KneserNeyNGram,
    LSTMConfig,
    LSTMLanguageModel,
    NGramConfig,
    bits_per_character,
    choose_order,
)
from apps.textgen.evaluate import gpt_total_nll
from apps.textgen.model import GPT, GPTConfig
from apps.textgen.tokenizer import BPETokenizer
from shared.checkpoint import save_model
from shared.data import wiki_text_split
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "textgen"
TRAIN_COMMAND = "python -m apps.textgen.train"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--gpt-steps", type=int, default=2400)
    parser.add_argument("--gpt-batch-size", type=int, default=12)
    parser.add_argument("--lstm-steps", type=int, default=600)
    parser.add_argument("--lstm-batch-size", type=int, default=12)
    parser.add_argument("--block-size", type=int, default=384)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--lstm-hidden-size", type=int, default=512)
    parser.add_argument("--ngram-orders", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def random_windows(
    tokens: torch.Tensor, batch_size: int, length: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random windows of the token stream: inputs (B, T) and next-token targets (B, T)."""
    starts = torch.randint(len(tokens) - length - 1, (batch_size,), generator=generator)
    windows = torch.stack([tokens[s : s + length + 1] for s in starts.tolist()])
    return windows[:, :-1], windows[:, 1:]


def train_language_model(
    name: str,
    model: torch.nn.Module,
    recipe: OptimizerRecipe,
    train_tokens: torch.Tensor,
    validation_tokens: torch.Tensor,
    block_size: int,
    accelerator,
    seed: int,
) -> list[dict]:
    """The training loop shared by the GPT and the LSTM: both map (B, T) ids to (logits, loss, ...)."""
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(model, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(seed + accelerator.process_index)
    log, started = [], time.perf_counter()
    progress = tqdm(range(recipe.steps), desc=f"training {name}", disable=not accelerator.is_local_main_process)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        inputs, targets = (
            t.to(accelerator.device) for t in random_windows(train_tokens, recipe.batch_size, block_size, generator)
        )
        model.train()
        with accelerator.autocast():
            loss = model(inputs, targets)[1]
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 50 == 0 or step == recipe.steps - 1:
            entry = {
                "step": step,
                "train_loss": round(loss.item(), 4),
                "seconds": round(time.perf_counter() - started, 1),
            }
            if step % 250 == 0 or step == recipe.steps - 1:
                entry["validation_loss"] = round(
                    validation_loss(accelerator.unwrap_model(model), validation_tokens, block_size, accelerator.device),
                    4,
                )
            log.append(entry)
            progress.set_postfix(loss=entry["train_loss"], val=entry.get("validation_loss", "-"))
    return log


@torch.no_grad()
def validation_loss(model: torch.nn.Module, tokens: torch.Tensor, block_size: int, device, windows: int = 16) -> float:
    """Mean next-token loss on a fixed set of held-out windows (a quick estimate for the log)."""
    model.eval()
    starts = torch.linspace(0, len(tokens) - block_size - 2, windows).long()
    batch = torch.stack([tokens[s : s + block_size + 1] for s in starts.tolist()]).to(device)
    return model(batch[:, :-1], batch[:, 1:])[1].item()


def plot_losses(logs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for (name, log), colour in zip(logs.items(), ("tab:blue", "tab:orange")):
        axis.plot(
            [e["step"] for e in log], [e["train_loss"] for e in log], color=colour, alpha=0.5, label=f"{name} train"
        )
        validated = [e for e in log if "validation_loss" in e]
        axis.plot(
            [e["step"] for e in validated],
            [e["validation_loss"] for e in validated],
            "o-",
            color=colour,
            label=f"{name} held out",
        )
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("cross-entropy (nats / token)")
    axis.set_title("Text generation: training curves")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    split = wiki_text_split()
    tokenizer = BPETokenizer.train(split.train, arguments.vocab_size, progress=accelerator.is_local_main_process)
    train_ids, validation_ids = tokenizer.encode(split.train), tokenizer.encode(split.validation)
    train_tokens, validation_tokens = torch.tensor(train_ids), torch.tensor(validation_ids)
    characters = len(split.validation)
    accelerator.print(
        (
            f"{len(train_ids):,} training tokens, {len(validation_ids):,} held-out tokens, "
            f"{characters / len(validation_ids):.2f} characters per token"
        )
    )

    gpt_config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=arguments.block_size,
        n_layer=arguments.n_layer,
        n_head=arguments.n_head,
        n_embd=arguments.n_embd,
        dropout=arguments.dropout,
    )
    gpt = GPT(gpt_config)
    gpt_recipe = OptimizerRecipe(
        steps=arguments.gpt_steps,
        batch_size=arguments.gpt_batch_size,
        learning_rate=1e-3,
        warmup_steps=min(200, arguments.gpt_steps // 10 + 1),
    )
    gpt_log = train_language_model(
        "GPT", gpt, gpt_recipe, train_tokens, validation_tokens, arguments.block_size, accelerator, arguments.seed
    )

    lstm_config = LSTMConfig(
        vocab_size=tokenizer.vocab_size,
        n_embd=arguments.n_embd,
        hidden_size=arguments.lstm_hidden_size,
        n_layers=1,
        dropout=arguments.dropout,
        tie_weights=True,
    )
    lstm = LSTMLanguageModel(lstm_config)
    lstm_recipe = OptimizerRecipe(
        steps=arguments.lstm_steps,
        batch_size=arguments.lstm_batch_size,
        learning_rate=3e-3,
        warmup_steps=min(100, arguments.lstm_steps // 10 + 1),
    )
    lstm_log = train_language_model(
        "LSTM", lstm, lstm_recipe, train_tokens, validation_tokens, arguments.block_size, accelerator, arguments.seed
    )

    best_order, ngram_losses = choose_order(
        train_ids, validation_ids, orders=arguments.ngram_orders, vocab_size=tokenizer.vocab_size
    )
    ngram = KneserNeyNGram(NGramConfig(order=best_order, vocab_size=tokenizer.vocab_size)).fit(train_ids)

    if not accelerator.is_main_process:
        return {}
    gpt, lstm = accelerator.unwrap_model(gpt).cpu().float().eval(), accelerator.unwrap_model(lstm).cpu().float().eval()
    bits = {
        "gpt": bits_per_character(gpt_total_nll(gpt, validation_tokens), characters),
        "lstm": bits_per_character(lstm.total_nll(validation_tokens), characters),
        "ngram": bits_per_character(ngram.total_nll(validation_ids), characters),
    }
    tokenizer.save(out)
    tokenizer.save_hf(out)
    save_model(gpt, gpt_config, out / "gpt", dtype=torch.float16)
    save_model(lstm, lstm_config, out / "lstm", dtype=torch.float16)
    plot_losses({"GPT": gpt_log, "LSTM": lstm_log}, out / "loss_curve.png")
    report = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "held_out_bits_per_character": {name: round(value, 4) for name, value in bits.items()},
        "ngram_order": best_order,
        "ngram_validation_nats_per_token": {str(k): round(v, 4) for k, v in ngram_losses.items()},
        "characters_per_token": round(characters / len(validation_ids), 3),
        "gpt_config": asdict(gpt_config),
        "gpt_parameters": gpt.num_parameters(),
        "lstm_config": asdict(lstm_config),
        "lstm_parameters": lstm.num_parameters(),
        "gpt_log": gpt_log,
        "lstm_log": lstm_log,
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    accelerator.print(json.dumps({k: report[k] for k in ("minutes", "held_out_bits_per_character", "ngram_order")}))
    return report


if __name__ == "__main__":
    main()
