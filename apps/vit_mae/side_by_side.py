"""The ViT and MAE tab's engine: our models and `transformers`' `ViTMAEForPreTraining` and
`ViTForImageClassification` on the same weights and the same image; the MAE also with the same `noise`,
hence the same mask. No Gradio here; bad input raises ValueError with a message for the user.

Models load lazily, once: the shipped MNIST checkpoints in `checkpoints/vit_mae/` (`mae/` and the
fine-tuned classifier `vit/`), or a Hub id / save_pretrained folder when the user asks for one
(`facebook/vit-mae-base`, `google/vit-base-patch16-224`; those need the network).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from apps.vit_mae import EXAMPLE_DIGITS, EXAMPLES, PHOTO, SHIPPED, UPLOAD
from apps.vit_mae.data import PreparedImage, Preprocessing, prepare_image, preprocessing_for_hub, read_image
from apps.vit_mae.model import MAE, MAEConfig, ViT, ViTConfig, attention_rollout, hidden_patch_mse
from shared.checkpoint import load_model, resolve_folder
from shared.device import current_device
from shared.timing import fastest_run

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "vit_mae"
TRAIN_COMMAND = "python -m apps.vit_mae.train"
MASK_GREY = 0.5  # how hidden patches are drawn in the "masked input" picture
TOP = 5
TIMING_REPEATS = 3  # each side runs this many times; the fastest run is reported

_MASK_RATIO_LOCK = threading.Lock()  # the mask ratio lives in the models' configs: one request at a time


@dataclass(frozen=True)
class ModelPair:
    """One of our models, its `transformers` twin holding the same weights, and how images reach them."""

    name: str
    ours: MAE | ViT
    reference: torch.nn.Module  # ViTMAEForPreTraining or ViTForImageClassification
    preprocessing: Preprocessing
    notes: tuple[str, ...] = ()

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.ours.parameters())


def load_pair(
    name: str, folder: str, model_class: type, config_class: type, hub_loader: Callable, to_hf: Callable
) -> ModelPair:
    """The shipped checkpoint in CHECKPOINT_DIR / folder, or a Hub id or save_pretrained folder."""
    from apps.vit_mae.reference import HUB_FILES

    name = (name or "").strip() or SHIPPED
    if name == SHIPPED:
        ours = load_model(model_class, config_class, CHECKPOINT_DIR / folder, TRAIN_COMMAND)
        preprocessing, notes = Preprocessing(ours.config.image_size, ours.config.num_channels, white_on_black=True), []
    else:
        local = resolve_folder(name, allow_patterns=HUB_FILES)
        ours = hub_loader(local)
        preprocessing, notes = preprocessing_for_hub(local, ours.config.image_size, ours.config.num_channels)
    device = current_device()
    return ModelPair(name, ours.to(device).eval(), to_hf(ours).to(device).eval(), preprocessing, tuple(notes))


@functools.lru_cache(maxsize=2)
def autoencoders(name: str = SHIPPED) -> ModelPair:
    """Our MAE and ViTMAEForPreTraining on the same weights."""
    from apps.vit_mae.reference import load_hub_mae, mae_to_hf

    return load_pair(name, "mae", MAE, MAEConfig, load_hub_mae, mae_to_hf)


@functools.lru_cache(maxsize=2)
def classifiers(name: str = SHIPPED) -> ModelPair:
    """Our ViT and ViTForImageClassification (eager attention) on the same weights."""
    from apps.vit_mae.reference import load_hub_vit, vit_to_hf

    # eager: the implementation that returns attention weights, as ours does when asked for them
    return load_pair(
        name, "vit", ViT, ViTConfig, load_hub_vit, functools.partial(vit_to_hf, attn_implementation="eager")
    )


# -----------------------------------------------------------------------------
# The image


def chosen_image(example: str | None, upload: str | None) -> Image.Image:
    """The picked example (a held-out MNIST digit or scikit-learn's photo), or the uploaded file."""
    if example == UPLOAD:
        if not upload:
            raise ValueError("Upload an image first (or pick one of the examples).")
        return read_image(upload)
    if example in EXAMPLE_DIGITS:
        from shared.data import mnist5k

        digits = mnist5k()
        first = int(np.flatnonzero(digits.validation_labels == EXAMPLE_DIGITS[example])[0])
        return Image.fromarray(digits.validation_images[first], "L")
    if example == PHOTO:
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image("china.jpg"))
    raise ValueError(f"Unknown example {example!r}; choose one of: {', '.join(EXAMPLES)}, or {UPLOAD!r}.")


