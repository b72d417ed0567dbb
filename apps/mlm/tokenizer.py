"""The text generation topic's byte-level BPE (apps/textgen/tokenizer.py, checkpoints/textgen/bpe.json) with
BERT's four special tokens after its last id: [PAD], [CLS], [SEP], [MASK].

A sentence becomes `[CLS] pieces [SEP]`. [MASK] swallows the spaces before it, like RoBERTa's `<mask>`
(`lstrip=True` in `tokenizers`): in "Paris is the [MASK] of France" the mask stands for the token
" capital", leading space included, which is how BPE spells a word inside a sentence. `hf_tokenizer()`
builds the same tokenizer for `transformers` (a `tokenizer.json`), so its `fill-mask` pipeline reads
our sentences exactly as we do (tested)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from apps.textgen.tokenizer import BPETokenizer

PAD, CLS, SEP, MASK = "[PAD]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, CLS, SEP, MASK)
_MASK_WITH_SPACES = re.compile(r"\s*" + re.escape(MASK))


class MaskedTokenizer:
    """BPE ids 0 .. n-1 (n = the text generation vocabulary), then [PAD], [CLS], [SEP], [MASK]."""

    def __init__(self, bpe: BPETokenizer):
        self.bpe = bpe
        self.special_ids = {token: bpe.vocab_size + index for index, token in enumerate(SPECIAL_TOKENS)}
        self.pad_id, self.cls_id = self.special_ids[PAD], self.special_ids[CLS]
        self.sep_id, self.mask_id = self.special_ids[SEP], self.special_ids[MASK]

    @classmethod
    def shipped(cls) -> MaskedTokenizer:
        """Over the BPE shipped in checkpoints/textgen/."""
        from apps.textgen.side_by_side import shipped_tokenizer

        return cls(shipped_tokenizer())

    @property
    def vocab_size(self) -> int:
        return self.bpe.vocab_size + len(SPECIAL_TOKENS)

    def encode_text(self, text: str) -> list[int]:
        """Plain text (no special tokens) -> BPE ids."""
        return self.bpe.encode(text)

    def encode(self, sentence: str) -> list[int]:
        """`[CLS] sentence [SEP]`, each literal [MASK] (with the spaces before it) as the mask id."""
        pieces = _MASK_WITH_SPACES.split(sentence)
        ids = [self.cls_id]
        for index, piece in enumerate(pieces):
            if index:
                ids.append(self.mask_id)
            ids.extend(self.bpe.encode(piece))
        return [*ids, self.sep_id]

    def token_pieces(self, ids: list[int]) -> list[str]:
        names = {token_id: token for token, token_id in self.special_ids.items()}
        return [names.get(token_id) or self.bpe.token_pieces([token_id])[0] for token_id in ids]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.token_pieces(ids))

    def to_hf_json(self) -> str:
        """The `tokenizer.json`: the BPE's own export, the four special tokens added, and a post-processor
        that wraps a sentence as [CLS] ... [SEP] (a pair as [CLS] A [SEP] B [SEP], segments 0 and 1)."""
        state = json.loads(self.bpe.to_hf_json())
        for token, token_id in self.special_ids.items():
            state["added_tokens"].append(
                {
                    "id": token_id,
                    "content": token,
                    "single_word": False,
                    "lstrip": token == MASK,
                    "rstrip": False,
                    "normalized": False,
                    "special": True,
                }
            )
        cls_piece, sep_piece = {"SpecialToken": {"id": CLS, "type_id": 0}}, {"SpecialToken": {"id": SEP, "type_id": 0}}
        state["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [cls_piece, {"Sequence": {"id": "A", "type_id": 0}}, sep_piece],
            "pair": [
                cls_piece,
                {"Sequence": {"id": "A", "type_id": 0}},
                sep_piece,
                {"Sequence": {"id": "B", "type_id": 1}},
                {"SpecialToken": {"id": SEP, "type_id": 1}},
            ],
            "special_tokens": {
                token: {"id": token, "ids": [self.special_ids[token]], "tokens": [token]} for token in (CLS, SEP)
            },
        }
        return json.dumps(state, ensure_ascii=False)

    def hf_tokenizer(self):
        """A `transformers.PreTrainedTokenizerFast` that knows which token is which."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(self.to_hf_json()),
            pad_token=PAD,
            cls_token=CLS,
            sep_token=SEP,
            mask_token=MASK,
            clean_up_tokenization_spaces=False,
        )

    def save_hf(self, folder: str | Path) -> Path:
        """Write tokenizer.json and tokenizer_config.json: `AutoTokenizer.from_pretrained(folder)` loads them."""
        self.hf_tokenizer().save_pretrained(folder)
        return Path(folder) / "tokenizer.json"
