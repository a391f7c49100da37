"""Command line: the only place that parses argv.

assistant respond IN [--out REPLY.wav] [--report REPORT.json] [--fast]
assistant transcribe IN [--json]
assistant say "TEXT" --out F.wav
assistant models [--prepare [NAME ...]] [--verify]
assistant listen [--input-device D] [--output-device D]
assistant agent [--input WAV --out REPLY.wav --linger S]
assistant eval CORPUS [--report-dir DIR] [--fast] [--baseline OLD.json]
assistant serve [--wyoming tcp://127.0.0.1:10300]
assistant ask "TEXT" [--agent] [--dry-run] [--json]

Each subcommand's module registers its parser and its handler (``set_defaults(handler=...)``);
nothing but ``assistant.__main__`` imports this module. The global options (--config, --set, -v,
-q) may stand before or after the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import __version__
from assistant.cli import ask, evaluate, live, models, respond, serve
from assistant.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UsageError

if TYPE_CHECKING:
    from assistant.config import Config

log = logging.getLogger("assistant")

# Before the subcommand the options land under these names; after it, under their own; ``main``
# merges the two (argparse would let the subcommand's defaults overwrite what came before it).
BEFORE = "before_"


def build_parser() -> argparse.ArgumentParser:
    after = argparse.ArgumentParser(add_help=False)
    _global_options(after, prefix="")
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
        '  assistant agent                        hands-free: "hey assistant, set a timer for 5 minutes"\n'
        "  assistant -q --set deadline.first_audio_ms=900 respond   global options go before or after\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, prefix=BEFORE)
    parser.add_argument("--version", action="version", version=f"assistant {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (respond, models, live, evaluate, serve, ask):
        command.register(sub, [after])
    return parser


def _global_options(parser: argparse.ArgumentParser, prefix: str) -> None:
    parser.add_argument(
        "--config",
        dest=prefix + "config",
        type=Path,
        metavar="PATH",
        help="config file (default: config.yaml in the repo, or $ASSISTANT_CONFIG)",
    )
    parser.add_argument(
        "--set",
        dest=prefix + "overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set llm.max_new_tokens=64 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", dest=prefix + "verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "-q",
        "--quiet",
        dest=prefix + "quiet",
        action="store_true",
        help="no live view, only warnings and results",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """argv parsed, the global options merged: a later --config wins, every --set counts (in order),
    -v and -q hold wherever they stand."""
    args = build_parser().parse_args(argv)
    before = {k[len(BEFORE) :]: v for k, v in vars(args).items() if k.startswith(BEFORE)}
    for name in before:
        delattr(args, BEFORE + name)
    if args.command is None:
        return argparse.Namespace(command=None, **before)
    args.config = args.config or before["config"]
    args.overrides = before["overrides"] + args.overrides
    args.verbose = args.verbose or before["verbose"]
    args.quiet = args.quiet or before["quiet"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    _setup_logging(args)
    # before any model or pipeline starts a thread: each would get a malloc arena of its own
    from assistant.core import allocator

    allocator.limit_arenas()
    # imported here, not at the top: `assistant --help` need not load numpy and the config schema
    from assistant.audio.devices import DeviceError
    from assistant.audio.file_source import AudioFileError
    from assistant.config import ConfigError, load_config
    from assistant.core.pipeline import PipelineError
    from assistant.engines.store import ModelError

    usage_errors = (ConfigError, AudioFileError, ModelError, DeviceError, UsageError)
    try:
        cfg = load_config(args.config, args.overrides)
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else _level(cfg, args))
        return args.handler(cfg, args)
    except usage_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        if isinstance(exc.cause, usage_errors):
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


def run() -> None:
    """Console entry point: ``main`` then exit at once.

    Interpreter teardown with torch, CTranslate2 and onnxruntime loaded takes about a second;
    everything worth keeping is already written and flushed, so skip it (Ctrl-C must end the
    program within a second).
    """
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # `assistant models | head -1`: the reader has what it wanted
        code = EXIT_FAILED
    sys.stderr.flush()
    os._exit(code)
