"""The shipped encoders beside transformers on the same weights: logits, and the fill-mask pipeline's top-5."""

import pytest
import torch

from apps.mlm import side_by_side as sbs
from apps.mlm.model import POSITION_KINDS
from apps.mlm.reference import to_hf

SENTENCES = [
    "The [MASK] of France is Paris.",
    "He was born in [MASK] and died in 1900.",
    "The [MASK] is a [MASK] that lives in [MASK].",
]


@pytest.mark.parametrize("kind", POSITION_KINDS)
def test_shipped_logits_match_the_reference_with_padding(kind):
    ours = sbs.shipped_encoder(kind)
    reference = to_hf(ours)
    names = sbs.tokenizer()
    batch = names.hf_tokenizer()(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = ours(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", POSITION_KINDS)
@pytest.mark.parametrize("sentence", SENTENCES)
def test_fill_mask_pipeline_gives_our_top_5(kind, sentence):
    result = sbs.fill_masks(sentence, kind, 5)
    assert len(result.ours) == sentence.count("[MASK]") and all(len(fillers) == 5 for fillers in result.ours)
    assert result.identical_ranking
    assert result.max_probability_difference < 1e-5
    assert result.attentions.shape[:2] == (4, 4)


@pytest.mark.parametrize(
    "sentence, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        (None, "empty"),
        ("no mask here", "no \\[MASK\\]"),
        ("[MASK] " * 6, "at most 5"),
        ("word " * 200 + "[MASK]", "tokens long"),
        ("x" * 5000 + "[MASK]", "characters long"),
    ],
)
def test_bad_sentences_get_a_clear_message(sentence, message):
    with pytest.raises(ValueError, match=message):
        sbs.fill_masks(sentence, "rotary", 5)


@pytest.mark.parametrize("top_k, message", [(0, "from 1 to 20"), (2.5, "not a whole number"), (None, "whole number")])
def test_bad_top_k_gets_a_clear_message(top_k, message):
    with pytest.raises(ValueError, match=message):
        sbs.fill_masks("The [MASK] is.", "learned", top_k)
