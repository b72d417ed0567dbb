"""Random weights for parity tests: a reference model's default initialisation has zeros and ones
(biases, norm gains) that would hide a swapped or missing mapping, so every weight is perturbed."""

import torch


def perturb_parameters(module: torch.nn.Module, scale: float) -> torch.nn.Module:
    """Add scale * N(0, 1) noise to every parameter of `module` in place; returns `module`."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn_like(parameter))
    return module
