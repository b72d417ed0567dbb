"""ViT and MAE, ours vs transformers, on the shipped MNIST checkpoints (checkpoints/vit_mae/):

- quality: held-out accuracy on the 500 held-out digits of the classifier fine-tuned from the MAE and
  of the same ViT trained from scratch with the same recipe (recomputed from the shipped files); the
  MAE's mean squared error on the hidden patches of the held-out digits at 75% masking, ours and
  transformers on the same noise (the fixed masks of the training report), beside the error of
  drawing every hidden patch as the average training digit;
- parity: max |logit difference| of the ViTs over the held-out digits, max |attention difference|
  (eager attention), max |difference| of the MAE's predicted pixels, and whether the masks are identical;
- speed: forward time of ours and of transformers on the same weights in this process with the same
  threads (median of alternating runs): ViT logits at batch 1 and 64, with attention weights at batch
  64, and the MAE forward pass (loss, predictions, mask) at batch 64.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from apps.vit_mae import side_by_side as sbs
from apps.vit_mae.data import prepare_image
from apps.vit_mae.model import MAE, MAEConfig, ViT, ViTConfig, hidden_patch_mse
from apps.vit_mae.reference import mae_to_hf, vit_to_hf
from apps.vit_mae.train import CHECKPOINT_DIR, evaluation_noise
from shared.checkpoint import load_model
from shared.data import mnist5k
from shared.images import save_grid, to_unit_batch

RESULTS = Path(__file__).resolve().parent / "results"
THREADS = 2
REPEATS = 15
MASK_RATIO = 0.75
EXAMPLES = 10  # held-out digits in the reconstruction picture


def median_seconds(runners: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Median seconds of each runner over REPEATS rounds, the runners taking turns in every round so
    that machine noise hits them alike (after one warm-up call each)."""
    timings = {name: [] for name in runners}
    with torch.inference_mode():
        for run in runners.values():
            run()
        for _ in range(REPEATS):
            for name, run in runners.items():
                started = time.perf_counter()
                run()
                timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def accuracy(model: ViT, pixels: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.inference_mode():
        return (model(pixels).argmax(dim=-1) == labels).float().mean().item()


def reconstruction_picture(path: Path) -> Path:
    """Held-out digits, one per column; rows: the digit, what the encoder sees, ours, transformers
    (through the tab's engine, seed = column)."""
    digits, pair = mnist5k(), sbs.autoencoders(sbs.SHIPPED)
    columns = [
        int(np.flatnonzero(digits.validation_labels == digit)[1]) for digit in range(EXAMPLES)
    ]  # the tab shows the first of each
    rows = {"image": [], "masked": [], "ours": [], "reference": []}
    for seed, index in enumerate(columns):
        image = prepare_image(Image.fromarray(digits.validation_images[index], "L"), pair.preprocessing)
        result = sbs.reconstruct(pair, image, MASK_RATIO, seed)
        for name in rows:
            rows[name].append(getattr(result, name))
    tiles = np.stack([tile for name in rows for tile in rows[name]]).transpose(0, 3, 1, 2)  # (4 * EXAMPLES, C, S, S)
    return save_grid(tiles, path, columns=EXAMPLES, scale=3, pad_value=1.0)


def run() -> dict:
    torch.set_num_threads(THREADS)
    digits = mnist5k()
    pixels, labels = (
        to_unit_batch(digits.validation_images),
        torch.from_numpy(digits.validation_labels),
    )  # (500, 1, 28, 28)
    report = json.loads((CHECKPOINT_DIR / "training_report.json").read_text())

    # Quality and parity of the classifiers.
    vit = load_model(ViT, ViTConfig, CHECKPOINT_DIR / "vit")
    hf_vit, hf_vit_eager = vit_to_hf(vit), vit_to_hf(vit, attn_implementation="eager")
    accuracies = {"fine-tuned from the MAE (shipped)": accuracy(vit, pixels, labels)}
    if (CHECKPOINT_DIR / "vit_scratch").exists():
        accuracies["from scratch, same recipe"] = accuracy(
            load_model(ViT, ViTConfig, CHECKPOINT_DIR / "vit_scratch"), pixels, labels
        )
    with torch.inference_mode():
        logits, attentions = vit(pixels, return_attentions=True)
        reference = hf_vit_eager(pixel_values=pixels, output_attentions=True)
        logit_difference = max(
            (logits - reference.logits).abs().max().item(),
            (vit(pixels) - hf_vit(pixel_values=pixels).logits).abs().max().item(),
        )
        attention_difference = max(
            (ours - theirs).abs().max().item() for ours, theirs in zip(attentions, reference.attentions)
        )
        hf_accuracy = (reference.logits.argmax(dim=-1) == labels).float().mean().item()

    # Quality and parity of the MAE, on the fixed masks of the training report.
    mae = load_model(MAE, MAEConfig, CHECKPOINT_DIR / "mae")
    mae.config = replace(mae.config, mask_ratio=MASK_RATIO)
    hf_mae = mae_to_hf(mae)
    noise = evaluation_noise(len(pixels), mae.config.num_patches)
    with torch.inference_mode():
        _, predictions, mask = mae(pixels, noise)
        output = hf_mae(pixel_values=pixels, noise=noise)
        patch = mae.config.patch_size
        errors = {
            "ours": hidden_patch_mse(pixels, mae.reconstruct_image(pixels, predictions, mask), mask, patch)
            .mean()
            .item(),
            "transformers": hidden_patch_mse(
                pixels, mae.reconstruct_image(pixels, output.logits, output.mask), output.mask, patch
            )
            .mean()
            .item(),
            "average training digit": hidden_patch_mse(
                pixels, to_unit_batch(digits.train_images).mean(dim=0, keepdim=True).expand_as(pixels), mask, patch
            )
            .mean()
            .item(),
        }
        pixel_difference = (predictions - output.logits).abs().max().item()
        masks_identical = torch.equal(mask, output.mask)

    # Speed.
    one, batch = pixels[:1], pixels[:64]
    speed_runs = {
        "ViT logits, batch 1": (lambda: vit(one), lambda: hf_vit(pixel_values=one)),
        "ViT logits, batch 64": (lambda: vit(batch), lambda: hf_vit(pixel_values=batch)),
        "ViT logits and attention weights, batch 64 (eager)": (
            lambda: vit(batch, return_attentions=True),
            lambda: hf_vit_eager(pixel_values=batch, output_attentions=True),
        ),
        "MAE forward (loss, predictions, mask), batch 64": (
            lambda: mae(batch, noise[:64]),
            lambda: hf_mae(pixel_values=batch, noise=noise[:64]),
        ),
    }
    speed_rows, ratios = [], {}
    for name, (ours, theirs) in speed_runs.items():
        seconds = median_seconds({"ours": ours, "transformers": theirs})
        ratios[name] = seconds["transformers"] / seconds["ours"]
        speed_rows.append(
            [
                name,
                f"{seconds['ours'] * 1000:.2f} ms",
                f"{seconds['transformers'] * 1000:.2f} ms",
                f"{ratios[name]:.2f}x",
            ]
        )

    picture = reconstruction_picture(RESULTS / "vit_mae_reconstructions.png")
    shipped = accuracies["fine-tuned from the MAE (shipped)"]
    scratch = accuracies.get("from scratch, same recipe")
    config = mae.config
    return {
        "topic": "vit_mae",
        "title": "ViT and MAE",
        "summary": [
            {
                "model": f"ViT fine-tuned from our MAE, patch {config.patch_size}, {config.num_hidden_layers} x "
                f"{config.hidden_size} wide, "
                f"{sum(p.numel() for p in vit.parameters()) / 1e6:.2f} M parameters",
                "reference": "transformers ViTForImageClassification and ViTMAEForPreTraining",
                "parity": f"max |Δlogit| {logit_difference:.1e}, max |Δattention| {attention_difference:.1e}; MAE max "
                f"|Δpixel| {pixel_difference:.1e}, "
                f"masks {'identical' if masks_identical else 'differ'}",
                "speed": f"{ratios['ViT logits, batch 1']:.2f}x HF at ViT batch 1, {ratios['ViT logits, batch 64']:.2f}x "
                "at batch 64; "
                f"MAE {ratios['MAE forward (loss, predictions, mask), batch 64']:.2f}x",
                "quality": f"{shipped:.1%} held-out accuracy"
                + (f" (from scratch {scratch:.1%})" if scratch is not None else "")
                + f"; MAE hidden-patch MSE {errors['ours']:.4f} at 75% (average digit {errors['average training digit']:.4f})",
            }
        ],
        "tables": [
            {
                "title": f"Held-out accuracy on the {len(labels)} held-out digits of MNIST-5k (trained on 4,500; the "
                "report of the training run says "
                f"{', '.join(f'{name} {value:.1%}' for name, value in report['held_out_accuracy'].items())})",
                "columns": ["classifier", "ours", "transformers, same weights"],
                "rows": [
                    [name, f"{value:.1%}", f"{hf_accuracy:.1%}" if name.startswith("fine-tuned") else "-"]
                    for name, value in accuracies.items()
                ],
            },
            {
                "title": "MAE: mean squared error on the hidden patches of the held-out digits (pixels in [0, 1]), "
                f"{MASK_RATIO:.0%} of the patches hidden, "
                f"the same noise for both (seed {report['held_out_reconstruction_mse']['noise_seed']})",
                "columns": ["reconstruction", "MSE"],
                "rows": [[name, f"{value:.4f}"] for name, value in errors.items()],
            },
            {
                "title": f"Forward time, same weights, {THREADS} threads, median of {REPEATS} alternating runs",
                "columns": ["what", "ours", "transformers", "ours speed / transformers"],
                "rows": speed_rows,
            },
        ],
        "images": [
            {
                "caption": (
                    f"Held-out digits, {MASK_RATIO:.0%} of the patches hidden: the digit, what the encoder sees, "
                    "our MAE, transformers (same weights and noise)"
                ),
                "path": f"bench/results/{picture.name}",
            },
            {
                "caption": "Training curves of the shipped MAE and classifiers",
                "path": "checkpoints/vit_mae/training_curves.png",
            },
        ],
    }
