"""Timing for the side-by-side badges: the fastest of a few runs, both sides measured the same way."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def fastest_run(run: Callable[[], object], repeats: int = 3) -> tuple[object, float]:
    """run()'s result and its fastest time of `repeats` runs, in seconds, in inference mode (the fastest,
    not the mean: on a shared CPU the slower runs measure the neighbours)."""
    seconds = []
    with torch.inference_mode():
        for _ in range(repeats):
            started = time.perf_counter()
            result = run()
            seconds.append(time.perf_counter() - started)
    return result, min(seconds)
