"""`python -m apps.word2vec.train` end to end, one epoch of CBOW into a temporary folder."""

import json

from apps.word2vec import train
from apps.word2vec.vectors import WordVectors


def test_train_writes_loadable_vectors_and_a_report(tmp_path):
    report = train.main(["--out", str(tmp_path), "--architectures", "cbow", "--epochs", "1"])
    ours, theirs = WordVectors.load(tmp_path / "cbow"), WordVectors.load(tmp_path / "gensim-cbow")
    assert len(ours) == len(theirs) == report["models"]["cbow"]["vocabulary"] > 5000
    assert json.loads((tmp_path / "training_report.json").read_text()) == json.loads(json.dumps(report))
    assert json.loads((tmp_path / "cbow" / "config.json").read_text())["epochs"] == 1
    scores = report["models"]["cbow"]
    assert scores["ours"]["words_per_second"] > 0 and scores["gensim"]["words_per_second"] > 0