def prepared(pair: ModelPair, example: str | None, upload: str | None) -> PreparedImage:
    image = prepare_image(chosen_image(example, upload), pair.preprocessing)
    image.notes.extend(pair.notes)
    if pair.name == SHIPPED and example in (PHOTO, UPLOAD):
        image.notes.append(
            "The shipped models learned from 4,500 handwritten digits only: on anything else the MAE paints "
            "digit-like strokes and the classifier still answers with a digit."
        )
    return image


def timed(run: Callable[[], object]) -> tuple[object, float]:
    """run()'s result and its fastest time of TIMING_REPEATS runs, in seconds."""
    return fastest_run(run, TIMING_REPEATS)


def to_pixels(images: torch.Tensor, preprocessing: Preprocessing) -> np.ndarray:
    """Model input (1, C, S, S) -> pixels (S, S, C) in [0, 1] for display."""
    return preprocessing.to_unit(images.float().cpu())[0].permute(1, 2, 0).clamp(0, 1).numpy()


# -----------------------------------------------------------------------------
# MAE: the same image and noise through ours and transformers


def check_mask_ratio(mask_ratio: float | None) -> float:
    if mask_ratio is None:
        raise ValueError("The mask ratio is empty: give a share of patches to hide, e.g. 0.75 as MAE was trained.")
    if mask_ratio <= 0:
        raise ValueError(
            "Mask ratio 0 hides no patch, so there is nothing to reconstruct: the MAE loss averages over the "
            "hidden patches only and would be 0 / 0. Choose a ratio above 0; MAE is trained at 0.75."
        )
    if mask_ratio >= 1:
        raise ValueError(
            "Mask ratio 1 hides every patch: the encoder would see nothing of the image. Choose a ratio below 1; "
            "MAE is trained at 0.75."
        )
    return float(mask_ratio)


def noise_for(seed: int | None, num_patches: int, notes: list[str]) -> torch.Tensor:
    """The (1, L) noise that decides the mask (the patches with the lowest values are kept), from a seed."""
    if seed is None:
        seed = int(torch.randint(0, 2**31 - 1, ()).item())
        notes.append(f"No seed given: seed {seed} was drawn.")
    if not 0 <= seed < 2**63:
        raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1, got {seed}.")
    return torch.rand(1, num_patches, generator=torch.Generator().manual_seed(int(seed)))


@dataclass
class Reconstruction:
    image: np.ndarray  # (S, S, C) in [0, 1]: what both models read
    masked: np.ndarray  # the same, hidden patches grey: what the encoder sees
    ours: np.ndarray  # visible patches as they were, hidden ones as our MAE predicts them
    reference: np.ndarray  # the same from transformers' predictions and mask
    difference: np.ndarray  # (S, S): |ours - reference|, the largest over the channels
    max_abs_difference: float  # between the predicted patches, in the model's input units
    masks_identical: bool
    ours_mse: float  # on the hidden patches, pixels in [0, 1]
    reference_mse: float
    ours_seconds: float
    reference_seconds: float
    hidden: int
    patches: int
    notes: list[str] = field(default_factory=list)


