"""Our encoder against transformers' BertForMaskedLM and RoFormerForMaskedLM on the same weights (random tiny
configs with padding), the masking recipe against DataCollatorForLanguageModeling, and the mappings both ways."""

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    DataCollatorForLanguageModeling,
    RoFormerConfig,
    RoFormerForMaskedLM,
)

from apps.mlm.model import IGNORE_INDEX, EncoderConfig, MaskedLanguageModel, mask_tokens
from apps.mlm.reference import bert_from_hf, bert_to_hf, roformer_from_hf, roformer_to_hf, to_hf

TOLERANCE = 1e-5


def random_encoder(kind: str, seed: int) -> MaskedLanguageModel:
    generator = torch.Generator().manual_seed(seed)
    heads = int(torch.randint(1, 4, (1,), generator=generator))
    config = EncoderConfig(
        vocab_size=int(torch.randint(50, 200, (1,), generator=generator)),
        hidden_size=heads * 2 * int(torch.randint(2, 9, (1,), generator=generator)),
        num_layers=int(torch.randint(1, 4, (1,), generator=generator)),
        num_heads=heads,
        intermediate_size=int(torch.randint(16, 80, (1,), generator=generator)),
        position_kind=kind,
        max_positions=64,
    )
    torch.manual_seed(seed)
    model = MaskedLanguageModel(config).eval()
    with torch.no_grad():  # move LayerNorms and biases off their initial values so every parameter matters
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def padded_batch(vocab_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(vocab_size, (3, 23), generator=generator)
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 15:] = 0
    attention_mask[2, 4:] = 0
    return ids, attention_mask


def real_logits(logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return logits[attention_mask.bool()]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rotary"])
def test_logits_match_the_reference_with_padding(kind, seed):
    ours = random_encoder(kind, seed)
    reference = to_hf(ours)
    assert type(reference).__name__ == ("RoFormerForMaskedLM" if kind == "rotary" else "BertForMaskedLM")
    ids, attention_mask = padded_batch(ours.config.vocab_size, seed)
    segments = (torch.arange(ids.shape[1]) >= 10).long().expand_as(ids)  # segment B from position 10 on
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=attention_mask, token_type_ids=segments).logits
        got = ours(ids, attention_mask, segments)
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=0)
    # padding changes nothing for the real tokens of the shortened rows
    with torch.no_grad():
        alone = ours(ids[2:, :4])
    torch.testing.assert_close(alone[0], got[2, :4], atol=TOLERANCE, rtol=0)


def test_bert_from_hf_reads_a_random_reference():
    torch.manual_seed(3)
    config = BertConfig(
        vocab_size=77,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=40,
        max_position_embeddings=32,
        attn_implementation="eager",
    )
    reference = BertForMaskedLM(config).eval()
    ours = bert_from_hf(reference)
    ids, attention_mask = padded_batch(77, 3)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids, attention_mask),
            reference(input_ids=ids, attention_mask=attention_mask).logits,
            atol=TOLERANCE,
            rtol=0,
        )
    back = bert_to_hf(ours)
    for name, tensor in reference.state_dict().items():
        torch.testing.assert_close(back.state_dict()[name], tensor, msg=name)
    assert (back.config.hidden_size, back.config.num_hidden_layers, back.config.max_position_embeddings) == (24, 2, 32)


def test_roformer_from_hf_reads_a_random_reference():
    torch.manual_seed(4)
    config = RoFormerConfig(
        vocab_size=61,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=40,
        attn_implementation="eager",
    )
    reference = RoFormerForMaskedLM(config).eval()
    ours = roformer_from_hf(reference)
    assert ours.config.position_kind == "rotary"
    ids, attention_mask = padded_batch(61, 4)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(ids, attention_mask),
            reference(input_ids=ids, attention_mask=attention_mask).logits,
            atol=TOLERANCE,
            rtol=0,
        )
    back = roformer_to_hf(ours)
    assert back.config.num_attention_heads == 4 and back.config.embedding_size == 32


def test_sinusoidal_export_scales_the_input_embeddings_only():
    ours = random_encoder("sinusoidal", 5)
    reference = bert_to_hf(ours)
    assert not reference.config.tie_word_embeddings
    scale = ours.config.hidden_size**0.5
    torch.testing.assert_close(reference.bert.embeddings.word_embeddings.weight, scale * ours.token_embedding.weight)
    torch.testing.assert_close(reference.cls.predictions.decoder.weight, ours.token_embedding.weight)
    with pytest.raises(ValueError, match="separate from its word embeddings"):
        bert_from_hf(reference)


def test_mappings_refuse_the_wrong_architecture():
    with pytest.raises(ValueError, match="rotary"):
        bert_to_hf(random_encoder("rotary", 0))
    with pytest.raises(ValueError, match="RoFormer"):
        roformer_to_hf(random_encoder("learned", 0))


class _CollatorTokenizer:
    """The three things DataCollatorForLanguageModeling's masking asks of a tokenizer."""

    mask_token = "[MASK]"

    def __init__(self, vocab_size: int, mask_id: int):
        self.vocab_size, self.mask_id = vocab_size, mask_id

    def __len__(self):
        return self.vocab_size

    def convert_tokens_to_ids(self, token):
        return self.mask_id


def test_masks_equal_the_data_collator_with_the_same_generator():
    vocab_size, mask_id = 300, 299
    ids = torch.randint(296, (8, 64), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    collator = DataCollatorForLanguageModeling(_CollatorTokenizer(vocab_size, mask_id), mlm_probability=0.15)
    collator.generator = torch.Generator().manual_seed(7)
    expected_inputs, expected_labels = collator.torch_mask_tokens(ids.clone(), special_tokens_mask=special.long())
    inputs, labels = mask_tokens(ids, special, mask_id, vocab_size, torch.Generator().manual_seed(7))
    assert torch.equal(labels, expected_labels) and torch.equal(inputs, expected_inputs)
    assert (labels != IGNORE_INDEX).any() and (inputs == mask_id).any()


def test_masking_rates_are_15_percent_then_80_10_10():
    ids = torch.randint(1000, (400, 256), generator=torch.Generator().manual_seed(1))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = mask_tokens(ids, special, 1000, 1001, torch.Generator().manual_seed(2))
    chosen = labels != IGNORE_INDEX
    assert not chosen[:, 0].any()  # special tokens are never chosen
    assert abs(chosen[:, 1:].float().mean().item() - 0.15) < 0.005
    masked = (inputs == 1000) & chosen
    unchanged = (inputs == ids) & chosen
    random = chosen & ~masked & ~unchanged
    total = chosen.sum().item()
    assert abs(masked.sum().item() / total - 0.8) < 0.01
    # a random draw can land on the original token (1 in 1001): still about 10% each
    assert abs(unchanged.sum().item() / total - 0.1) < 0.01
    assert abs(random.sum().item() / total - 0.1) < 0.01
    assert torch.equal(inputs[~chosen], ids[~chosen])
