"""UI pieces that every tab shares: the ours-vs-reference badges, the "read the code" panel, and the
translation of our `ValueError`s into messages the user sees (`gr.Error`)."""

from __future__ import annotations

import functools
import html
import inspect
from collections.abc import Callable

import gradio as gr

BADGE_STYLE = "display:inline-block;margin:2px 6px 2px 0;padding:2px 10px;border-radius:12px;font-size:0.9em;"
GOOD, NEUTRAL, BAD = "#d7f5dd", "#e8eaf0", "#f9d9d9"


def _badge(text: str, colour: str) -> str:
    return f'<span style="{BADGE_STYLE}background:{colour}">{html.escape(text)}</span>'


def comparison_badges(
    ours_seconds: float | None = None,
    reference_seconds: float | None = None,
    max_abs_diff: float | None = None,
    tolerance: float | None = None,
    identical: bool | None = None,
    identical_label: str = "outputs identical",
) -> str:
    """HTML badges: our time, the reference's time, the speed ratio, the max difference against a
    tolerance, and whether discrete outputs (tokens, indices) are identical."""
    badges = []
    if ours_seconds is not None:
        badges.append(_badge(f"ours {ours_seconds * 1000:.0f} ms", NEUTRAL))
    if reference_seconds is not None:
        badges.append(_badge(f"reference {reference_seconds * 1000:.0f} ms", NEUTRAL))
    if ours_seconds and reference_seconds:
        ratio = reference_seconds / ours_seconds
        badges.append(_badge(f"ours is {ratio:.2f}x the reference's speed", GOOD if ratio >= 1 else BAD))
    if max_abs_diff is not None:
        within = tolerance is None or max_abs_diff <= tolerance
        limit = f" (tolerance {tolerance:.0e})" if tolerance is not None else ""
        badges.append(_badge(f"max |difference| {max_abs_diff:.2e}{limit}", GOOD if within else BAD))
    if identical is not None:
        badges.append(
            _badge(
                identical_label if identical else identical_label.replace("identical", "differ"),
                GOOD if identical else BAD,
            )
        )
    return "<div>" + "".join(badges) + "</div>"


def notes_markdown(notes: list[str]) -> str:
    """Notes for the user (what was adjusted, what was assumed) as a Markdown list."""
    return "\n".join(f"- {note}" for note in notes)


def pyplot():
    """matplotlib's pyplot on the Agg backend: figures are drawn off-screen for gr.Plot. Imported on
    first use, so building the app does not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def source_of(*functions: Callable) -> str:
    """The source code of the functions and classes that produced a result, one after the other."""
    return "\n\n".join(inspect.getsource(function) for function in functions)


def code_panel(*functions: Callable, label: str = "Read the code that just ran") -> gr.Code:
    """An accordion with the source of `functions` (updated by a handler returning `source_of(...)`)."""
    with gr.Accordion(label, open=False):
        return gr.Code(source_of(*functions) if functions else "", language="python", label="source", interactive=False)


def user_errors(function: Callable) -> Callable:
    """Turn the `ValueError`s our code raises for bad input into `gr.Error` messages for the user.

    Works for plain functions and generators (streaming handlers)."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except ValueError as error:
                raise gr.Error(str(error)) from error

        return generator_wrapper

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    return wrapper


class Slider(gr.Slider):
    """A `gr.Slider` that answers an empty value (possible through the API) with a clear message;
    Gradio's own slider fails on None with its generic "upstream app raised an exception"."""

    is_template = True  # rendered by the front end as a plain slider

    def preprocess(self, payload):
        if payload is None:
            raise gr.Error(f"'{self.label}' is empty: give a number from {self.minimum} to {self.maximum}.")
        return super().preprocess(payload)


class ImageUpload(gr.Image):
    """A `gr.Image` upload that hands the handler the file's path, untouched, and answers a file that is
    not an image with a clear message. Gradio's own preprocessing opens every upload with Pillow
    first and fails on a text file or a corrupt image with its generic "upstream app raised an
    exception"; the handler decodes the file itself (and checks its size and mode)."""

    is_template = True  # rendered by the front end as a plain gr.Image

    def __init__(self, *args, **kwargs):
        super().__init__(*args, type="filepath", image_mode=None, **kwargs)  # None: keep the file's own mode

    def get_config(self, cls=None):
        return super().get_config(cls or gr.Image)  # the front end's settings are gr.Image's __init__ arguments

    def preprocess(self, payload):
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as error:  # noqa: BLE001 - Pillow raises several types for files it cannot read
            name = getattr(payload, "orig_name", None) or "The upload"
            raise gr.Error(
                f"{name!r} is not an image file that can be read ({type(error).__name__}: {error})."
            ) from error
