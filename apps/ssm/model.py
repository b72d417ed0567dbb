"""
State-space models from scratch: S4D (the diagonal S4) and Mamba (a selective SSM), in one file.

A state-space model maps an input signal u(t) to an output y(t) through a hidden state x(t) of size N:

    x'(t) = A x(t) + B u(t),     y(t) = C x(t) + D u(t)                      (S4 paper, eq. 1)

For sequences the system is discretised with a step Delta. Zero-order hold (the input held constant
over each step) gives

    A_bar = exp(Delta A),   B_bar = (Delta A)^-1 (exp(Delta A) - I) Delta B          (S4D paper, eq. 4)
    x_k = A_bar x_{k-1} + B_bar u_k,     y_k = C x_k + D u_k                   (the recurrence)

Unrolling the recurrence from x_{-1} = 0 gives y = K_bar * u + D u, a causal convolution with the kernel

    K_bar = (C B_bar, C A_bar B_bar, C A_bar^2 B_bar, ...)                              (S4 paper, eq. 5)

so the same layer can run as one long convolution (all positions at once: training) or as a recurrence
(one position at a time with a state of fixed size: generation).

S4D (Gu, Gupta, Goel & Re 2022, "On the Parameterization and Initialization of Diagonal State Space
Models") takes A diagonal and complex. Then every power A_bar^l is elementwise, and the kernel is a
Vandermonde product: K_bar[l] = 2 Re( sum_n C_n B_bar_n A_bar_n^l ). The N/2 complex modes come in
conjugate pairs, which is why the sum keeps only one of each pair and doubles the real part.
A is initialised as S4D-Lin (A_n = -1/2 + i pi n) or S4D-Inv (A_n = -1/2 + i N/pi (N/(2n+1) - 1)),
both approximations of the HiPPO-LegS matrix. A, B, C and Delta are the same at every position: the
layer is linear and time-invariant (LTI), which is what makes the convolution possible.

Mamba (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces") makes Delta,
B and C functions of the input (section 3.2, Algorithm 2): the model can choose, token by token, how
much to write into its state and what to read out ("selection"). No convolution kernel exists any
more; the recurrence is computed by a scan over the sequence. A is real and diagonal per channel,
A = -exp(A_log), initialised to -(1, 2, ..., N) (S4D-Real). The Mamba block (figure 3):

    x, z = in_proj(h)                           # two branches, each expand * d_model wide
    x = silu(causal_depthwise_conv1d(x))        # short local mixing (kernel d_conv)
    Delta, B, C = softplus(dt_proj(.)), ., .  <- x_proj(x)  # input-dependent SSM parameters
    y = selective_scan(x, Delta, A, B, C) + D x
    out = out_proj(y * silu(z))                 # gated

and the language model stacks `h = h + block(rmsnorm(h))`, a final RMSNorm and a head tied to the
embedding, exactly as `transformers`' MambaForCausalLM, whose weights load one to one (reference.py).
A generated token costs the same at every position: each layer keeps a state of constant size (the
last d_conv - 1 conv inputs and the (d_inner, N) SSM state), where a Transformer's KV cache grows.
The scan is the plain loop: on this CPU a chunked closed-form scan measured slower (docs/ssm.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from apps.textgen.model import check_sampling_args, sample_next_token

# ---------------------------------------------------------------------------------------------
# S4D: a diagonal, time-invariant SSM with two computing modes
# ---------------------------------------------------------------------------------------------


@dataclass
class S4DConfig:
    d_model: int = 64  # H: independent input channels, one SSM each
    state_size: int = 64  # N: state size of each SSM; N/2 complex conjugate pairs are stored
    init: str = "lin"  # "lin" (S4D-Lin) or "inv" (S4D-Inv)
    dt_min: float = 0.001
    dt_max: float = 0.1

    def __post_init__(self):
        if self.state_size % 2:
            raise ValueError(f"S4DConfig.state_size must be even (conjugate pairs), got {self.state_size}")
        if self.init not in ("lin", "inv"):
            raise ValueError(f"S4DConfig.init must be 'lin' or 'inv', got {self.init!r}")


class S4D(nn.Module):
    """One S4D layer: H channels, each its own diagonal SSM with N/2 complex modes. (B, L, H) -> (B, L, H)."""

    def __init__(self, config: S4DConfig):
        super().__init__()
        self.config = config
        H, half = config.d_model, config.state_size // 2
        n = torch.arange(half, dtype=torch.float32)
        if config.init == "lin":
            imag = math.pi * n  # S4D-Lin: A_n = -1/2 + i pi n
        else:
            imag = config.state_size / math.pi * (config.state_size / (2 * n + 1) - 1)  # S4D-Inv
        # A = -exp(log_neg_real) + i imag keeps the real part negative (a stable system) while training
        self.log_neg_real = nn.Parameter(torch.full((H, half), math.log(0.5)))  # (H, N/2)
        self.imag = nn.Parameter(imag.repeat(H, 1))  # (H, N/2)
        # C complex, stored as (real, imag); B is fixed to 1 (S4D folds it into C)
        self.C = nn.Parameter(torch.randn(H, half, 2) * math.sqrt(0.5))  # (H, N/2, 2)
        self.D = nn.Parameter(torch.randn(H))  # (H,)
        log_dt = torch.rand(H) * (math.log(config.dt_max) - math.log(config.dt_min)) + math.log(config.dt_min)
        self.log_dt = nn.Parameter(log_dt)  # (H,)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Zero-order hold: A_bar = exp(dt A), B_bar = (A_bar - 1) / A (B = 1). Complex, (H, N/2) each; also C."""
        A = torch.complex(-torch.exp(self.log_neg_real), self.imag)  # (H, N/2)
        dtA = A * torch.exp(self.log_dt)[:, None]  # (H, N/2)
        A_bar = torch.exp(dtA)
        B_bar = (A_bar - 1) / A  # (dt A)^-1 (exp(dt A) - 1) dt B with B = 1
        C = torch.view_as_complex(self.C)  # (H, N/2)
        return A_bar, B_bar, C

    def kernel(self, length: int) -> torch.Tensor:
        """K_bar[h, l] = 2 Re( sum_n C_n B_bar_n A_bar_n^l ), l = 0 .. length-1: (H, length). A Vandermonde product."""
        A_bar, B_bar, C = self.discretize()
        positions = torch.arange(length, device=A_bar.device)
        # A_bar^l = exp(l log A_bar) = exp(l dt A): the Vandermonde matrix, (H, N/2, L)
        vandermonde = torch.exp(torch.log(A_bar)[:, :, None] * positions)
        return 2 * torch.einsum("hn,hnl->hl", C * B_bar, vandermonde).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Convolution mode: y = K_bar * u + D u over the whole sequence at once, with FFTs. u (B, L, H)."""
        L = u.size(1)
        K = self.kernel(L)  # (H, L)
        # zero-pad to 2L so that the FFT's circular convolution equals the causal linear one
        u_f = torch.fft.rfft(u.transpose(1, 2).float(), n=2 * L)  # (B, H, L + 1)
        K_f = torch.fft.rfft(K, n=2 * L)  # (H, L + 1)
        y = torch.fft.irfft(u_f * K_f, n=2 * L)[..., :L]  # (B, H, L)
        return y.transpose(1, 2).to(u.dtype) + u * self.D

    def step(self, u_k: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Recurrence mode, one position: x_k = A_bar x_{k-1} + B_bar u_k, y_k = 2 Re(C x_k) + D u_k.

        u_k (B, H), state (B, H, N/2) complex -> y_k (B, H), new state."""
        A_bar, B_bar, C = self.discretize()
        state = A_bar * state + B_bar * u_k[:, :, None]
        return 2 * (state * C).sum(-1).real + self.D * u_k, state

    def recurrent(self, u: torch.Tensor) -> torch.Tensor:
        """The same layer as a recurrence over the positions (what generation would run). u (B, L, H)."""
        state = torch.zeros(u.size(0), self.config.d_model, self.config.state_size // 2, dtype=torch.complex64)
        outputs = []
        for k in range(u.size(1)):
            y_k, state = self.step(u[:, k], state)
            outputs.append(y_k)
        return torch.stack(outputs, dim=1)  # (B, L, H)


@dataclass
class S4DLMConfig:
    vocab_size: int = 16
    d_model: int = 64
    n_layer: int = 2
    state_size: int = 64
    init: str = "lin"


class S4DLM(nn.Module):
    """A small sequence model of S4D layers (as in the S4D paper's experiments): embedding, then per layer
    h = h + W gelu(S4D(norm(h))), then a final norm and a linear head. Time-invariant throughout."""

    def __init__(self, config: S4DLMConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        layer_config = S4DConfig(d_model=config.d_model, state_size=config.state_size, init=config.init)
        self.norms = nn.ModuleList(nn.LayerNorm(config.d_model) for _ in range(config.n_layer))
        self.ssms = nn.ModuleList(S4D(layer_config) for _ in range(config.n_layer))
        self.mixes = nn.ModuleList(nn.Linear(config.d_model, config.d_model) for _ in range(config.n_layer))
        self.norm_f = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """idx (B, L) -> logits (B, L, V), mean cross-entropy over targets != -100 (or None)."""
        h = self.embedding(idx)  # (B, L, d_model)
        for norm, ssm, mix in zip(self.norms, self.ssms, self.mixes):
            h = h + mix(F.gelu(ssm(norm(h))))
        logits = self.head(self.norm_f(h))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss


# ---------------------------------------------------------------------------------------------
# Mamba: a selective SSM block, stacked into a language model
# ---------------------------------------------------------------------------------------------


@dataclass
class MambaConfig:
    vocab_size: int = 4096
    d_model: int = 256
    n_layer: int = 8
    d_state: int = 16  # N: the SSM state size per channel
    d_conv: int = 4  # kernel size of the causal depthwise convolution
    expand: int = 2  # d_inner = expand * d_model
    dt_rank: int | None = None  # rank of the Delta projection; None: ceil(d_model / 16) as in the paper
    layer_norm_epsilon: float = 1e-5
    conv_bias: bool = True
    bias: bool = False  # biases on in_proj and out_proj
    dt_min: float = 0.001  # Delta initialised log-uniformly in [dt_min, dt_max] (paper, section 3.6)
    dt_max: float = 0.1
    block_size: int = 384  # training window, also the window of the shared held-out scoring; not a limit

    def __post_init__(self):
        for name in ("vocab_size", "d_model", "n_layer", "d_state", "d_conv", "expand", "block_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MambaConfig.{name} must be a positive integer, got {value!r}")
        if self.dt_rank is None:
            self.dt_rank = math.ceil(self.d_model / 16)

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019), computed in float32."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def selective_scan(
    u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The selective SSM (Mamba paper, Algorithm 2), one position after the other:

        A_bar_t = exp(Delta_t A),   (B_bar u)_t = Delta_t B_t u_t      (ZOH for A, Euler for B, section 3.5)
        x_t = A_bar_t x_{t-1} + (B_bar u)_t,   y_t = C_t x_t

    u, delta (B, L, d_inner); A (d_inner, N); B, C (B, L, N); state (B, d_inner, N) -> y (B, L, d_inner), state.
    """
    A_bar = torch.exp(delta[..., None] * A)  # (B, L, d_inner, N)
    Bu = (delta * u)[..., None] * B[:, :, None, :]  # (B, L, d_inner, N)
    outputs = []
    # unbind, not A_bar[:, t]: the backward of indexing would allocate a full-size gradient per position
    for A_bar_t, Bu_t, C_t in zip(A_bar.unbind(1), Bu.unbind(1), C.unbind(1)):
        state = A_bar_t * state + Bu_t  # (B, d_inner, N)
        outputs.append(torch.einsum("bdn,bn->bd", state, C_t))
    return torch.stack(outputs, dim=1), state


@dataclass
class LayerState:
    """What one Mamba layer remembers between calls: constant size, however long the sequence."""

    conv: torch.Tensor  # (B, d_inner, d_conv - 1): the last inputs of the causal convolution
    ssm: torch.Tensor  # (B, d_inner, N): the SSM state x_t

    def num_bytes(self) -> int:
        return self.conv.numel() * self.conv.element_size() + self.ssm.numel() * self.ssm.element_size()


class MambaMixer(nn.Module):
    """The Mamba block of figure 3 (without the norm and residual, which MambaBlock adds)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        d_inner, N, rank = config.d_inner, config.d_state, config.dt_rank
        self.in_proj = nn.Linear(config.d_model, 2 * d_inner, bias=config.bias)
        self.conv1d = nn.Conv1d(d_inner, d_inner, config.d_conv, groups=d_inner, bias=config.conv_bias)
        self.x_proj = nn.Linear(d_inner, rank + 2 * N, bias=False)  # -> (Delta low rank, B, C)
        self.dt_proj = nn.Linear(rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(d_inner, 1))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.out_proj = nn.Linear(d_inner, config.d_model, bias=config.bias)
        # Delta = softplus(dt_proj(.) + bias) starts log-uniform in [dt_min, dt_max]: bias = softplus^-1(dt)
        dt = torch.exp(
            torch.rand(d_inner) * (math.log(config.dt_max) - math.log(config.dt_min)) + math.log(config.dt_min)
        )
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            bound = rank**-0.5
            self.dt_proj.weight.uniform_(-bound, bound)

    def empty_state(self, batch_size: int, device=None) -> LayerState:
        d_inner = self.config.d_inner
        return LayerState(
            torch.zeros(batch_size, d_inner, self.config.d_conv - 1, device=device),
            torch.zeros(batch_size, d_inner, self.config.d_state, device=device),
        )

    def forward(self, h: torch.Tensor, state: LayerState | None = None):
        """h (B, L, d_model) -> (B, L, d_model) and the state after the last position.

        With a state the sequence continues from it (generation feeds one token at a time this way)."""
        batch, length, _ = h.shape
        state = state or self.empty_state(batch, h.device)
        x, z = self.in_proj(h).chunk(2, dim=-1)  # (B, L, d_inner) each
        # causal depthwise convolution over [previous inputs, x]: position t sees x_{t-d_conv+1} .. x_t
        window = torch.cat([state.conv.to(x.dtype), x.transpose(1, 2)], dim=2)  # (B, d_inner, d_conv - 1 + L)
        new_conv = window[:, :, window.size(2) - (self.config.d_conv - 1) :]
        x = F.silu(self.conv1d(window)).transpose(1, 2)  # (B, L, d_inner)
        # the selection mechanism: Delta, B, C computed from each position's input
        dt_low_rank, B, C = self.x_proj(x).split([self.config.dt_rank, self.config.d_state, self.config.d_state], -1)
        delta = F.softplus(self.dt_proj(dt_low_rank).float())  # (B, L, d_inner)
        A = -torch.exp(self.A_log.float())  # (d_inner, N), real and negative: a decaying state
        y, new_ssm = selective_scan(x.float(), delta, A, B.float(), C.float(), state.ssm)
        y = y + x.float() * self.D  # the skip connection D u
        out = self.out_proj((y * F.silu(z.float())).to(h.dtype))  # the gate
        return out, LayerState(new_conv, new_ssm)


class MambaBlock(nn.Module):
    """h + mixer(rmsnorm(h)), the residual kept in float32 (as `residual_in_fp32` in the reference)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.mixer = MambaMixer(config)

    def forward(self, h: torch.Tensor, state: LayerState | None = None):
        out, state = self.mixer(self.norm(h), state)
        return h.float() + out, state


class MambaLM(nn.Module):
    """Embedding -> n_layer Mamba blocks -> RMSNorm -> logits with the embedding matrix (tied)."""

    def __init__(self, config: MambaConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.d_model)
        self.layers = nn.ModuleList(MambaBlock(config) for _ in range(config.n_layer))
        self.norm_f = RMSNorm(config.d_model, config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.lm_head.weight = self.embedding.weight
        for block in self.layers:  # out_proj scaled down with depth (GPT-2's residual rule, as in the paper's code)
            nn.init.kaiming_uniform_(block.mixer.out_proj.weight, a=math.sqrt(5))
            with torch.no_grad():
                block.mixer.out_proj.weight /= math.sqrt(config.n_layer)

    def num_parameters(self) -> int:
        """Trainable parameters, the tied embedding/head counted once."""
        return sum(p.numel() for p in self.parameters())

    def empty_state(self, batch_size: int, device=None) -> list[LayerState]:
        return [block.mixer.empty_state(batch_size, device) for block in self.layers]

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        state: list[LayerState] | None = None,
    ):
        """idx (B, L) -> logits (B, L, V), mean cross-entropy (or None), the state after the last position."""
        h = self.embedding(idx)  # (B, L, d_model)
        state = state or [None] * len(self.layers)
        new_state = []
        for block, layer_state in zip(self.layers, state):
            h, layer_state = block(h, layer_state)
            new_state.append(layer_state)
        logits = self.lm_head(self.norm_f(h).to(self.lm_head.weight.dtype)).float()
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100)
        return logits, loss, new_state

    @torch.inference_mode()
    def stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        eos_id: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield the next token ids (B,), one step at a time: the prompt runs once through the scan, then each
        step feeds only the newest token with the carried state, whose size never grows. Sampling as in
        the GPT of the text generation topic (temperature 0 = greedy; a seed uses a local generator).
        eos_id: a row that produced eos_id keeps emitting it; the stream stops when every row has."""
        check_sampling_args(temperature, top_k, top_p)
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"idx must be a (B, T) tensor of token ids with T >= 1, got shape {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        generator = torch.Generator(device=idx.device).manual_seed(seed) if seed is not None else None
        finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        logits, _, state = self(idx)  # prefill: (B, T, V)
        for step in range(max_new_tokens):
            token = sample_next_token(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
            if eos_id is not None:
                token = token.masked_fill(finished, eos_id)
                finished |= token == eos_id
            yield token
            if bool(finished.all()):
                return
            if step + 1 < max_new_tokens:
                logits, _, state = self(token[:, None], state=state)  # one token: (B, 1, V)

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, **sampling) -> torch.Tensor:
        """Continue idx (B, T) by up to max_new_tokens tokens (fewer only when every row reached eos_id):
        (B, T + n). Arguments as in stream()."""
        new = list(self.stream(idx, max_new_tokens, temperature, **sampling))
        return torch.cat([idx, torch.stack(new, dim=1)], dim=1) if new else idx.clone()

    @torch.no_grad()
    def total_nll(self, token_ids: torch.Tensor, start_id: int, chunk_length: int = 1024) -> float:
        """
        Sum of -ln p(x_t | x_<t) over every token of a 1-D sequence, in nats, each token scored once. The
        text is read after `start_id` (the <|endoftext|> token, as the GPT of the text generation topic
        is scored), in chunks whose state carries on to the next: every token sees the whole text before it.
        """
        was_training = self.training
        self.eval()
        device = self.embedding.weight.device
        tokens = torch.cat([torch.tensor([start_id]), torch.as_tensor(token_ids).long().reshape(-1)]).to(device)
        total, state = 0.0, None
        for start in range(0, tokens.numel() - 1, chunk_length):
            inputs = tokens[start : start + chunk_length]  # (L,): x_t predicts x_{t+1}
            targets = tokens[start + 1 : start + 1 + chunk_length]
            logits, _, state = self(inputs[None, : targets.numel()], state=state)  # (1, L, V)
            total += F.cross_entropy(logits[0].double(), targets, reduction="sum").item()
        self.train(was_training)
        return total
