"""`python app.py` from a user's shell: one clear message for each mistake, and a quiet start-up."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENT = {
    **os.environ,
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def run_app(*arguments: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app.py", *arguments],
        cwd=ROOT,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def assert_one_clear_message(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert expected in result.stderr


def test_unknown_flag():
    assert_one_clear_message(run_app("--colour", "blue"), "unrecognized arguments: --colour blue")


def test_cuda_without_gpu():
    import torch

    if torch.cuda.is_available():
        return  # the flag is valid on this machine; nothing to refuse
    assert_one_clear_message(run_app("--device", "cuda"), "no CUDA GPU is visible")


def test_port_already_in_use():
    with socket.socket() as occupier:
        occupier.bind(("127.0.0.1", 0))
        occupier.listen()
        port = occupier.getsockname()[1]
        result = run_app("--port", str(port))
    assert_one_clear_message(result, f"port {port} on 127.0.0.1 is already in use")


def test_invalid_port():
    assert_one_clear_message(run_app("--port", "70000"), "not a valid port")


# Runs `app.py` as if offline: a connection beyond the loopback is printed and refused.
OFFLINE_APP = """
import runpy, socket, sys
original_connect = socket.socket.connect
def offline_connect(self, address):
    host = address[0] if isinstance(address, tuple) else str(address)
    if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
        print(f"NETWORK {address}", file=sys.stderr, flush=True)
        raise OSError("network blocked by the test")
    return original_connect(self, address)
socket.socket.connect = offline_connect
sys.argv = ["app.py"] + sys.argv[1:]
runpy.run_path("app.py", run_name="__main__")
"""


def start_offline_app(*arguments: str, environment: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", OFFLINE_APP, *arguments],
        cwd=ROOT,
        env=environment or ENVIRONMENT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_start_up_serves_without_reaching_the_network():
    port = free_port()
    process = start_offline_app("--port", str(port))
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", process)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "NETWORK" not in stderr, stderr


def test_start_up_without_the_offline_variables_does_not_hang():
    """No GRADIO_ANALYTICS_ENABLED / HF_HUB_OFFLINE at all: whatever is tried is refused, and the page
    still answers promptly."""
    bare = {key: value for key, value in os.environ.items() if not key.startswith(("GRADIO_", "HF_HUB_"))}
    port = free_port()
    process = start_offline_app("--port", str(port), environment=bare)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", process, seconds=30)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_share_without_internet_serves_locally_with_a_one_line_note():
    port = free_port()
    process = start_offline_app("--port", str(port), "--share")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", process)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "--share needs the internet" in stderr and "Traceback" not in stderr
