"""The VQ-VAE / VQGAN tab's engine: our codecs and diffusers' `VQModel` on the same weights and the same
image (encode, quantize, decode; indices compared one by one), the codebook's use over the held-out
digits, and new digits from our GPT prior, decoded by both. No Gradio here; bad input raises ValueError
with a message for the user.

Models load lazily, once: the shipped checkpoints in `checkpoints/vqgan/` (`vqvae/`, `vqgan/`, `prior/`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from apps.textgen.model import GPT, GPTConfig
from apps.vqgan import CODECS, EXAMPLE_DIGITS, EXAMPLES, MAX_SAMPLES, UPLOAD
from apps.vqgan.model import VQConfig, VQModel, perplexity_of, sample_codes
from shared.checkpoint import load_model
from shared.timing import fastest_run
from shared.uploads import picture_to_pixels, read_image

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "vqgan"
TRAIN_COMMAND = "python -m apps.vqgan.train"
TIMING_REPEATS = 3  # each side runs this many times; the fastest run is reported
PIXEL_BITS = 8  # an 8-bit grayscale pixel, for the compression ratio


@dataclass(frozen=True)
class CodecPair:
    """One of our codecs and a diffusers VQModel holding the same weights."""

    name: str
    ours: VQModel
    reference: torch.nn.Module  # diffusers.VQModel

    @property
    def config(self) -> VQConfig:
        return self.ours.config


@functools.lru_cache(maxsize=2)
def codec(name: str) -> CodecPair:
    """ "VQ-VAE" or "VQGAN": the shipped checkpoint and its diffusers twin."""
    from apps.vqgan.reference import vq_to_diffusers

    if name not in CODECS:
        raise ValueError(f"Unknown codec {name!r}; choose one of {', '.join(CODECS)}.")
    ours = load_model(VQModel, VQConfig, CHECKPOINT_DIR / CODECS[name], TRAIN_COMMAND)
    return CodecPair(name, ours, vq_to_diffusers(ours))


@functools.lru_cache(maxsize=1)
def prior() -> GPT:
    return load_model(GPT, GPTConfig, CHECKPOINT_DIR / "prior", TRAIN_COMMAND)


@functools.lru_cache(maxsize=1)
def held_out_digits() -> tuple[torch.Tensor, np.ndarray]:
    """The 500 held-out MNIST-5k digits in [-1, 1], (500, 1, 28, 28), and their labels."""
    from shared.data import mnist5k

    split = mnist5k()
    return torch.as_tensor(split.validation_images, dtype=torch.float32)[:, None] / 127.5 - 1, split.validation_labels


# -----------------------------------------------------------------------------
# The image


@dataclass
class PreparedImage:
    x: torch.Tensor  # (1, 1, 28, 28) in [-1, 1], what the codecs read
    notes: list[str] = field(default_factory=list)


def prepare(example: str | None, upload: str | None, size: int = 28) -> PreparedImage:
    """The picked held-out digit, or the uploaded file read safely (shared/uploads.py): any mode and size,
    made grayscale, resized to 28 x 28 with a note, a bright background inverted (MNIST is white on black)."""
    if example == UPLOAD or (example is None and upload):
        if not upload:
            raise ValueError("Upload an image first (or pick one of the held-out digits).")
        pixels, notes = picture_to_pixels(read_image(upload), size, 1, white_on_black=True)
        notes.append(
            "The shipped codecs learned from 4,500 handwritten digits only: anything else comes back digit-like."
        )
        return PreparedImage(torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None] * 2 - 1, notes)
    if example in EXAMPLE_DIGITS:
        images, labels = held_out_digits()
        first = int(np.flatnonzero(labels == EXAMPLE_DIGITS[example])[0])
        return PreparedImage(images[first : first + 1].clone())
    raise ValueError(f"Unknown example {example!r}; choose one of: {', '.join(EXAMPLES)}.")


def timed(run: Callable[[], object]) -> tuple[object, float]:
    """run()'s result and its fastest time of TIMING_REPEATS runs, in seconds."""
    return fastest_run(run, TIMING_REPEATS)


# -----------------------------------------------------------------------------
# Reconstruction: ours and diffusers on the same weights


@dataclass
class Reconstruction:
    codec: str
    ours: torch.Tensor  # (1, 1, 28, 28) in [-1, 1], clipped
    reference: torch.Tensor
    indices: np.ndarray  # (h, w): our code indices
    indices_identical: bool
    max_abs_difference: float  # between the two reconstructions, before clipping, in the model's [-1, 1] units
    mse: float  # ours against the input, pixels in [0, 1]
    ours_seconds: float
    reference_seconds: float
    code_bits: int  # bits per code (log2 K, rounded up)

    @property
    def psnr_db(self) -> float:
        return 10 * math.log10(1 / max(self.mse, 1e-12))


