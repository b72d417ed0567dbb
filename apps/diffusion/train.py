"""Reproduce `checkpoints/diffusion/`: our UNet trained with the DDPM loss on MNIST-5k, padded to 32x32.

    python -m apps.diffusion.train                          # the shipped recipe (about 30 minutes on 2 CPU cores)
    python -m apps.diffusion.train --steps 20 --out /tmp/d  # a smoke run
    accelerate launch -m apps.diffusion.train ...           # the same script on one or several GPUs

The loop is plain PyTorch; Accelerate places the model, optimizer and batches and runs bf16 autocast
(faster convolutions on this CPU, too). We sample from an exponential moving average of the weights
(DDPM, Appendix B). The checkpoint is our format (config.json + model.safetensors); add
`--export-diffusers DIR` to write a diffusers `DDPMPipeline` folder as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apps.diffusion.model import NoiseSchedule, ScheduleConfig, UNet, UNetConfig, diffusion_loss, sample
from shared.checkpoint import load_model, save_model
from shared.data import mnist5k
from shared.image_metric import image_quality
from shared.images import save_grid
from shared.training import ExponentialMovingAverage, OptimizerRecipe, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusion"
TRAIN_COMMAND = "python -m apps.diffusion.train"
# Attention only at the 8x8 level: at 16x16 it cost 4x the training time on the CPU for no visible gain.
SHIPPED_UNET = UNetConfig(
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
)


def mnist_padded(images) -> torch.Tensor:
    """uint8 (N, 28, 28) digits -> float (N, 1, 32, 32) in [-1, 1], zero-padded by 2 pixels (black stays -1)."""
    x = torch.as_tensor(images, dtype=torch.float32)[:, None] / 127.5 - 1
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--tiny", action="store_true", help="a 2-level UNet of 8 and 16 channels (tests)")
    parser.add_argument("--samples", type=int, default=256, help="DDIM-20 samples scored at the end")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export-diffusers", type=Path, default=None, help="also write a diffusers DDPMPipeline folder here"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    started = time.perf_counter()

    images = mnist_padded(mnist5k().train_images)  # (4500, 1, 32, 32)
    config = (
        UNetConfig(
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        )
        if arguments.tiny
        else SHIPPED_UNET
    )
    schedule_config = ScheduleConfig()
    schedule = NoiseSchedule(schedule_config)
    model = UNet(config)
    recipe = OptimizerRecipe(
        steps=arguments.steps,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        warmup_steps=min(200, arguments.steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.learning_rate, betas=recipe.betas, weight_decay=recipe.weight_decay
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = ExponentialMovingAverage(accelerator.unwrap_model(model), arguments.ema_decay)
    generator = torch.Generator().manual_seed(arguments.seed + accelerator.process_index)

    log = []
    progress = tqdm(range(recipe.steps), desc="training the UNet", disable=not accelerator.is_local_main_process)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step)
        batch = images[torch.randint(0, len(images), (recipe.batch_size,), generator=generator)].to(accelerator.device)
        model.train()
        with accelerator.autocast():
            loss = diffusion_loss(model, schedule, batch)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(accelerator.unwrap_model(model))
        if step % 50 == 0 or step == recipe.steps - 1:
            log.append(
                {"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - started, 1)}
            )
            progress.set_postfix(loss=log[-1]["loss"])
    training_minutes = (time.perf_counter() - started) / 60

    if not accelerator.is_main_process:
        return {}
    out = arguments.out
    out.mkdir(parents=True, exist_ok=True)
    averaged = ema.model.cpu().float().eval()
    save_model(averaged, config, out, dtype=torch.float16, extra_config={"schedule": asdict(schedule_config)})
    if arguments.export_diffusers is not None:  # the weights as shipped (fp16 values), in diffusers' format
        from apps.diffusion.reference import export_pipeline

        export_pipeline(load_model(UNet, UNetConfig, out), schedule_config, arguments.export_diffusers)
    training = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "training_minutes": round(training_minutes, 1),
        "parameters": sum(p.numel() for p in averaged.parameters()),
        "unet_config": asdict(config),
        "schedule": asdict(schedule_config),
        "recipe": asdict(recipe),
        "ema_decay": arguments.ema_decay,
        "log": log,
    }
    return score_checkpoint(out, training, arguments.samples, arguments.seed)


def score_checkpoint(out: Path, training: dict, samples: int, seed: int) -> dict:
    """Score DDIM-20 samples of the checkpoint in `out` with the shared digit metric, keep a grid to look
    at, and write training_report.json (the `training` facts plus the scores)."""
    model = load_model(UNet, UNetConfig, out)
    schedule = NoiseSchedule(ScheduleConfig(**training["schedule"]))
    noise = torch.randn(
        samples, 1, model.config.sample_size, model.config.sample_size, generator=torch.Generator().manual_seed(seed)
    )
    images = torch.cat([sample(model, schedule, chunk, "ddim", 20) for chunk in noise.split(128)])
    save_grid(images[:64], out / "samples_ddim20.png", columns=8, scale=2)
    report = {**training, "ddim20_quality": image_quality(images).as_row()}
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"training_minutes": report["training_minutes"], "ddim20_quality": report["ddim20_quality"]}))
    return report


if __name__ == "__main__":
    main()
