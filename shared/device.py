"""Where the models run: one place that picks the device, the dtype and the CPU thread count.

`configure()` is called once by `app.py` (from `--device`); every topic asks `current_device()` when it
loads a model, so a model follows the user's choice without knowing about the command line.
On a Hugging Face ZeroGPU Space, functions that touch the GPU are wrapped with `spaces.GPU`
through `gpu_task`; everywhere else `gpu_task` returns the function unchanged.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_selected: torch.device | None = None


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(preference: str = "auto") -> torch.device:
    """`auto` gives CUDA when present, else Apple's MPS, else the CPU; a named device must exist."""
    if preference not in DEVICE_CHOICES:
        raise DeviceError(f"Unknown device {preference!r}: choose one of {', '.join(DEVICE_CHOICES)}.")
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "--device cuda was requested but no CUDA GPU is visible to PyTorch; use --device auto or cpu."
        )
    if preference == "mps" and not _mps_available():
        raise DeviceError(
            "--device mps was requested but Apple's MPS backend is not available; use --device auto or cpu."
        )
    return torch.device(preference)


def configure(preference: str = "auto", threads: int | None = None) -> torch.device:
    """Select the device for the whole app and, on the CPU, the number of intra-op threads
    (default: all cores the process may use)."""
    global _selected
    _selected = pick_device(preference)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads))
    return _selected


def current_device() -> torch.device:
    """The device chosen by `configure`, or the automatic choice if nobody configured one."""
    return _selected if _selected is not None else pick_device("auto")


def gpu_task(function: Callable | None = None, *, duration: int = 60) -> Callable:
    """Mark a function that does GPU work. On a ZeroGPU Space (`spaces` importable) this requests a
    GPU for the call; elsewhere it is a no-op. Usable as `@gpu_task` or `@gpu_task(duration=120)`."""
    if function is None:
        return functools.partial(gpu_task, duration=duration)
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=duration)(function)


def describe() -> dict[str, str]:
    """Device and library versions, for the About tab and benchmark results."""
    import importlib.metadata

    device = current_device()
    info = {
        "device": str(device),
        "device name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "CPU threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }
    for package in (
        "torch",
        "transformers",
        "diffusers",
        "gradio",
        "scikit-learn",
        "gensim",
        "xgboost-cpu",
        "lightgbm",
    ):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info
