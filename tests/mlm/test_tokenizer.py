"""Our tokenizer (the text generation BPE + [PAD] [CLS] [SEP] [MASK]) against its tokenizer.json export."""

import pytest
from transformers import AutoTokenizer

from apps.mlm.tokenizer import MASK, MaskedTokenizer
from apps.mlm.train import CHECKPOINT_DIR

SENTENCES = [
    "Paris is the [MASK] of France.",
    "[MASK] was born in 1950, in [MASK].",
    "two [MASK][MASK] masks   [MASK] x",
    "no mask here, ünïcödé 😀 and\nnew lines",
    "",
    "   [MASK]   ",
]


@pytest.fixture(scope="module")
def tokenizer():
    return MaskedTokenizer.shipped()


@pytest.mark.parametrize("sentence", SENTENCES)
def test_ids_equal_the_exported_tokenizer(tokenizer, sentence):
    assert tokenizer.encode(sentence) == tokenizer.hf_tokenizer()(sentence)["input_ids"]


@pytest.mark.parametrize("sentence", SENTENCES[:3])
def test_the_shipped_tokenizer_json_loads_in_transformers(tokenizer, sentence):
    loaded = AutoTokenizer.from_pretrained(CHECKPOINT_DIR)
    assert loaded(sentence)["input_ids"] == tokenizer.encode(sentence)
    assert loaded.mask_token == MASK and loaded.mask_token_id == tokenizer.mask_id


def test_special_tokens_follow_the_bpe_and_mask_takes_the_space_before_it(tokenizer):
    assert [tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id] == [
        tokenizer.bpe.vocab_size + i for i in range(4)
    ]
    ids = tokenizer.encode("is the [MASK] of")
    assert ids[0] == tokenizer.cls_id and ids[-1] == tokenizer.sep_id
    assert tokenizer.token_pieces(ids) == ["[CLS]", "is", " the", "[MASK]", " of", "[SEP]"]
