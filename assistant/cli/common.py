"""What every subcommand shares: exit codes, the progress lines on stderr, writing JSON, checking an
output path before any model loads, running a pipeline, and printing a rich table.

Only the standard library at import: ``assistant --help`` imports this module, so the pipeline,
the engines and rich are imported inside the functions that use them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import RenderableType

    from assistant import build
    from assistant.config import Config
    from assistant.core.bus import EventBus, EventLog
    from assistant.core.pipeline import Pipeline

EXIT_USAGE = 2  # bad input, config or missing model: the user can fix it
EXIT_FAILED = 1  # a stage failed at run time
EXIT_INTERRUPTED = 130

BUNDLED_QUESTION = Path(__file__).resolve().parents[1] / "samples" / "question.wav"
PLAIN_WIDTH = 200  # a table written to a file or a pipe is never wrapped below this


class UsageError(Exception):
    """Bad input the user can fix (an output path that cannot be written, nothing to say...):
    ``main`` prints the message on one line and exits with EXIT_USAGE."""


# -- progress lines (stderr, silenced by -q) ------------------------------------------------------


def say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


def say_loading(cfg: Config, args: argparse.Namespace) -> None:
    from assistant import build

    say(args, f"Loading models ({build.asr_label(cfg)}, {build.llm_label(cfg)}, {build.tts_label(cfg)})...")


def load_engines(cfg: Config, args: argparse.Namespace) -> build.Engines:
    from assistant import build

    say_loading(cfg, args)
    start = time.monotonic()
    engines = build.load_engines(cfg, progress=lambda m: say(args, m))
    say(args, f"Models ready in {time.monotonic() - start:.1f} s.")
    return engines


def console_events(args: argparse.Namespace) -> tuple[EventBus, EventLog]:
    """A bus whose events are kept (for the turn table and the report) and, unless -q, shown."""
    from assistant.cli.console import ConsoleView
    from assistant.core.bus import EventBus, EventLog

    events, event_log = EventBus(), EventLog()
    events.subscribe(event_log)
    if not args.quiet:
        events.subscribe(ConsoleView())
    return events, event_log


def run_pipeline(pipeline: Pipeline, args: argparse.Namespace, what: str) -> None:
    try:
        pipeline.setup()  # the stages warm their engines up
        say(args, f"{what}...")
        pipeline.start()
        pipeline.wait()
    finally:
        pipeline.stop()


# -- output ---------------------------------------------------------------------------------------


def check_output(path: Path, what: str = "output", audio: bool = False) -> None:
    """Fail now, before minutes of model loading, if ``path`` cannot be written: a folder, a parent
    that is a file, no permission, a read-only disk, or (``audio``) a suffix no audio format has.
    Creates the parent folders, as the writers would; leaves no file behind."""
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give the {what} a file name")
    if audio:
        import soundfile as sf

        if path.suffix[1:].upper() not in sf.available_formats():
            raise UsageError(f"{path}: the {what} needs an audio file name such as reply.wav")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the {what} ({exc.strerror or exc})") from None
    if not existed:
        path.unlink(missing_ok=True)


def dump_json(data: object, path: Path | None) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if path is None:
        print(text)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def show(renderable: RenderableType, file: TextIO | None = None) -> None:
    """Print a rich table: sized and coloured on a terminal; plain text (eval.view.plain_text) to a
    file or a pipe, whose lines scripts and tests read. No markup: a transcript's "[...]" is text."""
    file = file or sys.stdout
    if file.isatty():
        from rich.console import Console

        Console(file=file, markup=False, highlight=False).print(renderable)
    else:
        from assistant.eval.view import plain_text

        print(plain_text(renderable, PLAIN_WIDTH), file=file)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
