"""A byte-level BPE tokenizer, trained from scratch, that exports to Hugging Face `tokenizers`.

Byte Pair Encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
Units") starts from a vocabulary of single symbols and repeatedly merges the most frequent adjacent
pair of symbols in the training corpus into a new symbol. The ordered list of merges *is* the
tokenizer: to encode a word, apply the learned merges in the order they were learned.

GPT-2 (Radford et al. 2019) made two choices that this file follows:

* **Bytes, not characters.** The base vocabulary is the 256 byte values, and text is merged as its
  UTF-8 bytes. Every string, emoji and CJK included, can be encoded with no "unknown" token, and
  decoding the bytes gives back the exact input.
* **Pre-tokenization.** Before BPE, a regex (`GPT2_SPLIT_PATTERN`) cuts the text into chunks: words
  with their leading space, runs of digits, runs of punctuation, runs of whitespace. Merges never
  cross a chunk boundary, so "dog." and "dog!" share the token " dog" instead of learning both.

One special token, `<|endoftext|>`, gets the last id (as in GPT-2, where it is 50256). It is never
produced by merges: wherever its literal text appears in the input it is encoded as that one id.

Training counts every distinct chunk once with its frequency, then keeps a count for every
adjacent pair; after each merge only the chunks that contain the merged pair are re-counted, so
a merge costs time in proportion to how often its pair occurs, not to the size of the corpus.

`to_hf_json()` writes the same tokenizer as a `tokenizer.json` for `tokenizers` /
`transformers`, which gives identical ids (tested in `tests/textgen/test_tokenizer.py`).
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from pathlib import Path

import regex
from tqdm.auto import tqdm

GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
END_OF_TEXT = "<|endoftext|>"
BYTE_VOCAB_SIZE = 256
FILE_NAME = "bpe.json"
FORMAT_NAME = "side-by-side byte-level BPE"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte value to a printable unicode character.

    `tokenizers` stores vocabulary entries and merges as strings, so every byte needs a visible
    character: printable Latin-1 bytes map to themselves, the other 68 bytes (controls, space,
    0x7F-0xA0, 0xAD) to the characters from U+0100 upwards. That is why a leading space shows up
    as "Ġ" (U+0120) in GPT-2's vocabulary.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(BYTE_VOCAB_SIZE):
        if byte not in table:
            table[byte] = chr(BYTE_VOCAB_SIZE + shifted)
            shifted += 1
    return table


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of `pair` in `ids`, left to right, by `new_id`."""
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


