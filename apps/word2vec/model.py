"""word2vec from scratch: skip-gram and CBOW, trained with negative sampling or hierarchical softmax.

The idea (Mikolov et al. 2013a, "Efficient Estimation of Word Representations in Vector Space"): a
word is described by the words around it, so give every word an *input* vector and ask a tiny model
to tell which words appear near which. Skip-gram predicts each nearby word from one word; CBOW
(continuous bag of words) predicts a word from the mean of the vectors around it. After training,
the input vectors are the word vectors: words used in similar contexts end up close together.

Predicting one word out of the whole vocabulary with a softmax is too slow, so the output layer is
replaced by one of two cheap objectives (Mikolov et al. 2013b, "Distributed Representations of
Words and Phrases and their Compositionality"):
- negative sampling (eq. 4): logistic regression that tells the true (word, context) pair apart from
  `negative` noise words drawn from the unigram distribution raised to 3/4;
- hierarchical softmax (section 2.1): a walk down a Huffman tree of the vocabulary, one binary
  decision per inner node, so frequent words have short paths.
Frequent words are randomly dropped before training (subsampling, eq. 5) and the context window is
shrunk at random for every word, so close neighbours count more (the "dynamic window").

The updates are plain SGD written out by hand, as in the original C code: each step gathers the rows
it needs, computes the logistic gradient, and adds it back with `index_add_`. Batches of pairs run
as tensor operations, so the same code uses a GPU when there is one; on the CPU several threads
train at once, as in the C code.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

ARCHITECTURES = ("skipgram", "cbow")


@dataclass
class Word2VecConfig:
    architecture: str = "skipgram"  # "skipgram" or "cbow"
    vector_size: int = 100
    window: int = 5  # largest distance to a context word; each word draws its own window in 1..window
    min_count: int = 5  # words seen fewer times are dropped from the vocabulary
    sample: float = 1e-3  # subsampling threshold of frequent words (eq. 5); 0 turns it off
    negative: int = 5  # noise words per positive pair; 0 turns negative sampling off
    noise_exponent: float = 0.75  # noise distribution: count ** 0.75, normalized
    hierarchical_softmax: bool = False
    epochs: int = 10
    alpha: float = 0.025  # learning rate, decayed linearly to min_alpha over training
    min_alpha: float = 0.0001
    batch_size: int = (
        512  # centre words per SGD step (much larger batches sum too many updates of frequent words and can diverge)
    )
    workers: int = 2  # CPU threads training at once (see `train`); 1 makes runs repeatable
    seed: int = 1

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown architecture {self.architecture!r}; choose one of {', '.join(ARCHITECTURES)}.")
        if self.negative <= 0 and not self.hierarchical_softmax:
            raise ValueError("Choose negative sampling (negative > 0), hierarchical softmax, or both.")
        if min(self.window, self.vector_size, self.epochs, self.min_count, self.batch_size, self.workers) < 1:
            raise ValueError("window, vector_size, epochs, min_count, batch_size and workers must all be at least 1.")


# ---------------------------------------------------------------------------------------------
# The vocabulary: counts, subsampling, the noise distribution and the Huffman tree
# ---------------------------------------------------------------------------------------------


@dataclass
class Vocabulary:
    words: list[str]  # most frequent first
    counts: np.ndarray  # (V,) int64, how often each word occurs in the training text

    @classmethod
    def build(cls, documents: Iterable[Sequence[str]], min_count: int) -> Vocabulary:
        """Count every word and keep those seen at least `min_count` times, most frequent first
        (ties keep the order of first appearance)."""
        counts = Counter(word for document in documents for word in document)
        kept = sorted((word for word, count in counts.items() if count >= min_count), key=lambda word: -counts[word])
        if not kept:
            raise ValueError(f"No word occurs {min_count} times or more; lower min_count or give more text.")
        return cls(kept, np.array([counts[word] for word in kept], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {word: i for i, word in enumerate(self.words)}

    def encode(self, documents: Iterable[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All documents as one array of word ids (unknown words dropped) and the document number
        of every token, so windows never reach across two documents."""
        index = self.index
        ids, document_of_token = [], []
        for number, document in enumerate(documents):
            known = [index[word] for word in document if word in index]
            ids.extend(known)
            document_of_token.extend([number] * len(known))
        return np.array(ids, dtype=np.int64), np.array(document_of_token, dtype=np.int64)

    def keep_probabilities(self, sample: float) -> np.ndarray:
        """P(keep) of each word under subsampling. Eq. 5 of Mikolov et al. 2013b discards a word with
        probability 1 - sqrt(t / f); the released C code (and gensim) keep it with probability
        (sqrt(f / t) + 1) * t / f, f the word's share of the text and t = `sample`, capped at 1."""
        if sample <= 0:
            return np.ones(len(self), dtype=np.float64)
        threshold_count = sample * self.counts.sum()
        return np.minimum(1.0, (np.sqrt(self.counts / threshold_count) + 1) * threshold_count / self.counts)

    def noise_distribution(self, exponent: float = 0.75) -> np.ndarray:
        """P_n(w) = count(w) ** 3/4 / sum (section 2.2 of Mikolov et al. 2013b): flatter than the
        unigram distribution, so rare words are drawn as negatives more often than their share."""
        weights = self.counts.astype(np.float64) ** exponent
        return weights / weights.sum()

    def huffman_paths(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The Huffman tree over word counts, as fixed-width arrays for batched lookups.

        Returns (points, codes, lengths): points[w, :lengths[w]] are the inner nodes on the path from
        the root to word w (numbered 0..V-2, the root is V-2), codes[w] the left/right turn (0/1) at
        each. Frequent words get short codes, so hierarchical softmax costs ~log2(V) per word."""
        vocabulary_size = len(self)
        if vocabulary_size < 2:
            raise ValueError("Hierarchical softmax needs at least two words in the vocabulary.")
        # Nodes 0..V-1 are words, V..2V-2 inner nodes; merge the two rarest until one tree remains.
        heap = [(int(count), node) for node, count in enumerate(self.counts)]
        heapq.heapify(heap)
        parent = np.zeros(2 * vocabulary_size - 1, dtype=np.int64)
        turn = np.zeros(2 * vocabulary_size - 1, dtype=np.int64)
        for inner in range(vocabulary_size, 2 * vocabulary_size - 1):
            (count_a, node_a), (count_b, node_b) = heapq.heappop(heap), heapq.heappop(heap)
            parent[node_a], parent[node_b], turn[node_b] = inner, inner, 1
            heapq.heappush(heap, (count_a + count_b, inner))
        root = 2 * vocabulary_size - 2
        paths = []
        for word in range(vocabulary_size):
            node, path = word, []
            while node != root:
                path.append((parent[node] - vocabulary_size, turn[node]))
                node = parent[node]
            paths.append(path[::-1])  # root first
        lengths = np.array([len(path) for path in paths], dtype=np.int64)
        points = np.zeros((vocabulary_size, lengths.max()), dtype=np.int64)
        codes = np.zeros((vocabulary_size, lengths.max()), dtype=np.int64)
        for word, path in enumerate(paths):
            points[word, : len(path)] = [point for point, _ in path]
            codes[word, : len(path)] = [code for _, code in path]
        return points, codes, lengths


# ---------------------------------------------------------------------------------------------
# One epoch's training examples: subsampled text and dynamic windows
# ---------------------------------------------------------------------------------------------


def context_slots(
    ids: np.ndarray, document_of_token: np.ndarray, keep_probability: np.ndarray, window: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subsample the text, then give each kept word its context words.

    Returns (centres (N,), contexts (N, 2*window), valid (N, 2*window)): row i holds the words at
    offsets -window..-1, 1..window around centre word i of the subsampled text; a slot is valid when
    that offset is within the word's own window b ~ U{1..window} (the "dynamic window" of the C code,
    which weights a context word at distance d by (window - d + 1) / window) and in the same document.
    Subsampling comes first, so windows reach past dropped words, as in the C code."""
    kept = rng.random(len(ids)) < keep_probability[ids]
    centres, documents = ids[kept], document_of_token[kept]
    reduced_window = rng.integers(1, window + 1, size=len(centres))
    offsets = np.concatenate([np.arange(-window, 0), np.arange(1, window + 1)])
    positions = np.arange(len(centres))[:, None] + offsets[None, :]  # (N, 2W)
    inside = (positions >= 0) & (positions < len(centres))
    positions = np.clip(positions, 0, len(centres) - 1)
    valid = (
        inside & (np.abs(offsets)[None, :] <= reduced_window[:, None]) & (documents[positions] == documents[:, None])
    )
    return centres, centres[positions], valid


# ---------------------------------------------------------------------------------------------
# The model and its SGD step
# ---------------------------------------------------------------------------------------------


class Word2Vec(torch.nn.Module):
    """The two embedding tables of word2vec and the hand-written SGD updates that train them.

    input_vectors  (V, D): the word vectors we keep ("syn0" in the C code), uniform in +-1/D as gensim;
    output_vectors (V, D): one output vector per word for negative sampling ("syn1neg"), zeros;
    node_vectors (V-1, D): one vector per inner Huffman node for hierarchical softmax ("syn1"), zeros.
    """

    def __init__(self, config: Word2VecConfig, vocabulary: Vocabulary):
        super().__init__()
        self.config = config
        self.vocabulary = vocabulary
        size, dim = len(vocabulary), config.vector_size
        generator = torch.Generator().manual_seed(config.seed)
        self.input_vectors = torch.nn.Parameter(
            (torch.rand(size, dim, generator=generator) * 2 - 1) / dim, requires_grad=False
        )
        if config.negative > 0:
            self.output_vectors = torch.nn.Parameter(torch.zeros(size, dim), requires_grad=False)
            # Inverse-CDF sampling of the noise distribution: searchsorted(cumulative, uniform).
            self.register_buffer(
                "noise_cumulative",
                torch.from_numpy(np.cumsum(vocabulary.noise_distribution(config.noise_exponent))).float(),
            )
        if config.hierarchical_softmax:
            points, codes, lengths = vocabulary.huffman_paths()
            self.node_vectors = torch.nn.Parameter(torch.zeros(size - 1, dim), requires_grad=False)
            self.register_buffer("points", torch.from_numpy(points))
            self.register_buffer("codes", torch.from_numpy(codes).float())
            self.register_buffer(
                "path_mask", torch.from_numpy(np.arange(points.shape[1])[None, :] < lengths[:, None]).float()
            )

    def sample_noise(self, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
        """Word ids drawn from the noise distribution P_n(w) ∝ count(w) ** 3/4."""
        uniform = torch.rand(shape, generator=generator, device=self.noise_cumulative.device)
        return torch.searchsorted(self.noise_cumulative, uniform).clamp_(max=len(self.vocabulary) - 1)

    @torch.no_grad()
    def output_step(
        self,
        hidden: torch.Tensor,
        hidden_mask: torch.Tensor,
        centres: torch.Tensor,
        generator: torch.Generator,
        learning_rate: float,
    ) -> torch.Tensor:
        """One SGD step of the output layer. Each centre word (B,) comes with H hidden vectors
        (B, H, D) that must predict it (the context words in skip-gram, their mean in CBOW), with a
        mask (B, H) of the real ones. Updates the output tables in place and returns the SGD step
        for the hidden vectors (B, H, D)."""
        step = torch.zeros_like(hidden)
        if self.config.negative > 0:
            # Negative sampling (eq. 4): the centre with label 1, `negative` noise words with label 0.
            # The noise words are drawn once per centre and shared by its context words: every
            # pair still meets `negative` fresh-per-centre noise words, the expected gradient is
            # the same, and the batch becomes a few small matrix products.
            noise = self.sample_noise((len(centres), self.config.negative), generator)  # (B, K)
            rows = torch.cat([centres[:, None], noise], dim=1)  # (B, 1 + K)
            labels = torch.zeros(rows.shape, device=hidden.device)
            labels[:, 0] = 1
            weights = torch.cat(
                [torch.ones_like(labels[:, :1]), (noise != centres[:, None]).float()], dim=1
            )  # the C code skips noise equal to the target
            step += self._update_rows(self.output_vectors, hidden, hidden_mask, rows, labels, weights, learning_rate)
        if self.config.hierarchical_softmax:
            # Hierarchical softmax: one binary decision per inner node on the centre's Huffman path
            # (label 1 - code, as in the C code). Every word's path starts at the root, so a batch
            # adds thousands of steps to the few nodes near it at once: summed, they diverge;
            # averaged, those nodes learn too slowly. A node's summed step is divided by the square
            # root of its repeats in the batch, which measured closest to gensim's one-word-at-a-time
            # SGD (bench/word2vec.py).
            step += self._update_rows(
                self.node_vectors,
                hidden,
                hidden_mask,
                self.points[centres],
                1 - self.codes[centres],
                self.path_mask[centres],
                learning_rate,
                damp_repeats=True,
            )
        return step

    @staticmethod
    def _update_rows(
        table: torch.Tensor,
        hidden: torch.Tensor,
        hidden_mask: torch.Tensor,
        rows: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor,
        learning_rate: float,
        damp_repeats: bool = False,
    ) -> torch.Tensor:
        """Logistic regression of labels (B, R) on the scores u·h of output rows u = table[rows] against
        hidden vectors h. The gradient of log sigmoid(±u·h) is (label - sigmoid(u·h)) times the other
        vector (Rong 2014, "word2vec Parameter Learning Explained", eqs. 59-61)."""
        batch, count = rows.shape
        vectors = table.index_select(0, rows.reshape(-1)).view(batch, count, -1)  # (B, R, D)
        scores = torch.bmm(hidden, vectors.transpose(1, 2))  # (B, H, R)
        gradient = (
            (labels[:, None, :] - torch.sigmoid(scores)) * weights[:, None, :] * hidden_mask[:, :, None] * learning_rate
        )
        step_for_hidden = torch.bmm(gradient, vectors)  # (B, H, D), from u before its update, as the C code
        row_steps = torch.bmm(gradient.transpose(1, 2), hidden).reshape(batch * count, -1)
        if damp_repeats:
            repeats = torch.bincount(rows.reshape(-1), weights=weights.reshape(-1), minlength=len(table)).clamp_(min=1)
            row_steps = row_steps / repeats[rows.reshape(-1), None].sqrt()
        table.index_add_(0, rows.reshape(-1), row_steps)
        return step_for_hidden

    @torch.no_grad()
    def skipgram_step(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        valid: torch.Tensor,
        generator: torch.Generator,
        learning_rate: float,
    ) -> None:
        """Skip-gram on a batch of centre words (B,) with their context slots (B, 2W) and validity mask.
        As in the C code, each context word's input vector predicts the centre word: over a corpus
        these are the same pairs as the paper's centre-predicts-context."""
        mask = valid.float()
        hidden = self.gather_inputs(contexts)  # (B, 2W, D)
        step = self.output_step(hidden, mask, centres, generator, learning_rate)  # zero in empty slots
        self.input_vectors.index_add_(0, contexts.reshape(-1), step.reshape(-1, step.shape[-1]))

    @torch.no_grad()
    def cbow_step(
        self,
        centres: torch.Tensor,
        contexts: torch.Tensor,
        valid: torch.Tensor,
        generator: torch.Generator,
        learning_rate: float,
    ) -> None:
        """CBOW on the same batch: the mean of the context input vectors predicts the centre, and every
        context word receives the whole step for that mean, as in the C code and gensim's cbow_mean=1."""
        mask = valid.float()
        count = mask.sum(1)[:, None, None]  # (B, 1, 1), at least 1: words without context are dropped earlier
        hidden = (self.gather_inputs(contexts) * mask[:, :, None]).sum(1, keepdim=True) / count  # (B, 1, D)
        step = self.output_step(hidden, torch.ones_like(mask[:, :1]), centres, generator, learning_rate)  # (B, 1, D)
        self.input_vectors.index_add_(0, contexts.reshape(-1), (step * mask[:, :, None]).reshape(-1, step.shape[-1]))

    def gather_inputs(self, contexts: torch.Tensor) -> torch.Tensor:
        """Input vectors of a (B, 2W) grid of word ids -> (B, 2W, D). Empty slots hold some word too;
        their steps are zero, so one index_add_ over the whole grid updates exactly the real ones."""
        return self.input_vectors.index_select(0, contexts.reshape(-1)).view(*contexts.shape, -1)


@dataclass
class TrainingReport:
    seconds: float
    corpus_words: int  # words of the training text (in the vocabulary), per epoch
    epochs: int
    examples: int  # centre words trained on (after subsampling), over all epochs

    @property
    def words_per_second(self) -> float:
        """Words of the text (in the vocabulary, before subsampling) times epochs, per second of
        training: the benchmark divides the same count by gensim's training time."""
        return self.corpus_words * self.epochs / self.seconds


def train(
    documents: Sequence[Sequence[str]],
    config: Word2VecConfig,
    device: torch.device | str = "cpu",
    on_progress: Callable[[float], None] | None = None,
) -> tuple[Word2Vec, TrainingReport]:
    """Build the vocabulary and train word2vec with linearly decaying SGD (section 3 of Mikolov et al.
    2013a). `on_progress(fraction)` is called after every batch of the first worker.

    With `workers` > 1 (on the CPU) each epoch's text is cut into that many pieces, trained at the
    same time by as many threads on the shared tables without locks ("Hogwild", as the C code and
    gensim do): updates of different words rarely collide and a lost one does little harm. Each
    thread runs its tensor operations on one core. Runs are then no longer bit-for-bit repeatable."""
    vocabulary = Vocabulary.build(documents, config.min_count)
    model = Word2Vec(config, vocabulary).to(device)
    ids, document_of_token = vocabulary.encode(documents)
    rng = np.random.default_rng(config.seed)
    workers = config.workers if torch.device(device).type == "cpu" else 1
    generators = [torch.Generator(device=device).manual_seed(config.seed + worker) for worker in range(workers)]
    keep_probability = vocabulary.keep_probabilities(config.sample)
    step = model.skipgram_step if config.architecture == "skipgram" else model.cbow_step

    def train_piece(
        epoch: int, worker: int, centres: torch.Tensor, contexts: torch.Tensor, valid: torch.Tensor
    ) -> None:
        for begin in range(0, len(centres), config.batch_size):
            progress = (epoch + begin / len(centres)) / config.epochs  # every piece advances at about the same pace
            learning_rate = config.alpha - (config.alpha - config.min_alpha) * progress
            batch = (tensor[begin : begin + config.batch_size].to(device) for tensor in (centres, contexts, valid))
            step(*batch, generator=generators[worker], learning_rate=learning_rate)
            if on_progress is not None and worker == 0:
                on_progress(progress)

    threads_before = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(1)
    examples, start = 0, time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for epoch in range(config.epochs):
                centres, contexts, valid = context_slots(ids, document_of_token, keep_probability, config.window, rng)
                has_context = valid.any(1)
                tensors = [torch.from_numpy(array[has_context]) for array in (centres, contexts, valid)]
                examples += len(tensors[0])
                pieces = [piece.tensor_split(workers) for piece in tensors]
                for future in [
                    pool.submit(train_piece, epoch, worker, *(piece[worker] for piece in pieces))
                    for worker in range(workers)
                ]:
                    future.result()
    finally:
        torch.set_num_threads(threads_before)
    seconds = time.perf_counter() - start
    if not torch.isfinite(model.input_vectors).all():
        raise ValueError(
            (
                f"Training diverged (the vectors hold NaN or inf): with {len(vocabulary)} words, a batch of "
                f"{config.batch_size} centre words adds too many steps to the same rows at once. Lower batch_size, "
                "alpha or workers."
            )
        )
    return model, TrainingReport(seconds=seconds, corpus_words=len(ids), epochs=config.epochs, examples=examples)
