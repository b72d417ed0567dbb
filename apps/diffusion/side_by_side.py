"""The diffusion tab's engine: our sampler and diffusers' DDPMPipeline / DDIMPipeline on the same UNet
weights, from the same starting noise and the same random generator; the score-SDE samplers on the 2-D
mixture and on the shipped UNet read as a VP score, beside diffusers' ScoreSde schedulers where they have a
twin; the probability-flow likelihoods; and digits on request from the class-conditional UNet with
classifier-free guidance, beside a diffusers loop on the same weights. No Gradio here; bad input raises
ValueError with a message for the user."""

from __future__ import annotations

import functools
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from apps.diffusion import (
    MAX_GUIDANCE,
    MAX_IMAGES,
    MAX_MIXTURE_POINTS,
    SAMPLERS,
    SDE_DATA,
    SDE_KINDS,
    SDE_SAMPLERS,
    SHIPPED,
)
from apps.diffusion.model import NoiseSchedule, ScheduleConfig, UNet, UNetConfig, sample
from apps.diffusion.reference import (
    diffusers_pc_sample,
    guided_ddim_loop,
    load_diffusers_unet,
    schedule_to_diffusers,
    unet_to_diffusers,
)
from apps.diffusion.sde import (
    VESDE,
    VPSDE,
    GaussianMixture,
    eight_blob_mixture,
    noise_model_score,
    ode_log_likelihood,
    pc_sample,
    probability_flow_ode,
)
from shared.checkpoint import load_model
from shared.images import image_grid

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "diffusion"
RESULTS_FILE = Path(__file__).resolve().parents[2] / "bench" / "results" / "diffusion.json"
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


def check_images_and_seed(count: int, calls_per_image: int, seed: int, model: DiffusionModel, advice: str) -> None:
    """The checks every sampling request shares: the image count, the network calls per side, the seed."""
    if count is None or not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be from 1 to {MAX_IMAGES}; got {count}.")
    if count * calls_per_image > model.evaluation_budget:
        raise ValueError(
            f"{count} images x {calls_per_image} network calls = {count * calls_per_image:,} network calls per side, "
            f"more than this CPU answers quickly ({model.evaluation_budget:,}). {advice}"
        )
    if seed is None or not 0 <= seed < 2**63:
        raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1; got {seed}.")


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
        check_images_and_seed(
            self.count, self.steps, self.seed, model, "Use fewer images or steps (DDIM with 20-50 steps looks as good)."
        )
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


# --- Score SDEs ----------------------------------------------------------------------------------------

MIXTURE_SIGMA_MAX = 20.0  # VE noise that swamps the mixture (radius ~2), as sigma_max should
TRAJECTORY_POINTS = 6
DIGIT_ODE_TOLERANCE = 1e-3  # RK45 rtol = atol on digits: about 100-200 network calls per sample batch
MAX_ODE_DIGITS = 16


def sde_of(kind: str) -> VESDE | VPSDE:
    return VESDE(sigma_min=0.01, sigma_max=MIXTURE_SIGMA_MAX) if kind == "VE" else VPSDE()


@functools.lru_cache(maxsize=1)
def mixture() -> GaussianMixture:
    return eight_blob_mixture()


@dataclass
class SDERequest:
    data: str
    sde: str
    sampler: str
    steps: int
    snr: float
    seed: int
    count: int
    notes: list[str] = field(default_factory=list)

    @property
    def on_digits(self) -> bool:
        return self.data == SDE_DATA[1]

    @property
    def network_calls(self) -> int:
        """Score evaluations per sample batch (the ODE's depend on RK45's step control)."""
        return self.steps * (2 if self.sampler == SDE_SAMPLERS[0] else 1)

    def validate(self, model: DiffusionModel | None = None) -> None:
        for name, value, choices in (("data", self.data, SDE_DATA), ("SDE", self.sde, SDE_KINDS)):
            if value not in choices:
                raise ValueError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)}.")
        if self.sampler not in SDE_SAMPLERS:
            raise ValueError(f"Unknown sampler {self.sampler!r}; choose one of {', '.join(SDE_SAMPLERS)}.")
        if self.steps is None or not 1 <= self.steps <= 1000:
            raise ValueError(f"Steps must be a whole number from 1 to 1000; got {self.steps}.")
        if self.snr is None or not 0 < self.snr <= 1:
            raise ValueError(f"The corrector's snr must be above 0 and at most 1 (0.16 is usual); got {self.snr}.")
        if self.seed is None or not 0 <= self.seed < 2**63:
            raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1; got {self.seed}.")
        most = MAX_IMAGES if self.on_digits else MAX_MIXTURE_POINTS
        if self.count is None or not 2 <= self.count <= most:
            raise ValueError(f"The number of samples must be from 2 to {most}; got {self.count}.")
        if self.sampler != SDE_SAMPLERS[0]:
            self.notes.append("snr is the corrector's setting; only predictor-corrector uses it.")
        if self.sampler == SDE_SAMPLERS[2]:
            self.notes.append("RK45 chooses its own steps for the ODE; the steps setting is not used.")
        if not self.on_digits:
            return
        if self.sde != "VP":
            raise ValueError("The shipped UNet learned DDPM's noise, a VP process: choose the VP SDE for digits.")
        if self.sampler == SDE_SAMPLERS[2]:
            if self.count > MAX_ODE_DIGITS:
                raise ValueError(
                    f"The ODE takes RK45's own number of network calls (100-200): at most {MAX_ODE_DIGITS} digits."
                )
        elif self.count * self.network_calls > model.evaluation_budget:
            raise ValueError(
                f"{self.count} images x {self.network_calls} network calls = {self.count * self.network_calls:,}, more "
                f"than this CPU answers quickly ({model.evaluation_budget:,}). Use fewer images or steps."
            )


