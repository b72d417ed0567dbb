"""Test-wide settings: no network, no analytics, a private data cache, and one served app."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def served_app():
    """The whole app served in-process on a free port; yields its URL."""
    from app import demo

    _, url, _ = demo.queue().launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="session")
def client(served_app):
    from gradio_client import Client

    return Client(served_app, verbose=False)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run as fast on one thread, and one thread does not stall when other processes load the
    CPU. Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def network_attempts(monkeypatch):
    """Every connection beyond this machine that the code under test tries, refused and recorded (a test
    of "fails fast offline" asserts the list stays empty instead of timing the failure)."""
    import socket

    attempts = []
    connect = socket.socket.connect

    def refuse_remote(self, address):
        host = address[0] if isinstance(address, tuple) else str(address)
        if host not in ("127.0.0.1", "::1", "localhost") and not str(host).startswith("/"):
            attempts.append(address)
            raise OSError("network refused by the test")
        return connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", refuse_remote)
    return attempts
