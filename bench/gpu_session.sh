#!/usr/bin/env bash
# One GPU session on a lent machine that has no network, from parts staged by bench/gpu_stage.py
# (.gpu/partK/: a piece of one xz tar of wheels, the shipped models and the recordings, and a
# manifest.txt of sha256s). Each device call carries one part; files under /tmp survive between
# calls while the machine stays warm, so the calls must follow each other at once.
#
#   bash bench/gpu_session.sh stash K             check .gpu/partK and keep it in /tmp/stash
#                                                 (K=1 also prints what the machine has)
#   bash bench/gpu_session.sh run [K] [ARGS...]   stash part K first if given; then check that every
#                                                 part is there, join and verify, install the wheels
#                                                 into /tmp/site, prepare the models into /tmp/models,
#                                                 self-check, and run bench/gpu_check.py ARGS
#
# Logs go to $OUT (session.log, gpu_check.log). Exit code: gpu_check's (0 ok, 1 a GPU result
# diverged, 3 no CUDA), 4 a part is missing (the message names the call to repeat), 5 a staging or
# install step failed. GPU_ROOT (default /tmp) moves every folder, for a dry run elsewhere.
set -uo pipefail

ROOT=${GPU_ROOT:-/tmp}
STASH=$ROOT/stash WORK=$ROOT/gpu SITE=$ROOT/site MODELS=$ROOT/models SHIM=$ROOT/cu12shim
OUT=${OUT:-$ROOT/gpu-out}
PY=python3
SMART_TURN=pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx
mkdir -p "$OUT" "$STASH"
t_start=$(date +%s)
say() { echo "[gpu_session +$(($(date +%s) - t_start))s] $*"; }

pieces() { grep -v ' gpu.tar.xz$' "$1" | awk '{print $2}'; }

probe() {
    say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, /tmp free $(df -h /tmp | awk 'NR==2{print $4}')"
    nvidia-smi -L 2>&1 | head -2
    $PY - <<'EOF' 2>&1
import importlib.metadata as md, platform
names = "torch transformers tokenizers huggingface_hub safetensors numpy onnxruntime accelerate regex typing_extensions pyyaml typer httpx rich psutil torchao".split()
def v(n):
    try:
        return md.version(n)
    except md.PackageNotFoundError:
        return "-"
print("python", platform.python_version(), "|", ", ".join(f"{n} {v(n)}" for n in names))
import glob, site, sys
pats = [d + "/nvidia/*/lib/libcublas*.so.1[23]*" for d in sys.path if d] + ["/usr/local/cuda/lib64/libcublas*.so.1[23]*"]
libs = sorted({p for pat in pats for p in glob.glob(pat)})
print("cuBLAS libraries:", " ".join(libs) or "none found")
EOF
    ldconfig -p 2>/dev/null | grep -E 'libcublas(Lt)?\.so\.1[23]|libportaudio' | head -6
}

stash() {
    local k=$1 src=.gpu/part$1
    [ -f "$src/manifest.txt" ] || { say "no $src here: carry .gpu/part$k in this call"; exit 4; }
    (cd "$src" && sha256sum --quiet -c --ignore-missing manifest.txt) || { say "part $k damaged in transfer: send it again"; exit 5; }
    cp "$src"/gpu.tar.xz.* "$src/manifest.txt" "$STASH"/ || exit 5
    local have="" missing=""
    for p in $(pieces "$STASH/manifest.txt"); do
        if [ -f "$STASH/$p" ]; then have+=" ${p##*.}"; else missing+=" ${p##*.}"; fi
    done
    say "part $k stashed in $STASH; have:${have:- none}; still to send:${missing:- none}"
    [ "$k" = 1 ] && probe
    return 0
}

check_parts() {
    [ -f "$STASH/manifest.txt" ] || { say "nothing stashed: the machine was given back? send every part again"; exit 4; }
    local missing=""
    for p in $(pieces "$STASH/manifest.txt"); do [ -f "$STASH/$p" ] || missing+=" ${p##*.}"; done
    if [ -n "$missing" ]; then
        for k in $missing; do say "missing part $k: call 'bash bench/gpu_session.sh stash $k' carrying .gpu/part$k"; done
        exit 4
    fi
}

unpack() {
    local sum
    sum=$(awk '$2 == "gpu.tar.xz" {print $1}' "$STASH/manifest.txt")
    if [ "$(cat "$WORK/.unpacked" 2>/dev/null)" != "$sum" ]; then
        say "joining $(pieces "$STASH/manifest.txt" | wc -l) parts, verifying, unpacking"
        (cd "$STASH" && sha256sum --quiet -c --ignore-missing manifest.txt) || { say "a stashed part is damaged"; exit 5; }
        rm -rf "$WORK" && mkdir -p "$WORK"
        local files=() p
        for p in $(pieces "$STASH/manifest.txt"); do files+=("$STASH/$p"); done
        [ "$(cat "${files[@]}" | sha256sum | awk '{print $1}')" = "$sum" ] || { say "joined archive sha256 differs"; exit 5; }
        cat "${files[@]}" | tar -xJ -C "$WORK" || exit 5
        (cd "$WORK" && sha256sum --quiet -c items.sha256) || { say "an item differs from items.sha256"; exit 5; }
        echo "$sum" >"$WORK/.unpacked"
    fi
    if [ "$(cat "$SITE/.installed" 2>/dev/null)" != "$sum" ]; then
        say "installing $(ls "$WORK"/wheels/*.whl | wc -l) wheels into $SITE"
        rm -rf "$SITE"
        $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" "$WORK"/wheels/*.whl 2>&1 |
            grep -v -e '^WARNING: Location' -e 'pip version' || true
        [ -d "$SITE/transformers" ] || { say "pip install failed"; exit 5; }
        # the Smart Turn model alone, where the model store looks for pipecat-ai's (never imported)
        mkdir -p "$SITE/$(dirname $SMART_TURN)" && cp "$WORK/$SMART_TURN" "$SITE/$SMART_TURN"
        echo "$sum" >"$SITE/.installed"
    fi
}

