"""Tests for assistant.engines.store: a fake manifest over fake package folders, plus one real-model test."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from assistant.config import LlmConfig
from assistant.engines.store import (
    ModelError,
    ModelStore,
    default_cache_dir,
    default_manifest_path,
    format_status,
)


def _entry(name: str, content: bytes, size: int | None = None, sha: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "size": len(content) if size is None else size,
        "sha256": sha or hashlib.sha256(content).hexdigest(),
    }


class Fake:
    """Fake site-packages with one package per model, and a manifest describing them."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.site = root / "site"
        self.cache = root / "cache"
        self.manifest = root / "manifest.yaml"
        self.tag = uuid.uuid4().hex[:8]  # unique module names per test
        monkeypatch.syspath_prepend(str(self.site))
        self.models: list[dict[str, Any]] = []

    def package(self, key: str, folder: str, files: dict[str, bytes], requirement: str) -> dict[str, Any]:
        module = f"msfake_{key}_{self.tag}"
        d = self.site / module
        (d / folder).mkdir(parents=True, exist_ok=True)
        (d / "__init__.py").write_text("raise ImportError('must not be imported')\n")
        for fname, content in files.items():
            (d / folder / fname).write_bytes(content)
        entries = [_entry(f, c) for f, c in files.items()]
        return {"requirement": requirement, "module": module, "folder": folder, "files": entries}

    def add(self, name: str, role: str, packages: list[dict[str, Any]], **extra: Any) -> None:
        install = "pip install " + " ".join(p["requirement"] for p in packages)
        self.models.append(
            {
                "name": name,
                "role": role,
                "default": True,
                "licence": "MIT",
                "install": install,
                "packages": packages,
            }
            | extra
        )

    def store(self) -> ModelStore:
        self.manifest.write_text(yaml.safe_dump({"version": 1, "models": self.models}))
        return ModelStore(self.cache, self.manifest)

    def path(self, key: str, folder: str, fname: str) -> Path:
        return self.site / f"msfake_{key}_{self.tag}" / folder / fname


PART1, PART2 = b"A" * 1000, b"B" * 777


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake(tmp_path, monkeypatch)
    f.add(
        "tiny",
        "asr",
        [f.package("asr", "model", {"model.bin": b"w" * 64, "config.json": b"{}"}, "fake-asr==1")],
    )
    f.add(
        "split",
        "asr",
        [
            f.package("p1", "data", {"model.bin.part1": PART1, "config.json": b"{}"}, "fake-p1==1"),
            f.package("p2", "data", {"model.bin.part2": PART2}, "fake-p2==1"),
        ],
        materialise={
            "kind": "concat",
            "parts": ["model.bin.part1", "model.bin.part2"],
            "output": _entry("model.bin", PART1 + PART2),
        },
    )
    f.add(
        "lm",
        "llm",
        [f.package("lm", "", {"lm.gguf": b"GGUF" + b"\0" * 60}, "fake-lm==1")],
        materialise={"kind": "gguf-to-safetensors", "gguf": "lm.gguf", "seconds": 1},
    )
    f.add(
        "voice", "tts", [f.package("tts", "data", {"v.onnx": b"onnx", "v.onnx.json": b"{}"}, "fake-tts==1")]
    )
    f.add(
        "ghost",
        "asr",
        [{"requirement": "ghost-pkg==2", "module": f"msfake_ghost_{f.tag}", "folder": "", "files": []}],
        default=False,
    )
    return f


