"""word2vec, ours vs gensim, trained on the same word tokens of the gensim Wikipedia sample with the
same hyperparameters (100 dimensions, window 5, 5 negatives, subsampling 1e-3, min_count 5,
10 epochs, linear learning-rate decay from 0.025), with the same number of training threads (2):

- quality: WordSim-353 and SimLex-999 Spearman and analogy accuracy, mean and spread over 3 seeds,
  both sides scored by the same evaluator (which equals gensim's own, tested in tests/word2vec);
- speed: training words per second (corpus words x epochs / seconds of training), ours / gensim;
- hierarchical softmax (no negatives), one seed, as an extra row.
"""

from __future__ import annotations

import statistics
from dataclasses import replace

from apps.word2vec.model import Word2VecConfig, train
from apps.word2vec.reference import from_keyed_vectors, train_gensim
from apps.word2vec.train import evaluation_scores
from apps.word2vec.vectors import WordVectors
from shared.data import wiki_word_tokens

SEEDS = (1, 2, 3)
THREADS = 2
MEASURES = {
    "wordsim353_spearman": "WordSim-353 Spearman",
    "simlex999_spearman": "SimLex-999 Spearman",
    "analogy_accuracy": "analogy accuracy",
}
PARITY_TOLERANCE = 0.03  # the bar for the Spearman correlations


def one_run(documents, config: Word2VecConfig) -> dict[str, dict]:
    model, report = train(documents, config)
    words = report.corpus_words * config.epochs
    gensim_model, gensim_seconds = train_gensim(documents, config)
    return {
        "ours": {"words_per_second": words / report.seconds, **evaluation_scores(WordVectors.from_model(model))},
        "gensim": {
            "words_per_second": words / gensim_seconds,
            **evaluation_scores(from_keyed_vectors(gensim_model.wv)),
        },
    }


def mean_and_spread(values: list[float], percent: bool = False) -> str:
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 3)
    mean = f"{statistics.mean(values) * scale:.{digits}f}{unit}"
    return mean if len(values) == 1 else f"{mean} ± {statistics.stdev(values) * scale:.{digits}f}"


def run() -> dict:
    documents = wiki_word_tokens()
    settings = {
        "skip-gram, negative sampling": (Word2VecConfig(architecture="skipgram", workers=THREADS), SEEDS),
        "CBOW, negative sampling": (Word2VecConfig(architecture="cbow", workers=THREADS), SEEDS),
        "skip-gram, hierarchical softmax": (
            Word2VecConfig(architecture="skipgram", negative=0, hierarchical_softmax=True, workers=THREADS),
            SEEDS[:1],
        ),
    }
    quality_rows, speed_rows, summaries = [], [], []
    for name, (config, seeds) in settings.items():
        runs = [one_run(documents, replace(config, seed=seed)) for seed in seeds]
        differences = {}
        for key, label in MEASURES.items():
            ours = [seed_run["ours"][key] for seed_run in runs]
            theirs = [seed_run["gensim"][key] for seed_run in runs]
            differences[key] = statistics.mean(ours) - statistics.mean(theirs)
            percent = key == "analogy_accuracy"
            quality_rows.append(
                [
                    name,
                    label,
                    mean_and_spread(ours, percent),
                    mean_and_spread(theirs, percent),
                    f"{differences[key] * (100 if percent else 1):+.{1 if percent else 3}f}{' points' if percent else ''}",
                ]
            )
        ours_speed = statistics.median(seed_run["ours"]["words_per_second"] for seed_run in runs)
        gensim_speed = statistics.median(seed_run["gensim"]["words_per_second"] for seed_run in runs)
        speed_rows.append([name, f"{ours_speed:,.0f}", f"{gensim_speed:,.0f}", f"{ours_speed / gensim_speed:.2f}x"])
        within = all(abs(differences[key]) <= PARITY_TOLERANCE for key in ("wordsim353_spearman", "simlex999_spearman"))
        if "negative" in name:
            summaries.append(
                {
                    "model": f"word2vec {name}",
                    "reference": "gensim Word2Vec, same hyperparameters",
                    "parity": (
                        f"Δ Spearman WS-353 {differences['wordsim353_spearman']:+.3f}, SimLex "
                        f"{differences['simlex999_spearman']:+.3f} ({'within' if within else 'outside'} "
                        f"±{PARITY_TOLERANCE}, mean of {len(seeds)} seeds)"
                    ),
                    "speed": f"{ours_speed / gensim_speed:.2f}x gensim's training words/s ({THREADS} threads)",
                    "quality": (
                        f"WS-353 {statistics.mean(r['ours']['wordsim353_spearman'] for r in runs):.3f}, SimLex "
                        f"{statistics.mean(r['ours']['simlex999_spearman'] for r in runs):.3f}, analogies "
                        f"{100 * statistics.mean(r['ours']['analogy_accuracy'] for r in runs):.1f}%"
                    ),
                }
            )
    return {
        "topic": "word2vec",
        "title": "word2vec",
        "summary": summaries,
        "tables": [
            {
                "title": (
                    "Quality, ours vs gensim, same corpus and hyperparameters (mean ± standard deviation over "
                    f"seeds {', '.join(map(str, SEEDS))}; one seed for hierarchical softmax)"
                ),
                "columns": ["setting", "measure", "ours", "gensim", "ours - gensim"],
                "rows": quality_rows,
            },
            {
                "title": f"Training speed, corpus words per second, {THREADS} threads (median over the seeds)",
                "columns": ["setting", "ours", "gensim", "ours / gensim"],
                "rows": speed_rows,
            },
        ],
    }
