"""Running our text models and the `transformers` reference on the same weights and the same prompt.

The tab calls these functions and only formats what they return. Models load lazily, once: the
shipped checkpoint in `checkpoints/textgen/` (tokenizer, GPT, LSTM; the n-gram is refitted from the
training text in about two seconds), or a Hub GPT-2 (`gpt2`, `distilgpt2`, a local
`save_pretrained` folder) when the user asks for one.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from apps.textgen import MAX_NEW_TOKENS, SHIPPED
from apps.textgen.baselines import KneserNeyNGram, LSTMConfig, LSTMLanguageModel, NGramConfig
from apps.textgen.model import GPT, GPTConfig, check_sampling_args
from apps.textgen.tokenizer import BPETokenizer
from shared.checkpoint import CheckpointError, load_model, resolve_folder
from shared.data import wiki_text_split
from shared.device import current_device

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "textgen"
TRAIN_COMMAND = "python -m apps.textgen.train"


@dataclass
class TextModels:
    """A GPT with its tokenizers: ours (ids and pieces) and the `transformers` one for the HF side."""

    name: str
    gpt: GPT
    hf_gpt: torch.nn.Module  # GPT2LMHeadModel holding the same weights
    hf_tokenizer: object  # PreTrainedTokenizerFast
    tokenizer: BPETokenizer | None  # ours; None for a Hub model (its tokenizer is theirs)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text) if self.tokenizer else self.hf_tokenizer.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids) if self.tokenizer else self.hf_tokenizer.decode(ids)

    def pieces(self, ids: list[int]) -> list[str]:
        if self.tokenizer:
            return self.tokenizer.token_pieces(ids)
        return [self.hf_tokenizer.decode([i]) for i in ids]

    @property
    def eot_id(self) -> int:
        return self.gpt.config.vocab_size - 1


@functools.lru_cache(maxsize=1)
def shipped_tokenizer() -> BPETokenizer:
    if not (CHECKPOINT_DIR / "bpe.json").exists():
        raise CheckpointError(f"No tokenizer in {CHECKPOINT_DIR}. Create it with `{TRAIN_COMMAND}`.")
    return BPETokenizer.load(CHECKPOINT_DIR)


@functools.lru_cache(maxsize=4)
def text_models(name: str = SHIPPED) -> TextModels:
    """The shipped GPT, or a Hub / local GPT-2 by name, with its HF twin holding the same weights."""
    from apps.textgen.fast_layers import use_fast_linears
    from apps.textgen.reference import HUB_FILES, gpt_to_hf, load_hub_gpt

    if name == SHIPPED:
        gpt = load_model(GPT, GPTConfig, CHECKPOINT_DIR / "gpt", TRAIN_COMMAND)
        tokenizer = shipped_tokenizer()
        hf_tokenizer = tokenizer.hf_tokenizer()
    else:
        from transformers import AutoTokenizer

        folder = resolve_folder(name, allow_patterns=HUB_FILES)
        gpt = load_hub_gpt(folder)
        tokenizer = None
        try:
            hf_tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"{name!r} has no tokenizer files next to its weights: {str(error).splitlines()[0]}"
            ) from error
    device = current_device()
    gpt = gpt.to(device).eval()
    hf_gpt = gpt_to_hf(gpt).to(device).eval()
    return TextModels(name, use_fast_linears(gpt), hf_gpt, hf_tokenizer, tokenizer)


@functools.lru_cache(maxsize=1)
def shipped_lstm() -> LSTMLanguageModel:
    return load_model(LSTMLanguageModel, LSTMConfig, CHECKPOINT_DIR / "lstm", TRAIN_COMMAND)


@functools.lru_cache(maxsize=1)
def shipped_ngram() -> KneserNeyNGram:
    """Refit from the training text (deterministic, about 2 s) with the order chosen in training."""
    report = json.loads((CHECKPOINT_DIR / "training_report.json").read_text())
    tokenizer = shipped_tokenizer()
    config = NGramConfig(order=report["ngram_order"], vocab_size=tokenizer.vocab_size)
    return KneserNeyNGram(config).fit(tokenizer.encode(wiki_text_split().train))


# ---------------------------------------------------------------------------------------------
# Requests: validated settings shared by every model
# ---------------------------------------------------------------------------------------------


@dataclass
class GenerationRequest:
    prompt: str
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_k: int | None = None
    top_p: float | None = 0.95
    seed: int | None = 0
    notes: list[str] = field(default_factory=list)  # what was adjusted, told to the user

    def __post_init__(self):
        if self.max_new_tokens is None or self.max_new_tokens < 1:
            raise ValueError(f"Max new tokens must be at least 1 (got {self.max_new_tokens}).")
        if self.max_new_tokens > MAX_NEW_TOKENS:
            self.notes.append(f"Max new tokens {self.max_new_tokens:,} lowered to {MAX_NEW_TOKENS}.")
            self.max_new_tokens = MAX_NEW_TOKENS
        self.max_new_tokens = int(self.max_new_tokens)
        self.top_k = int(self.top_k) if self.top_k else None
        self.seed = None if self.seed is None else int(self.seed)
        if self.temperature is None:
            raise ValueError("Temperature is empty: use 0 for greedy decoding or a value such as 0.8.")
        check_sampling_args(self.temperature, self.top_k, self.top_p)
        if self.temperature == 0 or self.top_p == 0:
            self.notes.append("Greedy decoding (temperature 0 or top-p 0): the most likely token at every step.")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_p == 0


def prompt_ids(models: TextModels, request: GenerationRequest) -> list[int]:
    """The prompt's ids, fitted into the context window together with the new tokens.

    An empty prompt starts a new document (<|endoftext|>). GPT-2, ours and theirs alike, sees at most
    block_size positions, so a long prompt keeps its end (at least half the window) and the number
    of new tokens is lowered to what still fits; both are told to the user."""
    block_size = models.gpt.config.block_size
    if not request.prompt.strip():
        request.notes.append("Empty prompt: generating from the start-of-document token <|endoftext|>.")
        ids = [models.eot_id]
    else:
        ids = models.encode(request.prompt)
    keep = max(block_size // 2, block_size - request.max_new_tokens)
    if len(ids) > keep:
        request.notes.append(
            f"The prompt is {len(ids):,} tokens and the model sees {block_size} positions: only its last {keep} tokens are used."
        )
        ids = ids[-keep:]
    if len(ids) + request.max_new_tokens > block_size:
        request.max_new_tokens = block_size - len(ids)
        request.notes.append(
            f"New tokens lowered to {request.max_new_tokens} so that prompt and continuation fit the {block_size}-token context."
        )
    return ids


# ---------------------------------------------------------------------------------------------
# Ours, streamed; the reference, timed
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    ids: list[int]
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return len(self.ids) / self.seconds if self.seconds > 0 else float("inf")


def stream_ours(models: TextModels, ids: list[int], request: GenerationRequest) -> Iterator[Run]:
    """Our GPT's new tokens as they come; `seconds` counts only the model's own time."""
    device = next(models.gpt.parameters()).device
    prompt = torch.tensor([ids], device=device)
    steps = models.gpt.stream(
        prompt,
        request.max_new_tokens,
        request.temperature,
        request.top_k,
        request.top_p,
        request.seed,
        eos_id=models.eot_id,
    )
    new, seconds = [], 0.0
    while True:
        started = time.perf_counter()
        token = next(steps, None)
        seconds += time.perf_counter() - started
        if token is None:
            return
        new.append(int(token[0]))
        yield Run(list(new), seconds)


def run_reference(models: TextModels, ids: list[int], request: GenerationRequest) -> Run:
    """`transformers` `generate` on the same weights and prompt. Sampling draws from the global RNG
    seeded like ours, so with the same seed the same tokens come out wherever the probabilities match."""
    device = next(models.hf_gpt.parameters()).device
    prompt = torch.tensor([ids], device=device)
    sampling = (
        {"do_sample": False}
        if request.greedy
        else {
            "do_sample": True,
            "temperature": request.temperature,
            "top_k": request.top_k or 0,
            "top_p": request.top_p if request.top_p is not None else 1.0,
        }
    )
    if request.seed is not None:
        torch.manual_seed(request.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        output = models.hf_gpt.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=request.max_new_tokens,
            min_new_tokens=0,
            pad_token_id=models.eot_id,
            eos_token_id=models.eot_id,
            **sampling,
        )
    seconds = time.perf_counter() - started
    new = output[0, len(ids) :].tolist()
    if models.eot_id in new:  # ours stops at <|endoftext|> too
        new = new[: new.index(models.eot_id) + 1]
    return Run(new, seconds)


def stream_baseline(kind: str, ids: list[int], request: GenerationRequest) -> Iterator[Run]:
    """The LSTM or the n-gram on the shipped tokens, one token at a time (for the streaming UI)."""
    if kind == "lstm":
        model = shipped_lstm()
        started = time.perf_counter()
        output = model.generate(
            torch.tensor([ids]), request.max_new_tokens, request.temperature, request.top_k, request.top_p, request.seed
        )[0, len(ids) :].tolist()
    elif kind == "ngram":
        model = shipped_ngram()
        started = time.perf_counter()
        output = model.generate(
            list(ids), request.max_new_tokens, request.temperature, request.top_k, request.seed, top_p=request.top_p
        )[len(ids) :]
    else:
        raise ValueError(f"Unknown baseline {kind!r}; choose 'lstm' or 'ngram'.")
    seconds = time.perf_counter() - started
    for count in range(1, len(output) + 1):
        yield Run(output[:count], seconds * count / len(output))


def next_token_table(kind: str, models: TextModels, ids: list[int], top: int = 10) -> list[tuple[str, int, str, float]]:
    """The most likely next tokens after the prompt: rows (piece, id, implementation, probability).
    For the GPT, the reference's probabilities of the same tokens sit beside ours."""
    prompt = torch.tensor([ids])
    if kind == "gpt":
        device = next(models.gpt.parameters()).device
        ours = models.gpt.next_token_probabilities(prompt.to(device)).cpu()
        with torch.inference_mode():
            theirs = models.hf_gpt(prompt.to(device)).logits[0, -1].float().softmax(-1).cpu()
    elif kind == "lstm":
        ours, theirs = shipped_lstm().next_token_probabilities(prompt).cpu(), None
    else:
        ours, theirs = torch.from_numpy(shipped_ngram().next_token_distribution(ids)), None
    probabilities, token_ids = ours.topk(top)
    rows = []
    for probability, token_id in zip(probabilities.tolist(), token_ids.tolist()):
        piece = models.pieces([token_id])[0]
        rows.append((piece, token_id, "ours", probability))
        if theirs is not None:
            rows.append((piece, token_id, "transformers", float(theirs[token_id])))
    return rows
