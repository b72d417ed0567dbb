"""Reproduce `checkpoints/ssm/`: a Mamba language model of about the GPT's size, on exactly the text
generation topic's tokens (its BPE tokenizer from `checkpoints/textgen/`, its split of the gensim
Wikipedia sample), scored like it (every held-out token once, in bits per character).

    python -m apps.ssm.train                          # the shipped recipe
    python -m apps.ssm.train --steps 3 --out /tmp/ssm # a smoke run

The training loop is the text generation topic's (`train_language_model`, through Hugging Face
Accelerate with bf16 autocast); only the model differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from apps.ssm.model import MambaConfig, MambaLM
from apps.textgen.baselines import bits_per_character
from apps.textgen.side_by_side import shipped_tokenizer
from apps.textgen.train import plot_losses, train_language_model
from shared.checkpoint import save_model
from shared.data import wiki_text_split
from shared.training import OptimizerRecipe, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "ssm"
TRAIN_COMMAND = "python -m apps.ssm.train"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--n-layer", type=int, default=8)
    parser.add_argument("--d-state", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    started, cpu_started = time.perf_counter(), time.process_time()

    split = wiki_text_split()
    tokenizer = shipped_tokenizer()
    train_tokens = torch.tensor(tokenizer.encode(split.train))
    validation_tokens = torch.tensor(tokenizer.encode(split.validation))
    config = MambaConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=arguments.d_model,
        n_layer=arguments.n_layer,
        d_state=arguments.d_state,
        block_size=arguments.block_size,
    )
    model = MambaLM(config)
    accelerator.print(f"Mamba: {model.num_parameters():,} parameters; {len(train_tokens):,} training tokens")
    recipe = OptimizerRecipe(
        steps=arguments.steps,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        warmup_steps=min(100, arguments.steps // 10 + 1),
    )
    log = train_language_model(
        "Mamba", model, recipe, train_tokens, validation_tokens, config.block_size, accelerator, arguments.seed
    )
    if not accelerator.is_main_process:
        return {}
    model = accelerator.unwrap_model(model).cpu().float().eval()
    training_seconds = time.perf_counter() - started
    nll = model.total_nll(validation_tokens, start_id=tokenizer.eot_id)
    out = arguments.out
    save_model(model, config, out, dtype=torch.float16)
    plot_losses({"Mamba": log}, out / "loss_curve.png")
    report = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "training_minutes": round(training_seconds / 60, 1),
        "process_cpu_minutes": round((time.process_time() - cpu_started) / 60, 1),
        "held_out_bits_per_character": round(bits_per_character(nll, len(split.validation)), 4),
        "held_out_tokens": len(validation_tokens),
        "config": asdict(config),
        "parameters": model.num_parameters(),
        "recipe": asdict(recipe),
        "log": log,
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    accelerator.print(json.dumps({k: report[k] for k in ("training_minutes", "held_out_bits_per_character")}))
    return report


if __name__ == "__main__":
    main()
