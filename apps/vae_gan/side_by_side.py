"""The VAE and GAN tab's engine: seeded samples of the shipped models, the 2-D latent map of the MLP VAE,
interpolation between two digits, soft vs hard Gumbel-softmax samples, the WGAN toy trained in the
request, and our convolutional VAE beside diffusers' AutoencoderKL on the same weights, digits and
generator. No Gradio here; bad input raises ValueError with a message for the user.

Models load lazily, once, from the shipped checkpoints in `checkpoints/vae_gan/`.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from apps.vae_gan import LATENT_LIMIT, MAX_IMAGES, SAMPLERS
from apps.vae_gan.model import (
    MLPVAE,
    CategoricalVAE,
    CategoricalVAEConfig,
    ConvVAE,
    ConvVAEConfig,
    DCGANConfig,
    Generator,
    MLPVAEConfig,
)
from apps.vae_gan.train import CHECKPOINT_DIR, TRAIN_COMMAND
from shared.checkpoint import load_model
from shared.images import image_grid
from shared.timing import fastest_run
from shared.ui import whole_number  # pure Python (its module imports gradio, already loaded by the app)
from shared.uploads import picture_to_pixels, read_image

CLASSES = {
    "mlp_vae": (MLPVAE, MLPVAEConfig),
    "conv_vae": (ConvVAE, ConvVAEConfig),
    "gumbel_vae": (CategoricalVAE, CategoricalVAEConfig),
    "gan": (Generator, DCGANConfig),
    "wgan_gp": (Generator, DCGANConfig),
}
MAP_TILES = 15  # the latent map decodes a MAP_TILES x MAP_TILES grid of points
MAX_INTERPOLATION_STEPS = 16
MAX_SEED = 2**31 - 1


@functools.lru_cache(maxsize=len(CLASSES))
def load(folder: str) -> torch.nn.Module:
    """A shipped model by its checkpoint folder name (a value of SAMPLERS)."""
    model_class, config_class = CLASSES[folder]
    return load_model(model_class, config_class, CHECKPOINT_DIR / folder, TRAIN_COMMAND)


def checkpoint_folder(shown_name: str) -> str:
    if shown_name not in SAMPLERS:
        raise ValueError(f"Unknown model {shown_name!r}; choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[shown_name]


def positive_temperature(value) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"The temperature must be a positive number; got {value!r}.")
    if value <= 0:
        raise ValueError(
            f"The temperature must be positive (the softmax divides by it); got {value}. Try 0.1 to 5: "
            "small values give nearly one-hot codes, large ones blur the classes together."
        )
    return float(value)


@functools.lru_cache(maxsize=1)
def held_out_digits() -> tuple[torch.Tensor, np.ndarray]:
    """The 500 held-out digits as the VAEs see them, binarised ({0, 1}, (500, 1, 28, 28)), and their labels."""
    from apps.vae_gan.train import binary_digits
    from shared.data import mnist5k

    return binary_digits()["held_out"], mnist5k().validation_labels


def grid_of(images: torch.Tensor, columns: int | None = None) -> np.ndarray:
    """(N, 1, 28, 28) in [0, 1] -> an (H, W) uint8 picture of a grid."""
    return image_grid(images, columns=columns or max(1, math.ceil(math.sqrt(len(images)))))


# --- Samples -------------------------------------------------------------------------------------------


@dataclass
class Samples:
    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    seconds: float
    reading: str  # what the digit classifier reads in them ("" for a single image)


def samples(shown_name: str, count, seed) -> Samples:
    """`count` seeded samples of a shipped model, scored by the shared digit metric when there are 2 or more."""
    folder = checkpoint_folder(shown_name)
    count = whole_number(count, "The number of images", 1, MAX_IMAGES)
    seed = whole_number(seed, "The seed", 0, MAX_SEED)
    model = load(folder)
    started = time.perf_counter()
    images = model.generate(count, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - started
    reading = ""
    if count >= 2:
        from shared.image_metric import image_quality

        reading = image_quality(images).reading(f"these {count} samples")
    return Samples(images, seconds, reading)


# --- The latent map ------------------------------------------------------------------------------------


@dataclass
class LatentMap:
    tiles: np.ndarray  # (MAP_TILES * 28, MAP_TILES * 28) uint8: the decoded grid, z_2 growing upwards
    held_out_means: np.ndarray  # (500, 2): the posterior means of the held-out digits
    labels: np.ndarray  # (500,)
    point: tuple[float, float]
    decoded_point: np.ndarray  # (28, 28) uint8


def latent_coordinate(value, name: str) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number from {-LATENT_LIMIT} to {LATENT_LIMIT}; got {value!r}.")
    if abs(value) > LATENT_LIMIT:
        raise ValueError(
            f"{name} = {value} is outside the map [{-LATENT_LIMIT}, {LATENT_LIMIT}]: the prior N(0, 1) puts "
            "almost no mass there, so the decoder has never learned what to draw."
        )
    return float(value)


@torch.no_grad()
def latent_map(z1, z2) -> LatentMap:
    """Decode a grid over the 2-D latent plane of the MLP VAE, place the held-out digits at their posterior
    means, and decode the chosen point (z1, z2)."""
    point = (latent_coordinate(z1, "z1"), latent_coordinate(z2, "z2"))
    model = load("mlp_vae")
    axis = torch.linspace(-LATENT_LIMIT, LATENT_LIMIT, MAP_TILES)
    grid = torch.stack(torch.meshgrid(axis, axis.flip(0), indexing="xy"), dim=-1).reshape(-1, 2)  # rows top->bottom
    tiles = torch.sigmoid(model.decode(grid))  # (T*T, 1, 28, 28)
    digits, labels = held_out_digits()
    means = model.encode(digits).mean.numpy()
    decoded = torch.sigmoid(model.decode(torch.tensor([point])))[0, 0]
    return LatentMap(grid_of(tiles, MAP_TILES), means, labels, point, (decoded.numpy() * 255).round().astype(np.uint8))


# --- Interpolation -------------------------------------------------------------------------------------


@dataclass
class Interpolation:
    images: torch.Tensor  # (steps, 1, 28, 28) in [0, 1]: decodes along the straight line between the two means
    notes: list[str] = field(default_factory=list)


def digit_image(digit, upload: str | None, notes: list[str]) -> torch.Tensor:
    """The first held-out example of `digit` (0-9), or an uploaded picture binarised at 0.5: (1, 1, 28, 28)."""
    if upload:
        pixels, upload_notes = picture_to_pixels(read_image(upload), 28, 1, white_on_black=True)
        notes.extend(upload_notes + ["The upload is binarised at 0.5, as the VAEs read binary digits."])
        return (torch.from_numpy(np.ascontiguousarray(pixels[:, :, 0]))[None, None] > 0.5).float()
    digit = whole_number(digit, "The digit", 0, 9)
    digits, labels = held_out_digits()
    first = int(np.flatnonzero(labels == digit)[0])
    return digits[first : first + 1]


@torch.no_grad()
def interpolate(shown_name: str, first_digit, second_digit, steps, upload: str | None = None) -> Interpolation:
    """Decode the straight line between the posterior means of two digits (the first may be an upload)."""
    folder = checkpoint_folder(shown_name)
    if folder not in ("mlp_vae", "conv_vae"):
        raise ValueError("Interpolation walks between posterior means: pick one of the two Gaussian VAEs.")
    steps = whole_number(steps, "The number of steps", 2, MAX_INTERPOLATION_STEPS)
    notes: list[str] = []
    model = load(folder)
    start = model.encode(digit_image(first_digit, upload, notes)).mean
    end = model.encode(digit_image(second_digit, None, notes)).mean
    weights = torch.linspace(0, 1, steps).view(-1, *([1] * (start.dim() - 1)))
    return Interpolation(torch.sigmoid(model.decode((1 - weights) * start + weights * end)), notes)


# --- Gumbel-softmax ------------------------------------------------------------------------------------


@dataclass
class GumbelSamples:
    soft: torch.Tensor  # (N, 1, 28, 28): decodes of relaxed codes
    hard: torch.Tensor  # the same Gumbel noise, one-hot codes (straight-through's forward value)
    soft_codes: torch.Tensor  # (N, latent_variables, categories)
    mean_max_probability: float  # how one-hot the soft codes are (1 = one-hot)


@torch.no_grad()
def gumbel_samples(temperature, count, seed) -> GumbelSamples:
    """Relaxed samples of the uniform prior at `temperature`, soft and hard, from the same Gumbel noise."""
    temperature = positive_temperature(temperature)
    count = whole_number(count, "The number of images", 1, MAX_IMAGES)
    seed = whole_number(seed, "The seed", 0, MAX_SEED)
    model = load("gumbel_vae")
    soft = model.sample_relaxed_prior(count, temperature, hard=False, generator=torch.Generator().manual_seed(seed))
    hard = model.sample_relaxed_prior(count, temperature, hard=True, generator=torch.Generator().manual_seed(seed))
    return GumbelSamples(
        torch.sigmoid(model.decode(soft)),
        torch.sigmoid(model.decode(hard)),
        soft,
        float(soft.max(dim=-1).values.mean()),
    )


# --- The toy -------------------------------------------------------------------------------------------


def toy_run(density: str, shown_loss: str, steps, seed, progress=None):
    """Train the 2-D GAN / WGAN in this request (see toy.py)."""
    from apps.vae_gan import TOY_MAX_STEPS
    from apps.vae_gan.toy import ToyRecipe, loss_of, train_toy

    loss = loss_of(shown_loss)
    steps = whole_number(steps, "The number of training steps", 1, TOY_MAX_STEPS)
    seed = whole_number(seed, "The seed", 0, MAX_SEED)
    return train_toy(density, loss, ToyRecipe(steps=steps), seed, progress)


# --- Parity with AutoencoderKL -------------------------------------------------------------------------


@dataclass
class Parity:
    count: int
    differences: dict[str, float]  # max |ours - diffusers| of the posterior mean, log-variance, sample, decode
    ours_seconds: float
    reference_seconds: float
    reconstructions: torch.Tensor  # (count, 1, 28, 28): our decodes of the posterior means
    originals: torch.Tensor  # the binary digits


@functools.lru_cache(maxsize=1)
def reference_autoencoder():
    from apps.vae_gan.reference import vae_to_diffusers

    return vae_to_diffusers(load("conv_vae"))


@torch.no_grad()
def parity(count, seed) -> Parity:
    """Our ConvVAE and diffusers' AutoencoderKL with the same weights on the first `count` held-out digits:
    posterior mean and log-variance, a posterior sample from the same seeded generator, decode of the mean."""
    from apps.vae_gan.reference import reference_posterior_and_decode

    count = whole_number(count, "The number of digits", 1, MAX_IMAGES)
    seed = whole_number(seed, "The seed", 0, MAX_SEED)
    ours, autoencoder = load("conv_vae"), reference_autoencoder()
    x = held_out_digits()[0][:count]

    def run_ours():
        posterior = ours.encode(x)
        return (
            posterior.mean,
            posterior.logvar,
            posterior.sample(torch.Generator().manual_seed(seed)),
            ours.decode(posterior.mean),
        )

    def run_reference():
        return reference_posterior_and_decode(autoencoder, x, torch.Generator().manual_seed(seed))

    mine, ours_seconds = fastest_run(run_ours, 3)
    theirs, reference_seconds = fastest_run(run_reference, 3)
    names = ("posterior mean", "posterior log-variance", "seeded posterior sample", "decode")
    differences = {name: (a - b).abs().max().item() for name, a, b in zip(names, mine, theirs)}
    return Parity(count, differences, ours_seconds, reference_seconds, torch.sigmoid(mine[3]), x)
