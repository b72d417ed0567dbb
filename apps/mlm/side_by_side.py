"""Running our encoders and `transformers`' fill-mask pipeline on the same weights and the same sentence.

The tab calls these functions and only formats what they return. The three shipped encoders
(checkpoints/mlm/<kind>/) and their reference twins (BertForMaskedLM for learned and sinusoidal
positions, RoFormerForMaskedLM for rotary) load lazily, once."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from apps.mlm.model import POSITION_KINDS, EncoderConfig, MaskedLanguageModel
from apps.mlm.reference import fill_mask_pipeline, to_hf
from apps.mlm.tokenizer import MASK, MaskedTokenizer
from apps.mlm.train import CHECKPOINT_DIR, REPORT_FILE, TRAIN_COMMAND, TRAIN_LENGTH
from shared.checkpoint import CheckpointError, load_model
from shared.ui import whole_number

MAX_MASKS = 5
MAX_CHARACTERS = 2000  # refused before tokenizing; the token limit below is the real one
MAX_TOP_K = 20
BENCH_RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "mlm.json"


@functools.lru_cache(maxsize=1)
def tokenizer() -> MaskedTokenizer:
    return MaskedTokenizer.shipped()


@functools.lru_cache(maxsize=len(POSITION_KINDS))
def shipped_encoder(kind: str) -> MaskedLanguageModel:
    if kind not in POSITION_KINDS:
        raise ValueError(f"Unknown position kind {kind!r}; choose one of {', '.join(POSITION_KINDS)}.")
    return load_model(MaskedLanguageModel, EncoderConfig, CHECKPOINT_DIR / kind, TRAIN_COMMAND)


@functools.lru_cache(maxsize=len(POSITION_KINDS))
def reference_pipeline(kind: str):
    """The fill-mask pipeline over the reference twin of the shipped encoder (same weights)."""
    pipeline = fill_mask_pipeline(to_hf(shipped_encoder(kind)), tokenizer().hf_tokenizer())
    pipeline(f"The {MASK}.")  # the first call pays one-off set-up: keep it out of the timed comparison
    shipped_encoder(kind)(torch.tensor([tokenizer().encode(f"The {MASK}.")]))  # and ours alike
    return pipeline


def report() -> dict:
    path = CHECKPOINT_DIR / REPORT_FILE
    if not path.exists():
        raise CheckpointError(f"No training report at {path}. Create it with `{TRAIN_COMMAND}`.")
    return json.loads(path.read_text())


@dataclass
class Filler:
    token_id: int
    piece: str
    probability: float


@dataclass
class FillResult:
    pieces: list[str]  # the sentence as tokens, [CLS] and [SEP] included
    mask_positions: list[int]
    ours: list[list[Filler]]  # per mask: the top-k, most likely first
    reference: list[list[Filler]]
    ours_seconds: float
    reference_seconds: float
    attentions: torch.Tensor  # (layers, heads, T, T) of our encoder

    @property
    def identical_ranking(self) -> bool:
        return [[f.token_id for f in fillers] for fillers in self.ours] == [
            [f.token_id for f in fillers] for fillers in self.reference
        ]

    @property
    def max_probability_difference(self) -> float:
        return max(
            abs(a.probability - b.probability)
            for ours, reference in zip(self.ours, self.reference)
            for a, b in zip(ours, reference)
        )


def sentence_ids(sentence: str | None, kind: str) -> list[int]:
    """The sentence as ids, or a ValueError saying what to change: empty, no [MASK], too many, too long."""
    if kind not in POSITION_KINDS:
        raise ValueError(f"Unknown position kind {kind!r}; choose one of {', '.join(POSITION_KINDS)}.")
    if sentence is None or not sentence.strip():
        raise ValueError(f"The sentence is empty: type one with a {MASK} where a word is missing.")
    if len(sentence) > MAX_CHARACTERS:
        raise ValueError(f"The sentence is {len(sentence):,} characters long; give at most {MAX_CHARACTERS:,}.")
    masks = sentence.count(MASK)
    if masks == 0:
        raise ValueError(f"The sentence has no {MASK}: put {MASK} where the model should guess a word.")
    if masks > MAX_MASKS:
        raise ValueError(f"The sentence has {masks} {MASK} tokens; use at most {MAX_MASKS}.")
    ids = tokenizer().encode(sentence)
    if len(ids) > TRAIN_LENGTH:
        raise ValueError(
            f"The sentence is {len(ids)} tokens long ([CLS] and [SEP] included); the encoders were trained on "
            f"{TRAIN_LENGTH} and the learned positions stop there. Shorten it."
        )
    return ids


def ours_top_k(kind: str, ids: list[int], top_k: int) -> tuple[list[list[Filler]], torch.Tensor, float]:
    """Softmax over the vocabulary at each [MASK], its top-k, and the attention maps."""
    model, names = shipped_encoder(kind), tokenizer()
    started = time.perf_counter()
    with torch.no_grad():
        hidden, attentions = model.encode(torch.tensor([ids]))
        positions = [i for i, token_id in enumerate(ids) if token_id == names.mask_id]
        probabilities = model.head(hidden[0, positions], model.token_embedding.weight).softmax(dim=-1)
        best = probabilities.topk(top_k, dim=-1)
    seconds = time.perf_counter() - started
    fillers = [
        [Filler(int(i), names.token_pieces([int(i)])[0], float(p)) for p, i in zip(values, indices)]
        for values, indices in zip(best.values, best.indices)
    ]
    return fillers, torch.stack(attentions)[:, 0], seconds


def reference_top_k(kind: str, sentence: str, top_k: int) -> tuple[list[list[Filler]], float]:
    pipeline = reference_pipeline(kind)
    started = time.perf_counter()
    answer = pipeline(sentence, top_k=top_k)
    seconds = time.perf_counter() - started
    per_mask = answer if answer and isinstance(answer[0], list) else [answer]  # one mask: a flat list
    return [[Filler(a["token"], a["token_str"], a["score"]) for a in candidates] for candidates in per_mask], seconds


def fill_masks(sentence: str | None, kind: str, top_k) -> FillResult:
    """Ours and the fill-mask pipeline on the same weights and sentence."""
    top_k = whole_number(top_k, "Top-k", 1, MAX_TOP_K)
    ids = sentence_ids(sentence, kind)
    reference_pipeline(kind)  # loads and warms up both sides before anything is timed
    ours, attentions, ours_seconds = ours_top_k(kind, ids, top_k)
    reference, reference_seconds = reference_top_k(kind, sentence, top_k)
    names = tokenizer()
    return FillResult(
        pieces=names.token_pieces(ids),
        mask_positions=[i for i, token_id in enumerate(ids) if token_id == names.mask_id],
        ours=ours,
        reference=reference,
        ours_seconds=ours_seconds,
        reference_seconds=reference_seconds,
        attentions=attentions,
    )


def learned_position_table() -> torch.Tensor:
    return shipped_encoder("learned").position_embedding.weight.detach()


def checkpointing_rows() -> list[dict] | None:
    """The benchmark's checkpointing rows (bench/results/mlm.json), None before `python -m bench mlm` ran."""
    if not BENCH_RESULTS.exists():
        return None
    return json.loads(BENCH_RESULTS.read_text()).get("checkpointing")
