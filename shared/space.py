"""Deploy the app to a Hugging Face Space:

    huggingface-cli login            # once, with a write token
    python -m shared.space --repo YOUR_NAME/side-by-side

`upload_folder` stores the checkpoints and images through the Hub's large-file storage by itself,
so no git LFS setup is needed. Only the files that the app needs are uploaded (`files_to_upload`).
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UPLOADED = ["app.py", "README.md", "requirements.txt", "apps/**", "shared/**", "checkpoints/**", "bench/results/**"]
EXCLUDED = ["*__pycache__*", "*.pyc", ".venv/*", ".cache/*", "tests/*", "runs/*"]


def front_matter(readme: Path = ROOT / "README.md") -> dict:
    """The Space settings block at the top of README.md."""
    import yaml

    text = readme.read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{readme} does not start with a '---' front-matter block.")
    return yaml.safe_load(text.split("---\n", 2)[1])


def files_to_upload(root: Path = ROOT) -> list[str]:
    """Repository-relative paths of the tracked files a Space needs (no tests, caches or venvs)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    return sorted(
        path
        for path in tracked
        if any(fnmatch.fnmatch(path, pattern) for pattern in UPLOADED)
        and not any(fnmatch.fnmatch(path, pattern) for pattern in EXCLUDED)
    )


def deploy(repo_id: str, private: bool = False) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(ROOT), repo_id=repo_id, repo_type="space", allow_patterns=files_to_upload())
    return f"https://huggingface.co/spaces/{repo_id}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upload the app to a Hugging Face Space.")
    parser.add_argument("--repo", required=True, help="the Space id, e.g. your-name/side-by-side")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="list the files that would be uploaded")
    arguments = parser.parse_args(argv)
    if arguments.dry_run:
        print("\n".join(files_to_upload()))
        return 0
    print(f"Space ready: {deploy(arguments.repo, arguments.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
