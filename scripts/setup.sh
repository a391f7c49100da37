#!/usr/bin/env bash
# Sets up everything the assistant needs, idempotently: Debian packages, the virtual environment at
# .venv/ with the CPU build of torch, this package, the shipped models, and the local model cache.
#
#   scripts/setup.sh           runtime only
#   scripts/setup.sh --dev     also the test tools (pytest, ruff, espeak-ng, sox, PulseAudio, Xvfb)
#
# ASSISTANT_TORCH chooses the torch requirement (default: torch==2.13.0, the CPU build on this kind of
# machine). On a CUDA machine set ASSISTANT_TORCH_INDEX to PyTorch's CUDA wheel index before the first
# run, e.g. ASSISTANT_TORCH_INDEX=https://download.pytorch.org/whl/cu128: only torch is installed from
# it (PIP_INDEX_URL would send every other package there too).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

# libportaudio2: sounddevice; xdotool, xclip, xdg-utils, pulseaudio-utils: the agent's desktop actions
# (typing, the clipboard, opening URLs, volume)
apt_packages=(libportaudio2 xdotool xclip xdg-utils pulseaudio-utils)
# python3 -m venv needs ensurepip, which Debian ships apart, in python3-venv
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
# tests: test speech (espeak-ng, sox), a private sound server, a virtual desktop with a Tk window
[ "$dev" = 1 ] && apt_packages+=(espeak-ng sox pulseaudio xvfb python3-tk)

missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A .venv left half-made (python3-venv was missing, or the run was interrupted) has no python or no
# pip in it: remove it and start again, or every later run would fail the same way.
if [ -e .venv ] && ! { [ -x .venv/bin/python ] && .venv/bin/python -m pip --version >/dev/null 2>&1; }; then
    echo "setup: .venv is incomplete (no python or no pip in it): recreating it"
    rm -rf .venv
fi
if [ ! -e .venv ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# Reinstall only when the requirements changed: a warm setup takes about a second.
stamp=.venv/.assistant-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16) dev=$dev torch=${ASSISTANT_TORCH:-torch==2.13.0} index=${ASSISTANT_TORCH_INDEX:-}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing Python packages into .venv (first time: a few minutes)"
    # torch first and pinned: left to the resolver, an unpinned torch is a multi-GB CUDA build
    "${pip[@]}" ${ASSISTANT_TORCH_INDEX:+--index-url "$ASSISTANT_TORCH_INDEX"} "${ASSISTANT_TORCH:-torch==2.13.0}"
    if [ "$dev" = 1 ]; then "${pip[@]}" -e ".[dev]"; else "${pip[@]}" -e .; fi
    # pipecat's wheel ships the Smart Turn end-of-turn model (vad.end_of_turn); only the ONNX file
    # is used (assistant/engines/turn.py), so none of pipecat's many dependencies are needed
    "${pip[@]}" --no-deps pipecat-ai==1.14.0
    echo "$want" >"$stamp"
fi
# the repository root on the venv's path, so bench/ scripts import the test helpers (tests.speech,
# tests.llm_server) the way the tests do, without editing sys.path. Written in both modes: a
# runtime-only setup (make demo) after a --dev one must not take it away from the benches.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pwd >"$site/assistant-repo.pth"

# Materialise the model cache once (the LLM's GGUF -> safetensors) and verify checksums.
.venv/bin/assistant models --prepare --quiet
# the tests' served model (tests/test_llm_server.py): the smallest real LLM, not the default
if [ "$dev" = 1 ]; then .venv/bin/assistant models --prepare smollm2-135m-instruct --quiet; fi
