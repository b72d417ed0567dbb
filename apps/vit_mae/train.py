"""Reproduce `checkpoints/vit_mae/`: an MAE pre-trained on MNIST digits, the ViT classifier fine-tuned
from its encoder, and the same ViT trained from scratch for comparison.

    python -m apps.vit_mae.train                      # the shipped recipe, about 18 minutes on 2 CPU cores
    python -m apps.vit_mae.train --tiny --mae-epochs 1 --epochs 1 --out /tmp/vit_mae   # a smoke run
    accelerate launch -m apps.vit_mae.train ...       # the same script on one or several GPUs

All three train on the 4,500 training digits of MNIST-5k and are scored on its 500 held-out digits:
1. MAE pre-training without labels (He et al. 2021): 75% of the patches hidden, the pixels of the
   hidden ones predicted; scored by the mean squared error on the hidden patches of the held-out
   digits, always under the same masks.
2. Fine-tuning (MAE section 4): a ViT whose patch embedding, blocks and final LayerNorm start from the
   MAE encoder (`vit_from_mae_encoder`), trained with labels; scored by held-out accuracy.
3. The same ViT from a random initialisation with the same recipe: what the pre-training bought.

The loops are plain PyTorch; Hugging Face Accelerate puts model, optimizer and batches on the right
device(s) and can run bf16 autocast (on this CPU it is not faster for a model this narrow, so it is
off by default).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from apps.vit_mae.data import random_affine
from apps.vit_mae.model import MAE, MAEConfig, ViT, ViTConfig, hidden_patch_mse, vit_from_mae_encoder
from shared.checkpoint import load_model, save_model
from shared.data import mnist5k
from shared.images import to_unit_batch
from shared.training import OptimizerRecipe, decay_and_no_decay, seeded_accelerator

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "vit_mae"
TRAIN_COMMAND = "python -m apps.vit_mae.train"
LABEL_NAMES = tuple(str(digit) for digit in range(10))
TRAIN_DIGITS = 4500  # MNIST-5k less its 500 held-out digits
EVALUATION_NOISE_SEED = 1234  # the masks of the held-out reconstruction error, the same in every epoch and run
# A model small enough for the tests: one 16-wide block on a 4 x 4 grid of 7 x 7 patches.
TINY = dict(
    patch_size=7,
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=32,
)


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--patch-size", type=int, default=4, help="4: a 7 x 7 grid of patches; 7: a 4 x 4 grid")
    parser.add_argument("--hidden-size", type=int, default=96)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, default=192, help="width of each block's MLP")
    parser.add_argument("--decoder-hidden-size", type=int, default=96)
    parser.add_argument("--decoder-layers", type=int, default=2)
    parser.add_argument("--decoder-heads", type=int, default=4)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument(
        "--norm-pix-loss",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="normalise each target patch (MAE Table 1c); off: most MNIST patches are flat black",
    )
    parser.add_argument("--mae-epochs", type=int, default=60)
    parser.add_argument(
        "--epochs", type=int, default=45, help="epochs of each classifier (fine-tuned and from scratch)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mae-learning-rate", type=float, default=1e-3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--tiny", action="store_true", help="a one-block model of width 16 (tests and smoke runs)")
    parser.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    for name in ("mae_epochs", "epochs", "batch_size"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if arguments.batch_size > TRAIN_DIGITS:
        parser.error(f"--batch-size must be at most the {TRAIN_DIGITS:,} training digits")
    return arguments


def mae_config(arguments: argparse.Namespace) -> MAEConfig:
    options = dict(
        image_size=28,
        num_channels=1,
        patch_size=arguments.patch_size,
        hidden_size=arguments.hidden_size,
        num_hidden_layers=arguments.layers,
        num_attention_heads=arguments.heads,
        intermediate_size=arguments.intermediate_size,
        decoder_hidden_size=arguments.decoder_hidden_size,
        decoder_num_hidden_layers=arguments.decoder_layers,
        decoder_num_attention_heads=arguments.decoder_heads,
        decoder_intermediate_size=2 * arguments.decoder_hidden_size,
    )
    return MAEConfig(
        **(options | (TINY if arguments.tiny else {})),
        mask_ratio=arguments.mask_ratio,
        norm_pix_loss=arguments.norm_pix_loss,
    )


def recipe_for(
    epochs: int,
    steps_per_epoch: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    betas: tuple[float, float],
) -> OptimizerRecipe:
    """AdamW, warmup over the first 5% of the steps (MAE's recipes: 40 of 800 pre-training epochs, 5 of
    100 fine-tuning epochs), then cosine decay to 1% of the peak."""
    steps = epochs * steps_per_epoch
    return OptimizerRecipe(
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_steps=max(1, steps // 20),
        weight_decay=weight_decay,
        betas=betas,
        min_lr_fraction=0.01,
    )


# -----------------------------------------------------------------------------
# The training loop shared by the three models, and their held-out scores


def train_phase(
    name: str,
    model: torch.nn.Module,
    loss_of: Callable,
    evaluate: Callable,
    recipe: OptimizerRecipe,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    accelerator,
    seed: int,
) -> list[dict]:
    """`recipe.steps` AdamW steps on shuffled, augmented batches of `pixels` (N, 1, 28, 28); after each
    epoch, the mean training loss and `evaluate(model)`'s held-out scores go into the log."""
    optimizer = torch.optim.AdamW(
        decay_and_no_decay(model, recipe.weight_decay), lr=recipe.learning_rate, betas=recipe.betas
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    generator = torch.Generator().manual_seed(seed + accelerator.process_index)
    steps_per_epoch = len(pixels) // recipe.batch_size  # the last partial batch of an epoch is dropped
    log, step, started = [], 0, time.perf_counter()
    progress = tqdm(total=recipe.steps, desc=f"training {name}", disable=not accelerator.is_local_main_process)
    for _ in range(recipe.steps // steps_per_epoch):
        order = torch.randperm(len(pixels), generator=generator)[: steps_per_epoch * recipe.batch_size]
        losses = []
        for batch in order.view(steps_per_epoch, recipe.batch_size):
            for group in optimizer.param_groups:
                group["lr"] = recipe.learning_rate_at(step)
            model.train()
            images = random_affine(pixels[batch], generator).to(accelerator.device)
            with accelerator.autocast():
                loss = loss_of(model, images, labels[batch].to(accelerator.device))
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            progress.update()
        entry = {"epoch": len(log) + 1, "step": step, "train_loss": round(sum(losses) / len(losses), 4)}
        entry |= evaluate(accelerator.unwrap_model(model))
        entry["seconds"] = round(time.perf_counter() - started, 1)
        log.append(entry)
        progress.set_postfix({key: value for key, value in entry.items() if key not in ("epoch", "step", "seconds")})
    progress.close()
    return log


def mae_loss(model: MAE, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return model(images)[0]  # a new random mask for every image and step


def classifier_loss(label_smoothing: float) -> Callable:
    def loss(model: ViT, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(images), labels, label_smoothing=label_smoothing)

    return loss


def evaluation_noise(count: int, num_patches: int) -> torch.Tensor:
    """The fixed masks of the held-out reconstruction score, (count, num_patches)."""
    return torch.rand(count, num_patches, generator=torch.Generator().manual_seed(EVALUATION_NOISE_SEED))


@torch.no_grad()
def reconstruction_error(model: MAE, pixels: torch.Tensor, noise: torch.Tensor) -> dict:
    """Mean squared pixel error on the hidden patches of held-out digits (pixels in [0, 1])."""
    model.eval()
    device = next(model.parameters()).device
    pixels, noise = pixels.to(device), noise.to(device)
    _, predictions, mask = model(pixels, noise)
    images = model.reconstruct_image(pixels, predictions, mask)
    return {"held_out_mse": round(hidden_patch_mse(pixels, images, mask, model.config.patch_size).mean().item(), 5)}


@torch.no_grad()
def classification_scores(model: ViT, pixels: torch.Tensor, labels: torch.Tensor) -> dict:
    model.eval()
    device = next(model.parameters()).device
    logits = model(pixels.to(device)).float().cpu()
    return {
        "held_out_loss": round(F.cross_entropy(logits, labels).item(), 4),
        "held_out_accuracy": round((logits.argmax(-1) == labels).float().mean().item(), 4),
    }


def plot_curves(logs: dict[str, list[dict]], path: Path) -> None:
    from shared.ui import pyplot

    plt = pyplot()
    figure, (mae_axis, loss_axis, accuracy_axis) = plt.subplots(1, 3, figsize=(13, 3.8))
    epochs = [e["epoch"] for e in logs["MAE"]]
    mae_axis.plot(epochs, [e["train_loss"] for e in logs["MAE"]], marker=".", label="training loss")
    mae_axis.plot(epochs, [e["held_out_mse"] for e in logs["MAE"]], marker=".", label="held-out MSE, hidden patches")
    mae_axis.set(title="MAE pre-training: error on hidden patches", xlabel="epoch", yscale="log")
    for name in ("fine-tuned from MAE", "from scratch"):
        epochs = [e["epoch"] for e in logs[name]]
        loss_axis.plot(epochs, [e["train_loss"] for e in logs[name]], marker=".", label=f"{name}: training")
        loss_axis.plot(epochs, [e["held_out_loss"] for e in logs[name]], "--", marker=".", label=f"{name}: held out")
        accuracy_axis.plot(epochs, [100 * (1 - e["held_out_accuracy"]) for e in logs[name]], marker=".", label=name)
    loss_axis.set(title="ViT classifier: cross-entropy", xlabel="epoch", yscale="log")
    accuracy_axis.set(
        title="ViT classifier: held-out error", xlabel="epoch", ylabel="% of 500 digits misread", yscale="log"
    )
    for axis in (mae_axis, loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    arguments = parse_arguments(argv)
    accelerator = seeded_accelerator(arguments.mixed_precision, arguments.seed)
    started = time.perf_counter()

    digits = mnist5k()
    train_pixels, train_labels = (
        to_unit_batch(digits.train_images),
        torch.from_numpy(digits.train_labels),
    )  # (4500, 1, 28, 28)
    held_out_pixels, held_out_labels = (
        to_unit_batch(digits.validation_images),
        torch.from_numpy(digits.validation_labels),
    )  # (500, ...)
    steps_per_epoch = len(train_pixels) // arguments.batch_size

    config = mae_config(arguments)
    noise = evaluation_noise(len(held_out_pixels), config.num_patches)
    mae_recipe = recipe_for(
        arguments.mae_epochs,
        steps_per_epoch,
        arguments.batch_size,
        arguments.mae_learning_rate,
        arguments.weight_decay,
        (0.9, 0.95),
    )
    mae = MAE(config)
    mae_log = train_phase(
        "MAE",
        mae,
        mae_loss,
        functools.partial(reconstruction_error, pixels=held_out_pixels, noise=noise),
        mae_recipe,
        train_pixels,
        train_labels,
        accelerator,
        arguments.seed,
    )
    mae = accelerator.unwrap_model(mae, keep_fp32_wrapper=False)
    mae_minutes = (time.perf_counter() - started) / 60

    classifier_recipe = recipe_for(
        arguments.epochs,
        steps_per_epoch,
        arguments.batch_size,
        arguments.learning_rate,
        arguments.weight_decay,
        (0.9, 0.999),
    )
    finetuned = vit_from_mae_encoder(mae, len(LABEL_NAMES), LABEL_NAMES)
    scratch = ViT(finetuned.config)  # the same architecture from a random initialisation
    evaluate = functools.partial(classification_scores, pixels=held_out_pixels, labels=held_out_labels)
    classifiers, logs = {}, {"MAE": mae_log}
    for name, vit in (("fine-tuned from MAE", finetuned), ("from scratch", scratch)):
        # the same seed: both see the same batches with the same distortions
        logs[name] = train_phase(
            name,
            vit,
            classifier_loss(arguments.label_smoothing),
            evaluate,
            classifier_recipe,
            train_pixels,
            train_labels,
            accelerator,
            arguments.seed,
        )
        classifiers[name] = accelerator.unwrap_model(vit, keep_fp32_wrapper=False)

    if not accelerator.is_main_process:
        return {}
    out = arguments.out
    folders = {"mae": out / "mae", "fine-tuned from MAE": out / "vit", "from scratch": out / "vit_scratch"}
    save_model(mae.cpu().float(), mae.config, folders["mae"], dtype=torch.float16)
    for name, vit in classifiers.items():
        save_model(vit.cpu().float(), vit.config, folders[name], dtype=torch.float16)
    plot_curves(logs, out / "training_curves.png")

    # The scores of the files as shipped (fp16 weights), as the tab and the benchmark load them.
    shipped_mae = load_model(MAE, MAEConfig, folders["mae"])
    mean_digit = train_pixels.mean(dim=0, keepdim=True).expand_as(
        held_out_pixels
    )  # a baseline: every hidden patch drawn as the average digit
    with torch.no_grad():
        _, _, mask = shipped_mae(held_out_pixels, noise)
    report = {
        "command": " ".join([TRAIN_COMMAND, *argv]),
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "mae_minutes": round(mae_minutes, 1),
        "train_digits": len(train_pixels),
        "held_out_digits": len(held_out_pixels),
        "held_out_accuracy": {
            name: classification_scores(load_model(ViT, ViTConfig, folders[name]), held_out_pixels, held_out_labels)[
                "held_out_accuracy"
            ]
            for name in classifiers
        },
        "held_out_reconstruction_mse": {
            "mask_ratio": config.mask_ratio,
            "noise_seed": EVALUATION_NOISE_SEED,
            "mae": reconstruction_error(shipped_mae, held_out_pixels, noise)["held_out_mse"],
            "average_digit_baseline": round(
                hidden_patch_mse(held_out_pixels, mean_digit, mask, config.patch_size).mean().item(), 5
            ),
        },
        "mae_config": asdict(config),
        "parameters": {
            "mae": sum(p.numel() for p in shipped_mae.parameters()),
            "vit": sum(p.numel() for p in scratch.parameters()),
        },
        "recipes": {"mae": asdict(mae_recipe), "classifiers": asdict(classifier_recipe)},
        "label_smoothing": arguments.label_smoothing,
        "augmentation": "random_affine: rotation up to 10 degrees, shift up to 2 pixels, zoom 0.9-1.1 (all three trainings)",
        "mixed_precision": arguments.mixed_precision,
        "logs": logs,
    }
    (out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    accelerator.print(
        json.dumps({key: report[key] for key in ("minutes", "held_out_accuracy", "held_out_reconstruction_mse")})
    )
    return report


if __name__ == "__main__":
    main()
