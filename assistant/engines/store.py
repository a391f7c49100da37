"""Local model store: finds the shipped model files (models/manifest.yaml), checks and materialises them.

Weights ship inside pip packages whose folders are located with importlib.util.find_spec (the packages are
never imported). Models that cannot be used in place (Whisper base split in two parts, the SmolLM2 GGUF)
are materialised once into <cache>/<name>/, whose stamp file records what they were built from.
Fingerprints of files are [path, size, mtime_ns, sha256]; sha256 is only computed by prepare/verify.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
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


class ModelStore:
    def __init__(self, cache_dir: Path, manifest_path: Path | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser()
        self.manifest_path = Path(manifest_path) if manifest_path else default_manifest_path()
        self.models = _load_manifest(self.manifest_path)

    def status(self, verify: bool = False) -> list[ModelStatus]:
        """One row per manifest model. Cheap (stat + stamps) unless verify=True, which hashes every file."""
        rows = []
        for m in self.models.values():
            state, detail, files = self._check_sources(m, verify)
            if state == "ready" and _materialised(m):
                state, detail = self._check_output(m, files, verify)
            package = " + ".join(p["requirement"] for p in m["packages"])
            size = sum(f["size"] for p in m["packages"] for f in p["files"])
            rows.append(
                ModelStatus(
                    m["name"], m["role"], package, m["licence"], size, state, detail, bool(m.get("default"))
                )
            )
        return rows

    def asr_path(self, name_or_path: str) -> Path:
        return self._resolve(name_or_path, "asr", None)

    def llm_path(self, name_or_path: str, progress: Progress = None) -> Path:
        return self._resolve(name_or_path, "llm", progress)

    def voice_paths(self, name_or_path: str) -> tuple[Path, Path]:
        p = self._resolve(name_or_path, "tts", None)
        if name_or_path in self.models:  # a package folder: pick the voice named in the manifest
            files = self.models[name_or_path]["packages"][0]["files"]
            p = p / next(f["name"] for f in files if f["name"].endswith(".onnx"))
        return p, p.with_name(p.name + ".json")

    def prepare(
        self, names: Sequence[str] | None = None, progress: Progress = None, verify: bool = True
    ) -> None:
        """Verify (sha256) and materialise the named models, by default those marked default."""
        chosen = list(names) if names is not None else [n for n, m in self.models.items() if m.get("default")]
        for name in chosen:
            if (m := self.models.get(name)) is None:
                raise ModelError(f"unknown model {name!r}; known: {', '.join(self.models)}")
            _say(progress, f"checking {name}" + (" (sha256)" if verify else ""))
            state, detail, files = self._check_sources(m, verify)
            if state in ("missing", "corrupt"):
                raise ModelError(f"{ROLE_NAMES[m['role']]} model {name}: {detail}")
            if _materialised(m) and self._check_output(m, files, verify)[0] != "ready":
                self._materialise(m, progress)
            _say(progress, f"{name}: ready")

    # ---- lookups and checks -------------------------------------------------------------------------------
    def _resolve(self, name_or_path: str, role: str, progress: Progress) -> Path:
        """A manifest name -> its folder (materialised if needed); else a user path, if it looks right."""
        m = self.models.get(name_or_path)
        if m is not None and m["role"] != role:
            raise ModelError(f"{name_or_path!r} is a model of role {m['role']}, not {role}")
        if m is not None:
            return self._model_dir(m, progress)
        if _override_ok(role, p := Path(name_or_path).expanduser()):
            return p
        known = ", ".join(n for n, m in self.models.items() if m["role"] == role) or "none"
        raise ModelError(
            f"{ROLE_NAMES[role]} model {name_or_path!r} is neither a known model ({known}) nor {OVERRIDES[role]}"
        )

    @staticmethod
    def _package_dir(pkg: dict[str, Any]) -> Path | None:
        try:
            spec = importlib.util.find_spec(pkg["module"])
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(list(spec.submodule_search_locations)[0]) / (pkg.get("folder") or "")

    def _check_sources(self, m: Model, verify: bool) -> tuple[str, str, Files]:
        """State of the shipped files: presence, sizes and verified stamps; sha256 too if verify.

        Returns (state, detail, {file name: (path, expected sha256)})."""
        reinstall = m["install"].replace("pip install", "pip install --force-reinstall", 1)
        files: Files = {}
        for pkg in m["packages"]:
            if (d := self._package_dir(pkg)) is None:
                return "missing", f"package {pkg['requirement']} is not installed; run: {m['install']}", {}
            for f in pkg["files"]:
                if not (p := d / f["name"]).is_file():
                    return "missing", f"{p} is missing; reinstall with: {reinstall}", {}
                if (size := p.stat().st_size) != f["size"]:
                    return (
                        "corrupt",
                        f"{p} is {size} bytes, expected {f['size']}; reinstall with: {reinstall}",
                        {},
                    )
                files[f["name"]] = (p, f["sha256"])
        stamp_path = self.cache_dir / VERIFIED_DIR / f"{m['name']}.json"
        stamps = _read_json(stamp_path)
        for p, sha in files.values():
            if verify:
                if (actual := _sha256(p)) != sha:
                    return "corrupt", f"{_mismatch(p, sha, actual)}; reinstall with: {reinstall}", files
                stamps[str(p)] = _fp(p, sha)
            elif str(p) in stamps and stamps[str(p)] != _fp(p, sha):
                return "needs-prepare", f"{p} changed since it was verified; run: {VERIFY_CMD}", files
        if verify:
            _write_json(stamp_path, stamps)
        unverified = "" if all(str(p) in stamps for p, _ in files.values()) else " (sha256 not yet verified)"
        return "ready", f"at {next(iter(files.values()))[0].parent}{unverified}", files

    def _check_output(self, m: Model, files: Files, verify: bool) -> tuple[str, str]:
        """State of a materialised model in <cache>/<name>, judged by its stamp (and sha256 if verify)."""
        out = self.cache_dir / m["name"]
        stamp = _read_json(out / STAMP)
        if not stamp:
            secs = m["materialise"].get("seconds")
            when = f"once, ~{secs} s" if secs else "once"
            return "needs-prepare", f"not yet materialised into {out} ({when}); on first use or: {VERIFY_CMD}"
        if stamp.get("sources") != {n: _fp(p, sha) for n, (p, sha) in files.items()}:
            return "needs-prepare", f"its source changed since {out} was built; run: {VERIFY_CMD}"
        for rel, (size, sha) in stamp.get("outputs", {}).items():
            p = out / rel
            if not p.is_file() or p.stat().st_size != size or (verify and _sha256(p) != sha):
                return "corrupt", f"cached file {p} is damaged; rebuild with: {VERIFY_CMD}"
        return "ready", f"materialised at {out}"

    # ---- materialisation ----------------------------------------------------------------------------------
    def _model_dir(self, m: Model, progress: Progress) -> Path:
        state, detail, files = self._check_sources(m, verify=False)
        if state in ("missing", "corrupt"):
            raise ModelError(f"{ROLE_NAMES[m['role']]} model {m['name']}: {detail}")
        if not _materialised(m):
            if state != "ready":
                log.warning("%s: %s", m["name"], detail)
            return next(iter(files.values()))[0].parent
        if state != "ready" or self._check_output(m, files, verify=False)[0] != "ready":
            return self._materialise(m, progress)
        return self.cache_dir / m["name"]

    def _materialise(self, m: Model, progress: Progress) -> Path:
        """Verify the sources, build into a temp folder inside the cache, then rename it into place."""
        name, out, spec = m["name"], self.cache_dir / m["name"], m["materialise"]
        state, detail, files = self._check_sources(m, verify=True)
        if state != "ready":
            raise ModelError(f"{ROLE_NAMES[m['role']]} model {name}: {detail}")
        sources = {n: _fp(p, sha) for n, (p, sha) in files.items()}
        old = _read_json(out / STAMP)
        if {n: fp[3] for n, fp in old.get("sources", {}).items()} == {n: fp[3] for n, fp in sources.items()}:
            old["sources"] = sources  # same bytes, reinstalled or moved: keep the build if it is intact
            _write_json(out / STAMP, old)
            if self._check_output(m, files, verify=True)[0] == "ready":
                return out
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=self.cache_dir))
        tmp.chmod(0o755)  # mkdtemp makes it private; the finished model folder should not be
        try:
            t0 = time.monotonic()
            if spec["kind"] == "concat":
                _say(
                    progress,
                    f"joining {len(spec['parts'])} parts of {name} into {spec['output']['name']} (once)",
                )
                self._concat(spec, files, tmp)
            elif spec["kind"] == "gguf-to-safetensors":
                title, secs = m.get("title", name), spec.get("seconds", "?")
                _say(progress, f"converting {title} GGUF to safetensors (once, ~{secs} s)")
                self._convert_gguf(m, files, tmp, progress)
            else:
                raise ModelError(f"model manifest: unknown materialise kind {spec['kind']!r} for {name}")
            outputs = {
                str(p.relative_to(tmp)): [p.stat().st_size, _sha256(p)]
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            _write_json(tmp / STAMP, {"model": name, "sources": sources, "outputs": outputs})
            if out.exists():
                shutil.rmtree(out)
            try:
                os.replace(tmp, out)
            except OSError:  # another process finished the same build first
                if not (out / STAMP).is_file():
                    raise
            _say(progress, f"{name}: materialised into {out} in {time.monotonic() - t0:.1f} s")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    @staticmethod
    def _concat(spec: dict[str, Any], files: Files, tmp: Path) -> None:
        target, digest = spec["output"], hashlib.sha256()
        with (tmp / target["name"]).open("wb") as dst:
            for part in spec["parts"]:
                with files[part][0].open("rb") as src:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        dst.write(chunk)
        if (actual := digest.hexdigest()) != target["sha256"]:
            raise ModelError(
                _mismatch(tmp / target["name"], target["sha256"], actual) + " (after joining the parts)"
            )
        for fname, (p, _) in files.items():
            if fname not in spec["parts"]:
                shutil.copyfile(p, tmp / fname)

    @staticmethod
    def _convert_gguf(m: Model, files: Files, tmp: Path, progress: Progress) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = files[m["materialise"]["gguf"]][0]
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        model.hf_quantizer = None  # the weights are plain fp32 now: save them as such
        if hasattr(model.config, "quantization_config"):
            delattr(model.config, "quantization_config")
        _say(progress, f"saving {m['name']} as safetensors")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)


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
