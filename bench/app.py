"""Start-up time of `python app.py` until the page answers HTTP 200 (the issue's target: < 10 s)."""

import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def seconds_to_first_page() -> float:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while time.perf_counter() - started < 120:
            try:
                if requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    return time.perf_counter() - started
            except requests.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("app.py did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def run() -> dict:
    timings = [seconds_to_first_page() for _ in range(REPEATS)]
    return {
        "topic": "app",
        "title": "App shell",
        "summary": [],
        "tables": [
            {
                "title": "`python app.py` until HTTP 200 (target < 10 s)",
                "columns": ["median s", "min s", "max s", "runs"],
                "rows": [[f"{statistics.median(timings):.2f}", f"{min(timings):.2f}", f"{max(timings):.2f}", REPEATS]],
            }
        ],
    }
