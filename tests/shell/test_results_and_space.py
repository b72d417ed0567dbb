"""Benchmark tables are generated from the result files; the Space upload holds what the app needs."""

import shutil
import subprocess
import sys
from pathlib import Path

from shared import results, space

ROOT = Path(__file__).resolve().parents[2]

EXAMPLE = {
    "topic": "demo",
    "title": "Demo topic",
    "date": "2026-01-01",
    "machine": {"device": "cpu"},
    "summary": [{"model": "ours", "reference": "theirs", "parity": "1e-6", "speed": "2.0x", "quality": "good | fine"}],
    "tables": [{"title": "Speed", "columns": ["batch", "ratio"], "rows": [[1, 2.0], [8, 1.5]]}],
}


def test_summary_table_lists_every_row_and_escapes_pipes():
    table = results.summary_table([EXAMPLE])
    assert table.splitlines()[0] == "| Topic | Model | Reference | Parity | Speed | Quality |"
    assert "| Demo topic | ours | theirs | 1e-6 | 2.0x | good \\| fine |" in table


def test_empty_results_say_how_to_make_them():
    assert "python -m bench" in results.summary_table([])


def test_readme_block_is_regenerated_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.README_START}\nstale\n{results.README_END}\nafter\n")
    app = {
        **EXAMPLE,
        "topic": "app",
        "title": "App",
        "summary": [],
        "tables": [{**EXAMPLE["tables"][0], "title": "Start"}],
    }
    across = {
        **EXAMPLE,
        "topic": "generative",
        "title": "All families",
        "tables": [{**EXAMPLE["tables"][0], "title": "All"}],
    }
    assert results.update_readme(readme, [EXAMPLE, app, across])
    text = readme.read_text()
    assert "**All**" in text and "| [All families]" not in text  # a table across topics is shown whole, not as a row
    assert "stale" not in text and text.endswith("after\n")
    assert "| [Demo topic](docs/demo.md) | ours |" in text  # the topic's row links its page
    assert "**Speed**" not in text and "**Start**" in text  # topic details live in docs/, the app's stay
    assert not results.update_readme(readme, [EXAMPLE, app, across])  # idempotent


def test_docs_pages_get_their_topic_details_between_markers(tmp_path):
    page = tmp_path / "demo.md"
    page.write_text("# Demo\n\nProse written by hand.\n")
    assert results.update_docs([EXAMPLE], tmp_path) == [page]
    text = page.read_text()
    assert text.startswith("# Demo\n\nProse written by hand.\n") and "| 8 | 1.5 |" in text
    assert results.update_docs([EXAMPLE], tmp_path) == []  # idempotent
    assert results.update_docs([{**EXAMPLE, "topic": "absent"}], tmp_path) == []  # no page, nothing written


def test_docs_pages_match_the_result_files(tmp_path):
    for path in (ROOT / "docs").glob("*.md"):
        shutil.copy(path, tmp_path / path.name)
    assert results.update_docs(results.load_results(), tmp_path) == [], (
        "docs/ tables are stale: run `python -m bench --tables-only`"
    )


def test_write_and_load_results(tmp_path):
    results.write_result(EXAMPLE, tmp_path)
    assert results.load_results(tmp_path) == [EXAMPLE]


def test_shipped_results_are_valid():
    for result in results.load_results():
        assert {"topic", "title", "date", "machine", "summary", "tables"} <= set(result)
        for table in result["tables"]:
            assert all(len(row) == len(table["columns"]) for row in table["rows"])


def test_readme_tables_match_the_result_files(tmp_path):
    """The README's generated block is what `python -m bench --tables-only` would write now."""
    copy = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", copy)
    assert not results.update_readme(copy, results.load_results()), (
        "README tables are stale: run `python -m bench --tables-only`"
    )


def test_bench_runner_rejects_unknown_topics():
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "no_such_topic"], cwd=ROOT, capture_output=True, text=True
    )
    assert finished.returncode == 2 and "unknown topic(s) no_such_topic" in finished.stderr


def test_space_front_matter():
    settings = space.front_matter()
    assert settings["sdk"] == "gradio" and settings["app_file"] == "app.py"
    import gradio

    assert settings["sdk_version"] == gradio.__version__
    assert len(settings["short_description"]) <= 60
    for key in ("title", "python_version", "license", "tags"):
        assert settings[key]


def test_upload_list_has_the_app_and_checkpoints_but_no_caches():
    files = space.files_to_upload()
    assert {"app.py", "requirements.txt", "README.md"} <= set(files)
    assert all(Path(ROOT, path).is_file() for path in files)
    assert not [path for path in files if path.startswith((".venv", "tests/", ".cache")) or "__pycache__" in path]
    shipped = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "checkpoints").rglob("*") if path.is_file())
    assert set(shipped) <= set(files)


def test_app_builds_from_exactly_the_uploaded_files(tmp_path):
    for path in space.files_to_upload():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / path, tmp_path / path)
    code = "from app import demo; import apps; print(len(apps.TOPICS))"
    finished = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "", "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "HOME": str(tmp_path)},
    )
    assert finished.returncode == 0, finished.stderr
