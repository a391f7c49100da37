"""The model manifest (models/manifest.yaml) and the small pieces the store builds on: the status row,
file fingerprints, stamp files, and the `assistant models` table.

The manifest records, per model, where its weights ship (pip packages, never a model hub), their sizes
and sha256, the licence and provenance (``source``), and how the store materialises them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

STAMP = ".stamp.json"  # inside a materialised model folder
VERIFIED_DIR = ".verified"  # <cache>/.verified/<name>.json: fingerprints of checked package files
VERIFY_CMD = "assistant models --verify"
ROLE_NAMES = {"asr": "ASR", "llm": "LLM", "tts": "TTS"}
OVERRIDES = {  # what a user-supplied path must be, per role
    "asr": "a folder holding a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)",
    "llm": "a folder holding a transformers model (config.json and weights, from save_pretrained)",
    "tts": "a Piper .onnx file with its .onnx.json beside it",
}
Progress = Callable[[str], None] | None
Model = dict[str, Any]
Files = dict[str, tuple[Path, str]]  # file name -> (path, expected sha256)


class ModelError(RuntimeError):
    """A model is unknown, missing or damaged; the message says what and the command that fixes it."""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    role: str
    package: str
    licence: str
    size_bytes: int  # the shipped files, as listed in the manifest
    state: str  # "ready" | "needs-prepare" | "missing" | "corrupt"
    detail: str
    default: bool


def default_manifest_path() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "manifest.yaml"


def default_cache_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "models" / "cache"


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _fp(path: Path, sha256: str) -> list[Any]:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns, sha256]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _mismatch(path: Path, expected: str, actual: str) -> str:
    return f"checksum mismatch for {path}: expected sha256 {expected}, got {actual}"


def _say(progress: Progress, message: str) -> None:
    log.info(message)
    if progress is not None:
        progress(message)


def _load_manifest(path: Path) -> dict[str, Model]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ModelError(f"cannot read the model manifest {path}: {e}") from e
    models: dict[str, Model] = {}
    for m in data.get("models") or []:
        lacking = [k for k in ("name", "role", "install", "licence", "packages") if k not in m]
        if lacking or m["role"] not in ROLE_NAMES:
            raise ModelError(
                f"model manifest {path}: entry {m.get('name')!r} lacks {lacking} or has a bad role"
            )
        m.setdefault("materialise", {"kind": "none"})
        models[m["name"]] = m
    return models


def _override_ok(role: str, p: Path) -> bool:
    if role == "tts":
        return p.suffix == ".onnx" and p.is_file() and p.with_name(p.name + ".json").is_file()
    return p.is_dir() and (p / ("model.bin" if role == "asr" else "config.json")).is_file()


def _materialised(m: Model) -> bool:
    return m["materialise"].get("kind", "none") != "none"


def format_status(statuses: list[ModelStatus]) -> str:
    """An aligned table for `assistant models`, with the fix under each model that is not ready."""
    head = ("NAME", "ROLE", "STATE", "SIZE (MB)", "LICENCE")
    rows = [
        (s.name + " *" * s.default, s.role, s.state, f"{s.size_bytes / 1e6:.1f}", s.licence) for s in statuses
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    lines = [line(head)]
    for r, s in zip(rows, statuses, strict=True):
        lines.append(line(r))
        if s.state != "ready":
            lines.append(f"    -> {s.detail}")
    return "\n".join([*lines, "(* = a default model, set up by scripts/setup.sh)"])
