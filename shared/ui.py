"""UI pieces that every tab shares: the ours-vs-reference badges, the "read the code" panel, the
validators of numbers and model names, and the translation of our `ValueError`s into messages the user
sees (`gr.Error`). Imports gradio and the standard library only, so a tab that uses it stays light."""

from __future__ import annotations

import ast
import functools
import html
import importlib.util
import inspect
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

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


@functools.cache
def _parsed(module: str) -> tuple[str, list[ast.stmt]]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LookupError(f"No module {module!r}.")
    text = Path(spec.origin).read_text()
    return text, ast.parse(text).body


def _definition(module: str, names: list[str]) -> tuple[str, ast.AST]:
    """The file text and the node of `names` (["Class", "method"]) in `module`, following `from x import
    Name` and, for a method, the class's bases."""
    text, body = _parsed(module)
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    node = next((child for child in body if isinstance(child, definitions) and child.name == names[0]), None)
    if node is None:
        for child in body:
            if isinstance(child, ast.ImportFrom) and child.module and any(a.name == names[0] for a in child.names):
                return _definition(child.module, names)
        raise LookupError(f"No {'.'.join(names)!r} in {module}.")
    if len(names) == 1:
        return text, node
    method = next((child for child in node.body if isinstance(child, definitions) and child.name == names[1]), None)
    if method is not None:
        return text, method
    for base in node.bases:
        if isinstance(base, ast.Name):
            try:
                return _definition(module, [base.id, names[1]])
            except LookupError:
                continue
    raise LookupError(f"No {'.'.join(names)!r} in {module}.")


@functools.cache
def _source_by_name(name: str) -> str:
    """The source of "package.module:Class.method" read from the files, without importing the module (so
    a tab shows the code before its engine has loaded)."""
    module, _, qualified_name = name.partition(":")
    text, node = _definition(module, qualified_name.split("."))
    first_line = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
    return textwrap.dedent("\n".join(text.splitlines()[first_line - 1 : node.end_lineno])) + "\n"


def source_of(*code: Callable | str) -> str:
    """The source code of the functions and classes that produced a result, one after the other. Each is
    the object itself or its name as "package.module:Class.method" (read without importing the module)."""
    return "\n\n".join(_source_by_name(item) if isinstance(item, str) else inspect.getsource(item) for item in code)


def code_panel(*code: Callable | str, label: str = "Read the code that just ran") -> gr.Code:
    """An accordion with the source of `code` (see `source_of`; updated by a handler returning `source_of(...)`)."""
    with gr.Accordion(label, open=False):
        return gr.Code(source_of(*code) if code else "", language="python", label="source", interactive=False)


MAX_MODEL_NAME = 200  # characters: Hub ids are at most 96; a folder path longer than this is a mistake


def whole_number(value, name: str, minimum: float | None = None, maximum: float | None = None) -> int:
    """`value` as an int, or a `ValueError` saying what is wrong: empty, not a number, a fraction (3.5), or
    outside [minimum, maximum]. Integer inputs reach the app as floats through the API."""
    bounds = (
        f" from {minimum:,} to {maximum:,}"
        if minimum is not None and maximum is not None
        else f" of at least {minimum:,}"
        if minimum is not None
        else f" of at most {maximum:,}"
        if maximum is not None
        else ""
    )
    wanted = f"'{name}' must be a whole number{bounds}"
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{wanted}; got {value!r}.")
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{wanted}; got {value}, which is not a whole number.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{wanted}; got {int(value):,}.")
    return int(value)


def hub_model_name(text: str | None) -> str:
    """A Hub id or local folder typed by the user, stripped ("" when empty), or a `ValueError` when it is
    too long to be one (at most 200 characters) or is not text."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ValueError(f"A model name is text (a Hub id such as 'gpt2' or a folder); got {type(text).__name__}.")
    name = text.strip()
    if len(name) > MAX_MODEL_NAME:
        raise ValueError(
            f"The model name is {len(name):,} characters long; a Hub id or folder path has at most "
            f"{MAX_MODEL_NAME} (for example 'gpt2' or './my-model')."
        )
    return name


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
        if payload is None or isinstance(payload, bool) or not isinstance(payload, (int, float)):
            empty = "is empty" if payload is None else f"is {payload!r}"
            raise gr.Error(f"'{self.label}' {empty}: give a number from {self.minimum} to {self.maximum}.")
        if float(self.step).is_integer() and float(self.minimum).is_integer():  # a slider of whole numbers
            user_errors(whole_number)(payload, self.label)
        return super().preprocess(payload)


class WholeNumber(gr.Number):
    """A `gr.Number` of whole numbers (precision 0) that refuses a fraction such as 3.5 with a clear
    message; Gradio's own rounds it silently to 4."""

    is_template = True  # rendered by the front end as a plain number field

    def __init__(self, value=None, **kwargs):  # value named: Gradio rebuilds a component from its named arguments
        super().__init__(value=value, precision=0, **kwargs)

    def get_config(self, cls=None):
        return super().get_config(cls or gr.Number)

    def preprocess(self, payload):
        if payload is not None:  # empty stays None: the handler decides what an empty field means
            user_errors(whole_number)(payload, self.label)
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