cublas_shim() {
    # ctranslate2's wheel dlopens CUDA 12's libcublas.so.12; a CUDA 13 machine has .so.13 only. The
    # shim (links to .so.13 under the old name) is offered to gpu_check, which tries ASR without it first.
    rm -rf "$SHIM"
    ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.12' && return 0
    local blas lt
    blas=$($PY -c "import glob,sys; print(next(iter(sorted(p for d in sys.path if d for p in glob.glob(d+'/nvidia/*/lib/libcublas.so.13*'))), ''))")
    [ -n "$blas" ] || blas=$(ls /usr/local/cuda/lib64/libcublas.so.13* 2>/dev/null | head -1)
    [ -n "$blas" ] || return 0
    lt=$(ls "$(dirname "$blas")"/libcublasLt.so.13* 2>/dev/null | head -1)
    [ -n "$lt" ] || return 0
    mkdir -p "$SHIM"
    ln -s "$blas" "$SHIM/libcublas.so.12"
    ln -s "$lt" "$SHIM/libcublasLt.so.12"
    ln -s "$lt" "$SHIM/libcublasLt.so.13"
    say "cuBLAS 12 -> 13 shim in $SHIM (to $blas)"
}

self_check() {
    say "self check"
    $PY - <<'EOF' || return 1
import importlib, sys
mods = "torch transformers tokenizers huggingface_hub ctranslate2 faster_whisper piper onnxruntime av pydantic numpy soundfile soxr webrtcvad hassil gguf".split()
out = []
for m in mods:
    mod = importlib.import_module(m)
    out.append(f"{m} {getattr(mod, '__version__', '?')} ({'site' if '/site/' in (mod.__file__ or '') else 'image'})")
print("imports:", ", ".join(out))
import torch, ctranslate2
print("torch CUDA:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
      "| ctranslate2 CUDA devices:", ctranslate2.get_cuda_device_count())
import assistant.build, assistant.engines.turn as turn
print("smart turn model:", turn.smart_turn_path())
EOF
    say "preparing the models (sha256 of every shipped file, GGUF -> safetensors once)"
    # the staged models (bench/gpu_stage.py): the default LLM (Qwen, 490 MB) is not staged; gpu_check
    # runs SmolLM2 (its STAGED override)
    # (its exit code also counts the unstaged default as missing: check the three staged ones)
    $PY -m assistant models --prepare tiny.en smollm2-135m-instruct en_US-joe-medium
    $PY -c "
from assistant.config import load_config
from assistant.engines.store import ModelStore
staged = {'tiny.en', 'smollm2-135m-instruct', 'en_US-joe-medium'}
states = {s.name: s.state for s in ModelStore(load_config().models.cache_dir).status() if s.name in staged}
raise SystemExit(0 if set(states) == staged and set(states.values()) == {'ready'} else f'not ready: {states}')
" || return 1
    local want got
    want=$(awk '/llm_safetensors_sha256/ {print $2}' "$WORK/expect.txt")
    got=$($PY -c "import json; print(json.load(open('$MODELS/smollm2-135m-instruct/.stamp.json'))['outputs']['model.safetensors'][1])")
    if [ "$want" = "$got" ]; then say "LLM: the same fp32 safetensors as the CPU default's (sha256 ${got:0:16})"
    else say "LLM: converted model.safetensors sha256 $got differs from the CPU's $want (other library versions?)"; fi
}

run() {
    exec > >(tee -a "$OUT/session.log") 2>&1
    if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then stash "$1"; shift; fi
    check_parts
    unpack
    mkdir -p "$MODELS"
    printf 'models:\n  cache_dir: %s\n' "$MODELS" >"$WORK/config.yaml"
    export ASSISTANT_CONFIG=$WORK/config.yaml PYTHONPATH=$SITE:$PWD PYTHONUNBUFFERED=1
    export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1
    cublas_shim
    self_check || { say "self check failed"; exit 5; }
    local shim=()
    [ -d "$SHIM" ] && shim=(--cublas-shim "$SHIM")
    say "bench/gpu_check.py ${shim[*]} $*"
    timeout "${GPU_CHECK_TIMEOUT:-420}" $PY bench/gpu_check.py --recordings "$WORK/speech" "${shim[@]}" "$@" 2>&1 |
        tee "$OUT/gpu_check.log"
    local rc=${PIPESTATUS[0]}
    say "done: gpu_check exit $rc"
    exit "$rc"
}

case "${1:-}" in
    stash) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "usage: $0 stash K"; exit 2; }; stash "$2" ;;
    run) shift; run "$@" ;;
    probe) probe ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
