"""
Two baselines for the GPT, on the same token ids: a Kneser-Ney n-gram and an LSTM.

Both read the ids the GPT reads (BPE ids in [0, vocab_size), or bytes with vocab_size 256), so
all three are compared in bits per character (`bits_per_character`): the total negative
log-likelihood of a held-out text in nats, divided by its number of characters and by ln 2. That
figure does not depend on how the text was cut into tokens.

Interpolated modified Kneser-Ney (Chen & Goodman 1998, "An empirical study of smoothing techniques
for language modeling", section "modified Kneser-Ney"). An n-gram model predicts a token w from the
last n-1 tokens h. At each order k = n, n-1, ..., 1 the probability is a discounted relative
frequency plus a share of the next-lower order (the context h minus its oldest token, h'):

    p_k(w | h) = max(c_k(h w) - D_k(c_k(h w)), 0) / c_k(h .)  +  gamma_k(h) * p_{k-1}(w | h')
    gamma_k(h) = (D_k1 N1(h .) + D_k2 N2(h .) + D_k3+ N3+(h .)) / c_k(h .)
    p_0(w)     = 1 / vocab_size

where c_k(h .) sums c_k(h w) over w and N1, N2, N3+ count the tokens w after h with c_k = 1, 2,
>= 3. Every subtracted unit of count goes to gamma, so each p_k sums to 1 if p_{k-1} does, and
p_0 (uniform) does: the model is a proper distribution for any context. A context never seen at
order k (c_k(h .) = 0) passes p_{k-1} on unchanged.

  - Counts. At the highest order c_n is the raw count. At lower orders it is the continuation
    count N1+(. h w): the number of different tokens seen just before "h w" (Kneser & Ney 1995).
    A lower order is only consulted when the longer context was rare, so it should measure how many
    contexts a token follows, not how often it occurs ("Francisco" is frequent, but almost only
    after "San"). The k-gram at the very start of the training sequence has no token before it:
    it gets one extra, virtual, left neighbour (the sequence start; KenLM likewise treats n-grams
    that begin with <s> apart), so every stored count is >= 1.
  - Discounts, three per order, from the count-of-counts n_c (how many k-grams have count c):
        Y = n1 / (n1 + 2 n2),  D1 = 1 - 2 Y n2/n1,  D2 = 2 - 3 Y n3/n2,  D3+ = 3 - 4 Y n4/n3.
    Each is clipped to [MIN_DISCOUNT, c] so that c - D(c) >= 0 and every token keeps a probability
    above zero; where the formula is undefined (n_c = 0, tiny or synthetic data) the next smaller
    discount is reused.

Storage: a token trie flattened into one sorted int64 array per order. A k-gram gets an id (its
index in the order-k array), and its key is id(first k-1 tokens) * vocab_size + last token, so the
k-grams that share a context are contiguous and sorted by token. Counting is one `np.unique` per
order; scoring a held-out sequence is one `np.searchsorted` per order for all positions at once.

The LSTM (Hochreiter & Schmidhuber 1997; the recipe of Zaremba et al. 2014): embedding -> stacked
LSTM -> dropout -> linear to the vocabulary, with the output matrix tied to the embedding (Press &
Wolf 2017, Inan et al. 2017). Its state carries the whole history, so generation and scoring feed
each token once and never re-run the prefix.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from apps.textgen.model import check_sampling_args, sample_next_token

MIN_DISCOUNT = 0.01  # keeps every probability > 0 on degenerate data; does not bind on the Wikipedia sample


def bits_per_character(total_nll_nats: float, num_characters: int) -> float:
    """Total nats over a held-out text / its characters / ln 2: comparable across tokenizers."""
    if num_characters <= 0:
        raise ValueError(f"num_characters must be positive, got {num_characters}")
    return total_nll_nats / num_characters / math.log(2)


# ---------------------------------------------------------------------------------------------
# Interpolated modified Kneser-Ney n-gram
# ---------------------------------------------------------------------------------------------


@dataclass
class NGramConfig:
    order: int = 3  # n: a token is predicted from the previous n-1 tokens
    vocab_size: int = 4096


def modified_kneser_ney_discounts(counts: np.ndarray) -> np.ndarray:
    """
    (D1, D2, D3+) of Chen & Goodman from the count-of-counts of one order's counts:
    Y = n1/(n1 + 2 n2) and D_c = c - (c+1) Y n_{c+1}/n_c, clipped to [MIN_DISCOUNT, c].
    """
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == c)) for c in (1, 2, 3, 4))
    count_of_counts = {1: n1, 2: n2, 3: n3, 4: n4}
    y = n1 / (n1 + 2 * n2) if n1 + 2 * n2 > 0 else 0.5
    discounts = []
    fallback = y
    for c in (1, 2, 3):
        if count_of_counts[c] > 0:
            d = c - (c + 1) * y * count_of_counts[c + 1] / count_of_counts[c]
        else:  # no k-gram has count c: no evidence, reuse the smaller discount
            d = fallback
        d = min(max(d, MIN_DISCOUNT), float(c))
        discounts.append(d)
        fallback = d
    return np.array(discounts, dtype=np.float64)


class KneserNeyNGram:
    """Interpolated modified Kneser-Ney n-gram over integer token ids (see the module docstring)."""

    def __init__(self, config: NGramConfig):
        if config.order < 1:
            raise ValueError(f"order must be >= 1, got {config.order}")
        if config.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {config.vocab_size}")
        self.config = config
        # Per order k = 1..n (list index k-1):
        self.keys: list[np.ndarray] = []  # sorted int64: context_id * vocab_size + token
        self.counts: list[np.ndarray] = []  # raw (k = n) or continuation (k < n) counts, >= 1
        self.discounts: list[np.ndarray] = []  # (D1, D2, D3+)
        self._interpolation_mass: list[np.ndarray] = []  # (c - D(c)) / c(h .), per k-gram
        self._backoff_weight: list[np.ndarray] = []  # gamma(h) per context id (1.0: unseen context)

    @property
    def is_fitted(self) -> bool:
        return len(self.keys) == self.config.order

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, token_ids: Sequence[int], progress: bool = False) -> KneserNeyNGram:
        """Count every k-gram of token_ids for k = 1..order, then estimate discounts and weights."""
        tokens = self._as_token_array(token_ids)
        n, vocab_size = self.config.order, self.config.vocab_size
        if len(tokens) < n:
            raise ValueError(f"fit needs at least order={n} tokens, got {len(tokens)}")
        levels = range(1, n + 1)
        if progress:
            from tqdm.auto import tqdm

            levels = tqdm(levels, desc=f"Kneser-Ney {n}-gram", unit="order")
        self.keys, self.counts = [], []
        # prefix_ids[i] = id of the (k-1)-gram starting at position i; the empty 0-gram has id 0.
        prefix_ids = np.zeros(len(tokens), dtype=np.int64)
        for k in levels:
            positions = len(tokens) - k + 1  # k-grams start at 0 .. N-k
            key = prefix_ids[:positions] * vocab_size + tokens[k - 1 :]
            unique_keys, first_position, gram_ids = np.unique(key, return_index=True, return_inverse=True)
            if k > 1:
                # Continuation counts of order k-1: each distinct k-gram "v g" adds one to its suffix
                # g, the (k-1)-gram that starts one position after it.
                suffix_ids = prefix_ids[first_position + 1]
                continuation = np.bincount(suffix_ids, minlength=len(self.keys[-1]))
                continuation[prefix_ids[0]] += 1  # the sequence start: a virtual left neighbour
                self.counts.append(continuation)
            self.keys.append(unique_keys)
            prefix_ids = gram_ids.reshape(-1)
        self.counts.append(np.bincount(prefix_ids, minlength=len(self.keys[-1])))  # raw counts at order n
        self.discounts = [modified_kneser_ney_discounts(counts) for counts in self.counts]
        self._compute_weights()
        return self

    def _compute_weights(self):
        """Precompute (c - D(c)) / c(h .) per k-gram and gamma(h) per context (equations above)."""
        vocab_size = self.config.vocab_size
        self._interpolation_mass, self._backoff_weight = [], []
        for k in range(1, self.config.order + 1):
            keys, counts, discounts = self.keys[k - 1], self.counts[k - 1], self.discounts[k - 1]
            num_contexts = 1 if k == 1 else len(self.keys[k - 2])  # contexts are the (k-1)-grams
            context_ids = keys // vocab_size
            discount = discounts[np.minimum(counts, 3) - 1]  # D1, D2 or D3+ for each k-gram
            context_total = np.bincount(context_ids, weights=counts, minlength=num_contexts)
            discounted_total = np.bincount(context_ids, weights=discount, minlength=num_contexts)
            seen = context_total > 0
            safe_total = np.where(seen, context_total, 1.0)
            self._backoff_weight.append(np.where(seen, discounted_total / safe_total, 1.0))
            self._interpolation_mass.append((counts - discount) / safe_total[context_ids])

    # -- scoring --------------------------------------------------------------------------------

    def _lookup(self, k: int, context_ids: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Index in the order-k table of each (context, token) k-gram, or -1 where it was never seen."""
        keys = self.keys[k - 1]
        query = context_ids * self.config.vocab_size + tokens
        position = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        found = (context_ids >= 0) & (keys[position] == query)
        return np.where(found, position, -1)

    def _walk(self, tokens: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """
        For k = 1..order yield (k, context_ids, gram_ids) over every position t of tokens:
        context_ids[t] = id of the (k-1)-gram tokens[t-k+1 .. t-1] (-1: unseen, or t < k-1) and
        gram_ids[t] = id of the k-gram tokens[t-k+1 .. t] (-1: unseen). The k-gram ending at t is
        the (k-1)-gram ending at t-1 followed by tokens[t], so one lookup per order serves all t.
        """
        ending_ids = np.zeros(len(tokens), dtype=np.int64)  # the empty gram ends everywhere: id 0
        for k in range(1, self.config.order + 1):
            context_ids = np.empty_like(ending_ids)
            context_ids[1:] = ending_ids[:-1]
            context_ids[0] = 0 if k == 1 else -1  # nothing precedes the first token
            ending_ids = self._lookup(k, context_ids, tokens)
            yield k, context_ids, ending_ids

    def _sequence_probabilities(self, tokens: np.ndarray) -> np.ndarray:
        """p(tokens[t] | up to order-1 previous tokens) for every t, built from p_0 upwards."""
        self._check_fitted()
        probability = np.full(len(tokens), 1.0 / self.config.vocab_size)  # p_0
        for k, context_ids, gram_ids in self._walk(tokens):
            gamma = np.where(context_ids >= 0, self._backoff_weight[k - 1][np.maximum(context_ids, 0)], 1.0)
            mass = np.where(gram_ids >= 0, self._interpolation_mass[k - 1][np.maximum(gram_ids, 0)], 0.0)
            probability = mass + gamma * probability
        return probability

    def total_nll(self, token_ids: Sequence[int]) -> float:
        """
        Sum of -ln p(x_t | x_{t-n+1} .. x_{t-1}) over every token of a held-out sequence; the
        first tokens use the context there is (the very first token: the unigram level alone).
        """
        tokens = self._as_token_array(token_ids)
        if len(tokens) == 0:
            return 0.0
        return float(-np.log(self._sequence_probabilities(tokens)).sum())

    def log_prob(self, context: Sequence[int], token: int) -> float:
        """ln p(token | the last order-1 tokens of context)."""
        tokens = self._as_token_array(self._history(context) + [token])
        return float(np.log(self._sequence_probabilities(tokens)[-1]))

    def next_token_distribution(self, context: Sequence[int]) -> np.ndarray:
        """p(. | the last order-1 tokens of context), (vocab_size,) float64, sums to 1."""
        self._check_fitted()
        n, vocab_size = self.config.order, self.config.vocab_size
        history = self._as_token_array(self._history(context))
        # context_ids[k] = id of the last k-1 tokens of history (the order-k context), or -1
        context_ids = [0] + [-1] * (n - 1)
        if len(history) > 0:
            for k, _, gram_ids in self._walk(history):
                if k < n and k <= len(history):
                    context_ids[k] = int(gram_ids[-1])
        probability = np.full(vocab_size, 1.0 / vocab_size)  # p_0
        for k in range(1, n + 1):
            context_id = context_ids[k - 1]
            if context_id < 0:  # unseen context: p_k = p_{k-1}
                continue
            keys = self.keys[k - 1]
            start, end = np.searchsorted(keys, [context_id * vocab_size, (context_id + 1) * vocab_size])
            probability *= self._backoff_weight[k - 1][context_id]
            probability[keys[start:end] - context_id * vocab_size] += self._interpolation_mass[k - 1][start:end]
        return probability

    def generate(
        self,
        context: list[int],
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        top_p: float | None = None,
    ) -> list[int]:
        """
        Continue context by max_new_tokens sampled tokens; returns context + the new tokens.
        Sampling as in the GPT (`sample_next_token` on ln p): temperature 0 = greedy.
        """
        check_sampling_args(temperature, top_k, top_p)
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        tokens = list(context)
        for _ in range(max_new_tokens):
            with np.errstate(divide="ignore"):
                logits = torch.from_numpy(np.log(self.next_token_distribution(tokens)))[None]  # (1, V)
            tokens.append(int(sample_next_token(logits, temperature, top_k, top_p, generator)[0]))
        return tokens

    # -- persistence ----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the counts and discounts to an .npz of plain arrays (no pickle)."""
        self._check_fitted()
        arrays = {"order": np.array(self.config.order), "vocab_size": np.array(self.config.vocab_size)}
        for k in range(1, self.config.order + 1):
            arrays[f"keys_{k}"] = self.keys[k - 1]
            arrays[f"counts_{k}"] = self.counts[k - 1].astype(np.int32)
            arrays[f"discounts_{k}"] = self.discounts[k - 1]
        path = Path(path)
        with open(path, "wb") as file:  # a file object: numpy does not append ".npz" to the name
            np.savez_compressed(file, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> KneserNeyNGram:
        with np.load(path, allow_pickle=False) as data:
            model = cls(NGramConfig(order=int(data["order"]), vocab_size=int(data["vocab_size"])))
            for k in range(1, model.config.order + 1):
                model.keys.append(data[f"keys_{k}"].astype(np.int64))
                model.counts.append(data[f"counts_{k}"].astype(np.int64))
                model.discounts.append(data[f"discounts_{k}"].astype(np.float64))
        model._compute_weights()
        return model

    # -- helpers --------------------------------------------------------------------------------

    def _as_token_array(self, token_ids: Sequence[int]) -> np.ndarray:
        tokens = np.asarray(token_ids, dtype=np.int64).reshape(-1)
        if len(tokens) and (tokens.min() < 0 or tokens.max() >= self.config.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.config.vocab_size}), got values in [{tokens.min()}, {tokens.max()}]"
            )
        return tokens

    def _history(self, context: Sequence[int]) -> list[int]:
        """The last order-1 tokens of context: all an n-gram conditions on."""
        return list(context)[-(self.config.order - 1) :] if self.config.order > 1 else []

    def _check_fitted(self):
        if not self.is_fitted:
            raise ValueError("the n-gram model is not fitted: call fit(token_ids) or load(path) first")


