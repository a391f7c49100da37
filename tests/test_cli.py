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
from tests import pulse

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
        preexec_fn=pulse.interruptible,
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


def test_global_options_count_before_and_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a --set before the subcommand used to be dropped (the subcommand's default replaced it)
    assert main(["--set", "vad.hangover=3", "transcribe", "x.wav"]) == 2
    assert "vad.hangover" in capsys.readouterr().err
    # both positions accumulate: the bad key is found wherever it stands
    for argv in (
        ["--set", "vad.hangover=3", "transcribe", "x.wav", "--set", "llm.max_new_tokens=64"],
        ["--set", "llm.max_new_tokens=64", "transcribe", "x.wav", "--set", "vad.hangover=3"],
    ):
        assert main(argv) == 2
        assert "vad.hangover" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("llm:\n  max_new_tokens: many\n")
    assert main(["--config", str(bad), "-q", "transcribe", "x.wav"]) == 2
    assert str(bad) in capsys.readouterr().err

    from assistant.cli.main import parse_args

    args = parse_args(["-q", "--set", "a.b=1", "respond", "--set", "c.d=2", "-v", "--config", "x.yaml"])
    assert (args.quiet, args.verbose, args.overrides) == (True, True, ["a.b=1", "c.d=2"])
    assert args.config == Path("x.yaml")
    args = parse_args(["--config", "before.yaml", "-v", "models"])
    assert (args.config, args.verbose, args.quiet, args.overrides) == (Path("before.yaml"), True, False, [])


def _wav(path: Path, seconds: float = 1.0) -> Path:
    sf.write(path, np.zeros(int(16000 * seconds), dtype=np.int16), 16000)
    return path


def _one_clean_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("error: ") and all(w in lines[0] for w in words), err


def test_play_always_with_no_speaker_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = _wav(tmp_path / "q.wav")
    argv = ["respond", str(wav), "--play", "--out", str(tmp_path / "r.wav"), "-q"]
    assert main([*argv, "--set", "audio.output_device=no such speaker"]) == 2
    _one_clean_line(capsys.readouterr().err, "cannot play", "no such speaker", "--no-play")


def test_outputs_that_cannot_be_written_are_refused_before_any_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = _wav(tmp_path / "q.wav")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _wav(corpus / "a.wav")
    (corpus / "a.txt").write_text("hello")
    cases = [
        (["say", "hi", "--out", str(tmp_path)], [str(tmp_path), "is a folder"]),
        (["say", "hi", "--out", str(a_file / "x.wav")], [str(a_file / "x.wav"), "cannot write"]),
        (["say", "hi", "--out", str(tmp_path / "x.txt")], ["x.txt", "audio file name"]),
        (["say", "  ", "--out", str(tmp_path / "x.wav")], ["nothing to say"]),
        (["respond", str(wav), "--out", str(tmp_path)], [str(tmp_path), "is a folder"]),
        (
            ["respond", str(wav), "--out", str(tmp_path / "r.wav"), "--report", str(a_file / "r.json")],
            ["r.json", "cannot write"],
        ),
        (["eval", str(corpus), "--report-dir", str(a_file)], [str(a_file), "needs a folder"]),
    ]
    for argv, words in cases:
        assert main([*argv, "-q"]) == 2, argv
        _one_clean_line(capsys.readouterr().err, *words)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "r.wav").exists()


def test_agent_refuses_a_bad_recording_before_loading_models(tmp_path: Path) -> None:
    bad = tmp_path / "cmds.wav"
    bad.write_bytes(b"")
    log = tmp_path / "events.jsonl"
    result = run_cli("agent", "--input", str(bad), "--log-events", str(log), "--out", str(tmp_path / "r.wav"))
    assert result.returncode == 2
    _one_clean_line(result.stderr, str(bad), "not a readable audio file")
    result = run_cli("agent", "--linger", "-5")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "--linger" in result.stderr


def test_turn_table_is_plain_text_off_a_terminal() -> None:
    import io

    from assistant.cli.common import show
    from assistant.cli.respond import turn_table
    from assistant.eval.turns import TurnRecord

    long = "What is the weather going to be like tomorrow morning in the north of Scotland?"
    turns = [
        TurnRecord(
            1, 0.5, 2.25, long, "It will rain.", latency_ms={"asr_final": 210.4, "first_audio": 812.0}
        ),
        TurnRecord(2, 4.0, 5.0, "Hi [laughs]", "One moment.", fallback=True, fallback_kind="ack"),
    ]
    out = io.StringIO()
    show(turn_table(turns), out)
    lines = out.getvalue().splitlines()
    assert "\033" not in out.getvalue() and all(line == line.rstrip() for line in lines)
    assert len(lines) == 4  # head, rule, one line per turn: nothing wrapped
    assert lines[0].split() == [
        "turn",
        "speech",
        "heard",
        "answered",
        "asr",
        "1st",
        "token",
        "1st",
        "sound",
        "answer",
    ]
    assert "0.50-2.25s" in lines[2] and "What is the weather going to be like tomorrow m…" in lines[2]
    assert "210 ms" in lines[2] and "812 ms" in lines[2]
    assert "Hi [laughs]" in lines[3] and "One moment. [ack]" in lines[3]  # brackets are text, not markup
