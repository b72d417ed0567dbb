"""The bridge to `transformers`' MambaForCausalLM: configs and weights both ways.

The parameter names already match one to one (`backbone.layers.N.mixer.in_proj.weight` is our
`layers.N.mixer.in_proj.weight`), with two renames: `backbone.embeddings` is our `embedding` and
`backbone.norm_f` our `norm_f`. Both models tie the head to the embedding.

Without the `mamba-ssm` and `causal-conv1d` CUDA kernels, `transformers` runs its own PyTorch path and
logs once per function that it is falling back to it; `quiet_fallback()` keeps that line out of the
app's output (the fallback is exactly what we compare against).
"""

from __future__ import annotations

import contextlib
import logging

import torch
from transformers import MambaConfig as HFMambaConfig
from transformers import MambaForCausalLM

from apps.ssm.model import MambaConfig, MambaLM

FALLBACK_LOGGER = "transformers.integrations.hub_kernels"

# Reference options we do not implement, with the only value we support.
UNSUPPORTED_HF_OPTIONS = {
    "hidden_act": "silu",
    "residual_in_fp32": True,
    "tie_word_embeddings": True,
    "time_step_scale": 1.0,
}


@contextlib.contextmanager
def quiet_fallback():
    """Silence the 'falling back to its reference PyTorch implementation' warnings while inside."""
    logger = logging.getLogger(FALLBACK_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def mamba_config_to_hf(config: MambaConfig) -> HFMambaConfig:
    return HFMambaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        state_size=config.d_state,
        num_hidden_layers=config.n_layer,
        layer_norm_epsilon=config.layer_norm_epsilon,
        expand=config.expand,
        conv_kernel=config.d_conv,
        use_bias=config.bias,
        use_conv_bias=config.conv_bias,
        time_step_rank=config.dt_rank,
        time_step_min=config.dt_min,
        time_step_max=config.dt_max,
        tie_word_embeddings=True,
        # our vocabularies end with <|endoftext|>; generate() needs ids it will not confuse with text
        pad_token_id=config.vocab_size - 1,
        bos_token_id=config.vocab_size - 1,
        eos_token_id=config.vocab_size - 1,
    )


def mamba_config_from_hf(hf_config: HFMambaConfig, block_size: int = 384) -> MambaConfig:
    """Our config for a reference config; options we do not implement are refused by name."""
    for name, supported in UNSUPPORTED_HF_OPTIONS.items():
        if getattr(hf_config, name) != supported:
            raise ValueError(
                f"MambaConfig.{name}={getattr(hf_config, name)!r} is not implemented here (only {supported!r})."
            )
    if hf_config.intermediate_size != hf_config.expand * hf_config.hidden_size:
        raise ValueError(
            f"intermediate_size={hf_config.intermediate_size} is not expand * hidden_size "
            f"({hf_config.expand} * {hf_config.hidden_size}); only that width is implemented here."
        )
    expand = hf_config.expand
    if not float(expand).is_integer():
        raise ValueError(f"MambaConfig.expand={expand!r} is not implemented here (only whole numbers).")
    return MambaConfig(
        vocab_size=hf_config.vocab_size,
        d_model=hf_config.hidden_size,
        n_layer=hf_config.num_hidden_layers,
        d_state=hf_config.state_size,
        d_conv=hf_config.conv_kernel,
        expand=int(expand),
        dt_rank=int(hf_config.time_step_rank) if hf_config.time_step_rank != "auto" else None,
        layer_norm_epsilon=hf_config.layer_norm_epsilon,
        conv_bias=hf_config.use_conv_bias,
        bias=hf_config.use_bias,
        dt_min=hf_config.time_step_min,
        dt_max=hf_config.time_step_max,
        block_size=block_size,
    )


def _our_name(hf_name: str) -> str:
    return hf_name.removeprefix("backbone.").replace("embeddings.", "embedding.")


def mamba_from_hf(hf_model: MambaForCausalLM, block_size: int = 384) -> MambaLM:
    """Our MambaLM holding a copy of the reference model's weights."""
    model = MambaLM(mamba_config_from_hf(hf_model.config, block_size))
    state = {_our_name(name): tensor for name, tensor in hf_model.state_dict().items() if name != "lm_head.weight"}
    state["lm_head.weight"] = state["embedding.weight"]
    model.load_state_dict(state)
    return model.eval()


def mamba_to_hf(model: MambaLM) -> MambaForCausalLM:
    """A reference MambaForCausalLM holding a copy of our weights."""
    hf_model = MambaForCausalLM(mamba_config_to_hf(model.config))
    ours = {name: tensor for name, tensor in model.state_dict().items() if name != "lm_head.weight"}
    hf_state = {("backbone." + name).replace("embedding.", "embeddings."): t for name, t in ours.items()}
    hf_state["lm_head.weight"] = ours["embedding.weight"]
    hf_model.load_state_dict(hf_state)
    return hf_model.eval()


@torch.no_grad()
def hf_generate(hf_model: MambaForCausalLM, idx: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
    """Greedy `generate` with the reference's recurrent cache, quietly: (B, T + max_new_tokens)."""
    with quiet_fallback():
        return hf_model.generate(
            idx,
            attention_mask=torch.ones_like(idx),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
        )
