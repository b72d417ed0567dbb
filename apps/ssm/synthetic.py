"""The two synthetic tasks of the Mamba paper (section 4.1), S4D against Mamba against a GPT of similar size,
each trained for a few CPU-minutes at one length and tested at 1x, 2x, 4x and 8x that length.

- Selective copying: COPY_TOKENS data tokens sit at random places among noise tokens; after the
  sequence, COPY_TOKENS marker tokens ask for them back, in order. The gaps vary from sequence to
  sequence, so a time-invariant model (one fixed kernel) cannot know where to look: the content must
  decide what is kept. That is the paper's argument for selection.
- Induction heads: random tokens; somewhere a trigger token is followed by a value; the sequence ends
  with the trigger again and the model must answer the value (associative recall).

    python -m apps.ssm.synthetic             # writes checkpoints/ssm/synthetic_report.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from apps.ssm.model import S4DLM, MambaConfig, MambaLM, S4DLMConfig
from apps.textgen.model import GPT, GPTConfig
from shared.training import OptimizerRecipe, decay_and_no_decay

REPORT = Path(__file__).resolve().parents[2] / "checkpoints" / "ssm" / "synthetic_report.json"
COPY_TOKENS = 4  # data tokens to copy
DATA_VOCAB = 8  # data tokens are 1 .. DATA_VOCAB; 0 is noise
VOCAB = DATA_VOCAB + 2  # + noise (0) + the marker / trigger token (VOCAB - 1)
SPECIAL = VOCAB - 1
LENGTH_FACTORS = (1, 2, 4, 8)


def selective_copying(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, length + COPY_TOKENS) and targets (-100 except at the markers, where the data tokens go)."""
    inputs = torch.zeros(batch, length + COPY_TOKENS, dtype=torch.long)
    targets = torch.full_like(inputs, -100)
    data = torch.randint(1, DATA_VOCAB + 1, (batch, COPY_TOKENS), generator=generator)
    for row in range(batch):
        places = torch.randperm(length, generator=generator)[:COPY_TOKENS].sort().values
        inputs[row, places] = data[row]
    inputs[:, length:] = SPECIAL
    targets[:, length:] = data
    return inputs, targets


def induction_heads(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (B, length) of random data tokens with `SPECIAL, value` once inside and SPECIAL at the end;
    the target of the last position is the value."""
    inputs = torch.randint(0, DATA_VOCAB + 1, (batch, length), generator=generator)
    targets = torch.full_like(inputs, -100)
    positions = torch.randint(0, length - 3, (batch,), generator=generator)
    values = torch.randint(1, DATA_VOCAB + 1, (batch,), generator=generator)
    rows = torch.arange(batch)
    inputs[rows, positions] = SPECIAL
    inputs[rows, positions + 1] = values
    inputs[:, -1] = SPECIAL
    targets[:, -1] = values
    return inputs, targets


TASKS = {"selective copying": selective_copying, "induction heads": induction_heads}


def models(train_length: int, width: int) -> dict[str, torch.nn.Module]:
    """Three models of similar size: time-invariant S4D, selective Mamba, and a GPT with rotary positions
    (RoPE, so that it can at least be run on longer sequences than it was trained on)."""
    return {
        "S4D": S4DLM(S4DLMConfig(vocab_size=VOCAB, d_model=3 * width // 2, n_layer=2, state_size=64)),
        "Mamba": MambaLM(MambaConfig(vocab_size=VOCAB, d_model=width, n_layer=2, d_state=16, d_conv=4)),
        "GPT": GPT(
            GPTConfig(
                vocab_size=VOCAB,
                block_size=max(LENGTH_FACTORS) * train_length + COPY_TOKENS,
                n_layer=2,
                n_head=2,
                n_embd=width,
                position_encoding="rope",
            )
        ),
    }


@torch.no_grad()
def accuracy(model: torch.nn.Module, task, length: int, sequences: int = 256, seed: int = 1) -> float:
    """Fraction of the answered positions whose argmax is right."""
    model.eval()
    inputs, targets = task(sequences, length, torch.Generator().manual_seed(seed))
    logits = model(inputs)[0]
    answered = targets != -100
    return (logits.argmax(-1)[answered] == targets[answered]).float().mean().item()


def train(model: torch.nn.Module, task, length: int, steps: int, batch_size: int, seed: int) -> float:
    """AdamW with warmup and cosine decay on fresh batches; returns the last loss."""
    recipe = OptimizerRecipe(steps=steps, batch_size=batch_size, learning_rate=3e-3, warmup_steps=steps // 10 + 1)
    optimizer = torch.optim.AdamW(decay_and_no_decay(model, 0.01), lr=recipe.learning_rate, betas=recipe.betas)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        inputs, targets = task(batch_size, length, generator)
        loss = model(inputs, targets)[1]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.item()


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-length", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    for task_name, task in TASKS.items():
        for model_name, model in models(arguments.train_length, arguments.width).items():
            torch.manual_seed(arguments.seed)
            started = time.process_time()
            loss = train(model, task, arguments.train_length, arguments.steps, arguments.batch_size, arguments.seed)
            row = {
                "task": task_name,
                "model": model_name,
                "parameters": sum(p.numel() for p in model.parameters()),
                "final_loss": round(loss, 4),
                "cpu_seconds": round(time.process_time() - started, 1),
                "accuracy": {
                    f"{factor}x": round(accuracy(model, task, factor * arguments.train_length), 3)
                    for factor in LENGTH_FACTORS
                },
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    report = {"command": " ".join(["python -m apps.ssm.synthetic", *argv]), **vars(arguments), "results": results}
    report["out"] = str(report["out"].name)
    arguments.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