def choose_order(
    train_ids: Sequence[int],
    validation_ids: Sequence[int],
    orders: Sequence[int] = (2, 3, 4, 5),
    vocab_size: int = 4096,
    progress: bool = False,
) -> tuple[int, dict[int, float]]:
    """
    Fit one Kneser-Ney model per order on train_ids and score validation_ids:
    returns (the order with the lowest validation NLL, {order: NLL in nats per token}).
    """
    if not orders:
        raise ValueError("orders must not be empty")
    if len(validation_ids) == 0:
        raise ValueError("validation_ids must not be empty")
    nll_per_token = {}
    for order in orders:
        model = KneserNeyNGram(NGramConfig(order=order, vocab_size=vocab_size)).fit(train_ids, progress=progress)
        nll_per_token[order] = model.total_nll(validation_ids) / len(validation_ids)
    best_order = min(nll_per_token, key=nll_per_token.get)
    return best_order, nll_per_token


# ---------------------------------------------------------------------------------------------
# LSTM language model
# ---------------------------------------------------------------------------------------------


@dataclass
class LSTMConfig:
    vocab_size: int = 4096
    n_embd: int = 256
    hidden_size: int = 512
    n_layers: int = 2
    dropout: float = 0.1
    tie_weights: bool = True  # output matrix = embedding; a projection bridges hidden_size != n_embd


LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (n_layers, B, hidden_size)


class LSTMLanguageModel(nn.Module):
    """
    p(x_t | x_<t) = softmax(W_out proj(dropout(h_t)) + b), h_t from a stacked LSTM over the embeddings.

    With tied weights W_out is the embedding matrix (V, n_embd); when hidden_size != n_embd a linear
    projection (hidden_size -> n_embd, no bias) maps h_t into the embedding space first.
    Zero-state prediction: before any token is read the top hidden state is h = 0, so the model's
    prediction for the very first token is softmax(W_out proj(0) + b) = softmax(b), the output bias
    (`initial_logits`). That is how `total_nll` scores the first token.
    """

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.lstm = nn.LSTM(
            config.n_embd,
            config.hidden_size,
            num_layers=config.n_layers,
            batch_first=True,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
        )  # dropout between layers
        self.dropout = nn.Dropout(config.dropout)
        head_inputs = config.hidden_size
        self.projection = None
        if config.tie_weights:
            if config.hidden_size != config.n_embd:
                self.projection = nn.Linear(config.hidden_size, config.n_embd, bias=False)
            head_inputs = config.n_embd
        self.head = nn.Linear(head_inputs, config.vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)  # Zaremba et al.: small uniform init
        nn.init.zeros_(self.head.bias)
        if config.tie_weights:
            self.head.weight = self.embedding.weight

    def num_parameters(self) -> int:
        """Trainable parameters, the tied embedding/output matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, state: LSTMState | None = None):
        """idx (B, T) -> logits (B, T, V), mean cross-entropy loss (or None), the state after x_T."""
        x = self.dropout(self.embedding(idx))  # (B, T, n_embd)
        hidden, state = self.lstm(x, state)  # (B, T, hidden_size); state: (h, c)
        hidden = self.dropout(hidden)
        if self.projection is not None:
            hidden = self.projection(hidden)  # (B, T, n_embd)
        logits = self.head(hidden)  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
        return logits, loss, state

    def initial_logits(self) -> torch.Tensor:
        """Logits predicted from the zero state, before any token: the output bias, (V,)."""
        return self.head.bias

    @torch.no_grad()
    def next_token_probabilities(self, idx: torch.Tensor) -> torch.Tensor:
        """p(next | idx) for one sequence idx (1, T) or (T,): (vocab_size,). T = 0 gives softmax(bias)."""
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        if idx.dim() != 2 or idx.size(0) != 1:
            raise ValueError(f"expected one sequence, (1, T) or (T,), got shape {tuple(idx.shape)}")
        was_training = self.training
        self.eval()
        if idx.size(1) == 0:
            logits = self.initial_logits()
        else:
            logits = self(idx)[0][0, -1]
        self.train(was_training)
        return F.softmax(logits.float(), dim=-1)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
    ) -> torch.Tensor:
        """
        Continue idx (B, T) by max_new_tokens tokens; returns (B, T + max_new_tokens). The prompt
        runs once; each step then feeds only the newest token with the carried (h, c) state.
        Sampling as in the GPT: temperature 0 (or top_p 0) = greedy; a seed uses a local generator.
        """
        check_sampling_args(temperature, top_k, top_p)
        if idx.dim() != 2:
            raise ValueError(f"idx must be a (B, T) tensor of token ids, got shape {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        generator = torch.Generator(device=idx.device).manual_seed(seed) if seed is not None else None
        was_training = self.training
        self.eval()
        state = None
        if idx.size(1) > 0:
            logits, _, state = self(idx)  # prefill: (B, T, V)
            next_logits = logits[:, -1, :]  # (B, V)
        else:
            next_logits = self.initial_logits().expand(idx.size(0), -1)
        new_tokens = []
        for step in range(max_new_tokens):
            token = sample_next_token(next_logits, temperature, top_k, top_p, generator)  # (B,)
            new_tokens.append(token)
            if step + 1 < max_new_tokens:
                logits, _, state = self(token[:, None], state=state)  # one token, (B, 1, V)
                next_logits = logits[:, -1, :]
        self.train(was_training)
        if not new_tokens:
            return idx.clone()
        return torch.cat([idx, torch.stack(new_tokens, dim=1)], dim=1)

    @torch.no_grad()
    def total_nll(self, token_ids: torch.Tensor, chunk_length: int = 256) -> float:
        """
        Sum of -ln p(x_t | x_<t) over every token of a 1-D sequence, in nats. The first token is
        scored against the zero-state prediction softmax(bias) (see the class docstring); the rest
        are read in chunks of chunk_length tokens, the (h, c) state carried from one chunk to the
        next, so each token is conditioned on the whole sequence before it and scored once.
        """
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}")
        tokens = torch.as_tensor(token_ids, dtype=torch.long, device=self.head.bias.device).reshape(-1)
        if tokens.numel() == 0:
            return 0.0
        was_training = self.training
        self.eval()
        total = -F.log_softmax(self.initial_logits().double(), dim=-1)[tokens[0]].item()
        state = None
        for start in range(0, tokens.numel() - 1, chunk_length):
            targets = tokens[start + 1 : start + 1 + chunk_length]  # (L,)
            inputs = tokens[start : start + targets.numel()]  # (L,): x_t predicts x_{t+1}
            logits, _, state = self(inputs[None], state=state)  # (1, L, V)
            total += F.cross_entropy(logits[0].double(), targets, reduction="sum").item()
        self.train(was_training)
        return total
