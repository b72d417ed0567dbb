"""Reproduce `checkpoints/word2vec/`: our skip-gram and CBOW vectors, and gensim's, each trained on the
word tokens of the gensim Wikipedia sample with the same hyperparameters (about 1 minute on 2 cores).

    python -m apps.word2vec.train                         # the shipped recipe
    python -m apps.word2vec.train --epochs 1 --out /tmp/w2v   # a smoke run
    accelerate launch -m apps.word2vec.train              # on a GPU

Accelerate picks the device. word2vec's sparse SGD updates are applied in place, one batch after the
other, so the script runs as one process (a GPU speeds it up; several processes would not).

Writes, per architecture (skipgram, cbow): `<architecture>/` (ours) and `gensim-<architecture>/`
(gensim's vectors), each as vectors.safetensors (fp16) + vocabulary.json + config.json, and
`training_report.json` with the times and evaluation scores of all four.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from apps.word2vec.model import ARCHITECTURES, Word2VecConfig, train
from apps.word2vec.reference import from_keyed_vectors, train_gensim
from apps.word2vec.vectors import WordVectors
from shared.data import wiki_word_tokens, word2vec_eval_file

CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "word2vec"
TRAIN_COMMAND = "python -m apps.word2vec.train"


def evaluation_scores(vectors: WordVectors) -> dict:
    """WordSim-353 and SimLex-999 Spearman, and overall analogy accuracy."""
    sections = vectors.evaluate_analogies(word2vec_eval_file("questions-words.txt"))
    return {
        "wordsim353_spearman": vectors.evaluate_pairs(word2vec_eval_file("wordsim353.tsv")).spearman,
        "simlex999_spearman": vectors.evaluate_pairs(word2vec_eval_file("simlex999.txt")).spearman,
        "analogy_accuracy": sum(section.correct for section in sections)
        / max(1, sum(section.total for section in sections)),
    }


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Word2VecConfig()
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="checkpoint folder")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--vector-size", type=int, default=defaults.vector_size)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--negative", type=int, default=defaults.negative)
    parser.add_argument("--min-count", type=int, default=defaults.min_count)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="training threads, ours and gensim's")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    from accelerate import Accelerator

    arguments = parse_arguments(argv)
    accelerator = Accelerator()
    if accelerator.num_processes > 1:
        sys.exit("word2vec trains in one process; run it without several processes (see the module docstring).")
    documents = wiki_word_tokens()
    report = {
        "corpus": "gensim Wikipedia sample (WikiCorpus tokens)",
        "documents": len(documents),
        "device": str(accelerator.device),
        "models": {},
    }
    for architecture in arguments.architectures:
        config = replace(
            Word2VecConfig(),
            architecture=architecture,
            epochs=arguments.epochs,
            vector_size=arguments.vector_size,
            window=arguments.window,
            negative=arguments.negative,
            min_count=arguments.min_count,
            seed=arguments.seed,
            workers=arguments.workers,
        )
        with tqdm(total=100, desc=f"ours {architecture}", unit="%") as bar:
            model, training = train(
                documents,
                config,
                device=accelerator.device,
                on_progress=lambda fraction: bar.update(round(100 * fraction) - bar.n),
            )
        ours = WordVectors.from_model(model)
        ours.save(arguments.out / architecture, dtype=torch.float16, config=asdict(config))
        print(f"gensim {architecture} ...", flush=True)
        gensim_model, gensim_seconds = train_gensim(documents, config)
        theirs = from_keyed_vectors(gensim_model.wv)
        theirs.save(
            arguments.out / f"gensim-{architecture}",
            dtype=torch.float16,
            config={**asdict(config), "trained_by": "gensim"},
        )
        words = training.corpus_words * config.epochs
        report["models"][architecture] = {
            "vocabulary": len(ours),
            "corpus_words_per_epoch": training.corpus_words,
            "ours": {
                "seconds": training.seconds,
                "words_per_second": words / training.seconds,
                **evaluation_scores(ours),
            },
            "gensim": {
                "seconds": gensim_seconds,
                "words_per_second": words / gensim_seconds,
                **evaluation_scores(theirs),
            },
        }
        print(json.dumps(report["models"][architecture], indent=2), flush=True)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "training_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
