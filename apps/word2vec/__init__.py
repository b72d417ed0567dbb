"""word2vec (skip-gram and CBOW). The names below are what the tab shows before the engine loads; the
engine (side_by_side.py) uses the same ones."""

ARCHITECTURE_NAMES = {"skip-gram": "skipgram", "CBOW": "cbow"}
MAX_NEIGHBOURS, MAX_MAP_WORDS = 50, 60
