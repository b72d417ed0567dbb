"""`python -m bench gpu`: every topic's main action once on CUDA and once on the CPU, each in a fresh
process (the engines keep their models on the device they were loaded on): the parity the tab reports on
the GPU (ours vs the reference on the same device), the time on each device, and how much GPU memory the
engine used (0 means it ran on the CPU whatever the setting). Without CUDA it says so and writes nothing."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARITY = re.compile(r"max \|difference\| [0-9.e+-]+|[a-z ]*identical|[a-z ]*differ")

ONE_DEVICE = """
import inspect, json, sys, time
sys.path.insert(0, {root!r})
import torch
from shared import device
device.configure({device!r})
from app import build_app
from apps import TOPICS
from bench.app import handler, main_action

demo = build_app()
report = {{}}
for topic in TOPICS:
    api_name, arguments = main_action(topic)
    function = handler(demo, api_name)
    for attempt in range(2):  # the first run loads the engine; the second is timed
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        outputs = function(*arguments)
        if inspect.isgenerator(outputs):
            for outputs in outputs:
                pass
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    texts = [output for output in (outputs if isinstance(outputs, tuple) else (outputs,)) if isinstance(output, str)]
    memory = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0
    report[topic.title] = {{"action": api_name, "seconds": seconds, "texts": texts, "gpu_mb": memory}}
print(json.dumps(report))
"""


def measure(device_name: str) -> dict:
    script = ONE_DEVICE.format(root=str(ROOT), device=device_name)
    finished = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def parity_of(texts: list[str]) -> str:
    """The parity badges the tab showed (max |difference| against the reference, identical outputs)."""
    found = [match.strip() for text in texts for match in PARITY.findall(re.sub(r"<[^>]+>", " ", text))]
    return "; ".join(dict.fromkeys(found)) or "(no parity badge)"


def run() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        print("bench gpu: no CUDA GPU is visible to PyTorch here; nothing measured, nothing written.")
        return None
    gpu, cpu = measure("cuda"), measure("cpu")
    rows = [
        [
            title,
            gpu[title]["action"],
            parity_of(gpu[title]["texts"]),
            f"{gpu[title]['seconds']:.3f}",
            f"{cpu[title]['seconds']:.3f}",
            f"{cpu[title]['seconds'] / gpu[title]['seconds']:.1f}x",
            f"{gpu[title]['gpu_mb']:.0f}",
        ]
        for title in gpu
    ]
    return {
        "topic": "gpu",
        "title": "GPU check",
        "summary": [],
        "tables": [
            {
                "title": f"Each topic's main action on {torch.cuda.get_device_name()} and on the CPU",
                "columns": ["topic", "action", "parity on the GPU", "GPU s", "CPU s", "CPU / GPU", "GPU memory MB"],
                "rows": rows,
            }
        ],
    }
