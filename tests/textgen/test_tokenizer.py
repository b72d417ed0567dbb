"""The from-scratch byte-level BPE against exact round trips, a hand-checked training example, a
naive re-implementation of training, and the `transformers` tokenizer it exports (minbpe-style:
identical ids, parametrized over hard strings)."""

import random
from collections import Counter

import pytest
import regex

from apps.textgen.tokenizer import END_OF_TEXT, GPT2_SPLIT_PATTERN, BPETokenizer, merge_pair
from shared.data import wiki_text_split

TRAIN_CHARS = 300_000
VOCAB_SIZE = 512


def random_unicode_text(length: int, seed: int = 0) -> str:
    """ASCII, unusual whitespace (the regex's `\\s` must agree with `tokenizers`) and any code point
    UTF-8 can hold, from a fixed seed."""
    rng = random.Random(seed)
    odd_whitespace = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u202f\u205f\u3000\u200b\ufeff"
    characters = []
    for _ in range(length):
        draw = rng.random()
        if draw < 0.3:
            characters.append(chr(rng.randrange(0x80)))
        elif draw < 0.5:
            characters.append(rng.choice(odd_whitespace))
        else:
            code_point = rng.randrange(0x80, 0x110000)
            characters.append(chr(code_point) if not 0xD800 <= code_point < 0xE000 else "?")  # no surrogates
    return "".join(characters)


LONG_TEXT = random_unicode_text(60_000) + ("The fox's 123 jumps   over\n\n" * 2000)[:40_000]
HARD_STRINGS = [
    pytest.param("", id="empty"),
    pytest.param("hello world", id="ascii"),
    pytest.param("🙂👍🏽 family: 👨‍👩‍👧", id="emoji"),
    pytest.param("日本語のテキストと中文", id="cjk"),
    pytest.param("a\tb\n\n  c \r\n d   ", id="whitespace"),
    pytest.param(f"one{END_OF_TEXT}two {END_OF_TEXT}\n{END_OF_TEXT}", id="special-token"),
    pytest.param("I'm sure they'll say it's 2024's best, isn't it?", id="contractions"),
    pytest.param(LONG_TEXT, id="100k-chars"),
    pytest.param(" " * 20_000 + "x", id="long-space-run"),
]


@pytest.fixture(scope="module")
def tokenizer() -> BPETokenizer:
    return BPETokenizer.train(wiki_text_split().train[:TRAIN_CHARS], VOCAB_SIZE, progress=False)


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer):
    return tokenizer.hf_tokenizer()


def test_vocabulary_layout(tokenizer):
    assert tokenizer.vocab_size == VOCAB_SIZE
    assert tokenizer.eot_id == VOCAB_SIZE - 1
    assert len(tokenizer.merges) == VOCAB_SIZE - 257
    assert len(set(tokenizer.token_bytes)) == len(tokenizer.token_bytes)  # no two ids spell the same bytes


@pytest.mark.parametrize("text", HARD_STRINGS)
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(0 <= token_id < tokenizer.vocab_size for token_id in ids)
    assert tokenizer.decode(ids) == text


def test_compresses_english(tokenizer):
    text = wiki_text_split().validation[:20_000]
    assert len(text) / len(tokenizer.encode(text)) > 1.8  # about 2.0 at 512 tokens, 3.2 at 4096


def test_special_token_is_one_id(tokenizer):
    ids = tokenizer.encode(f"end{END_OF_TEXT}start")
    assert ids.count(tokenizer.eot_id) == 1
    assert ids[: ids.index(tokenizer.eot_id)] == tokenizer.encode("end")
    assert ids[ids.index(tokenizer.eot_id) + 1 :] == tokenizer.encode("start")
    assert tokenizer.token_pieces([tokenizer.eot_id]) == [END_OF_TEXT]


def test_token_pieces(tokenizer):
    text = "hello world, again"
    pieces = tokenizer.token_pieces(tokenizer.encode(text))
    assert "".join(pieces) == text
    assert tokenizer.token_pieces(list("🙂".encode("utf-8"))) == ["\ufffd"] * 4  # bytes of one character


def test_decode_replaces_invalid_utf8(tokenizer):
    assert tokenizer.decode([0xE6, 0x97, ord("A")]) == "\ufffdA"  # a cut 3-byte character
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tokenizer.decode([tokenizer.vocab_size])


@pytest.mark.parametrize("text", [*HARD_STRINGS, pytest.param(None, id="validation-20k")])
def test_transformers_gives_identical_ids(tokenizer, hf_tokenizer, text):
    text = wiki_text_split().validation[:20_000] if text is None else text
    ids = tokenizer.encode(text)
    assert hf_tokenizer.encode(text) == ids
    assert hf_tokenizer(text)["input_ids"] == ids
    assert hf_tokenizer.decode(ids) == tokenizer.decode(ids) == text


