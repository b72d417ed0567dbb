"""Reproduce `checkpoints/diffusion/`: our UNet trained with the DDPM loss on MNIST-5k, padded to 32x32,
and `checkpoints/diffusion/conditional/`: the same UNet with a class embedding, trained from scratch with
label dropout for classifier-free guidance.

    python -m apps.diffusion.train                          # the shipped recipe (about 30 minutes on 2 CPU cores)
    python -m apps.diffusion.train --conditional            # digits on request (about 21 CPU minutes, 1 thread)
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
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from apps.diffusion import DEFAULT_GUIDANCE  # w of classifier-free guidance (Ho & Salimans) the report samples with
from apps.diffusion.model import (
    NoiseSchedule,
    ScheduleConfig,
    UNet,
    UNetConfig,
    diffusion_loss,
    drop_labels,
    sample,
)
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
TINY_UNET = dict(
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
)
DIGITS = 10
CLASS_EMBEDDING_LR_SCALE = 20.0


def mnist_padded(images) -> torch.Tensor:
    """uint8 (N, 28, 28) digits -> float (N, 1, 32, 32) in [-1, 1], zero-padded by 2 pixels (black stays -1)."""
    x = torch.as_tensor(images, dtype=torch.float32)[:, None] / 127.5 - 1
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def start_from_unconditional(model: UNet, folder: Path) -> None:
    """Copy an unconditional UNet's weights into the class-conditional `model` of the same layout, with the
    class embedding at zero: every label starts as the unconditional model, and fine-tuning only has to
    learn what each digit adds (smaller batches and fewer steps than training from scratch)."""
    unconditional = load_model(UNet, UNetConfig, folder, TRAIN_COMMAND)
    missing, unexpected = model.load_state_dict(unconditional.state_dict(), strict=False)
    if unexpected or missing != ["class_embedding.weight"]:
        raise ValueError(
            f"{folder} does not hold this UNet's layout: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    torch.nn.init.zeros_(model.class_embedding.weight)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument(
        "--conditional", action="store_true", help="class-conditional UNet on 28x28 digits, for guidance"
    )
    parser.add_argument("--label-dropout", type=float, default=0.1, help="share of 'no label' examples (conditional)")
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="conditional: start from this unconditional checkpoint instead of from scratch (the default)",
    )
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (3000)")
    parser.add_argument("--batch-size", type=int, default=None, help="64, or 32 with --conditional")
    parser.add_argument("--learning-rate", type=float, default=None, help="1e-3")
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--tiny", action="store_true", help="a 2-level UNet of 8 and 16 channels (tests)")
    parser.add_argument("--samples", type=int, default=256, help="DDIM-20 samples scored at the end")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--export-diffusers", type=Path, default=None, help="also write a diffusers DDPMPipeline folder here"
    )
    arguments = parser.parse_args(argv)
    if arguments.out is None:
        arguments.out = CHECKPOINT_DIR / "conditional" if arguments.conditional else CHECKPOINT_DIR
    conditional_defaults = dict(batch_size=32, steps=3000, learning_rate=1e-3)
    unconditional_defaults = dict(batch_size=64, steps=3000, learning_rate=1e-3)
    for name, value in (conditional_defaults if arguments.conditional else unconditional_defaults).items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    return arguments


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    started = time.perf_counter()

    split = mnist5k()
    images = mnist_padded(split.train_images)  # (4500, 1, 32, 32)
    labels = torch.as_tensor(split.train_labels) if arguments.conditional else None  # (4500,)
    config = UNetConfig(**TINY_UNET) if arguments.tiny else SHIPPED_UNET
    if arguments.conditional:
        config = replace(config, num_class_embeds=DIGITS + 1)
    schedule_config = ScheduleConfig()
    schedule = NoiseSchedule(schedule_config)
    model = UNet(config)
    if arguments.init is not None:
        start_from_unconditional(model, arguments.init)
    recipe = OptimizerRecipe(
        steps=arguments.steps,
        batch_size=arguments.batch_size,
        learning_rate=arguments.learning_rate,
        warmup_steps=min(200, arguments.steps // 10 + 1),
        weight_decay=0.0,
        betas=(0.9, 0.999),
    )
    # The class embedding learns at 20x the network's rate. Fine-tuned from a trained network, it starts at zero
    # and at the network's rate stayed too small to matter (norm 0.05 against a time embedding of 3-8 after
    # 600 steps); the shipped conditional UNet, trained from scratch, kept the same scale.
    class_parameters = [model.class_embedding.weight] if config.num_class_embeds is not None else []
    groups = [
        {"params": [p for p in model.parameters() if all(p is not q for q in class_parameters)], "lr_scale": 1.0},
        {"params": class_parameters, "lr_scale": CLASS_EMBEDDING_LR_SCALE},
    ]
    optimizer = torch.optim.AdamW(
        [group for group in groups if group["params"]],
        lr=recipe.learning_rate,
        betas=recipe.betas,
        weight_decay=recipe.weight_decay,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = ExponentialMovingAverage(accelerator.unwrap_model(model), arguments.ema_decay)
    generator = torch.Generator().manual_seed(arguments.seed + accelerator.process_index)

    log = []
    progress = tqdm(range(recipe.steps), desc="training the UNet", disable=not accelerator.is_local_main_process)
    for step in progress:
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate_at(step) * group["lr_scale"]
        indices = torch.randint(0, len(images), (recipe.batch_size,), generator=generator)
        batch = images[indices].to(accelerator.device)
        batch_labels = None
        if labels is not None:
            batch_labels = drop_labels(labels[indices], config.num_class_embeds - 1, arguments.label_dropout, generator)
            batch_labels = batch_labels.to(accelerator.device)
        model.train()
        with accelerator.autocast():
            loss = diffusion_loss(model, schedule, batch, class_labels=batch_labels)
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
        **(
            {
                "label_dropout": arguments.label_dropout,
                "initialised_from": str(arguments.init) if arguments.init else "scratch",
            }
            if arguments.conditional
            else {}
        ),
        "log": log,
    }
    return score_checkpoint(out, training, arguments.samples, arguments.seed)


def score_checkpoint(out: Path, training: dict, samples: int, seed: int) -> dict:
    """Score DDIM-20 samples of the checkpoint in `out` with the shared digit metric, keep a grid to look
    at, and write training_report.json (the `training` facts plus the scores). A class-conditional model
    draws every digit in turn at the default guidance, and the report says how often the digit
    classifier reads the requested one."""
    model = load_model(UNet, UNetConfig, out)
    schedule = NoiseSchedule(ScheduleConfig(**training["schedule"]))
    noise = torch.randn(
        samples, 1, model.config.sample_size, model.config.sample_size, generator=torch.Generator().manual_seed(seed)
    )
    conditional = model.null_label is not None
    requested = torch.arange(samples) % DIGITS if conditional else None
    chunks = []
    for first in range(0, samples, 128):
        labels = requested[first : first + 128] if conditional else None
        guidance = DEFAULT_GUIDANCE if conditional else 0.0
        chunks.append(
            sample(model, schedule, noise[first : first + 128], "ddim", 20, class_labels=labels, guidance=guidance)
        )
    images = torch.cat(chunks)
    save_grid(
        images[:100] if conditional else images[:64],
        out / "samples_ddim20.png",
        columns=10 if conditional else 8,
        scale=2,
    )
    report = {**training, "ddim20_quality": image_quality(images).as_row()}
    if conditional:
        report["guidance"] = DEFAULT_GUIDANCE
        report["requested_digit_read"] = requested_digit_agreement(images, requested)
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        json.dumps(
            {
                key: report[key]
                for key in ("training_minutes", "ddim20_quality", "requested_digit_read")
                if key in report
            }
        )
    )
    return report


def requested_digit_agreement(images: torch.Tensor, requested: torch.Tensor) -> list[float]:
    """For each digit 0-9: the share of its samples that the shared digit classifier reads as that digit."""
    from shared.image_metric import default_metric

    read = torch.as_tensor(default_metric().embed(images)[1].argmax(axis=1))
    return [round((read[requested == digit] == digit).float().mean().item(), 3) for digit in range(DIGITS)]


if __name__ == "__main__":
    main()
