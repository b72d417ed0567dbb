"""`python -m bench [topic ...]`: run the benchmarks of the named topics (all when none is named),
write `bench/results/<topic>.json`, and regenerate the tables in README.md and docs/<topic>.md.
`python -m bench --tables-only` rewrites those tables from the existing results. `app` measures the
app's start-up and first clicks; `gpu` checks every engine on CUDA (a one-line note without a GPU)."""

import argparse
import datetime
import importlib
import os
import pkgutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from shared import device, results  # noqa: E402


def available_topics() -> list[str]:
    return sorted(
        module.name for module in pkgutil.iter_modules([str(Path(__file__).parent)]) if not module.name.startswith("_")
    )


def run_topic(topic: str) -> Path | None:
    """Run one benchmark and write its result; None when it had nothing to measure here."""
    benchmark = importlib.import_module(f"bench.{topic}")
    started = time.perf_counter()
    result = benchmark.run()
    if result is None:
        return None
    machine = device.describe()
    result.setdefault("topic", topic)
    result["date"] = datetime.date.today().isoformat()
    result["machine"] = {key: machine[key] for key in ("device", "device name", "CPU threads", "torch")}
    result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    return results.write_result(result)


def main(argv: list[str] | None = None) -> int:
    topics = available_topics()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("topics", nargs="*", help=f"any of: {', '.join(topics)} (default: all)")
    parser.add_argument("--tables-only", action="store_true", help="only regenerate the README tables")
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.topics) - set(topics))
    if unknown:
        parser.error(f"unknown topic(s) {', '.join(unknown)}; choose from {', '.join(topics)}")
    if not arguments.tables_only:
        for topic in arguments.topics or topics:
            written = run_topic(topic)
            if written:
                print(f"wrote {written}")
    loaded = results.load_results()
    changed = results.update_readme(ROOT / "README.md", loaded)
    print("README tables regenerated" if changed else "README tables already up to date")
    for page in results.update_docs(loaded):
        print(f"regenerated the tables of {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
