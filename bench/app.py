"""The app as a user meets it: start-up, and the first and later clicks of each topic.

1. `python app.py` until the home page answers HTTP 200, beside a bare Gradio app with the same pages and
   the same number of tabs (a Textbox, an Image, a Slider and a Button each): fresh processes,
   alternating, median of `REPEATS` each, and the ratio.
2. For each topic, a fresh `python app.py`, then its main action (its tab's MAIN_ACTION, else the first of
   its API_EXAMPLES) clicked through gradio_client as soon as the page answers (the first click, which loads
   the engine) and again (warm, median of `REPEATS`); beside them the engine's own compute time: the
   same handler called directly in this process, warm, alternating with the warm clicks, median of
   `REPEATS`. API clicks open no page, so the first click gets no help from the page-load warm-up.
"""

import importlib
import inspect
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3
ENVIRONMENT = {
    **os.environ,
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}

BARE_APP = """
import gradio as gr

FAMILIES = {families!r}  # family -> number of tabs, as in the app
with gr.Blocks() as demo:
    gr.Markdown("home")
for family, tabs in FAMILIES.items():
    with demo.route(family.title(), "/" + family):
        with gr.Tabs():
            for index in range(tabs):
                with gr.Tab(f"topic {{index}}"):
                    gr.Textbox()
                    gr.Image()
                    gr.Slider()
                    gr.Button()
demo.queue().launch(server_name="127.0.0.1", server_port={port})
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], port: int) -> tuple[subprocess.Popen, float]:
    """Start a server; returns it and the seconds until http://127.0.0.1:port/ answered 200."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=ENVIRONMENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.perf_counter() - started < 120:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                return process, time.perf_counter() - started
        except requests.ConnectionError:
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{' '.join(command)} did not answer within 120 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=30)


def ours_command(port: int) -> list[str]:
    return [sys.executable, "app.py", "--port", str(port)]


def start_up_times() -> tuple[list[float], list[float]]:
    """Seconds to HTTP 200 of our app and of the bare one, alternating fresh processes."""
    from apps import topics_by_family

    families = {family: len(topics) for family, topics in topics_by_family().items()}
    ours, bare = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(REPEATS):
            port = free_port()
            process, seconds = start(ours_command(port), port)
            stop(process)
            ours.append(seconds)
            port = free_port()
            script = Path(folder) / "bare_app.py"
            script.write_text(BARE_APP.format(families=families, port=port))
            process, seconds = start([sys.executable, str(script)], port)
            stop(process)
            bare.append(seconds)
    return ours, bare


def main_action(topic) -> tuple[str, tuple]:
    """The topic's main action: its tab's MAIN_ACTION (api_name, arguments), or the first of its API_EXAMPLES."""
    tab = importlib.import_module(topic.tab_module)
    return getattr(tab, "MAIN_ACTION", None) or next(iter(tab.API_EXAMPLES.items()))


def handler(demo, api_name: str):
    """The function behind an endpoint, called with the endpoint's API arguments (the session states the
    API does not send are filled with their start values, as for a new visitor)."""
    import gradio as gr

    block_function = next(function for function in demo.fns.values() if function.api_name == api_name)

    def call(*arguments):
        given = iter(arguments)
        values = [
            component.value if isinstance(component, gr.State) else next(given) for component in block_function.inputs
        ]
        return block_function.fn(*values)

    return call


def run_handler(function, arguments) -> float:
    """Seconds for one direct call of an endpoint's function (a streaming one run to its end)."""
    started = time.perf_counter()
    output = function(*arguments)
    if inspect.isgenerator(output):
        for _ in output:
            pass
    return time.perf_counter() - started


def click_times(demo, topic) -> tuple[float, list[float], list[float]]:
    """A fresh app; the topic's main action clicked right after the page answers (the first click); then,
    alternating `REPEATS` times, a warm click and the same handler called directly in this process (no
    server, no serialisation: the engine's own compute), so the machine's load affects both alike."""
    from gradio_client import Client

    api_name, arguments = main_action(topic)
    function = handler(demo, api_name)
    port = free_port()
    process, _ = start(ours_command(port), port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        started = time.perf_counter()
        client.predict(*arguments, api_name=f"/{api_name}")
        first = time.perf_counter() - started
        run_handler(function, arguments)  # loads the engine in this process
        warm, compute = [], []
        for _ in range(REPEATS):
            started = time.perf_counter()
            client.predict(*arguments, api_name=f"/{api_name}")
            warm.append(time.perf_counter() - started)
            compute.append(run_handler(function, arguments))
        client.close()
    finally:
        stop(process)
    return first, warm, compute


def run() -> dict:
    sys.path.insert(0, str(ROOT))
    from app import build_app
    from apps import TOPICS

    ours, bare = start_up_times()
    start_up = [
        [
            len(TOPICS),
            f"{statistics.median(ours):.2f}",
            f"{statistics.median(bare):.2f}",
            f"{statistics.median(ours) / statistics.median(bare):.2f}x",
            f"{min(ours):.2f}-{max(ours):.2f}",
            REPEATS,
        ]
    ]
    demo = build_app()
    rows = []
    for topic in TOPICS:
        first, warm_requests, computes = click_times(demo, topic)
        warm, compute = statistics.median(warm_requests), statistics.median(computes)
        rows.append(
            [
                topic.title,
                main_action(topic)[0],
                f"{first:.2f}",
                f"{warm:.2f}",
                f"{compute:.2f}",
                f"{first / warm:.2f}x",
                f"{warm / compute:.2f}x",
            ]
        )
    return {
        "topic": "app",
        "title": "The app: start-up and clicks",
        "summary": [],
        "tables": [
            {
                "title": "`python app.py` until the home page answers HTTP 200, beside a bare Gradio app with the "
                "same pages and number of tabs (goal: at most 1.3x and under 10 s)",
                "columns": [
                    "topics",
                    "ours s (median)",
                    "bare Gradio s (median)",
                    "ours / bare",
                    "ours range s",
                    "runs",
                ],
                "rows": start_up,
            },
            {
                "title": "Each topic's main action through gradio_client: the first click right after start-up, "
                "warm requests, and the handler's own compute (goals: first at most 1.5x warm; warm at most 1.3x compute)",
                "columns": [
                    "topic",
                    "action",
                    "first click s",
                    "warm request s",
                    "compute s",
                    "first / warm",
                    "warm / compute",
                ],
                "rows": rows,
            },
        ],
    }
