"""Side-by-side benchmarks: `python -m bench [topic ...]` runs `bench/<topic>.py`'s `run()`, writes
`bench/results/<topic>.json`, and regenerates the comparison tables in README.md."""
