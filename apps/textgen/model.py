"""
GPT-2, from scratch, in one file: the model, a preallocated KV cache and sampling.

A GPT is a stack of Transformer decoder blocks (Vaswani et al. 2017) that predicts the next token.
GPT-2 (Radford et al. 2019) moved LayerNorm to the input of each sub-block ("pre-LN") and added a
final LayerNorm; the block is then

    x = x + attn(ln_1(x))      # causal multi-head self-attention
    x = x + mlp(ln_2(x))       # position-wise MLP, 4x wide, GELU

and the logits are ln_f(x) @ wte^T: the output head shares its weights with the token embedding
(Press & Wolf 2017). By default this module is exactly GPT-2, so the weights of Hugging Face's
`GPT2LMHeadModel` load into it one to one (see reference.py). As an option, the learned position
table can be replaced by rotary position embeddings (RoPE, Su et al. 2021).

Generation. Without a cache every new token re-runs the whole context: O(T^2) work per sequence.
With a KV cache the prompt runs once ("prefill"), then each step feeds only the newest token and
attends over the keys/values stored for all earlier positions. At batch 1 on a CPU such a step is a
chain of matrix-vector products, so its time is the time to stream the weights from memory plus
the fixed cost of every PyTorch op launched from Python. The step path here therefore keeps the op
count low: one fused q/k/v projection, a cache written in place into preallocated tensors,
attention over the filled part of the cache with `F.scaled_dot_product_attention`, and logits only
for the last position. Ways to store the weights so that they stream faster (an exact column-major
layout, an approximate int8 copy) live apart, in fast_layers.py, and apply to a model only when asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2's BPE vocabulary
    block_size: int = 1024  # context length: the most positions the model can see at once
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # on embeddings, attention weights and residual branches (training only)
    layer_norm_epsilon: float = 1e-5
    position_encoding: str = "learned"  # "learned" (GPT-2's wpe table) or "rope" (rotary)
    rope_theta: float = 10000.0  # RoPE base frequency, used only with position_encoding="rope"

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}): "
                "each head gets n_embd // n_head dimensions"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.layer_norm_epsilon <= 0:
            raise ValueError(f"GPTConfig.layer_norm_epsilon must be positive, got {self.layer_norm_epsilon}")
        if self.position_encoding not in ("learned", "rope"):
            raise ValueError(f"GPTConfig.position_encoding must be 'learned' or 'rope', got {self.position_encoding!r}")
        if self.position_encoding == "rope":
            if self.head_size % 2 != 0:
                raise ValueError(
                    f"RoPE rotates pairs of dimensions: the head size n_embd // n_head ({self.head_size}) must be even"
                )
            if self.rope_theta <= 0:
                raise ValueError(f"GPTConfig.rope_theta must be positive, got {self.rope_theta}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head


# -----------------------------------------------------------------------------
# Rotary position embeddings (RoPE, Su et al. 2021, "RoFormer", eq. 34)
# Each pair of dimensions (i, i + hs/2) of q and k is rotated by the angle pos * theta^(-2i/hs), so
# q_m . k_n depends only on the offset m - n. We use the "rotate half" pairing of GPT-NeoX / Llama.


def rope_tables(config: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of pos * inv_freq for every position of the block, each (block_size, hs)."""
    hs = config.head_size
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, hs, 2, dtype=torch.float32) / hs))  # (hs/2,)
    angles = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)  # (block_size, hs/2)
    angles = torch.cat((angles, angles), dim=-1)  # (block_size, hs)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hs) by the angles of its positions; cos, sin are (T, hs)."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated_half = torch.cat((-x2, x1), dim=-1)
    return x * cos + rotated_half * sin


# -----------------------------------------------------------------------------
# KV cache


