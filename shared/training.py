"""Pieces every training script uses: the learning-rate recipe and an exponential moving average of weights."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch


@dataclass
class OptimizerRecipe:
    """AdamW with linear warmup then cosine decay to `min_lr_fraction` of the peak (the calibration note's recipe)."""

    steps: int
    batch_size: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    min_lr_fraction: float = 0.1

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return self.learning_rate * (self.min_lr_fraction + (1 - self.min_lr_fraction) * cosine)


def decay_and_no_decay(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only; biases, LayerNorm gains and the like are left alone."""
    parameters = {id(p): p for p in model.parameters() if p.requires_grad}.values()  # tied weights once
    return [
        {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
    ]


class ExponentialMovingAverage:
    """A shadow copy of a model whose weights follow theta_ema <- d theta_ema + (1 - d) theta after each step.

    Averaging the last few hundred steps smooths out SGD noise; diffusion models sample from the average
    (DDPM, Appendix B). The decay warms up as min(decay, (1 + step) / (10 + step)) so early steps, when
    the weights move fast, are not averaged with the random initialisation for long."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current.detach().to(average.dtype), 1 - decay)
        for average, current in zip(self.model.buffers(), model.buffers()):
            average.copy_(current)
        self.updates += 1


def seeded_accelerator(mixed_precision: str = "no", seed: int = 0):
    """The Accelerate object every training loop goes through (it places the model, optimizer and batches on
    the CPU, one GPU or several, and runs the autocast), after seeding torch, numpy and random alike."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=mixed_precision)
    set_seed(seed)
    return accelerator
