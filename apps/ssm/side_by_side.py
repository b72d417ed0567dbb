"""Running our SSMs beside the references, for the tab: our Mamba and `transformers`' MambaForCausalLM on
the same weights (with the text generation topic's GPT as a third column), S4D's two computing modes,
and the memory a sequence holds while generating.

The tab calls these functions and only formats what they return. Models load lazily, once.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from apps.ssm.model import S4D, MambaConfig, MambaLM, S4DConfig
from apps.textgen import SHIPPED
from apps.textgen import side_by_side as textgen
from apps.textgen.side_by_side import GenerationRequest, Run
from shared.checkpoint import load_model

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "ssm"
TRAIN_COMMAND = "python -m apps.ssm.train"
MAX_S4D_LENGTH = 4096
MAX_MEMORY_LENGTH = 1_000_000


@functools.lru_cache(maxsize=1)
def shipped_models() -> tuple[MambaLM, torch.nn.Module]:
    """Our shipped Mamba and a MambaForCausalLM holding the same weights."""
    from apps.ssm.reference import mamba_to_hf

    model = load_model(MambaLM, MambaConfig, CHECKPOINT_DIR, TRAIN_COMMAND)
    return model, mamba_to_hf(model)


@functools.lru_cache(maxsize=1)
def mamba_text_models() -> textgen.TextModels:
    """The shipped Mamba pair in the text generation topic's container, so that its streaming and its
    `generate` call serve the Mamba unchanged: MambaLM.stream takes the GPT's arguments, and both
    reference classes have `generate` with a cache."""
    model, hf_model = shipped_models()
    tokenizer = textgen.shipped_tokenizer()
    return textgen.TextModels("mamba", model, hf_model, tokenizer.hf_tokenizer(), tokenizer)


def prompt_ids(prompt: str, request: GenerationRequest) -> list[int]:
    """The prompt's ids with the shipped tokenizer; an empty prompt starts a document (<|endoftext|>).
    A Mamba has no context window: the whole prompt is read, however long."""
    tokenizer = textgen.shipped_tokenizer()
    if not prompt.strip():
        request.notes.append("Empty prompt: generating from the start-of-document token <|endoftext|>.")
        return [tokenizer.eot_id]
    return tokenizer.encode(prompt)


def decode(ids: list[int]) -> str:
    return textgen.shipped_tokenizer().decode(ids)


def stream_ours(ids: list[int], request: GenerationRequest) -> Iterator[Run]:
    """Our Mamba's new tokens as they come; `seconds` counts only the model's own time."""
    return textgen.stream_ours(mamba_text_models(), ids, request)


def run_reference(ids: list[int], request: GenerationRequest) -> Run:
    """`MambaForCausalLM.generate` with its recurrent cache on the same weights, without its fallback warnings."""
    from apps.ssm.reference import quiet_fallback

    with quiet_fallback():
        return textgen.run_reference(mamba_text_models(), ids, request)


def stream_gpt(prompt: str, request: GenerationRequest) -> Iterator[Run]:
    """The text generation topic's GPT on the same prompt (its own context window applies: see its notes)."""
    gpt_request = replace(request, notes=[])
    models = textgen.text_models(SHIPPED)
    return textgen.stream_ours(models, textgen.prompt_ids(models, gpt_request), gpt_request)


# ---------------------------------------------------------------------------------------------
# S4D: the kernel and the two computing modes
# ---------------------------------------------------------------------------------------------


@dataclass
class S4DDemo:
    kernel: torch.Tensor  # (channels, L)
    inputs: torch.Tensor  # (L,) channel 0 of the input
    convolution: torch.Tensor  # (L,) channel 0, convolution mode
    recurrence: torch.Tensor  # (L,) channel 0, recurrence mode
    max_difference: float  # over every channel and position
    convolution_seconds: float
    recurrence_seconds: float


def s4d_demo(init: str, state_size: int, step: float, length: int, seed: int, channels: int = 4) -> S4DDemo:
    """A random S4D layer whose channels all use the step `step`, run both ways on the same random input."""
    if not 2 <= state_size <= 256 or state_size % 2:
        raise ValueError(f"State size N must be an even number from 2 to 256 (conjugate pairs); got {state_size}.")
    if not 8 <= length <= MAX_S4D_LENGTH:
        raise ValueError(f"Sequence length must be from 8 to {MAX_S4D_LENGTH:,}; got {length:,}.")
    if not (math.isfinite(step) and 1e-4 <= step <= 1.0):
        raise ValueError(f"The step Delta must be from 0.0001 to 1; got {step}.")
    torch.manual_seed(seed)
    layer = S4D(S4DConfig(d_model=channels, state_size=state_size, init=init))
    with torch.no_grad():
        layer.log_dt.fill_(math.log(step))
        u = torch.randn(1, length, channels)
        kernel = layer.kernel(length)
        started = time.perf_counter()
        convolution = layer(u)
        convolution_seconds = time.perf_counter() - started
        started = time.perf_counter()
        recurrence = layer.recurrent(u)
        recurrence_seconds = time.perf_counter() - started
    return S4DDemo(
        kernel,
        u[0, :, 0],
        convolution[0, :, 0],
        recurrence[0, :, 0],
        float((convolution - recurrence).abs().max()),
        convolution_seconds,
        recurrence_seconds,
    )


# ---------------------------------------------------------------------------------------------
# Memory per sequence while generating: Mamba's state against the GPT's KV cache
# ---------------------------------------------------------------------------------------------


@dataclass
class MemoryCurve:
    lengths: list[int]
    mamba_bytes: list[int]  # measured on the state our shipped Mamba returns after reading that many tokens
    gpt_bytes: list[int]  # keys and values the text generation GPT holds for that many tokens
    gpt_context: int  # the GPT's window: past it the cache would have to keep growing to see everything


def memory_curve(max_length: int, points: int = 24) -> MemoryCurve:
    """Bytes of generation state for one sequence of 1 .. max_length tokens (float32), both models."""
    if not 16 <= max_length <= MAX_MEMORY_LENGTH:
        raise ValueError(f"The longest sequence must be from 16 to {MAX_MEMORY_LENGTH:,} tokens; got {max_length:,}.")
    mamba, _ = shipped_models()
    gpt = textgen.text_models(SHIPPED).gpt
    lengths = sorted({int(round(x)) for x in torch.logspace(0, math.log10(max_length), points).tolist()})
    with torch.inference_mode():
        _, _, state = mamba(torch.zeros(1, 4, dtype=torch.long))  # the state has the same size after any length
    mamba_bytes = sum(layer.num_bytes() for layer in state)
    cache = gpt.new_cache(1, max_len=1)  # one position: keys and values of every layer and head
    per_token = (cache.k.numel() * cache.k.element_size()) * 2
    return MemoryCurve(lengths, [mamba_bytes] * len(lengths), [per_token * n for n in lengths], gpt.config.block_size)
