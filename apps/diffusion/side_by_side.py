"""The diffusion tab's engine: our sampler and diffusers' DDPMPipeline / DDIMPipeline on the same UNet
weights, from the same starting noise and the same random generator. No Gradio here; bad input raises
ValueError with a message for the user."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from apps.diffusion import MAX_IMAGES, SAMPLERS, SHIPPED
from apps.diffusion.model import NoiseSchedule, ScheduleConfig, UNet, UNetConfig, sample
from apps.diffusion.reference import load_diffusers_unet, schedule_to_diffusers, unet_to_diffusers
from shared.checkpoint import load_model
from shared.images import image_grid

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusion"
TRAIN_COMMAND = "python -m apps.diffusion.train"
# Network calls per request and side (images x steps) for the shipped 1.1 M-parameter UNet: at most about
# 15 s per side on 2 CPU cores (4 ms per image and step in batches, 10 ms for a lone image). Bigger models
# get a proportionally smaller budget.
EVALUATION_BUDGET = 4_000
TRAJECTORY_FRAMES = 6
TRAJECTORY_IMAGES = 4


@dataclass(frozen=True)
class DiffusionModel:
    name: str
    unet: UNet
    schedule: NoiseSchedule

    @functools.cached_property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @functools.cached_property
    def evaluation_budget(self) -> int:
        """How many images x steps one request may ask for."""
        shipped_parameters = 1_112_801
        return max(1000, int(EVALUATION_BUDGET * min(1.0, shipped_parameters / self.parameters)))


@functools.lru_cache(maxsize=4)
def diffusion_model(name: str = SHIPPED) -> DiffusionModel:
    """The shipped checkpoint, a folder of ours, or a diffusers UNet (Hub id or save_pretrained folder)."""
    name = (name or "").strip() or SHIPPED
    folder = CHECKPOINT_DIR if name == SHIPPED else Path(name)
    if folder.is_dir() and (folder / "model.safetensors").exists():
        unet = load_model(UNet, UNetConfig, folder, TRAIN_COMMAND)
        schedule_config = ScheduleConfig(**json.loads((folder / "config.json").read_text()).get("schedule", {}))
    elif name == SHIPPED:
        raise ValueError(f"The shipped checkpoint is missing from {CHECKPOINT_DIR}; create it with `{TRAIN_COMMAND}`.")
    else:
        unet, schedule_config = load_diffusers_unet(name)
        schedule_config = schedule_config or ScheduleConfig()
    # Channels-last weights: the CPU's (oneDNN) convolutions run 15-20% faster on (B, H, W, C) memory.
    # Only our side does this; the diffusers twin is built from the same values in its own layout.
    unet = unet.eval().to(memory_format=torch.channels_last)
    return DiffusionModel(name, unet, NoiseSchedule(schedule_config))


@functools.lru_cache(maxsize=4)
def reference_pipelines(name: str):
    """diffusers' DDPMPipeline and DDIMPipeline around a UNet2DModel holding our model's weights."""
    from diffusers import DDIMPipeline, DDPMPipeline

    model = diffusion_model(name)
    unet2d = unet_to_diffusers(model.unet).eval()
    pipelines = {
        "DDPM": DDPMPipeline(unet=unet2d, scheduler=schedule_to_diffusers(model.schedule.config, "ddpm")),
        "DDIM": DDIMPipeline(unet=unet2d, scheduler=schedule_to_diffusers(model.schedule.config, "ddim")),
    }
    for pipeline in pipelines.values():
        pipeline.set_progress_bar_config(desc="diffusers")
    return pipelines


@dataclass
class SamplingRequest:
    sampler: str
    steps: int
    eta: float
    seed: int
    count: int
    notes: list[str] = field(default_factory=list)

    def validate(self, model: DiffusionModel) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"Unknown sampler {self.sampler!r}; choose DDIM or DDPM.")
        total = model.schedule.num_train_timesteps
        if self.steps is None or not 1 <= self.steps <= total:
            raise ValueError(
                f"Steps must be a whole number from 1 to {total} (the timesteps the model was trained on); got {self.steps}."
            )
        if self.eta is None or not 0.0 <= self.eta <= 1.0:
            raise ValueError(
                f"eta must be between 0 (deterministic DDIM) and 1 (as much noise as DDPM); got {self.eta}."
            )
        if self.count is None or not 1 <= self.count <= MAX_IMAGES:
            raise ValueError(f"The number of images must be from 1 to {MAX_IMAGES}; got {self.count}.")
        if self.count * self.steps > model.evaluation_budget:
            raise ValueError(
                f"{self.count} images x {self.steps} steps = {self.count * self.steps:,} network calls per side, more than this "
                f"CPU answers quickly ({model.evaluation_budget:,}). Use fewer images or steps (DDIM with 20-50 "
                "steps looks as good)."
            )
        if self.seed is None or not 0 <= self.seed < 2**63:
            raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1; got {self.seed}.")
        if self.sampler == "DDPM" and self.eta != 0:
            self.notes.append("eta is a DDIM setting; DDPM always adds the posterior's noise, so it was ignored.")


@dataclass
class Samples:
    images: torch.Tensor  # (N, C, H, W) in [0, 1]
    seconds: float


@dataclass
class Trajectory:
    """x_t and the x_0 estimate after a few of the steps, for the first images."""

    frames: list[tuple[np.ndarray, str]] = field(default_factory=list)


def frame_indices(steps: int, frames: int = TRAJECTORY_FRAMES) -> set[int]:
    return set(np.linspace(0, steps - 1, min(frames, steps)).round().astype(int).tolist())


def run_ours(model: DiffusionModel, request: SamplingRequest, on_step=None) -> tuple[Samples, Trajectory]:
    """Our sampler, with the starting noise and the per-step noise drawn from one seeded generator, in
    the order the diffusers pipelines draw them."""
    generator = torch.Generator().manual_seed(request.seed)
    config = model.unet.config
    noise = torch.randn(request.count, config.in_channels, config.sample_size, config.sample_size, generator=generator)
    trajectory, keep = Trajectory(), frame_indices(request.steps)

    def record(index: int, timestep: int, x_t: torch.Tensor, x0: torch.Tensor) -> None:
        if index in keep:
            shown = torch.cat(
                [x_t[:TRAJECTORY_IMAGES].clamp(-1, 1), x0[:TRAJECTORY_IMAGES]]
            )  # noise overshoots the pixel range
            grid = image_grid(shown, columns=min(TRAJECTORY_IMAGES, request.count), value_range=(-1, 1), scale=2)
            trajectory.frames.append(
                (grid, f"step {index + 1}/{request.steps}, t = {timestep}: x_t (top), predicted x_0 (bottom)")
            )
        if on_step is not None:
            on_step(index, request.steps)

    start = time.perf_counter()
    images = sample(
        model.unet, model.schedule, noise, request.sampler.lower(), request.steps, request.eta, generator, record
    )
    return Samples(images, time.perf_counter() - start), trajectory


def run_reference(model: DiffusionModel, request: SamplingRequest) -> Samples:
    """diffusers' pipeline on the same weights; its generator is seeded like ours."""
    pipeline = reference_pipelines(model.name)[request.sampler]
    generator = torch.Generator().manual_seed(request.seed)
    options = {"eta": request.eta} if request.sampler == "DDIM" else {}
    start = time.perf_counter()
    with torch.no_grad():
        images = pipeline(
            batch_size=request.count,
            generator=generator,
            num_inference_steps=request.steps,
            output_type="pt",
            **options,
        ).images
    return Samples(images, time.perf_counter() - start)


def grid_of(samples: Samples) -> np.ndarray:
    columns = int(np.ceil(np.sqrt(len(samples.images))))
    return image_grid(samples.images, columns=columns, scale=3 if samples.images.shape[-1] <= 32 else 1)
