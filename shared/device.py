"""Where the models run: one place that picks the device, the dtype and the CPU thread count.

`app.py` calls `prefer()` once (from `--device`), which configures the device on first use; every topic
asks `current_device()` when it loads a model, so a model follows the user's choice without knowing
about the command line.
On a Hugging Face ZeroGPU Space, functions that touch the GPU are wrapped with `spaces.GPU`
through `gpu_task`; everywhere else `gpu_task` returns the function unchanged.
torch is imported inside the functions, so a tab can use `gpu_task` without loading torch at start-up.
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
_selected: torch.device | None = None
_preferred: str | None = None  # chosen by `prefer`, configured on first use


class DeviceError(ValueError):
    """The requested device does not exist on this machine."""


def _mps_available() -> bool:
    import torch

    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(preference: str = "auto") -> torch.device:
    """`auto` gives CUDA when present, else Apple's MPS, else the CPU; a named device must exist."""
    import torch

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
    import torch

    global _selected, _preferred
    _selected, _preferred = pick_device(preference), None
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, threads))
    return _selected


def prefer(preference: str = "auto") -> None:
    """Remember the app's choice without importing torch, so start-up stays light: the first
    `current_device()` configures it. A named GPU is checked at once (an error at start-up beats one
    at the first click)."""
    global _preferred
    if preference not in DEVICE_CHOICES:
        raise DeviceError(f"Unknown device {preference!r}: choose one of {', '.join(DEVICE_CHOICES)}.")
    if preference in ("cuda", "mps"):
        configure(preference)
    else:
        _preferred = preference


def current_device() -> torch.device:
    """The device chosen by `configure` (or `prefer`), or the automatic choice if nobody chose one."""
    if _selected is None and _preferred is not None:
        configure(_preferred)
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
    """Device and library versions, for the home page and benchmark results."""
    import importlib.metadata

    import torch

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
