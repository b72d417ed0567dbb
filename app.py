"""Side by Side: one Gradio app, a home page and one page per family of topics (language, images, vision,
representations, tabular), each topic a tab, all built from the registry in `apps/`.

    python app.py [--host 127.0.0.1] [--port 7860] [--share] [--device auto|cpu|cuda|mps]

`from app import demo` gives the Blocks app (the Hugging Face Space entry point). Building it imports
gradio and the tab modules only; each topic loads its engine (torch, transformers, ...) on its first event,
or in the background as soon as a visitor opens its page. `/images?topic=diffusion` opens the Images
page on the Diffusion tab.
"""

import argparse
import importlib
import importlib.util
import os
import socket
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from shared import device  # noqa: E402  (after the analytics default)

SHARE_SERVER = ("api.gradio.app", 443)


_WARMED: set[str] = set()  # the engines whose warm-up has started


def warm_up(topics) -> None:
    """Import the engines (`apps/<topic>/side_by_side.py`: torch, the reference library) of `topics` in a
    background thread, so a visitor's first click finds them loaded; each engine is started once."""
    import threading

    engines = []
    for topic in topics:
        engine = f"apps.{topic.slug}.side_by_side"
        if engine not in _WARMED and importlib.util.find_spec(engine) is not None:
            _WARMED.add(engine)
            engines.append(engine)

    def load() -> None:
        for engine in engines:
            importlib.import_module(engine)

    if engines:
        threading.Thread(target=load, name="warm-up", daemon=True).start()


def family_page_opener(topics):
    """The page-load handler of a family page: select the tab named by `?topic=<slug>` in the address,
    and start loading the page's engines (the linked topic's first) in the background."""
    import gradio as gr

    slugs = {topic.slug for topic in topics}

    def open_family_page(request: gr.Request):
        slug = request.query_params.get("topic") if request else None
        warm_up(sorted(topics, key=lambda topic: topic.slug != slug))
        return gr.Tabs(selected=slug) if slug in slugs else gr.skip()

    return open_family_page


def build_app():
    """The home page (`/`), then one page per family (`/language`, `/images`, ...) with a tab per topic."""
    import gradio as gr

    from apps import FAMILIES, topics_by_family
    from apps.about import tab as home

    with gr.Blocks(title="Side by Side") as blocks:
        home.build_tab()
    for family, topics in topics_by_family().items():
        with blocks.route(FAMILIES[family], "/" + family):
            with gr.Tabs() as tabs:
                for topic in topics:
                    with gr.Tab(topic.title, id=topic.slug, elem_id=topic.element_id):
                        importlib.import_module(topic.tab_module).build_tab()
            blocks.load(family_page_opener(topics), outputs=[tabs], api_name=False, show_progress="hidden")
    return blocks


def __getattr__(name: str):
    """`from app import demo` builds the app on first access (so `python app.py --bad-flag` answers
    before the slow imports)."""
    if name == "demo":
        globals()["demo"] = build_app()
        return globals()["demo"]
    raise AttributeError(f"module 'app' has no attribute {name!r}")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Side by Side: from-scratch models next to their reference implementations."
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to serve on (0.0.0.0 for all interfaces)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)), help="port to serve on"
    )
    parser.add_argument(
        "--share", action="store_true", help="also publish a temporary public *.gradio.live link (needs the internet)"
    )
    parser.add_argument("--device", default="auto", choices=device.DEVICE_CHOICES, help="where the models run")
    return parser.parse_args(argv)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def share_server_reachable(timeout: float = 2.0) -> bool:
    try:
        socket.create_connection(SHARE_SERVER, timeout=timeout).close()
        return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    try:
        device.prefer(arguments.device)  # a named GPU is checked now; "auto" is resolved on first use
    except device.DeviceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not 0 < arguments.port < 65536:
        print(f"error: --port {arguments.port} is not a valid port (1-65535).", file=sys.stderr)
        return 2
    if port_in_use(arguments.host, arguments.port):
        print(
            f"error: port {arguments.port} on {arguments.host} is already in use; choose another with --port.",
            file=sys.stderr,
        )
        return 1
    share = arguments.share
    if share and not share_server_reachable():
        print(
            "--share needs the internet to create a public link and none is reachable; serving locally only.",
            file=sys.stderr,
        )
        share = False
    import gradio as gr

    print(f"Side by Side: models run on device '{arguments.device}'.")
    build_app().queue().launch(
        server_name=arguments.host, server_port=arguments.port, share=share, theme=gr.themes.Soft()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
