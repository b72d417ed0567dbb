"""A BERT-style encoder for masked language modelling, with three kinds of position information.

BERT (Devlin et al. 2019) is the Transformer encoder of Vaswani et al. (2017) trained to fill in
blanks: 15% of the tokens are chosen, most of them replaced by [MASK], and the model predicts the
original token from the words on both sides. Every block is post-LayerNorm, as in the original
Transformer: x <- LayerNorm(x + Attention(x)), then x <- LayerNorm(x + FeedForward(x)).

Self-attention is blind to order (permute the tokens and the outputs permute with them), so the
position has to be put in. `EncoderConfig.position_kind` chooses how:

* "learned"    (BERT): a trainable vector per position, added to the token embedding. The table has
                `max_positions` rows, so a longer input has no position vector: the model refuses it.
* "sinusoidal" (Vaswani et al. 2017, section 3.5): a fixed vector added to the token embedding (which
                is multiplied by sqrt(d) first, section 3.4),
                PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)).
                Defined for any position; "an absolute encoding that wants to be relative", since
                PE(pos + k) is a fixed linear function (a rotation) of PE(pos).
* "rotary"     (RoFormer, Su et al. 2021, eq. 34): nothing is added to the embeddings; instead each
                query and key is rotated, pair of coordinates (2i, 2i+1) by the angle pos * theta_i with
                theta_i = 10000^(-2i/d_head). A rotation by angle m*theta dotted with one by n*theta
                depends on m - n only, so the attention score q_m . k_n sees the offset, not the place.

`checkpointing=True` wraps each block in `torch.utils.checkpoint` (Chen et al. 2016, "Training Deep
Nets with Sublinear Memory Cost"): the forward pass keeps only each block's input, and the backward
pass recomputes the block's inside. The gradients are the same; memory falls, time rises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

POSITION_KINDS = ("learned", "sinusoidal", "rotary")
IGNORE_INDEX = -100  # label of a token that is not predicted (PyTorch's and transformers' convention)


@dataclass
class EncoderConfig:
    vocab_size: int = 4100
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    position_kind: str = "learned"  # one of POSITION_KINDS
    max_positions: int = 128  # rows of the learned table (sinusoidal and rotary work at any length)
    type_vocab_size: int = 2  # segments A and B
    layer_norm_eps: float = 1e-12
    dropout: float = 0.1
    pad_token_id: int = 0
    checkpointing: bool = False  # recompute each block in the backward pass instead of storing it

    def __post_init__(self):
        if self.position_kind not in POSITION_KINDS:
            raise ValueError(f"position_kind must be one of {POSITION_KINDS}, got {self.position_kind!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.position_kind == "rotary" and (self.hidden_size // self.num_heads) % 2:
            raise ValueError("rotary positions rotate pairs of coordinates: the head size must be even")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads


# ---------------------------------------------------------------------------------------------
# Position encodings
# ---------------------------------------------------------------------------------------------


def inverse_frequencies(dim: int) -> torch.Tensor:
    """theta_i = 10000^(-2i/dim) for i = 0 .. dim/2 - 1, in float64 (angles pos * theta reach the
    hundreds, where float32 would round the sine)."""
    return 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)


def sinusoidal_table(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Vaswani et al. eq. (section 3.5): sin on even coordinates, cos on odd ones. (T,) -> (T, dim)."""
    angles = positions.double()[:, None] * inverse_frequencies(dim)[None, :]  # (T, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2).float()  # (T, dim): sin, cos, sin, ...


def rotary_angles(positions: torch.Tensor, head_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of pos * theta_i, each (T, head_size/2): one angle per pair of coordinates."""
    angles = positions.double()[:, None] * inverse_frequencies(head_size)[None, :]
    return angles.cos().float(), angles.sin().float()


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoFormer eq. 34: rotate each pair (x_2i, x_2i+1) of the last axis by its angle.

    x: (B, H, T, D); cos, sin: (T, D/2). RoFormer's layout pairs neighbouring coordinates; Llama's
    "rotate half" pairs i with i + D/2, which is the same rotation after a fixed permutation of q and k.
    """
    even, odd = x[..., 0::2], x[..., 1::2]  # (B, H, T, D/2) each
    rotated_even = even * cos - odd * sin
    rotated_odd = even * sin + odd * cos
    return torch.stack([rotated_even, rotated_odd], dim=-1).flatten(-2)  # (B, H, T, D), pairs back in place


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product attention (Vaswani et al. eq. 1): softmax(q k^T / sqrt(d)) v."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.config.num_heads, self.config.head_size).transpose(1, 2)  # (B, H, T, D)

    def forward(
        self, x: torch.Tensor, additive_mask: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, C); additive_mask: (B, 1, 1, T), 0 for real keys and a huge negative for padding.
        Returns the output (B, T, C) and the attention probabilities (B, H, T, T)."""
        q, k, v = self.split_heads(self.query(x)), self.split_heads(self.key(x)), self.split_heads(self.value(x))
        if rotary is not None:
            q, k = rotate_pairs(q, *rotary), rotate_pairs(k, *rotary)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.config.head_size) + additive_mask  # (B, H, T, T)
        probabilities = scores.softmax(dim=-1)
        context = self.dropout(probabilities) @ v  # (B, H, T, D)
        context = context.transpose(1, 2).reshape(x.shape)  # (B, T, C): heads side by side
        return self.output(context), probabilities


class FeedForward(nn.Module):
    """Position-wise two-layer network with GELU (Hendrycks & Gimpel 2016), as in BERT."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """One post-LN Transformer block: x <- LN(x + Attention(x)); x <- LN(x + FeedForward(x))."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, additive_mask: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attended, probabilities = self.attention(x, additive_mask, rotary)
        x = self.attention_norm(x + self.dropout(attended))
        x = self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))
        return x, probabilities