@dataclass
class SDEResult:
    samples: torch.Tensor  # (N, 2) points or (N, 1, H, W) images in [0, 1]
    seconds: float
    calls: int  # network calls per batch
    trajectories: torch.Tensor | None = None  # (frames, TRAJECTORY_POINTS, 2), mixture only
    reference: torch.Tensor | None = None  # diffusers' samples, when a scheduler is its twin
    reference_seconds: float | None = None


def has_diffusers_twin(request: SDERequest) -> bool:
    """ScoreSdeVeScheduler is VE predictor-corrector; ScoreSdeVpScheduler is VP Euler-Maruyama."""
    return (request.sde, request.sampler) in (("VE", SDE_SAMPLERS[0]), ("VP", SDE_SAMPLERS[1]))


def run_sde(request: SDERequest, on_step=None) -> SDEResult:
    """Sample by the chosen SDE sampler on the analytic mixture score or the shipped UNet's VP score."""
    sde = sde_of(request.sde)
    if request.on_digits:
        unet = diffusion_model(SHIPPED).unet
        score = noise_model_score(unet, sde)
        shape = (request.count, 1, unet.config.sample_size, unet.config.sample_size)
    else:
        score = mixture().score_function(sde)
        shape = (request.count, 2)
    corrector_steps = 1 if request.sampler == SDE_SAMPLERS[0] else 0
    predictor = "reverse_diffusion" if request.sampler == SDE_SAMPLERS[0] else "euler_maruyama"
    frames = []

    def record(index: int, t: float, mean: torch.Tensor) -> None:
        if not request.on_digits:
            frames.append(mean[:TRAJECTORY_POINTS].clone())
        if on_step is not None:
            on_step(index, request.steps)

    start = time.perf_counter()
    if request.sampler == SDE_SAMPLERS[2]:
        tolerance = DIGIT_ODE_TOLERANCE if request.on_digits else 1e-4
        solution = probability_flow_ode(
            score, sde, shape, torch.Generator().manual_seed(request.seed), tolerance, tolerance, frames=60
        )
        samples, calls, trajectories = solution.samples, solution.evaluations, solution.path[:, :TRAJECTORY_POINTS]
    else:
        samples = pc_sample(
            score,
            sde,
            shape,
            request.steps,
            torch.Generator().manual_seed(request.seed),
            corrector_steps,
            request.snr,
            predictor,
            record,
        )
        calls, trajectories = request.network_calls, torch.stack(frames) if frames else None
    result = SDEResult(as_pixels(samples, request.on_digits), time.perf_counter() - start, calls, trajectories)
    if has_diffusers_twin(request):
        start = time.perf_counter()
        with torch.no_grad():
            reference = diffusers_pc_sample(
                score,
                sde,
                shape,
                request.steps,
                torch.Generator().manual_seed(request.seed),
                corrector_steps,
                request.snr,
            )
        result.reference = as_pixels(reference, request.on_digits)
        result.reference_seconds = time.perf_counter() - start
    else:
        request.notes.append(
            "diffusers has a twin for VE predictor-corrector (ScoreSdeVeScheduler) and VP Euler-Maruyama "
            "(ScoreSdeVpScheduler) only; this combination runs on our side alone."
        )
    return result


def as_pixels(samples: torch.Tensor, on_digits: bool) -> torch.Tensor:
    return (samples / 2 + 0.5).clamp(0, 1) if on_digits else samples