@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the transformers conversion with a fast fake that writes a config.json."""
    calls: list[Path] = []

    def fake_convert(m: Any, files: Any, tmp: Path, progress: Any) -> None:
        calls.append(tmp)
        (tmp / "config.json").write_text('{"model_type": "llama"}')
        (tmp / "model.safetensors").write_bytes(files[m["materialise"]["gguf"]][0].read_bytes())

    monkeypatch.setattr(ModelStore, "_convert_gguf", staticmethod(fake_convert))
    return calls


def _states(store: ModelStore, verify: bool = False) -> dict[str, str]:
    return {s.name: s.state for s in store.status(verify=verify)}


def test_status_cheap(fake: Fake) -> None:
    store = fake.store()
    rows = {s.name: s for s in store.status()}
    assert {n: r.state for n, r in rows.items()} == {
        "tiny": "ready",
        "split": "needs-prepare",
        "lm": "needs-prepare",
        "voice": "ready",
        "ghost": "missing",
    }
    assert "pip install ghost-pkg==2" in rows["ghost"].detail
    assert rows["split"].package == "fake-p1==1 + fake-p2==1"
    assert rows["split"].size_bytes == len(PART1) + len(PART2) + 2
    assert not rows["ghost"].default and rows["tiny"].default


def test_missing_package_raises_with_install_command(fake: Fake) -> None:
    store = fake.store()
    with pytest.raises(ModelError, match="pip install ghost-pkg==2"):
        store.asr_path("ghost")
    with pytest.raises(ModelError, match="pip install ghost-pkg==2"):
        store.prepare(["ghost"])


def test_wrong_checksum_names_file_expected_actual(fake: Fake) -> None:
    fake.models[0]["packages"][0]["files"][0]["sha256"] = "0" * 64
    store = fake.store()
    actual = hashlib.sha256(b"w" * 64).hexdigest()
    with pytest.raises(ModelError) as e:
        store.prepare(["tiny"])
    msg = str(e.value)
    assert "model.bin" in msg and "0" * 64 in msg and actual in msg
    assert _states(store)["tiny"] == "ready"  # cheap status does not hash
    assert _states(store, verify=True)["tiny"] == "corrupt"


def test_wrong_size_is_corrupt(fake: Fake) -> None:
    fake.path("asr", "model", "model.bin").write_bytes(b"short")
    store = fake.store()
    assert _states(store)["tiny"] == "corrupt"
    with pytest.raises(ModelError, match="expected 64"):
        store.asr_path("tiny")


def test_prepare_stamps_then_detects_changes(fake: Fake, conversions: list[Path]) -> None:
    store = fake.store()
    store.prepare()  # the defaults: everything but ghost
    rows = {s.name: s for s in store.status()}
    assert all(rows[n].state == "ready" for n in ("tiny", "split", "lm", "voice"))
    assert "not yet verified" not in rows["tiny"].detail
    assert len(conversions) == 1
    bin_path = fake.path("asr", "model", "model.bin")
    st = bin_path.stat()
    os.utime(bin_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _states(store)["tiny"] == "needs-prepare"
    store.prepare(["tiny"])
    assert _states(store)["tiny"] == "ready"


def test_concat_materialises_once(fake: Fake) -> None:
    store = fake.store()
    messages: list[str] = []
    d = store.asr_path("split")
    assert d == fake.cache / "split"
    assert (d / "model.bin").read_bytes() == PART1 + PART2
    assert (d / "config.json").read_text() == "{}"
    assert not [p for p in fake.cache.iterdir() if ".tmp-" in p.name]
    mtime = (d / "model.bin").stat().st_mtime_ns
    store.prepare(["split"], progress=messages.append)
    assert (d / "model.bin").stat().st_mtime_ns == mtime  # not rebuilt
    assert _states(store)["split"] == "ready"
    (d / "model.bin").write_bytes(b"damaged")
    assert _states(store)["split"] == "corrupt"
    assert store.asr_path("split") == d and (d / "model.bin").read_bytes() == PART1 + PART2


def test_concat_bad_join_checksum(fake: Fake) -> None:
    fake.models[1]["materialise"]["output"]["sha256"] = "f" * 64
    with pytest.raises(ModelError, match="expected sha256 f{64}"):
        fake.store().asr_path("split")
    assert not (fake.cache / "split").exists()


def test_llm_materialises_once_and_again_when_source_changes(fake: Fake, conversions: list[Path]) -> None:
    store = fake.store()
    messages: list[str] = []
    d = store.llm_path("lm", progress=messages.append)
    assert (d / "config.json").is_file() and (d / ".stamp.json").is_file()
    assert any("GGUF to safetensors (once, ~1 s)" in m for m in messages)
    assert store.llm_path("lm") == d and len(conversions) == 1
    new = b"GGUF" + b"\1" * 60
    fake.path("lm", "", "lm.gguf").write_bytes(new)
    fake.models[2]["packages"][0]["files"][0] = _entry("lm.gguf", new)
    store = fake.store()
    assert _states(store)["lm"] == "needs-prepare"
    assert store.llm_path("lm") == d and len(conversions) == 2
    assert (d / "model.safetensors").read_bytes() == new


GGUF1, GGUF2, GGUF3 = b"GGUF" + b"\1" * 96, b"\2" * 100, b"\3" * 41


def _add_split_gguf(fake: Fake, joined_sha: str | None = None) -> None:
    """An LLM whose GGUF ships split over three packages, as Qwen2.5-Coder-0.5B does (six there)."""
    parts = {"part01.bin": GGUF1, "part02.bin": GGUF2, "part03.bin": GGUF3}
    fake.add(
        "qlm",
        "llm",
        [fake.package(f"q{i}", "data", {n: c}, f"fake-q{i}==1") for i, (n, c) in enumerate(parts.items())],
        default=False,
        materialise={
            "kind": "gguf-to-safetensors",
            "parts": list(parts),
            "gguf": "joined.gguf",
            "joined": {
                k: v for k, v in _entry("x", GGUF1 + GGUF2 + GGUF3, sha=joined_sha).items() if k != "name"
            },
            "seconds": 2,
        },
    )


def test_multipart_gguf_joins_in_order_verifies_converts_once(fake: Fake, conversions: list[Path]) -> None:
    _add_split_gguf(fake)
    store = fake.store()
    assert _states(store)["qlm"] == "needs-prepare"
    messages: list[str] = []
    d = store.llm_path("qlm", progress=messages.append)
    assert d == fake.cache / "qlm" and len(conversions) == 1
    assert (
        d / "model.safetensors"
    ).read_bytes() == GGUF1 + GGUF2 + GGUF3  # the converter saw the joined file
    assert (
        not (d / "joined.gguf").exists() and not (d / "part01.bin").exists()
    )  # only the converted model stays
    assert any("joining 3 parts" in m for m in messages)
    assert _states(store, verify=True)["qlm"] == "ready"
    assert store.llm_path("qlm") == d and len(conversions) == 1  # once
    row = next(s for s in store.status() if s.name == "qlm")
    assert row.size_bytes == len(GGUF1 + GGUF2 + GGUF3) and not row.default
    assert row.package == "fake-q0==1 + fake-q1==1 + fake-q2==1"


def test_multipart_gguf_bad_joined_checksum_builds_nothing(fake: Fake, conversions: list[Path]) -> None:
    _add_split_gguf(fake, joined_sha="e" * 64)
    with pytest.raises(ModelError, match="expected sha256 e{64}.*after joining the parts"):
        fake.store().llm_path("qlm")
    assert not conversions
    assert not (fake.cache / "qlm").exists()
    assert not [p for p in fake.cache.iterdir() if ".tmp-" in p.name]


def test_multipart_gguf_part_order_matters(fake: Fake, conversions: list[Path]) -> None:
    _add_split_gguf(fake)
    fake.models[-1]["materialise"]["parts"] = ["part02.bin", "part01.bin", "part03.bin"]
    with pytest.raises(ModelError, match="after joining the parts"):
        fake.store().llm_path("qlm")


def test_prepare_name_pip_installs_a_missing_model_then_verifies(
    fake: Fake, conversions: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_split_gguf(fake)
    hidden = fake.site / "hidden"
    hidden.mkdir()
    installed = [p for p in fake.site.iterdir() if p.name.startswith("msfake_q")]
    for p in installed:  # not installed yet: move the packages out of the import path
        p.rename(hidden / p.name)
    store = fake.store()
    assert _states(store)["qlm"] == "missing"
    with pytest.raises(ModelError, match="not installed; run: pip install fake-q0==1"):
        store.prepare(["qlm"])  # without install=True, nothing is installed
    calls: list[list[str]] = []

    def fake_pip(cmd: list[str], **kwargs: Any) -> Any:
        calls.append(cmd)
        for p in installed:
            (hidden / p.name).rename(p)
        return type("Done", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr("assistant.engines.store.subprocess.run", fake_pip)
    store.prepare(["qlm"], install=True)
    assert calls and calls[0][1:] == ["-m", "pip", "install", "fake-q0==1", "fake-q1==1", "fake-q2==1"]
    assert _states(store)["qlm"] == "ready" and len(conversions) == 1


def test_prepare_install_failure_says_so(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    done = type("Done", (), {"returncode": 1, "stderr": "No matching distribution found for ghost-pkg==2"})()
    monkeypatch.setattr("assistant.engines.store.subprocess.run", lambda cmd, **kw: done)
    with pytest.raises(ModelError, match="pip install ghost-pkg==2 failed:\nNo matching distribution"):
        fake.store().prepare(["ghost"], install=True)


def test_interrupted_conversion_leaves_no_cache(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(m: Any, files: Any, tmp: Path, progress: Any) -> None:
        (tmp / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(ModelStore, "_convert_gguf", staticmethod(boom))
    store = fake.store()
    with pytest.raises(KeyboardInterrupt):
        store.llm_path("lm")
    assert not (fake.cache / "lm").exists()
    assert not [p for p in fake.cache.iterdir() if ".tmp-" in p.name]
    assert _states(store)["lm"] == "needs-prepare"


def test_path_overrides(fake: Fake, tmp_path: Path) -> None:
    store = fake.store()
    asr = tmp_path / "my-asr"
    asr.mkdir()
    with pytest.raises(ModelError, match="model.bin"):
        store.asr_path(str(asr))
    (asr / "model.bin").write_bytes(b"x")
    assert store.asr_path(str(asr)) == asr
    llm = tmp_path / "my-llm"
    llm.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        store.llm_path(str(llm))
    (llm / "config.json").write_text("{}")
    assert store.llm_path(str(llm)) == llm
    onnx = tmp_path / "me.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"\.onnx\.json"):
        store.voice_paths(str(onnx))
    (tmp_path / "me.onnx.json").write_text("{}")
    assert store.voice_paths(str(onnx)) == (onnx, tmp_path / "me.onnx.json")
    with pytest.raises(ModelError, match="not llm"):
        store.llm_path("tiny")


def test_named_in_place_paths(fake: Fake) -> None:
    store = fake.store()
    assert store.asr_path("tiny") == fake.path("asr", "model", "model.bin").parent
    onnx, cfg = store.voice_paths("voice")
    assert onnx == fake.path("tts", "data", "v.onnx") and cfg == fake.path("tts", "data", "v.onnx.json")
    with pytest.raises(ModelError, match="unknown model"):
        store.prepare(["nope"])


def test_format_status_row_per_model(fake: Fake) -> None:
    statuses = fake.store().status()
    text = format_status(statuses)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["NAME", "ROLE", "STATE"]
    for s in statuses:
        assert sum(line.split()[0] == s.name for line in lines if line and not line.startswith(" ")) == 1
    assert "    -> package ghost-pkg==2 is not installed; run: pip install ghost-pkg==2" in lines
    assert "tiny *" in text


def test_real_manifest_is_consistent() -> None:
    store = ModelStore(default_cache_dir(), default_manifest_path())
    assert set(store.models) == {
        "tiny.en",
        "base",
        "smollm2-135m-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "en_US-joe-medium",
    }
    optional = {"base", "smollm2-135m-instruct"}
    assert {n for n, m in store.models.items() if m.get("default")} == set(store.models) - optional
    for m in store.models.values():
        spec = m["materialise"]
        if spec.get("parts") and spec["kind"] == "gguf-to-safetensors":  # a split GGUF: parts in the packages
            shipped = {f["name"]: f["size"] for p in m["packages"] for f in p["files"]}
            assert set(spec["parts"]) == set(shipped)
            assert spec["joined"]["size"] == sum(shipped.values()) and len(spec["joined"]["sha256"]) == 64
    for m in store.models.values():
        for p in m["packages"]:
            for f in p["files"]:
                assert len(f["sha256"]) == 64 and f["size"] > 0


# ---- the real shipped models ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def real_store() -> ModelStore:
    # The git-ignored real cache, so the ~25 s GGUF conversion happens once for everyone.
    return ModelStore(default_cache_dir())


@pytest.mark.real
def test_real_models(real_store: ModelStore) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    states = {s.name: s for s in real_store.status()}
    assert states["tiny.en"].state == "ready", states["tiny.en"].detail
    assert states["en_US-joe-medium"].state == "ready", states["en_US-joe-medium"].detail
    assert (real_store.asr_path("tiny.en") / "model.bin").is_file()
    onnx, cfg = real_store.voice_paths("en_US-joe-medium")
    assert onnx.is_file() and cfg.is_file()

    d = real_store.llm_path(LlmConfig().model)  # the default LLM, as setup materialised it
    assert (d / "model.safetensors").is_file()
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    assert not hasattr(model.config, "quantization_config")
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] > ids.shape[1]