class MaskedLanguageModelHead(nn.Module):
    """Dense + GELU + LayerNorm, then scores against every token embedding (weights tied to the input
    embedding, as in BERT), plus a bias per token."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.transform = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor, token_embedding: torch.Tensor) -> torch.Tensor:
        """hidden (..., C), token_embedding (vocab, C) -> logits (..., vocab)."""
        hidden = self.norm(F.gelu(self.transform(hidden)))
        return hidden @ token_embedding.T + self.bias


class MaskedLanguageModel(nn.Module):
    """Embeddings (token + segment, + position unless rotary) -> LayerNorm -> blocks -> MLM head."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size)
        self.segment_embedding = nn.Embedding(config.type_vocab_size, config.hidden_size)
        if config.position_kind == "learned":
            self.position_embedding = nn.Embedding(config.max_positions, config.hidden_size)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_layers))
        self.head = MaskedLanguageModelHead(config)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """BERT's initialisation: normal(0, 0.02) weights, zero biases, LayerNorm at identity."""
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def embed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) block input."""
        x = self.token_embedding(input_ids)
        if self.config.position_kind == "sinusoidal":
            # Vaswani et al. section 3.4: embeddings times sqrt(d_model), else the sinusoids (amplitude 1)
            # drown the token vectors (initialised at std 0.02) and training stalls at the unigram level.
            x = x * math.sqrt(self.config.hidden_size)
        x = x + self.segment_embedding(token_type_ids)
        if self.config.position_kind == "learned":
            if int(position_ids.max()) >= self.config.max_positions:
                raise ValueError(
                    f"Learned positions stop at {self.config.max_positions}: this input needs position "
                    f"{int(position_ids.max())}. Shorten it, or use sinusoidal or rotary positions."
                )
            x = x + self.position_embedding(position_ids)
        elif self.config.position_kind == "sinusoidal":
            x = x + sinusoidal_table(position_ids.flatten(), self.config.hidden_size).view(*position_ids.shape, -1)
        return self.dropout(self.embedding_norm(x))

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, T) ids -> last hidden states (B, T, C) and each layer's attention probabilities (B, H, T, T).

        attention_mask: (B, T), 1 for real tokens and 0 for padding (padded keys get no attention).
        position_ids: (T,) positions, default 0 .. T-1 (the extrapolation study passes clamped ones)."""
        batch, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device)
        x = self.embed(input_ids, token_type_ids, position_ids.expand(batch, length))
        # Padding keys: add the most negative float to their scores, so softmax gives them ~0 weight.
        additive_mask = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        rotary = None
        if self.config.position_kind == "rotary":
            rotary = tuple(part.to(x.device) for part in rotary_angles(position_ids.cpu(), self.config.head_size))
        attentions = []
        for block in self.blocks:
            if self.config.checkpointing and torch.is_grad_enabled():
                # Keep only x; the block's inside is recomputed in the backward pass (same dropout draws).
                x, probabilities = checkpoint(block, x, additive_mask, rotary, use_reentrant=False)
            else:
                x, probabilities = block(x, additive_mask, rotary)
            attentions.append(probabilities)
        return x, attentions

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T) ids -> MLM logits (B, T, vocab)."""
        hidden, _ = self.encode(input_ids, attention_mask, token_type_ids, position_ids)
        return self.head(hidden, self.token_embedding.weight)

    def masked_loss(self, input_ids: torch.Tensor, labels: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """Cross-entropy on the chosen tokens only (labels != IGNORE_INDEX). The head runs on those
        tokens alone: about 15% of the positions, which saves most of the vocabulary projection."""
        hidden, _ = self.encode(input_ids, attention_mask)
        chosen = labels != IGNORE_INDEX  # (B, T)
        return F.cross_entropy(self.head(hidden[chosen], self.token_embedding.weight), labels[chosen])


# ---------------------------------------------------------------------------------------------
# The masking recipe
# ---------------------------------------------------------------------------------------------


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
    mask_probability: float = 0.15,
    replace_with_mask: float = 0.8,
    replace_with_random: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's recipe (Devlin et al. section 3.1): choose 15% of the ordinary tokens; of those, 80% become
    [MASK], 10% a random token, 10% stay as they are. The model must predict all chosen tokens, so it
    cannot learn that only [MASK] positions matter. Returns (corrupted ids, labels), labels being
    IGNORE_INDEX where nothing is predicted.

    The random draws are made in the order of transformers' DataCollatorForLanguageModeling, so the same
    generator state gives the same masks."""
    labels = input_ids.clone()
    probabilities = torch.full(input_ids.shape, mask_probability).masked_fill(special_tokens_mask.bool(), 0.0)
    chosen = torch.bernoulli(probabilities, generator=generator).bool()
    labels[~chosen] = IGNORE_INDEX
    corrupted = input_ids.clone()
    to_mask = torch.bernoulli(torch.full(input_ids.shape, replace_with_mask), generator=generator).bool() & chosen
    corrupted[to_mask] = mask_token_id
    # Of the chosen tokens not masked (20%), half get a random token: probability 0.1 / 0.2.
    random_share = replace_with_random / (1 - replace_with_mask)
    to_random = torch.bernoulli(torch.full(input_ids.shape, random_share), generator=generator).bool()
    to_random &= chosen & ~to_mask
    random_tokens = torch.randint(vocab_size, input_ids.shape, dtype=torch.long, generator=generator)
    corrupted[to_random] = random_tokens[to_random]
    return corrupted, labels