class BPETokenizer:
    """Byte-level BPE with GPT-2 pre-tokenization and an `<|endoftext|>` special token.

    `merges` maps each learned pair of ids to the id it merges into, in the order the merges were
    learned (the order is the merge priority when encoding). Ids 0-255 are the bytes, merged tokens
    follow, and the special token has the last id.
    """

    def __init__(self, merges: list[tuple[int, int]]):
        """Rebuild the vocabulary by replaying `merges` (pairs of ids) over the 256 byte tokens."""
        self.token_bytes: list[bytes] = [bytes([byte]) for byte in range(BYTE_VOCAB_SIZE)]
        self.merges: dict[tuple[int, int], int] = {}
        self.rank: dict[tuple[int, int], int] = {}
        self._id_of_bytes = {token: token_id for token_id, token in enumerate(self.token_bytes)}
        for left, right in merges:
            if not (0 <= left < len(self.token_bytes) and 0 <= right < len(self.token_bytes)):
                raise ValueError(f"Merge ({left}, {right}) uses an id that no earlier merge created.")
            if (left, right) in self.merges:
                raise ValueError(f"Merge ({left}, {right}) is listed twice.")
            self._add_merge((left, right))
        self.split_pattern = regex.compile(GPT2_SPLIT_PATTERN)
        self._chunk_cache: dict[str, list[int]] = {}

    def _add_merge(self, pair: tuple[int, int]) -> int:
        """Learn one merge and return the id it merges into.

        A pair learned before can come back during training, once a later merge re-creates one of
        its tokens under the shared id (see below); it keeps its first rank and is not listed twice.
        """
        if pair in self.merges:
            return self.merges[pair]
        merged = self.token_bytes[pair[0]] + self.token_bytes[pair[1]]
        # Two different merges can spell the same bytes ("ab"+"c" and "a"+"bc"). Like the
        # `tokenizers` trainer we give them one id, since a vocabulary maps each string to one id.
        if merged not in self._id_of_bytes:
            self._id_of_bytes[merged] = len(self.token_bytes)
            self.token_bytes.append(merged)
        self.merges[pair] = self._id_of_bytes[merged]
        self.rank[pair] = len(self.rank)
        return self.merges[pair]

    @property
    def vocab_size(self) -> int:
        """Number of ids, the special token included."""
        return len(self.token_bytes) + 1

    @property
    def eot_id(self) -> int:
        """Id of `<|endoftext|>`: the last one."""
        return len(self.token_bytes)

    # -----------------------------------------------------------------------------------------
    # Training
    # -----------------------------------------------------------------------------------------

    @classmethod
    def train(cls, text: str, vocab_size: int, progress: bool = True) -> BPETokenizer:
        """Learn `vocab_size - 257` merges from `text` (256 bytes + merges + `<|endoftext|>`).

        Stops early, with a smaller vocabulary, if the text runs out of adjacent pairs. Ties
        between equally frequent pairs go to the pair with the smaller ids, so training is
        deterministic.
        """
        if vocab_size < BYTE_VOCAB_SIZE + 1:
            raise ValueError(
                f"vocab_size must be at least {BYTE_VOCAB_SIZE + 1} (256 bytes + {END_OF_TEXT}), got {vocab_size}."
            )
        split_pattern = regex.compile(GPT2_SPLIT_PATTERN)
        chunk_counts = Counter(
            chunk for document in text.split(END_OF_TEXT) for chunk in split_pattern.findall(document)
        )
        # Each distinct chunk is one "word": its current ids and how often it occurs.
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        frequencies = list(chunk_counts.values())

        pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        words_with_pair: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
        for index, (word, frequency) in enumerate(zip(words, frequencies)):
            for pair in zip(word, word[1:]):
                pair_counts[pair] += frequency
                words_with_pair[pair].add(index)
        # A max-heap of (-count, pair). Counts change after every merge; instead of updating an
        # entry we push a new one and skip stale entries (whose count is out of date) when popped.
        heap = [(-count, pair) for pair, count in pair_counts.items()]
        heapq.heapify(heap)

        tokenizer = cls([])
        bar = tqdm(total=vocab_size - tokenizer.vocab_size, desc="BPE merges", disable=not progress)
        while tokenizer.vocab_size < vocab_size and heap:
            negative_count, pair = heapq.heappop(heap)
            if pair_counts.get(pair) != -negative_count:
                continue
            size_before = tokenizer.vocab_size
            new_id = tokenizer._add_merge(pair)
            bar.update(tokenizer.vocab_size - size_before)

            # Re-count only the words that contain the pair: subtract their old pairs, add the new.
            changed: defaultdict[tuple[int, int], int] = defaultdict(int)
            for index in words_with_pair.pop(pair):
                old_word = words[index]
                new_word = merge_pair(old_word, pair, new_id)
                if len(new_word) == len(old_word):  # stale index: an earlier merge took the pair
                    continue
                frequency = frequencies[index]
                for old_pair in zip(old_word, old_word[1:]):
                    changed[old_pair] -= frequency
                for new_pair in zip(new_word, new_word[1:]):
                    changed[new_pair] += frequency
                    words_with_pair[new_pair].add(index)
                words[index] = new_word
            for changed_pair, delta in changed.items():
                if delta == 0:
                    continue
                count = pair_counts.get(changed_pair, 0) + delta
                if count > 0:
                    pair_counts[changed_pair] = count
                    heapq.heappush(heap, (-count, changed_pair))
                else:
                    del pair_counts[changed_pair]
        bar.close()
        return tokenizer

    # -----------------------------------------------------------------------------------------
    # Encoding and decoding
    # -----------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Text -> ids. The literal `<|endoftext|>` becomes the special id; everything else is
        pre-tokenized and each chunk is encoded with the merges (chunks are cached)."""
        ids: list[int] = []
        for index, document in enumerate(text.split(END_OF_TEXT)):
            if index > 0:
                ids.append(self.eot_id)
            for chunk in self.split_pattern.findall(document):
                chunk_ids = self._chunk_cache.get(chunk)
                if chunk_ids is None:
                    chunk_ids = self._chunk_cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
                ids.extend(chunk_ids)
        return ids

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges to one chunk: repeatedly merge the adjacent pair that was learned
        first, the leftmost one if it occurs twice. This is the rule of the `tokenizers` BPE
        model, which is what makes the exported tokenizer give identical ids.

        Like `tokenizers`, candidate merges sit in a heap of (rank, position) and the tokens in a
        linked list, so a long chunk (a run of 100 000 spaces) costs O(n log n), not O(n^2).
        """
        tokens: list[int | None] = list(chunk)  # tokens[i]: the token starting at byte i; None once merged away
        left = list(range(-1, len(tokens) - 1))  # position of the previous live token, -1 at the start
        right = [*range(1, len(tokens)), -1]  # position of the next live token, -1 at the end
        heap = [(self.rank[pair], i) for i, pair in enumerate(zip(tokens, tokens[1:])) if pair in self.rank]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = right[i]
            # Skip an entry that is out of date: one of its two tokens was merged since it was pushed.
            if tokens[i] is None or j < 0 or self.rank.get((tokens[i], tokens[j])) != rank:
                continue
            tokens[i], tokens[j] = self.merges[(tokens[i], tokens[j])], None
            right[i] = right[j]
            if right[i] >= 0:
                left[right[i]] = i
            for a, b in ((left[i], i), (i, right[i])):  # the two pairs the new token is part of
                if a >= 0 and b >= 0 and (tokens[a], tokens[b]) in self.rank:
                    heapq.heappush(heap, (self.rank[(tokens[a], tokens[b])], a))
        return [token for token in tokens if token is not None]

    def _bytes_of(self, token_id: int) -> bytes:
        if token_id == self.eot_id:
            return END_OF_TEXT.encode("utf-8")
        if not 0 <= token_id < self.eot_id:
            raise ValueError(f"Token id {token_id} is outside the vocabulary (0-{self.eot_id}).")
        return self.token_bytes[token_id]

    def decode(self, ids: list[int]) -> str:
        """Ids -> text. Byte sequences that are not valid UTF-8 (a sequence cut inside a multi-byte
        character, say) become U+FFFD."""
        return b"".join(self._bytes_of(int(token_id)) for token_id in ids).decode("utf-8", errors="replace")

    def token_pieces(self, ids: list[int]) -> list[str]:
        """The text of each token, for display. A token holding part of a multi-byte character
        shows as U+FFFD."""
        return [self._bytes_of(int(token_id)).decode("utf-8", errors="replace") for token_id in ids]

    # -----------------------------------------------------------------------------------------
    # Saving and loading
    # -----------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> Path:
        """Write `folder/bpe.json`: the merges as pairs of ids, in order, and the special token."""
        path = Path(folder) / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT_NAME,
            "split_pattern": GPT2_SPLIT_PATTERN,
            "special_tokens": {END_OF_TEXT: self.eot_id},
            "merges": [list(pair) for pair in self.merges],
        }
        path.write_text(json.dumps(state), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> BPETokenizer:
        """Read a tokenizer written by `save`."""
        path = Path(folder) / FILE_NAME
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != FORMAT_NAME or state.get("split_pattern") != GPT2_SPLIT_PATTERN:
            raise ValueError(f"{path} is not a tokenizer saved by BPETokenizer.save.")
        tokenizer = cls([tuple(pair) for pair in state["merges"]])
        if state["special_tokens"] != {END_OF_TEXT: tokenizer.eot_id}:
            raise ValueError(
                f"{path}: expected {END_OF_TEXT} to have id {tokenizer.eot_id}, got {state['special_tokens']}."
            )
        return tokenizer

    # -----------------------------------------------------------------------------------------
    # Hugging Face export
    # -----------------------------------------------------------------------------------------

    def to_hf_json(self) -> str:
        """This tokenizer as a `tokenizers` `tokenizer.json` (the format of GPT-2's own file).

        The ByteLevel pre-tokenizer applies the same GPT-2 regex and maps bytes to characters with
        `bytes_to_unicode`; the BPE model gets the vocabulary and merges written in those
        characters, merges in learned order (the order is their rank).
        """
        byte_char = bytes_to_unicode()

        def spelled(token_id: int) -> str:
            return "".join(byte_char[byte] for byte in self.token_bytes[token_id])

        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        state = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {
                    "id": self.eot_id,
                    "content": END_OF_TEXT,
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "special": True,
                }
            ],
            "normalizer": None,
            "pre_tokenizer": byte_level,
            "post_processor": None,
            "decoder": byte_level,
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                # With ignore_merges a chunk found whole in the vocabulary would skip the merges,
                # which can give different ids from ours.
                "ignore_merges": False,
                "vocab": {spelled(token_id): token_id for token_id in range(len(self.token_bytes))},
                "merges": [[spelled(left), spelled(right)] for left, right in self.merges],
            },
        }
        return json.dumps(state, ensure_ascii=False)

    def hf_tokenizer(self):
        """A ready `transformers.PreTrainedTokenizerFast`, with `<|endoftext|>` as bos/eos token."""
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(self.to_hf_json()),
            bos_token=END_OF_TEXT,
            eos_token=END_OF_TEXT,
            clean_up_tokenization_spaces=False,
        )

    def save_hf(self, folder: str | Path) -> Path:
        """Write `folder/tokenizer.json` and `folder/tokenizer_config.json`.

        `AutoTokenizer.from_pretrained(folder)` reads both and knows `<|endoftext|>` is the eos
        token; `PreTrainedTokenizerFast(tokenizer_file=folder / "tokenizer.json")` gives the same
        ids but needs `eos_token="<|endoftext|>"` passed to know it.
        """
        folder = Path(folder)
        self.hf_tokenizer().save_pretrained(folder)
        return folder / "tokenizer.json"