def reconstruct(pair: CodecPair, x: torch.Tensor) -> Reconstruction:
    """encode -> quantize -> decode with ours, and diffusers' encode / quantize / decode (which quantizes)."""
    from apps.vqgan.reference import reference_encode_decode

    def ours_path():
        quantized = pair.ours.quantize(pair.ours.encode(x))
        return quantized.indices, pair.ours.decode(quantized.z_q)

    (indices, ours), ours_seconds = timed(ours_path)
    (_, reference_indices, reference), reference_seconds = timed(lambda: reference_encode_decode(pair.reference, x))
    clipped = ours.clamp(-1, 1)
    return Reconstruction(
        codec=pair.name,
        ours=clipped,
        reference=reference.clamp(-1, 1),
        indices=indices[0].numpy(),
        indices_identical=torch.equal(indices, reference_indices),
        max_abs_difference=(ours - reference).abs().max().item(),
        mse=((clipped - x) / 2).pow(2).mean().item(),
        ours_seconds=ours_seconds,
        reference_seconds=reference_seconds,
        code_bits=math.ceil(math.log2(pair.config.num_vq_embeddings)),
    )


def compression(config: VQConfig) -> tuple[int, int, float]:
    """(bits of the 8-bit input image, bits of its code grid, their ratio)."""
    image_bits = config.sample_size**2 * config.in_channels * PIXEL_BITS
    code_bits = config.latent_size**2 * math.ceil(math.log2(config.num_vq_embeddings))
    return image_bits, code_bits, image_bits / code_bits


@dataclass
class CodebookUsage:
    counts: np.ndarray  # (K,): how often each entry occurs in the held-out digits' code grids
    perplexity: float
    used: int


@functools.lru_cache(maxsize=2)
def codebook_usage(name: str) -> CodebookUsage:
    """Code use of a codec over the 500 held-out digits (computed once)."""
    pair = codec(name)
    images, _ = held_out_digits()
    with torch.inference_mode():
        indices = pair.ours.quantize(pair.ours.encode(images)).indices
    K = pair.config.num_vq_embeddings
    counts = torch.bincount(indices.flatten(), minlength=K)
    return CodebookUsage(counts.numpy(), perplexity_of(indices, K).item(), int((counts > 0).sum()))


# -----------------------------------------------------------------------------
# Generation from the prior


@dataclass
class GenerationRequest:
    temperature: float
    top_k: int  # 0: all codes
    seed: int
    count: int
    notes: list[str] = field(default_factory=list)

    def validate(self, codebook_size: int) -> None:
        if self.temperature is None or not 0.0 <= self.temperature <= 5.0 or math.isnan(self.temperature):
            raise ValueError(
                f"The temperature must be from 0 (always the most likely code) to 5; got {self.temperature}."
            )
        if self.top_k is None or not 0 <= self.top_k <= codebook_size or self.top_k != int(self.top_k):
            raise ValueError(
                f"top-k must be a whole number from 0 (all {codebook_size} codes) to {codebook_size}; got {self.top_k}."
            )
        if self.count is None or not 1 <= self.count <= MAX_SAMPLES or self.count != int(self.count):
            raise ValueError(f"The number of images must be a whole number from 1 to {MAX_SAMPLES}; got {self.count}.")
        if self.seed is None or not 0 <= self.seed < 2**63:
            raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1; got {self.seed}.")
        if self.temperature == 0 and self.count > 1:
            self.notes.append("Temperature 0 always takes the most likely code, so every image is the same.")
        if self.top_k == 1 and self.temperature > 0:
            self.notes.append("top-k 1 keeps only the most likely code: the same as temperature 0.")


@dataclass
class Generation:
    codes: torch.Tensor  # (N, h, w)
    ours: torch.Tensor  # (N, 1, 28, 28) in [0, 1], decoded by our VQGAN
    reference: torch.Tensor  # the same codes decoded by diffusers' VQModel
    max_abs_difference: float
    sampling_seconds: float
    ours_decode_seconds: float
    reference_decode_seconds: float


def generate(request: GenerationRequest, on_step: Callable[[int, int], None] | None = None) -> Generation:
    """Codes from our GPT prior (seeded), decoded by our VQGAN and by diffusers' VQModel on the same weights."""
    pair, gpt = codec("VQGAN"), prior()
    request.validate(pair.config.num_vq_embeddings)
    generator = torch.Generator().manual_seed(int(request.seed))
    started = time.perf_counter()
    codes = sample_codes(
        gpt,
        int(request.count),
        pair.config.latent_size,
        float(request.temperature),
        int(request.top_k) or None,
        generator,
        on_step,
    )
    sampling_seconds = time.perf_counter() - started
    ours, ours_seconds = timed(lambda: pair.ours.decode_indices(codes))

    def reference_decode():
        entries = pair.reference.quantize.get_codebook_entry(
            codes.flatten(), (len(codes), *codes.shape[1:], pair.config.embed_dim)
        )
        return pair.reference.decode(entries, force_not_quantize=True).sample

    reference, reference_seconds = timed(reference_decode)
    return Generation(
        codes=codes,
        ours=(ours.clamp(-1, 1) + 1) / 2,
        reference=(reference.clamp(-1, 1) + 1) / 2,
        max_abs_difference=(ours - reference).abs().max().item(),
        sampling_seconds=sampling_seconds,
        ours_decode_seconds=ours_seconds,
        reference_decode_seconds=reference_seconds,
    )
