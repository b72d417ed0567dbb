"""The flows tab's engine. No Gradio here; bad input raises ValueError with a message for the user.

- 2-D toys: train a RealNVP or a rectified flow (+ reflow) on a chosen density in the request, then
  give what the plots need: the exact density on a grid, samples, trajectories from noise to data.
- MNIST: samples from the shipped NICE / RealNVP / Glow with a temperature and their held-out bits/dim;
  rectified-flow samples at N Euler steps from our sampler and from diffusers'
  `FlowMatchEulerDiscreteScheduler` loop on the same velocity model and the same noise.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from apps.diffusion.model import UNetConfig
from apps.flow import FLOWS, MAX_IMAGES, RECTIFIED, SOLVER_NAMES, TOY_MAX_STEPS, toy
from apps.flow.model import (
    UNetVelocity,
    check_steps,
    check_temperature,
    sample_ode,
    sample_pixels,
    straightness,
    trajectories,
)
from apps.flow.train import CHECKPOINT_DIR, FLOW_CLASSES, REPORT_FILE, TRAIN_COMMAND
from shared.checkpoint import CheckpointError, load_model
from shared.images import image_grid

# images x steps per MNIST request and side: the 280 k-parameter UNet takes about 1.5 ms per image and step
# on 2 CPU cores, so 3,200 calls are about 5 s per side.
EVALUATION_BUDGET = 3_200
TOY_POINTS = 2_000
TOY_TRAJECTORIES = 40
REFERENCE_BITS_PER_DIM = 4.34  # NICE on MNIST, as pytorch-generative's README reports it


# --- 2-D toys ----------------------------------------------------------------------------------------

_toy_cache: dict[tuple[str, str, int], toy.ToyFlows] = {}
_toy_lock = threading.Lock()


def check_seed(seed) -> int:
    if seed is None or int(seed) != seed or not 0 <= seed < 2**31:
        raise ValueError(f"The seed must be a whole number from 0 to 2^31 - 1; got {seed}.")
    return int(seed)


def trained_toy(density: str, kind: str, seed: int = 0, progress=None) -> toy.ToyFlows:
    """The toy model for (density, kind, seed), trained now unless this process trained it already."""
    if density not in toy.DENSITIES:
        raise ValueError(f"Unknown toy density {density!r}; choose one of {', '.join(toy.DENSITIES)}.")
    if kind not in toy.KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {', '.join(toy.KINDS)}.")
    key = (density, kind, check_seed(seed))
    with _toy_lock:  # one training at a time: two would only slow each other down on 2 cores
        if key not in _toy_cache:
            if len(_toy_cache) >= 16:
                _toy_cache.pop(next(iter(_toy_cache)))
            _toy_cache[key] = toy.train_toy(density, kind, seed, progress=progress)
        return _toy_cache[key]


@dataclass
class ToyView:
    """Everything the toy plots show."""

    density: str
    kind: str
    data: np.ndarray  # (N, 2) points of the true density
    samples: np.ndarray  # (N, 2) model samples
    seconds: float  # training time
    log_density: tuple[np.ndarray, np.ndarray] | None = None  # RealNVP: (density on a grid, axis values)
    mean_log_likelihood: float | None = None  # RealNVP: exact, on fresh data points
    paths: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # rectified: name -> (steps + 1, B, 2), the chosen solver and steps
    fine_paths: dict[str, np.ndarray] = field(
        default_factory=dict
    )  # the same starts on 100 Heun steps: the ODE's own path
    path_straightness: dict[str, float] = field(default_factory=dict)
    reflow_samples: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def toy_view(density: str, kind: str, steps: int, solver: str, seed: int = 0, progress=None) -> ToyView:
    """Train (or reuse) the toy model, then sample it with `steps` ODE steps of `solver` (rectified flow)."""
    if solver not in SOLVER_NAMES:
        raise ValueError(f"Unknown solver {solver!r}; choose Euler or Heun.")
    if steps is None or int(steps) != steps or not 1 <= steps <= TOY_MAX_STEPS:
        raise ValueError(f"Steps must be a whole number from 1 to {TOY_MAX_STEPS}; got {steps}.")
    steps = int(steps)
    flows = trained_toy(density, kind, seed, progress)
    data = toy.sample_density(density, TOY_POINTS, seed + 1)
    generator = torch.Generator().manual_seed(seed + 2)
    if flows.realnvp is not None:
        with torch.no_grad():
            samples = flows.realnvp.sample(TOY_POINTS, 1.0, generator)
            mean_log_likelihood = flows.realnvp.log_prob(data).mean().item()
        view = ToyView(
            density,
            kind,
            data.numpy(),
            samples.numpy(),
            flows.seconds,
            toy.density_grid(flows.realnvp),
            mean_log_likelihood,
        )
        view.notes.append(
            (
                "RealNVP maps the points to a Gaussian exactly, so its density is known everywhere; steps and "
                "solver are rectified-flow settings."
            )
        )
        return view
    noise = torch.randn(TOY_POINTS, 2, generator=generator)
    method = SOLVER_NAMES[solver]
    first = sample_ode(flows.rectified, noise, steps, method)
    second = sample_ode(flows.reflowed, noise, steps, method)
    view = ToyView(density, kind, data.numpy(), first.numpy(), flows.seconds, reflow_samples=second.numpy())
    for name, velocity in (("1-rectified", flows.rectified), ("2-rectified (reflow)", flows.reflowed)):
        paths = trajectories(velocity, noise[:TOY_TRAJECTORIES], steps, method)
        view.paths[name] = paths.numpy()
        fine = trajectories(
            velocity, noise[:TOY_TRAJECTORIES], 100, "heun"
        )  # straightness on a fine grid, independent of the slider
        view.fine_paths[name] = fine.numpy()
        view.path_straightness[name] = straightness(fine).mean().item()
    return view


# --- MNIST normalizing flows -------------------------------------------------------------------------


def training_report() -> dict:
    path = CHECKPOINT_DIR / REPORT_FILE
    if not path.exists():
        raise ValueError(
            f"The shipped flow checkpoints are missing from {CHECKPOINT_DIR}; create them with `{TRAIN_COMMAND}`."
        )
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=8)
def shipped_model(folder: str):
    """A shipped checkpoint by its folder name: nice, realnvp, glow, rectified or reflow."""
    if folder in FLOW_CLASSES:
        model_class, config_class = FLOW_CLASSES[folder]
    elif folder in RECTIFIED.values():
        model_class, config_class = UNetVelocity, UNetConfig
    else:
        raise ValueError(f"Unknown model {folder!r}.")
    try:
        return load_model(model_class, config_class, CHECKPOINT_DIR / folder, TRAIN_COMMAND)
    except CheckpointError as error:
        raise ValueError(str(error)) from error


def flow_model(name: str):
    if name not in FLOWS:
        raise ValueError(f"Unknown flow {name!r}; choose one of {', '.join(FLOWS)}.")
    return shipped_model(FLOWS[name])


@dataclass
class FlowSamples:
    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    seconds: float
    bits_per_dim: dict[str, float]  # every shipped flow's held-out bits/dim, as the report has it
    notes: list[str] = field(default_factory=list)


def check_count(count) -> int:
    if count is None or int(count) != count or not 1 <= count <= MAX_IMAGES:
        raise ValueError(f"The number of images must be a whole number from 1 to {MAX_IMAGES}; got {count}.")
    return int(count)


def flow_samples(name: str, temperature: float, count: int, seed: int) -> FlowSamples:
    """Samples of a shipped normalizing flow: latents from the prior with spread `temperature`, decoded."""
    flow = flow_model(name)
    check_temperature(temperature)
    count, seed = check_count(count), check_seed(seed)
    start = time.perf_counter()
    images = sample_pixels(flow, count, temperature, torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - start
    report = training_report()
    bits = {label: report[folder]["held_out_bits_per_dim"] for label, folder in FLOWS.items() if folder in report}
    result = FlowSamples(images, seconds, bits)
    if temperature > 1:
        result.notes.append(
            "A temperature above 1 draws latents wider than the prior the model was trained with: expect noisier digits."
        )
    return result


# --- MNIST rectified flow, ours vs diffusers ---------------------------------------------------------


@dataclass
class RectifiedRequest:
    model: str
    steps: int
    seed: int
    count: int
    notes: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.model not in RECTIFIED:
            raise ValueError(f"Unknown model {self.model!r}; choose one of {', '.join(RECTIFIED)}.")
        check_steps(self.steps)
        self.count, self.seed, self.steps = check_count(self.count), check_seed(self.seed), int(self.steps)
        if self.count * self.steps > EVALUATION_BUDGET:
            raise ValueError(
                f"{self.count} images x {self.steps} steps = {self.count * self.steps:,} network calls per "
                f"side, more than this CPU answers quickly ({EVALUATION_BUDGET:,}). Use fewer images or steps "
                "(after reflow, 1-4 steps already give digits)."
            )


@dataclass
class Samples:
    images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]
    seconds: float


def starting_noise(request: RectifiedRequest) -> torch.Tensor:
    return torch.randn(request.count, 1, 28, 28, generator=torch.Generator().manual_seed(request.seed))


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(-1, 1) + 1) / 2


def run_ours(request: RectifiedRequest) -> Samples:
    velocity = shipped_model(RECTIFIED[request.model])
    noise = starting_noise(request)
    start = time.perf_counter()
    images = sample_ode(velocity, noise, request.steps, "euler")
    return Samples(to_unit(images), time.perf_counter() - start)


def run_reference(request: RectifiedRequest) -> Samples:
    """diffusers' FlowMatchEulerDiscreteScheduler loop on the same velocity model and noise, visiting our times."""
    from apps.flow.reference import diffusers_euler_loop

    velocity = shipped_model(RECTIFIED[request.model])
    noise = starting_noise(request)
    start = time.perf_counter()
    images = diffusers_euler_loop(velocity, noise, request.steps)
    return Samples(to_unit(images), time.perf_counter() - start)


def grid_of(images: torch.Tensor, scale: int = 3) -> np.ndarray:
    columns = int(np.ceil(np.sqrt(len(images))))
    return image_grid(images, columns=columns, scale=scale)