@pytest.mark.parametrize("ids", [[0xF0, 0x9F], [0xFF, 0xFE, 0x80, ord("A")], [0xED, 0xA0, 0x80]])
def test_transformers_decodes_invalid_utf8_the_same(tokenizer, hf_tokenizer, ids):
    assert hf_tokenizer.decode(ids) == tokenizer.decode(ids)


def test_transformers_special_tokens(tokenizer, hf_tokenizer):
    assert hf_tokenizer.eos_token == hf_tokenizer.bos_token == END_OF_TEXT
    assert hf_tokenizer.eos_token_id == tokenizer.eot_id
    assert len(hf_tokenizer) == tokenizer.vocab_size


def test_save_and_load(tokenizer, tmp_path):
    tokenizer.save(tmp_path)
    loaded = BPETokenizer.load(tmp_path)
    assert loaded.merges == tokenizer.merges
    assert loaded.token_bytes == tokenizer.token_bytes
    for text in ["hello world", LONG_TEXT, wiki_text_split().validation[:20_000]]:
        assert loaded.encode(text) == tokenizer.encode(text)


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "bpe.json").write_text('{"merges": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a tokenizer"):
        BPETokenizer.load(tmp_path)


def test_save_hf_loads_in_transformers(tokenizer, tmp_path):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = tokenizer.save_hf(tmp_path)
    from_file = PreTrainedTokenizerFast(tokenizer_file=str(path))
    from_folder = AutoTokenizer.from_pretrained(tmp_path)
    text = f"{LONG_TEXT[:5000]}{END_OF_TEXT}{wiki_text_split().validation[:5000]}"
    assert from_file.encode(text) == from_folder.encode(text) == tokenizer.encode(text)
    assert from_folder.eos_token_id == tokenizer.eot_id


def test_training_on_textbook_example():
    # Wikipedia's BPE example: "aa" is merged first, then "ab" (tied with "aa"+"a"; the smaller
    # ids win), then "aa"+"ab", turning "aaabdaaabac" into X d X a c.
    tokenizer = BPETokenizer.train("aaabdaaabac", 256 + 3 + 1, progress=False)
    assert list(tokenizer.merges.items()) == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tokenizer.token_bytes[256:] == [b"aa", b"ab", b"aaab"]
    assert tokenizer.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]
    assert tokenizer.eot_id == 259


def test_training_stops_when_no_pairs_are_left():
    tokenizer = BPETokenizer.train("ab ab", 1000, progress=False)
    assert [tokenizer.token_bytes[i] for i in tokenizer.merges.values()] == [b"ab", b" ab"]
    assert tokenizer.vocab_size == 256 + 2 + 1


def test_training_rejects_too_small_vocabulary():
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer.train("hello", 200, progress=False)


def test_merges_never_cross_pre_token_boundaries():
    tokenizer = BPETokenizer.train("dog. dog! dog? cat, dog; " * 50, 300, progress=False)
    pattern = regex.compile(GPT2_SPLIT_PATTERN)
    for token in tokenizer.token_bytes[256:]:
        assert len(pattern.findall(token.decode("utf-8"))) == 1, token
    assert b" dog" in tokenizer.token_bytes


def naive_bpe_merges(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Textbook BPE: recount every pair of every chunk before each merge (slow, obviously right)."""
    chunks = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
    words = {tuple(chunk.encode("utf-8")): count for chunk, count in chunks.items()}
    merges = []
    for new_id in range(256, 256 + num_merges):
        pair_counts = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        merges.append(best)
        words = {tuple(merge_pair(list(word), best, new_id)): count for word, count in words.items()}
    return merges


def test_incremental_training_matches_naive_training():
    text = wiki_text_split().train[:20_000]
    tokenizer = BPETokenizer.train(text, 256 + 60 + 1, progress=False)
    assert list(tokenizer.merges) == naive_bpe_merges(text, 60)


def test_merges_spelling_the_same_bytes_share_an_id():
    # "abc" can be made as "ab"+"c" or as "a"+"bc"; one vocabulary entry serves both merges.
    tokenizer = BPETokenizer([(97, 98), (98, 99), (256, 99), (97, 257)])
    assert tokenizer.merges[(256, 99)] == tokenizer.merges[(97, 257)] == 258
    assert tokenizer.vocab_size == 256 + 3 + 1
    hf_tokenizer = tokenizer.hf_tokenizer()
    for text in ["abc", "bcabc", "xabcab", "aabbcc"]:
        assert hf_tokenizer.encode(text) == tokenizer.encode(text)
        assert tokenizer.decode(tokenizer.encode(text)) == text
