"""The command line as a user meets it: help, bad input, silence, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assistant.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def test_help_teaches_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for word in ("respond", "transcribe", "say", "models", "--set", "Examples"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a readable audio file"),
        (b"hello " * 50, "not a readable audio file"),
        (None, "no such file"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_exit_2(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "question.wav"
    if content is not None:
        path.write_bytes(content)
    for command in ("respond", "transcribe"):
        result = (
            run_cli(command, str(path), "--out", str(tmp_path / "r.wav"))
            if command == "respond"
            else run_cli(command, str(path))
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert str(path) in lines[0] and expected in lines[0]


def test_config_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", "x.wav", "--set", "vad.hangover=3"]) == 2
    assert "vad.hangover" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm:\n  max_new_tokens: many\n")
    assert main(["transcribe", "x.wav", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "llm.max_new_tokens" in err


def test_models_lists_every_model() -> None:
    result = run_cli("models")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("tiny.en", "smollm2-135m-instruct", "en_US-joe-medium", "base"):
        assert name in result.stdout


@pytest.mark.real
def test_silence_gives_a_report_with_no_turns(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    rng = np.random.default_rng(0)
    sf.write(path, (rng.standard_normal(16000 * 3) * 30).astype(np.int16), 16000)  # faint noise
    report = tmp_path / "report.json"
    result = run_cli(
        "respond", str(path), "--fast", "--out", str(tmp_path / "r.wav"), "--report", str(report)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(report.read_text())["turns"] == []
    assert "No speech" in result.stdout


@pytest.mark.real
def test_ctrl_c_ends_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 120, dtype=np.int16), 16000)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant",
            "respond",
            str(path),
            "--no-play",
            "--out",
            str(tmp_path / "r.wav"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # wait until the models are loaded and the pipeline runs
        if "Answering" in line or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    sent = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=10)
    assert time.monotonic() - sent < 1.0
    assert code == 130
