"""The word2vec tab's engine: the shipped vectors (ours and gensim's, trained on the same tokens with
the same hyperparameters), queried by our `WordVectors` and by gensim's `KeyedVectors`, side by side.
No Gradio here; bad input raises ValueError with a message for the user."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

from apps.word2vec import ARCHITECTURE_NAMES, MAX_MAP_WORDS, MAX_NEIGHBOURS
from apps.word2vec.reference import to_keyed_vectors
from apps.word2vec.vectors import WordVectors
from shared.data import word2vec_eval_file

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "word2vec"


@dataclass(frozen=True)
class VectorPair:
    ours: WordVectors  # our training run
    gensim_vectors: WordVectors  # gensim's training run, as read from its checkpoint
    gensim: object  # the same vectors as gensim KeyedVectors, queried by gensim's own code


@functools.lru_cache(maxsize=None)
def vector_pair(architecture: str) -> VectorPair:
    """Our vectors and gensim's for 'skip-gram' or 'CBOW' (loaded once)."""
    if architecture not in ARCHITECTURE_NAMES:
        raise ValueError(f"Unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURE_NAMES)}.")
    folder = ARCHITECTURE_NAMES[architecture]
    gensim_vectors = WordVectors.load(CHECKPOINT_DIR / f"gensim-{folder}")
    return VectorPair(WordVectors.load(CHECKPOINT_DIR / folder), gensim_vectors, to_keyed_vectors(gensim_vectors))


def normalized_word(vectors: WordVectors, word: str, notes: list[str]) -> str:
    """The vocabulary spelling of `word` (lower-cased, with a note), or ValueError with suggestions."""
    row = vectors.lookup(word)
    found = vectors.words[row]
    if found != (word or "").strip():
        notes.append(f"Looked up **{found}**: the vocabulary is lower-case, as gensim's WikiCorpus tokenizes.")
    return found


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def neighbours(architecture: str, word: str, topn: int):
    """(ours [(word, cosine)], gensim's, our seconds, gensim's seconds, notes)."""
    if not 1 <= topn <= MAX_NEIGHBOURS:
        raise ValueError(f"Number of neighbours must be from 1 to {MAX_NEIGHBOURS}; got {topn}.")
    pair, notes = vector_pair(architecture), []
    word = normalized_word(pair.ours, word, notes)
    if word not in pair.gensim.key_to_index:
        raise ValueError(f"{word!r} is in our vocabulary but not in gensim's; try another word.")
    ours, ours_seconds = timed(pair.ours.most_similar, word, topn=topn)
    theirs, gensim_seconds = timed(pair.gensim.most_similar, word, topn=topn)
    return ours, theirs, ours_seconds, gensim_seconds, notes


def analogy(architecture: str, a: str, b: str, c: str, topn: int = 5):
    """a - b + c by ours and by gensim (`most_similar(positive=[a, c], negative=[b])`)."""
    pair, notes = vector_pair(architecture), []
    a, b, c = (normalized_word(pair.ours, word, notes) for word in (a, b, c))
    if len({a, b, c}) < 3:
        raise ValueError("Give three different words (a - b + c).")
    ours, ours_seconds = timed(pair.ours.analogy, a, b, c, topn=topn)
    theirs, gensim_seconds = timed(pair.gensim.most_similar, positive=[a, c], negative=[b], topn=topn)
    return ours, theirs, ours_seconds, gensim_seconds, notes


def map_words(architecture: str, text: str, method: str):
    """Words from a comma/space separated list -> (kept words, ours (N, 2), gensim's (N, 2), notes).
    Unknown words are left out with a note; fewer than 3 known words is an error."""
    pair, notes = vector_pair(architecture), []
    requested = [word for word in text.replace(",", " ").split() if word]
    if len(requested) > MAX_MAP_WORDS:
        raise ValueError(f"At most {MAX_MAP_WORDS} words on a map; got {len(requested)}.")
    kept, unknown = [], []
    for word in requested:
        try:
            kept.append(normalized_word(pair.ours, word, []))
        except ValueError:
            unknown.append(word)
    kept = list(dict.fromkeys(kept))
    if unknown:
        notes.append(f"Not in the vocabulary, left out: {', '.join(unknown)}.")
    if len(kept) < 3:
        raise ValueError(
            f"Give at least 3 words that are in the vocabulary (got {len(kept)} known: {', '.join(kept) or 'none'})."
        )
    return kept, pair.ours.project_2d(kept, method), pair.gensim_vectors.project_2d(kept, method), notes


@functools.lru_cache(maxsize=None)
def evaluation(architecture: str) -> list[tuple[str, float, float, str]]:
    """Rows (measure, ours, gensim, what): ours scored by our evaluator, gensim's vectors by gensim's
    own `evaluate_word_pairs` / `evaluate_word_analogies`."""
    pair = vector_pair(architecture)
    rows = []
    for name, file in (("WordSim-353 Spearman", "wordsim353.tsv"), ("SimLex-999 Spearman", "simlex999.txt")):
        ours = pair.ours.evaluate_pairs(word2vec_eval_file(file))
        theirs = pair.gensim.evaluate_word_pairs(word2vec_eval_file(file))
        rows.append(
            (
                name,
                ours.spearman,
                float(theirs[1].statistic),
                f"{ours.pairs_used} of {ours.pairs_total} pairs in the vocabulary",
            )
        )
    sections = pair.ours.evaluate_analogies(word2vec_eval_file("questions-words.txt"))
    total, gensim_sections = pair.gensim.evaluate_word_analogies(word2vec_eval_file("questions-words.txt"))
    gensim_accuracy = {
        section["section"]: len(section["correct"]) / max(1, len(section["correct"]) + len(section["incorrect"]))
        for section in gensim_sections
    }
    questions = sum(section.total for section in sections)
    rows.append(
        (
            "Analogy accuracy, all sections",
            sum(section.correct for section in sections) / max(1, questions),
            float(total),
            f"{questions:,} questions with all four words known",
        )
    )
    for section in sections:
        rows.append(
            (
                f"Analogy: {section.name}",
                section.accuracy,
                gensim_accuracy.get(section.name, float("nan")),
                f"{section.total:,} questions",
            )
        )
    return rows