def reconstruct(pair: ModelPair, image: PreparedImage, mask_ratio: float | None, seed: int | None) -> Reconstruction:
    """Mask the image with the seed's noise and let both MAEs rebuild it."""
    ratio, notes = check_mask_ratio(mask_ratio), list(image.notes)
    mae, hf_mae, config = pair.ours, pair.reference, pair.ours.config
    device = next(mae.parameters()).device
    noise = noise_for(seed, config.num_patches, notes).to(device)
    x = image.pixel_values.to(device)
    with _MASK_RATIO_LOCK:
        mae.config = replace(config, mask_ratio=ratio)  # MAE reads its kept_count from the config on every call
        hf_mae.config.mask_ratio = ratio
        (_, predictions, mask), ours_seconds = timed(lambda: mae(x, noise))
        output, reference_seconds = timed(lambda: hf_mae(pixel_values=x, noise=noise))
        kept = mae.config.kept_count
    if kept == 0:
        notes.append(
            (
                f"At ratio {ratio} no patch stays visible: the decoder sees only mask tokens, and paints the same "
                "guess for any image."
            )
        )
    # transformers returns the predicted patches and the mask; they are put together with the visible patches the same
    # way on both sides (reconstruct_image), so the difference picture shows only how the predictions differ.
    ours_image = mae.reconstruct_image(x, predictions, mask)
    reference_image = mae.reconstruct_image(x, output.logits, output.mask)
    unit = pair.preprocessing.to_unit(x.cpu())  # (1, C, S, S) in [0, 1]
    p = config.patch_size
    hidden_pixels = (
        mask.cpu().view(1, config.grid_size, config.grid_size).repeat_interleave(p, 1).repeat_interleave(p, 2).bool()
    )  # (1, S, S)
    masked = unit.masked_fill(hidden_pixels.unsqueeze(1), MASK_GREY)
    ours_pixels, reference_pixels = (
        to_pixels(ours_image, pair.preprocessing),
        to_pixels(reference_image, pair.preprocessing),
    )
    return Reconstruction(
        image=image.pixels,
        masked=masked[0].permute(1, 2, 0).numpy(),
        ours=ours_pixels,
        reference=reference_pixels,
        difference=np.abs(ours_pixels - reference_pixels).max(axis=-1),
        max_abs_difference=(predictions - output.logits).abs().max().item(),
        masks_identical=torch.equal(mask, output.mask),
        ours_mse=hidden_patch_mse(unit, pair.preprocessing.to_unit(ours_image.cpu()), mask.cpu(), p).item(),
        reference_mse=hidden_patch_mse(
            unit, pair.preprocessing.to_unit(reference_image.cpu()), output.mask.cpu(), p
        ).item(),
        ours_seconds=ours_seconds,
        reference_seconds=reference_seconds,
        hidden=int(mask.sum().item()),
        patches=config.num_patches,
        notes=notes,
    )


# -----------------------------------------------------------------------------
# ViT: top classes and where the class token looked


@dataclass
class Classification:
    image: np.ndarray  # (S, S, C) in [0, 1]
    labels: list[str]  # the top classes by our probability
    ours: list[float]  # our probabilities of those classes
    reference: list[float]  # transformers' probabilities of the same classes
    rollout: np.ndarray  # (grid, grid): attention rollout of our attention weights, sums to 1
    max_logit_difference: float
    max_attention_difference: float  # over every layer, head and token pair
    ours_seconds: float
    reference_seconds: float
    notes: list[str] = field(default_factory=list)


def classify(pair: ModelPair, image: PreparedImage) -> Classification:
    """Logits and attention weights from our ViT and from ViTForImageClassification (eager attention)."""
    vit, hf_vit = pair.ours, pair.reference
    x = image.pixel_values.to(next(vit.parameters()).device)
    (logits, attentions), ours_seconds = timed(lambda: vit(x, return_attentions=True))
    output, reference_seconds = timed(lambda: hf_vit(pixel_values=x, output_attentions=True))
    probabilities, reference_probabilities = logits.softmax(-1)[0].cpu(), output.logits.softmax(-1)[0].cpu()
    top = probabilities.topk(min(TOP, len(probabilities)))
    names = vit.config.label_names or tuple(f"class {index}" for index in range(vit.config.num_labels))
    return Classification(
        image=image.pixels,
        labels=[names[index] for index in top.indices.tolist()],
        ours=top.values.tolist(),
        reference=reference_probabilities[top.indices].tolist(),
        rollout=attention_rollout(attentions)[0].cpu().numpy(),
        max_logit_difference=(logits - output.logits).abs().max().item(),
        max_attention_difference=max(
            (ours - theirs).abs().max().item() for ours, theirs in zip(attentions, output.attentions)
        ),
        ours_seconds=ours_seconds,
        reference_seconds=reference_seconds,
        notes=list(image.notes),
    )
