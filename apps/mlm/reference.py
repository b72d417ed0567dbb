"""The bridge to `transformers`: our encoder's weights and config to and from `BertForMaskedLM` (learned or
sinusoidal positions: the sinusoid becomes BERT's position table) and `RoFormerForMaskedLM` (rotary), and
a `fill-mask` pipeline over the same weights. Both references run with eager attention, the plain
softmax(q k^T / sqrt(d)) v that ours computes, so logits agree to float rounding."""

from __future__ import annotations

import math

import torch

from apps.mlm.model import EncoderConfig, MaskedLanguageModel, sinusoidal_table

# our block's parameter -> the same parameter under transformers' `encoder.layer.N.` (BERT and RoFormer alike)
BLOCK_NAMES = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "feed_forward.up": "intermediate.dense",
    "feed_forward.down": "output.dense",
    "feed_forward_norm": "output.LayerNorm",
}
TOP_NAMES = {
    "token_embedding": "{base}.embeddings.word_embeddings",
    "segment_embedding": "{base}.embeddings.token_type_embeddings",
    "position_embedding": "{base}.embeddings.position_embeddings",
    "embedding_norm": "{base}.embeddings.LayerNorm",
    "head.transform": "cls.predictions.transform.dense",
    "head.norm": "cls.predictions.transform.LayerNorm",
}


def _reference_name(ours: str, base: str) -> str:
    """Our state-dict key -> transformers' key, e.g. blocks.0.attention.query.weight ->
    bert.encoder.layer.0.attention.self.query.weight."""
    if ours == "head.bias":
        return "cls.predictions.bias"
    module, parameter = ours.rsplit(".", 1)
    if module.startswith("blocks."):
        _, index, inside = module.split(".", 2)
        return f"{base}.encoder.layer.{index}.{BLOCK_NAMES[inside]}.{parameter}"
    return f"{TOP_NAMES[module].format(base=base)}.{parameter}"


def _shared_config(config: EncoderConfig) -> dict:
    return dict(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        hidden_act="gelu",
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_positions,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=config.pad_token_id,
        attn_implementation="eager",
    )


def _our_config(reference_config, position_kind: str) -> EncoderConfig:
    if reference_config.hidden_act != "gelu":
        raise ValueError(f"only the exact GELU is implemented, this model uses {reference_config.hidden_act!r}")
    return EncoderConfig(
        vocab_size=reference_config.vocab_size,
        hidden_size=reference_config.hidden_size,
        num_layers=reference_config.num_hidden_layers,
        num_heads=reference_config.num_attention_heads,
        intermediate_size=reference_config.intermediate_size,
        position_kind=position_kind,
        max_positions=reference_config.max_position_embeddings,
        type_vocab_size=reference_config.type_vocab_size,
        layer_norm_eps=reference_config.layer_norm_eps,
        dropout=reference_config.hidden_dropout_prob,
        pad_token_id=reference_config.pad_token_id if reference_config.pad_token_id is not None else 0,
    )


def bert_config(config: EncoderConfig):
    from transformers import BertConfig

    if config.position_kind == "rotary":
        raise ValueError("BERT has no rotary positions: export a rotary encoder with roformer_to_hf")
    # The sinusoidal kind scales its input embeddings by sqrt(d) but not the tied output layer: in BERT's
    # terms, word_embeddings = sqrt(d) W and a separate decoder weight W.
    return BertConfig(**_shared_config(config), tie_word_embeddings=config.position_kind != "sinusoidal")


def roformer_config(config: EncoderConfig):
    from transformers import RoFormerConfig

    if config.position_kind != "rotary":
        raise ValueError(f"RoFormer uses rotary positions; this encoder has {config.position_kind} ones")
    return RoFormerConfig(**_shared_config(config), embedding_size=config.hidden_size, rotary_value=False)


def _copy_into_reference(model: MaskedLanguageModel, reference, base: str) -> None:
    state = {_reference_name(name, base): tensor for name, tensor in model.state_dict().items()}
    state["cls.predictions.decoder.weight"] = state[f"{base}.embeddings.word_embeddings.weight"]  # the tied head
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    if model.config.position_kind == "sinusoidal":  # the fixed table becomes BERT's (trainable) one
        size = model.config.hidden_size
        state[f"{base}.embeddings.position_embeddings.weight"] = sinusoidal_table(
            torch.arange(model.config.max_positions), size
        )
        state[f"{base}.embeddings.word_embeddings.weight"] = state["cls.predictions.decoder.weight"] * math.sqrt(size)
    missing, unexpected = reference.load_state_dict(state, strict=False)
    allowed = {f"{base}.encoder.embed_positions.weight"}  # RoFormer's rotary table: computed, not learned
    if unexpected or set(missing) - allowed:
        raise ValueError(
            f"weight mapping incomplete: missing {sorted(set(missing) - allowed)}, unexpected {unexpected}"
        )


def bert_to_hf(model: MaskedLanguageModel):
    """Our learned- or sinusoidal-position encoder as a `BertForMaskedLM` (eval mode)."""
    from transformers import BertForMaskedLM

    reference = BertForMaskedLM(bert_config(model.config))
    _copy_into_reference(model, reference, "bert")
    return reference.eval()


def roformer_to_hf(model: MaskedLanguageModel):
    """Our rotary encoder as a `RoFormerForMaskedLM` (eval mode)."""
    from transformers import RoFormerForMaskedLM

    reference = RoFormerForMaskedLM(roformer_config(model.config))
    _copy_into_reference(model, reference, "roformer")
    return reference.eval()


def to_hf(model: MaskedLanguageModel):
    """The matching reference: RoFormer for rotary positions, BERT otherwise."""
    return roformer_to_hf(model) if model.config.position_kind == "rotary" else bert_to_hf(model)


def _copy_from_reference(reference, base: str, position_kind: str) -> MaskedLanguageModel:
    model = MaskedLanguageModel(_our_config(reference.config, position_kind))
    reference_state = reference.state_dict()
    model.load_state_dict({name: reference_state[_reference_name(name, base)] for name in model.state_dict()})
    return model.eval()


def bert_from_hf(reference) -> MaskedLanguageModel:
    """A `BertForMaskedLM` (output layer tied to the word embeddings) as our learned-position encoder."""
    if not reference.config.tie_word_embeddings:
        raise ValueError("this BERT has an output layer separate from its word embeddings; ours ties them")
    return _copy_from_reference(reference, "bert", "learned")


def roformer_from_hf(reference) -> MaskedLanguageModel:
    """A `RoFormerForMaskedLM` as our rotary encoder."""
    if reference.config.rotary_value:
        raise ValueError("rotary_value=True (rotating the values too) is not implemented here")
    if reference.config.embedding_size != reference.config.hidden_size:
        raise ValueError("an embedding_size different from hidden_size (a projection) is not implemented here")
    return _copy_from_reference(reference, "roformer", "rotary")


def fill_mask_pipeline(reference, tokenizer):
    """`transformers`' fill-mask pipeline over a reference model and our exported tokenizer."""
    from transformers import pipeline

    return pipeline("fill-mask", model=reference, tokenizer=tokenizer, device=-1)
