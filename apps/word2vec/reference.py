"""The bridge to gensim, the reference word2vec: train gensim's `Word2Vec` with our hyperparameters,
move vectors between our `WordVectors` and gensim's `KeyedVectors`, and read / write the original
word2vec text and binary formats (which gensim, fastText tools and the C code all share)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from apps.word2vec.model import Word2VecConfig
from apps.word2vec.vectors import WordVectors


def gensim_arguments(config: Word2VecConfig) -> dict:
    """gensim `Word2Vec` keyword arguments for the same training setup as `config`."""
    return dict(
        sg=int(config.architecture == "skipgram"),
        vector_size=config.vector_size,
        window=config.window,
        min_count=config.min_count,
        sample=config.sample,
        negative=config.negative,
        ns_exponent=config.noise_exponent,
        hs=int(config.hierarchical_softmax),
        epochs=config.epochs,
        alpha=config.alpha,
        min_alpha=config.min_alpha,
        cbow_mean=1,
        seed=config.seed,
        workers=config.workers,
    )


def train_gensim(documents: Sequence[Sequence[str]], config: Word2VecConfig):
    """Train gensim's Word2Vec on the same tokens; returns (model, seconds of training proper)."""
    from gensim.models import Word2Vec as GensimWord2Vec

    model = GensimWord2Vec(**gensim_arguments(config))
    model.build_vocab(documents)
    start = time.perf_counter()
    model.train(documents, total_examples=model.corpus_count, epochs=model.epochs)
    return model, time.perf_counter() - start


def to_keyed_vectors(vectors: WordVectors):
    """Our vectors as gensim `KeyedVectors` (same words, same order, same values)."""
    from gensim.models import KeyedVectors

    keyed = KeyedVectors(vector_size=vectors.vectors.shape[1], count=0)
    keyed.add_vectors(vectors.words, vectors.vectors.numpy())
    if vectors.counts is not None:
        for word, count in zip(vectors.words, vectors.counts):
            keyed.set_vecattr(word, "count", int(count))
    return keyed


def from_keyed_vectors(keyed) -> WordVectors:
    """gensim `KeyedVectors` (or a trained gensim model's `.wv`) as our `WordVectors`."""
    counts = (
        np.array([keyed.get_vecattr(word, "count") for word in keyed.index_to_key], dtype=np.int64)
        if "count" in keyed.expandos
        else None
    )
    return WordVectors(list(keyed.index_to_key), torch.from_numpy(np.array(keyed.vectors, dtype=np.float32)), counts)


def save_word2vec_format(vectors: WordVectors, path: str | Path, binary: bool = False) -> Path:
    """Write the C tool's format: a header "vocabulary_size dimension", then one word per line with its
    numbers as text, or (binary) the word, a space and the little-endian float32 values, then a newline."""
    path = Path(path)
    array = vectors.vectors.numpy().astype("<f4")
    with open(path, "wb") as file:
        file.write(f"{len(vectors)} {array.shape[1]}\n".encode())
        for word, row in zip(vectors.words, array):
            if binary:
                file.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
            else:
                file.write((word + " " + " ".join(f"{value:.8g}" for value in row) + "\n").encode("utf-8"))
    return path


def load_word2vec_format(path: str | Path, binary: bool = False) -> WordVectors:
    """Read a file in the word2vec text or binary format (as written by the C tool, gensim or us)."""
    data = Path(path).read_bytes()
    header_end = data.index(b"\n")
    size, dimension = (int(number) for number in data[:header_end].split())
    words, rows, position = [], np.empty((size, dimension), dtype=np.float32), header_end + 1
    for i in range(size):
        if binary:
            while data[position : position + 1] in (b"\n", b" "):  # gensim omits the newline, the C tool writes it
                position += 1
            space = data.index(b" ", position)
            words.append(data[position:space].decode("utf-8"))
            rows[i] = np.frombuffer(data, dtype="<f4", count=dimension, offset=space + 1)
            position = space + 1 + 4 * dimension
        else:
            line_end = data.find(b"\n", position)
            line_end = len(data) if line_end < 0 else line_end
            parts = data[position:line_end].decode("utf-8").rstrip().split(" ")
            if len(parts) != dimension + 1:
                raise ValueError(f"Line {i + 2} of {path} has {len(parts) - 1} numbers; the header says {dimension}.")
            words.append(parts[0])
            rows[i] = np.array(parts[1:], dtype=np.float32)
            position = line_end + 1
    return WordVectors(words, torch.from_numpy(rows))