def mixture_likelihoods(points: int, seed: int) -> list[list]:
    """Bits/dim of mixture samples: exact, and through the ODE with the exact divergence and with Hutchinson's."""
    if points is None or not 1 <= points <= 500:
        raise ValueError(f"The number of points must be from 1 to 500; got {points}.")
    if seed is None or not 0 <= seed < 2**63:
        raise ValueError(f"The seed must be a whole number from 0 to 2^63 - 1; got {seed}.")
    x = mixture().sample(points, torch.Generator().manual_seed(seed))
    exact = (-mixture().log_prob(x).double() / (2 * math.log(2))).mean().item()
    rows = []
    for kind in SDE_KINDS:
        sde = sde_of(kind)
        score = mixture().score_function(sde)
        for exact_divergence in (True, False):
            start = time.perf_counter()
            likelihood = ode_log_likelihood(
                score, sde, x, torch.Generator().manual_seed(seed), exact_divergence=exact_divergence
            )
            bits = (-likelihood.log_prob / (2 * math.log(2))).mean().item()
            rows.append(
                [
                    f"{kind} ODE, {'exact divergence' if exact_divergence else 'Hutchinson (1 probe)'}",
                    f"{bits:.4f}",
                    f"{exact:.4f}",
                    f"{bits - exact:+.4f}",
                    likelihood.evaluations,
                    f"{time.perf_counter() - start:.1f} s",
                ]
            )
    return rows


def measured_digit_likelihoods() -> list[list] | None:
    """The held-out bits/dim table `python -m bench diffusion` wrote (DDPM via the ODE beside the flows)."""
    if not RESULTS_FILE.exists():
        return None
    for table in json.loads(RESULTS_FILE.read_text()).get("tables", []):
        if table["title"].startswith("Held-out bits/dim"):
            return [table["columns"], *table["rows"]]
    return None


def mixture_density_grid(size: int = 150, extent: float = 3.2) -> tuple[np.ndarray, np.ndarray]:
    """The mixture's log density on a size x size grid over [-extent, extent]^2, for contours: (axis (size,),
    (size, size) indexed [y, x])."""
    axis = torch.linspace(-extent, extent, size)
    points = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    return axis.numpy(), mixture().log_prob(points).reshape(size, size).numpy()


CONDITIONAL_DIR = CHECKPOINT_DIR / "conditional"


@functools.lru_cache(maxsize=1)
def conditional_model() -> DiffusionModel:
    """The shipped class-conditional UNet (labels 0-9 and a last "no label" class)."""
    if not (CONDITIONAL_DIR / "model.safetensors").exists():
        raise ValueError(
            f"The class-conditional checkpoint is missing from {CONDITIONAL_DIR}; create it with "
            f"`{TRAIN_COMMAND} --conditional --init none`."
        )
    return diffusion_model(str(CONDITIONAL_DIR))


@functools.lru_cache(maxsize=1)
def conditional_reference_unet():
    """diffusers' UNet2DModel holding the conditional UNet's weights."""
    return unet_to_diffusers(conditional_model().unet).eval()


@dataclass
class GuidedRequest:
    digit: int
    guidance: float
    steps: int
    count: int
    seed: int

    def validate(self, model: DiffusionModel) -> None:
        if self.digit not in range(10):
            raise ValueError(f"Ask for a digit from 0 to 9; got {self.digit}.")
        if self.guidance is None or not 0.0 <= self.guidance <= MAX_GUIDANCE:
            raise ValueError(
                f"The guidance scale w must be from 0 (the conditional model alone) to {MAX_GUIDANCE:g}; got {self.guidance}."
            )
        total = model.schedule.num_train_timesteps
        if self.steps is None or not 1 <= self.steps <= total:
            raise ValueError(f"Steps must be a whole number from 1 to {total}; got {self.steps}.")
        calls_per_image = self.steps * (2 if self.guidance > 0 else 1)  # guidance runs the UNet twice per step
        check_images_and_seed(
            self.count, calls_per_image, self.seed, model, "Use fewer images or steps (guidance doubles the calls)."
        )


@dataclass
class GuidedResult:
    ours: Samples
    reference: Samples
    read_as_requested: float  # share of our samples the digit classifier reads as the requested digit


def run_guided(request: GuidedRequest, on_step=None) -> GuidedResult:
    """DDIM (eta = 0) with classifier-free guidance: ours and diffusers' loop from the same starting noise."""
    from shared.image_metric import default_metric

    model = conditional_model()
    request.validate(model)
    size = model.unet.config.sample_size
    noise = torch.randn(request.count, 1, size, size, generator=torch.Generator().manual_seed(request.seed))
    labels = torch.full((request.count,), request.digit)

    def progress(index: int, *_) -> None:
        if on_step is not None:
            on_step(index, request.steps)

    start = time.perf_counter()
    ours = sample(
        model.unet, model.schedule, noise, "ddim", request.steps, 0.0, None, progress, labels, request.guidance
    )
    ours_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        theirs = guided_ddim_loop(
            conditional_reference_unet(), model.schedule.config, noise, labels, request.guidance, request.steps
        )
    reference_seconds = time.perf_counter() - start
    read = default_metric().embed(ours)[1].argmax(axis=1)
    return GuidedResult(
        Samples(ours, ours_seconds), Samples(theirs, reference_seconds), float((read == request.digit).mean())
    )
