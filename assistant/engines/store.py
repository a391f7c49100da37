"""Local model store: finds the shipped model files (models/manifest.yaml), checks and materialises them.

Weights ship inside pip packages whose folders are located with importlib.util.find_spec (the packages are
never imported). Models that cannot be used in place (Whisper base split in two parts, a GGUF, a GGUF split over several
packages) are materialised once into <cache>/<name>/, whose stamp file records what they were built from.
A model that is not installed is pip-installed by ``prepare([name], install=True)`` (`assistant models
--prepare NAME`), then checked like any other.
Fingerprints of files are [path, size, mtime_ns, sha256]; sha256 is only computed by prepare/verify.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.engines.manifest import (
    OVERRIDES,
    ROLE_NAMES,
    STAMP,
    VERIFIED_DIR,
    VERIFY_CMD,
    Files,
    Model,
    ModelError,
    ModelStatus,
    Progress,
    _fp,
    _load_manifest,
    _materialised,
    _mismatch,
    _override_ok,
    _read_json,
    _say,
    _sha256,
    _write_json,
    default_cache_dir,
    default_manifest_path,
    format_status,
)

__all__ = [
    "ModelError",
    "ModelStatus",
    "ModelStore",
    "default_cache_dir",
    "default_manifest_path",
    "format_status",
]

log = logging.getLogger(__name__)


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
        self,
        names: Sequence[str] | None = None,
        progress: Progress = None,
        verify: bool = True,
        install: bool = False,
    ) -> None:
        """Verify (sha256) and materialise the named models, by default those marked default.

        With ``install``, a model whose packages are missing is pip-installed first (its manifest
        ``install`` command, run with this interpreter's pip), then verified the same way."""
        chosen = list(names) if names else [n for n, m in self.models.items() if m.get("default")]
        for name in chosen:
            if (m := self.models.get(name)) is None:
                raise ModelError(f"unknown model {name!r}; known: {', '.join(self.models)}")
            _say(progress, f"checking {name}" + (" (sha256)" if verify else ""))
            state, detail, files = self._check_sources(m, verify)
            if state == "missing" and install:
                _pip_install(m, progress)
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
                if spec.get("parts"):  # a GGUF split over packages: join and check it, convert, drop it
                    _say(progress, f"joining {len(spec['parts'])} parts of {title} into one GGUF (once)")
                    joined = {"name": spec["gguf"], **spec["joined"]}
                    self._concat({"parts": spec["parts"], "output": joined}, files, tmp, copy_rest=False)
                    files = {**files, spec["gguf"]: (tmp / spec["gguf"], joined["sha256"])}
                _say(progress, f"converting {title} GGUF to safetensors (once, ~{secs} s)")
                self._convert_gguf(m, files, tmp, progress)
                if spec.get("parts"):
                    (tmp / spec["gguf"]).unlink()
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
    def _concat(spec: dict[str, Any], files: Files, tmp: Path, copy_rest: bool = True) -> None:
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
            if copy_rest and fname not in spec["parts"]:
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


def _pip_install(m: Model, progress: Progress) -> None:
    """Run the manifest's ``pip install ...`` with this interpreter, so it lands in this environment."""
    args = shlex.split(m["install"])
    if args[:2] != ["pip", "install"]:
        raise ModelError(f"model manifest: {m['name']}: install must be a 'pip install ...' command")
    _say(progress, f"installing {m['name']}: {m['install']}")
    done = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ModelError(f"{m['install']} failed:\n{done.stderr.strip()[-2000:]}")
    importlib.invalidate_caches()  # find_spec must see the packages just installed
