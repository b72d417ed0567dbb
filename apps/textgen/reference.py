"""
The bridge between our GPT (model.py) and Hugging Face's GPT2LMHeadModel: configs and weights, both ways.

Our parameter names are GPT-2's own (transformer.wte, transformer.h.N.attn.c_attn, ..., lm_head), so the
mapping is one to one except for one layout detail: GPT-2's checkpoints use `Conv1D` layers whose
weight is stored (in, out), the transpose of nn.Linear's (out, in). Those matrices are transposed on
the way in and out; everything else is copied as is. The output head is tied to wte on both sides.
"""

from __future__ import annotations

import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from apps.textgen.fast_layers import Int8Linear
from apps.textgen.model import GPT, GPTConfig
from shared.checkpoint import load_transformers_model

# Weights held by Conv1D in Hugging Face's GPT-2: (in, out) there, (out, in) in nn.Linear.
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Constant buffers older GPT-2 checkpoints carry (the causal mask); not parameters.
HF_BUFFERS = (".attn.bias", ".attn.masked_bias")
# GELU variants equal to GPT-2's tanh approximation.
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")


def gpt_config_to_hf(config: GPTConfig) -> GPT2Config:
    """Our config -> GPT2Config. Only learned position embeddings exist in GPT-2."""
    if config.position_encoding != "learned":
        raise ValueError(
            f"Hugging Face's GPT-2 has learned position embeddings only; a model with "
            f"position_encoding={config.position_encoding!r} has no GPT2LMHeadModel equivalent"
        )
    return GPT2Config(
        vocab_size=config.vocab_size,
        n_positions=config.block_size,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_inner=None,  # 4 * n_embd
        activation_function="gelu_new",  # GELU, tanh approximation
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=0.0,  # our model drops no attention weights (see CausalSelfAttention)
        layer_norm_epsilon=config.layer_norm_epsilon,
        # GPT-2's <|endoftext|> is its last token: say so for any vocabulary size (the default, 50256,
        # would point outside a small vocabulary).
        bos_token_id=config.vocab_size - 1,
        eos_token_id=config.vocab_size - 1,
        tie_word_embeddings=True,
    )


def gpt_config_from_hf(hf_config: GPT2Config) -> GPTConfig:
    """GPT2Config -> our config; raises ValueError for GPT-2 variants our model does not implement."""
    unsupported = []
    if getattr(hf_config, "n_inner", None) not in (None, 4 * hf_config.n_embd):
        unsupported.append(f"n_inner={hf_config.n_inner} (we use 4 * n_embd)")
    if hf_config.activation_function not in TANH_GELUS:
        unsupported.append(f"activation_function={hf_config.activation_function!r} (we use gelu_new)")
    if not getattr(hf_config, "scale_attn_weights", True):
        unsupported.append("scale_attn_weights=False")
    if getattr(hf_config, "scale_attn_by_inverse_layer_idx", False):
        unsupported.append("scale_attn_by_inverse_layer_idx=True")
    if getattr(hf_config, "add_cross_attention", False):
        unsupported.append("add_cross_attention=True")
    if not getattr(hf_config, "tie_word_embeddings", True):
        unsupported.append("tie_word_embeddings=False (our output head is tied to wte)")
    if unsupported:
        raise ValueError("this GPT-2 config is not supported: " + ", ".join(unsupported))
    return GPTConfig(
        vocab_size=hf_config.vocab_size,
        block_size=hf_config.n_positions,
        n_layer=hf_config.n_layer,
        n_head=hf_config.n_head,
        n_embd=hf_config.n_embd,
        dropout=float(hf_config.resid_pdrop),  # HF has three dropout rates; we keep one
        layer_norm_epsilon=hf_config.layer_norm_epsilon,
        position_encoding="learned",
    )


def _transpose_conv1d(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Swap (in, out) <-> (out, in) for the Conv1D weights; drop HF's mask buffers."""
    out = {}
    for name, tensor in state_dict.items():
        if name.endswith(HF_BUFFERS):
            continue
        out[name] = tensor.t() if name.endswith(CONV1D_WEIGHTS) else tensor
    return out


@torch.no_grad()
def gpt_from_hf(hf_model: GPT2LMHeadModel) -> GPT:
    """Our GPT (fp32, eval mode) holding the same weights as a GPT2LMHeadModel."""
    model = GPT(gpt_config_from_hf(hf_model.config))
    model.load_state_dict(_transpose_conv1d(hf_model.state_dict()), strict=True)  # copies (and casts to fp32)
    return model.eval()


@torch.no_grad()
def gpt_to_hf(model: GPT) -> GPT2LMHeadModel:
    """A GPT2LMHeadModel (eval mode) holding the same weights as our GPT."""
    if any(isinstance(m, Int8Linear) for m in model.modules()):
        raise ValueError("an int8 copy (quantize_int8) has no GPT-2 equivalent: convert the fp32 model")
    hf_model = GPT2LMHeadModel(gpt_config_to_hf(model.config))
    hf_model.load_state_dict(_transpose_conv1d(model.state_dict()), strict=True)
    return hf_model.to(model.transformer.wte.weight.dtype).eval()


# What a GPT-2 repository needs on the Hub: config, safetensors weights (never pickles), tokenizer.
HUB_FILES = [
    "config.json",
    "*.safetensors",
    "tokenizer*",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "generation_config.json",
]


def load_hub_gpt(name_or_path: str | os.PathLike) -> GPT:
    """
    Our GPT with the weights of a GPT-2 checkpoint: a Hub id ("gpt2", "distilgpt2",
    "openai-community/gpt2", ...; needs the network) or a folder written by
    GPT2LMHeadModel.save_pretrained. Raises ValueError with a clear message when it cannot be loaded;
    without network that happens within about a second (shared.checkpoint probes the Hub first).
    """
    return gpt_from_hf(load_transformers_model(name_or_path, GPT2LMHeadModel, "gpt2", HUB_FILES, description="GPT-2"))