class KVCache:
    """
    Keys and values of every layer for the positions seen so far, preallocated once.

    k and v are (n_layer, B, nh, max_len, hs); each step writes its new keys/values in place at
    [length, length + T) and attention reads the filled prefix [0, length + T). Nothing is
    reallocated or concatenated while generating.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        self.max_len = config.block_size if max_len is None else max_len
        if not 0 < self.max_len <= config.block_size:
            raise ValueError(f"KVCache max_len must be in [1, block_size={config.block_size}], got {max_len}")
        shape = (config.n_layer, batch_size, config.n_head, self.max_len, config.head_size)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.layers = [(self.k[i], self.v[i]) for i in range(config.n_layer)]  # per-layer views
        self.length = 0  # number of positions filled

    def reset(self):
        self.length = 0


# -----------------------------------------------------------------------------
# The model


class CausalSelfAttention(nn.Module):
    """Multi-head attention where position t attends to positions <= t (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.head_size = config.head_size
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # q, k, v for all heads in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)  # output projection
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, kv=None, start=0):
        # x: (B, T, C); rope: (cos, sin) each (T, hs) or None; kv: this layer's (k, v) cache views
        # (B, nh, max_len, hs) or None; start: position of x's first token.
        B, T, C = x.size()
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.head_size)  # (B, T, 3, nh, hs)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, T, hs)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if kv is not None:
            k_cache, v_cache = kv
            end = start + T
            k_cache[:, :, start:end] = k  # written in place
            v_cache[:, :, start:end] = v
            k, v = k_cache[:, :, :end], v_cache[:, :, :end]  # (B, nh, end, hs), views
        # A single new token may attend to every cached position: no mask at all. A block starting at
        # position 0 needs the plain causal mask. A block after cached positions needs the causal
        # mask shifted by `start`.
        mask, is_causal = None, False
        if T > 1:
            if start == 0:
                is_causal = True
            else:
                mask = torch.ones(T, start + T, dtype=torch.bool, device=x.device).tril(diagonal=start)
        # softmax(q k^T / sqrt(hs)) v. No dropout on the attention weights (GPT-2 has some): on a CPU it
        # forces SDPA's slow unfused path, about 10x; dropout on the residual branches still regularizes.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Position-wise feed-forward network, 4x wide, with GPT-2's tanh approximation of GELU."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        # GELU(x) ~ 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel 2016, eq. 2)
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LN Transformer block (GPT-2, section 2.3): LayerNorm at the input of each residual branch."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, kv=None, start=0):
        x = x + self.attn(self.ln_1(x), rope, kv, start)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        modules = dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon),
        )
        if config.position_encoding == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)  # position embedding
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying (Press & Wolf 2017)

        if config.position_encoding == "rope":
            # constant tables, not saved in the state dict (which then holds GPT-2's names only)
            cos, sin = rope_tables(config)
            self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, hs)
            self.register_buffer("rope_sin", sin, persistent=False)

        # GPT-2 init: N(0, 0.02) everywhere, biases 0, and the projections that write into the
        # residual stream scaled by 1/sqrt(2 * n_layer) (two residual branches per block, GPT-2 sec. 2.3).
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """Number of parameters (the tied head counted once); optionally without the embedding tables."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.transformer.wte.weight.numel()
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
        return n

    def new_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        weight = self.transformer.wte.weight
        return KVCache(self.config, batch_size, max_len, dtype=weight.dtype, device=weight.device)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None):
        """
        idx: (B, T) token ids. Returns (logits, loss).

        - Without a cache: logits for every position, (B, T, vocab_size). With targets (B, T) (the
          next token at each position, already shifted; -100 is ignored) loss is the mean
          cross-entropy, else None.
        - With a cache: idx holds the tokens after the cache.length positions already cached (the
          prompt in a "prefill", then one token per step); their keys/values are stored and only the
          last position's logits (B, 1, vocab_size) are computed, as generation needs nothing else.
        """
        x = self.hidden_states(idx, cache)  # (B, T, C)
        if cache is not None and targets is None:
            return self.lm_head(x[:, -1:, :]), None  # (B, 1, vocab_size)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss

    def hidden_states(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final hidden states ln_f(x), (B, T, C), of idx (B, T); with a cache, see forward()."""
        B, T = idx.size()
        start = 0 if cache is None else cache.length
        end = start + T
        limit = self.config.block_size if cache is None else cache.max_len
        if end > limit:
            raise ValueError(f"cannot run positions [{start}, {end}): the context holds only {limit}")

        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.position_encoding == "learned":
            x = x + self.transformer.wpe.weight[start:end]  # + (T, C): rows of the position table
        else:
            rope = (self.rope_cos[start:end], self.rope_sin[start:end])  # each (T, hs)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            x = block(x, rope, None if cache is None else cache.layers[i], start)
        if cache is not None:
            cache.length = end
        return self.transformer.ln_f(x)

    def last_logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits of the next token after idx (B, T) without a cache, (B, vocab_size): the head runs once."""
        return self.lm_head(self.hidden_states(idx[:, -self.config.block_size :])[:, -1, :])

    # -------------------------------------------------------------------------
    # Generation

    @torch.inference_mode()
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
        eos_id: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """
        Yield the next token ids, (B,), one step at a time, for up to max_new_tokens steps.

        Sampling: see sample_next_token (temperature 0 or top_p 0 = greedy; a seed makes it
        reproducible through a local torch.Generator, the global RNG is left alone).
        Context: a prompt longer than block_size is trimmed to its last block_size tokens.
          - use_cache=False: like nanoGPT, every step re-runs the last block_size tokens.
          - use_cache=True: the prompt is prefilled once, then one token per step. When the cache is
            full (block_size positions) we slide the window: drop the oldest quarter, re-prefill the
            remaining 3/4 in one forward, and continue. Up to block_size total tokens both paths
            give the same logits; past that, the cached path sees a context 3/4 to 1 block long
            instead of exactly one block, so the two may then differ.
        eos_id: a row that produced eos_id keeps emitting eos_id; the stream stops when all rows have.
        Bad arguments raise ValueError when the first token is asked for.
        """
        check_sampling_args(temperature, top_k, top_p)
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"idx must be a (B, T) tensor of token ids with T >= 1, got shape {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        block_size = self.config.block_size
        idx = idx[:, -block_size:]  # trim a too-long prompt to the context length
        B, T = idx.shape
        generator = None
        if seed is not None:
            generator = torch.Generator(device=idx.device).manual_seed(seed)
        # All tokens so far, preallocated: the context of the next step is a slice of it.
        tokens = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=idx.device)
        tokens[:, :T] = idx
        n = T  # tokens filled
        finished = torch.zeros(B, dtype=torch.bool, device=idx.device) if eos_id is not None else None

        cache = self.new_cache(B) if use_cache else None
        keep = block_size - block_size // 4  # tokens kept when the cached window slides
        for _ in range(max_new_tokens):
            if cache is None:
                logits = self.last_logits(tokens[:, :n])  # re-runs the last block_size tokens
            else:
                if cache.length == 0:  # prefill
                    context = tokens[:, :n]
                elif cache.length < block_size:  # one new token
                    context = tokens[:, n - 1 : n]
                else:  # window full: slide it
                    cache.reset()
                    context = tokens[:, n - keep : n]
                logits = self(context, cache=cache)[0][:, -1, :]  # (B, V)
            next_token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
            if finished is not None:
                next_token = next_token.masked_fill(finished, eos_id)
                finished |= next_token == eos_id
            tokens[:, n] = next_token
            n += 1
            yield next_token
            if finished is not None and bool(finished.all()):
                return

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        use_cache: bool = True,
        eos_id: int | None = None,
    ) -> torch.Tensor:
        """
        Continue idx (B, T) by up to max_new_tokens tokens; returns (B, T' + n) where T' = min(T, block_size)
        (a too-long prompt is trimmed to its last block_size tokens) and n <= max_new_tokens (fewer
        only when every row reached eos_id). Arguments as in stream(). The steps run in inference mode;
        the returned tensor is an ordinary one (usable as the input of a training step).
        """
        prompt = idx[:, -self.config.block_size :]
        new = list(self.stream(idx, max_new_tokens, temperature, top_k, top_p, seed, use_cache, eos_id))
        if not new:
            return prompt.clone()
        return torch.cat((prompt, torch.stack(new, dim=1)), dim=1)

    @torch.no_grad()
    def next_token_probabilities(self, idx: torch.Tensor) -> torch.Tensor:
        """softmax of the logits at the last position, (vocab_size,), for a single sequence idx (1, T) or (T,)."""
        if idx.dim() == 1:
            idx = idx.unsqueeze(0)
        if idx.dim() != 2 or idx.size(0) != 1 or idx.size(1) == 0:
            raise ValueError(f"expected one non-empty sequence, (1, T) or (T,), got shape {tuple(idx.shape)}")
        return F.softmax(self.last_logits(idx)[0].float(), dim=-1)


# -----------------------------------------------------------------------------
# Sampling: logits (B, V) -> next token ids (B,)


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None):
    if temperature is None or temperature < 0 or math.isnan(temperature):
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be a positive integer (or None/0 for no top-k), got {top_k}")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (0 = greedy, None/1 = no nucleus filter), got {top_p}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the rest to -inf (Fan et al. 2018)."""
    k = min(int(k), logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """
    Nucleus sampling (Holtzman et al. 2020, eq. 2): keep the smallest set of most likely tokens whose
    probabilities sum to at least p, set the rest to -inf. The most likely token is always kept.
    """
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    sorted_probs = sorted_logits.softmax(dim=-1)
    # drop a token if the tokens ranked before it already reach p (so the first is never dropped)
    drop_sorted = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= p
    drop = drop_sorted.scatter(-1, sorted_idx, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """
    logits (B, V) -> token ids (B,).
    temperature 0 (or top_p 0) = greedy argmax. Otherwise softmax(logits / temperature) restricted to
    the top_k tokens (None or 0: all) and to the top_p nucleus (None or 1: all), then one draw.
    """
    if temperature == 0 or top_p == 0:
        return torch.argmax(logits, dim=-1)
    logits = logits.float() / temperature  # T < 1 sharpens, T > 1 flattens
    if top_k:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
