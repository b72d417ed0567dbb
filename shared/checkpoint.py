"""Checkpoint I/O for our own models: a folder with `config.json` + `model.safetensors`.

The same folder layout works from a local path (the small checkpoints shipped in `checkpoints/`)
and from a Hugging Face Hub repository (`push_to_hub` uploads it, `load_model` downloads it).
Only safetensors and JSON are ever read, so loading a checkpoint never executes code.

A missing folder or an unreachable Hub answers with one `CheckpointError` that says what to do,
within about a second: we probe the Hub with a short timeout before asking `huggingface_hub`,
whose own retries take tens of seconds on a machine without network.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import torch
from safetensors.torch import load_model as load_safetensors_into
from safetensors.torch import save_model as save_safetensors_from

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
HUB_PROBE_SECONDS = 1.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")

ModelT = TypeVar("ModelT", bound=torch.nn.Module)


class CheckpointError(ValueError):
    """A checkpoint could not be found or read; the message says what to do."""


def hub_offline_reason() -> str | None:
    """None when the Hub looks reachable, else why not (offline mode, or no answer within a second).

    The probe runs in a thread so that a slow DNS lookup cannot hold the caller longer than the timeout.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    outcome: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(HUB_PROBE_SECONDS + 0.2)
    return None if outcome == [True] else f"{host} cannot be reached (no network?)"


def looks_like_hub_id(name: str) -> bool:
    """`gpt2` or `user/model`, as opposed to a filesystem path such as `./checkpoints/x` or `/tmp/x`."""
    return bool(_HUB_ID.match(name)) and not name.startswith((".", "~")) and not os.path.isabs(name)


def resolve_folder(
    name_or_path: str | os.PathLike, train_command: str | None = None, allow_patterns: list[str] | None = None
) -> Path:
    """A local folder as it is, or a Hub repository downloaded into the cache; else a `CheckpointError`.

    `train_command` is quoted in the error for a missing local folder (how to make the checkpoint).
    """
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return Path(name)
    if not name or not looks_like_hub_id(name) or os.path.exists(os.path.dirname(name) or "\0"):
        hint = f" Create it with `{train_command}`." if train_command else ""
        raise CheckpointError(f"No checkpoint folder at {name!r}.{hint}")
    reason = hub_offline_reason()
    if reason is not None:
        hint = f", or create a local checkpoint with `{train_command}`" if train_command else ""
        raise CheckpointError(
            f"{name!r} is not a local folder and the Hugging Face Hub is unavailable ({reason}). Connect to the internet{hint}."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(name, allow_patterns=allow_patterns))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        raise CheckpointError(f"Could not download {name!r} from the Hugging Face Hub: {error}") from error


def _config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def save_model(
    model: torch.nn.Module,
    config: Any,
    folder: str | os.PathLike,
    dtype: torch.dtype | None = None,
    extra_config: dict | None = None,
) -> Path:
    """Write `config.json` (the config dataclass as JSON, plus `extra_config`) and `model.safetensors`.

    `dtype=torch.float16` halves the file; tied weights are stored once."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps({**_config_to_dict(config), **(extra_config or {})}, indent=2) + "\n")
    if dtype is not None:
        model = copy.deepcopy(model).to(dtype)
    save_safetensors_from(model, str(folder / WEIGHTS_FILE))
    return folder


def read_config(folder: Path, config_class: type) -> Any:
    """The config dataclass stored in `folder/config.json` (unknown keys are ignored)."""
    path = folder / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; it is not a checkpoint of ours.")
    values = json.loads(path.read_text())
    names = {field.name for field in dataclasses.fields(config_class)}
    return config_class(**{key: value for key, value in values.items() if key in names})


def load_model(
    model_class: type[ModelT],
    config_class: type,
    name_or_path: str | os.PathLike,
    train_command: str | None = None,
    device: torch.device | str = "cpu",
) -> ModelT:
    """Build `model_class(config)` from a checkpoint folder or Hub id and load its weights in fp32."""
    folder = resolve_folder(name_or_path, train_command, allow_patterns=[CONFIG_FILE, WEIGHTS_FILE, "*.json"])
    weights = folder / WEIGHTS_FILE
    if not weights.exists():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}.")
    model = model_class(read_config(folder, config_class))
    try:
        missing, unexpected = load_safetensors_into(model, str(weights), strict=False, device="cpu")
    except Exception as error:  # safetensors raises several types for a corrupt or mismatched file
        raise CheckpointError(f"{weights} could not be read as our {model_class.__name__}: {error}") from error
    if missing or unexpected:
        raise CheckpointError(
            (
                f"{weights} does not match {model_class.__name__}: missing {sorted(missing)[:5]}, unexpected "
                f"{sorted(unexpected)[:5]}."
            )
        )
    return model.float().to(device).eval()


def load_transformers_model(
    name_or_path: str | os.PathLike,
    model_class: type,
    model_type: str,
    allow_patterns: list[str],
    description: str | None = None,
):
    """A `transformers` model of `model_class` (say GPT2LMHeadModel) from a Hub id (needs the network)
    or a folder written by its `save_pretrained`, from safetensors weights only (never a pickle).

    Every failure is a ValueError that says what went wrong: a missing folder, an unreachable Hub
    (within about a second, see `resolve_folder`), a folder with no config, a config of another
    `model_type` (`description` names the expected kind in messages, default the model_type), weights
    that do not load."""
    from transformers import AutoConfig

    description = description or repr(model_type)
    folder = resolve_folder(os.path.expanduser(os.fspath(name_or_path)), allow_patterns=allow_patterns)
    try:
        hf_config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{str(name_or_path)!r} holds no {description} checkpoint: expected a Hub id (needs the network) or a "
            f"folder saved with save_pretrained. Cause: {str(error).splitlines()[0]}"
        ) from error
    if hf_config.model_type != model_type:
        raise ValueError(f"{str(name_or_path)!r} is a {hf_config.model_type!r} checkpoint, not {description}")
    try:
        return model_class.from_pretrained(folder, config=hf_config, use_safetensors=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"could not load the safetensors weights in {folder}: {str(error).splitlines()[0]}") from error


def push_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = False) -> str:
    """Upload a checkpoint folder to a Hub model repository (needs `huggingface-cli login`)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=os.fspath(folder), repo_id=repo_id).commit_url
