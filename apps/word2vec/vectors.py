"""Trained word vectors and what people do with them: nearest neighbours, analogies, a 2-D map, and
the standard evaluations (WordSim-353 / SimLex-999 Spearman, the Google analogy set).

Similarity is the cosine, so every query works on unit-length rows: one matrix product scores a word
against the whole vocabulary. The evaluations follow gensim's `evaluate_word_pairs` and
`evaluate_word_analogies` (pairs or questions with an unknown word are skipped, analogies answered
by 3CosAdd with the three question words excluded), so both sides of a comparison are scored alike.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

VECTORS_FILE, VOCABULARY_FILE = "vectors.safetensors", "vocabulary.json"


@dataclass(frozen=True)
class PairScore:
    spearman: float
    pearson: float
    pairs_used: int
    pairs_total: int


@dataclass(frozen=True)
class AnalogySection:
    name: str
    correct: int
    total: int  # questions whose four words are all in the vocabulary

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")


class WordVectors:
    """A vocabulary (most frequent first) and one vector per word."""

    def __init__(self, words: list[str], vectors: torch.Tensor, counts: np.ndarray | None = None):
        if len(words) != len(vectors):
            raise ValueError(f"{len(words)} words but {len(vectors)} vectors.")
        self.words = list(words)
        self.vectors = vectors.float()
        self.counts = counts
        self.index = {word: i for i, word in enumerate(self.words)}
        self.unit = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (V, D)

    @classmethod
    def from_model(cls, model) -> WordVectors:
        """The input vectors of a trained `Word2Vec` (the output tables are only needed for training)."""
        return cls(model.vocabulary.words, model.input_vectors.detach().cpu().clone(), model.vocabulary.counts)

    def __len__(self) -> int:
        return len(self.words)

    # -- lookups with clear messages ---------------------------------------------------------------

    def lookup(self, word: str) -> int:
        """The row of one word. Raises ValueError for empty input, several words or an unknown word
        (suggesting the closest spellings in the vocabulary)."""
        word = (word or "").strip()
        if not word:
            raise ValueError("Type a word.")
        if len(word.split()) > 1:
            raise ValueError(
                f"Type one word, not {len(word.split())} ({word!r}): the vocabulary has single words only."
            )
        if word not in self.index and word.lower() in self.index:
            word = word.lower()
        if word not in self.index:
            close = difflib.get_close_matches(word.lower(), self.words, n=5, cutoff=0.7)
            hint = f" Close words in the vocabulary: {', '.join(close)}." if close else " Try a more common word."
            seen = (
                f", each seen at least {int(self.counts.min())} times in the training text"
                if self.counts is not None
                else ""
            )
            raise ValueError(f"{word!r} is not in the vocabulary ({len(self):,} words{seen}).{hint}")
        return self.index[word]

    def similarity(self, first: str, second: str) -> float:
        return float(self.unit[self.lookup(first)] @ self.unit[self.lookup(second)])

    def nearest(self, query: torch.Tensor, topn: int, exclude: list[int]) -> list[tuple[str, float]]:
        """The `topn` words whose unit vectors have the largest cosine with `query` (D,)."""
        scores = self.unit @ (query / query.norm().clamp_min(1e-12))
        scores[exclude] = -torch.inf
        values, rows = scores.topk(min(topn, len(self) - len(exclude)))
        return [(self.words[row], float(value)) for value, row in zip(values, rows.tolist())]

    def most_similar(self, word: str, topn: int = 10) -> list[tuple[str, float]]:
        row = self.lookup(word)
        return self.nearest(self.unit[row], topn, exclude=[row])

    def analogy(self, a: str, b: str, c: str, topn: int = 5) -> list[tuple[str, float]]:
        """a - b + c (king - man + woman): 3CosAdd of Mikolov et al. 2013c, the words nearest to the
        mean of the unit vectors of a and c and minus b, excluding a, b and c themselves."""
        rows = [self.lookup(a), self.lookup(b), self.lookup(c)]
        query = (self.unit[rows[0]] - self.unit[rows[1]] + self.unit[rows[2]]) / 3
        return self.nearest(query, topn, exclude=rows)

    # -- evaluations -------------------------------------------------------------------------------

    def evaluate_pairs(self, path: str) -> PairScore:
        """Spearman and Pearson correlation between human similarity ratings and cosines, over the
        pairs whose two words are in the vocabulary (lines: word, word, rating; '#' comments)."""
        from scipy import stats

        human, ours, total = [], [], 0
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            first, second, rating = line.split("\t")[:3]
            total += 1
            first, second = first.lower(), second.lower()
            if first in self.index and second in self.index:
                human.append(float(rating))
                ours.append(float(self.unit[self.index[first]] @ self.unit[self.index[second]]))
        if len(human) < 3:
            return PairScore(float("nan"), float("nan"), len(human), total)
        return PairScore(
            float(stats.spearmanr(human, ours).statistic),
            float(stats.pearsonr(human, ours).statistic),
            len(human),
            total,
        )

    def evaluate_analogies(self, path: str, batch: int = 1024) -> list[AnalogySection]:
        """Accuracy per section of an analogy file (": section" lines, then "a b c d" questions meaning
        a is to b as c is to d): the answer is the nearest word to b - a + c, a, b, c excluded."""
        sections: list[tuple[str, list[list[int]]]] = []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.startswith(":"):
                sections.append((line[1:].strip(), []))
            elif line.strip() and sections:
                words = [word.lower() for word in line.split()]
                if len(words) == 4 and all(word in self.index for word in words):
                    sections[-1][1].append([self.index[word] for word in words])
        results = []
        for name, questions in sections:
            correct = 0
            for start in range(0, len(questions), batch):
                rows = torch.tensor(questions[start : start + batch])  # (Q, 4)
                query = self.unit[rows[:, 1]] - self.unit[rows[:, 0]] + self.unit[rows[:, 2]]
                scores = query @ self.unit.T  # (Q, V); the query's length does not change the ranking
                scores.scatter_(1, rows[:, :3], -torch.inf)
                correct += int((scores.argmax(1) == rows[:, 3]).sum())
            results.append(AnalogySection(name, correct, len(questions)))
        return results

    def project_2d(self, words: list[str], method: str = "PCA", seed: int = 0) -> np.ndarray:
        """2-D coordinates (N, 2) of the given words: PCA of their unit vectors, or t-SNE."""
        rows = [self.lookup(word) for word in words]
        if len(rows) < 3:
            raise ValueError(f"Give at least 3 words for a map (got {len(rows)}).")
        points = self.unit[rows].numpy().astype(np.float64)
        if method == "PCA":
            centred = points - points.mean(0)
            _, _, components = np.linalg.svd(centred, full_matrices=False)
            return centred @ components[:2].T
        if method == "t-SNE":
            from sklearn.manifold import TSNE

            return TSNE(
                n_components=2, perplexity=min(5.0, len(rows) - 1.0), init="pca", random_state=seed
            ).fit_transform(points)
        raise ValueError(f"Unknown map method {method!r}; choose PCA or t-SNE.")

    # -- files ---------------------------------------------------------------------------------------

    def save(self, folder: str | Path, dtype: torch.dtype = torch.float32, config: dict | None = None) -> Path:
        """vectors.safetensors + vocabulary.json (+ config.json with how the vectors were trained)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": self.vectors.to(dtype).contiguous()}, str(folder / VECTORS_FILE))
        counts = None if self.counts is None else [int(count) for count in self.counts]
        (folder / VOCABULARY_FILE).write_text(
            json.dumps({"words": self.words, "counts": counts}, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        if config is not None:
            (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path, train_command: str = "python -m apps.word2vec.train") -> WordVectors:
        folder = Path(folder)
        if not (folder / VECTORS_FILE).exists() or not (folder / VOCABULARY_FILE).exists():
            raise FileNotFoundError(
                f"{folder} has no {VECTORS_FILE} / {VOCABULARY_FILE}; make them with `{train_command}`."
            )
        vocabulary = json.loads((folder / VOCABULARY_FILE).read_text(encoding="utf-8"))
        counts = None if vocabulary.get("counts") is None else np.array(vocabulary["counts"], dtype=np.int64)
        return cls(vocabulary["words"], load_file(str(folder / VECTORS_FILE))["vectors"].float(), counts)
