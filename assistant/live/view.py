"""What `assistant listen` shows: event listeners for the terminal and for a JSONL log.

- ``LiveView``: finished lines (what you said, the reply as it is heard, per-turn latency,
  interruptions, device trouble) scroll; on a terminal one status line below them is redrawn at
  most ten times a second: state (listening / hearing / thinking / speaking), an input level meter
  and the partial transcript.
- ``PlainLog`` (``--quiet``): the same facts as plain timestamped lines, no redrawing.
- ``JsonlLog`` (``--log-events PATH``, the agent's ``agent.event_log``): every event as one JSON
  object per line, flushed at once, rotated at ``logging.event_log_max_kb``.

Listeners run on the emitting stage's thread, so they only format and write.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any, TextIO

from assistant.config import LoggingConfig
from assistant.core import events as ev
from assistant.core.bus import EventBus
from assistant.core.engines import ANSWER_SOURCES

log = logging.getLogger(__name__)

BAR = " ▁▂▃▄▅▆▇█"
REDRAW_S = 0.1
URGENT = (
    ev.TranscriptPartial,
    ev.TranscriptSpeculative,
    ev.SpeechStarted,
    ev.SpeechEnded,
    ev.PlaybackStarted,
    ev.PlaybackStopped,
)
STATE_MARK = {"listening": "·", "hearing": "●", "thinking": "…", "speaking": "♪"}


class _Turns:
    """Per-turn facts shared by the two human-readable views."""

    def __init__(self) -> None:
        self.state = "listening"
        self.speech_end: dict[int, float] = {}
        self.asr_ms: dict[int, float] = {}
        self.echoes: set[int] = set()  # turns that were its own voice coming back: their words unshown

    def since(self, e: ev.Event) -> float | None:
        end = self.speech_end.get(e.turn)
        return None if end is None else (e.t - end) * 1000

    def lines(self, e: ev.Event) -> list[str]:
        """Update the state from ``e``; return the finished lines it makes (may be none)."""
        if isinstance(e, ev.Ready):
            return [f"Listening (echo handling: {e.echo}). Speak; Ctrl-C to stop."]
        if isinstance(e, ev.SpeechStarted):
            self.state = "hearing"
        elif isinstance(e, ev.SpeechEnded):
            self.speech_end[e.turn] = e.t
            self.state = self.state if e.turn in self.echoes else "thinking"
        elif isinstance(e, ev.TranscriptFinal):
            if e.turn in self.echoes:  # Whisper's words for the echo ("Thank you.") were never said
                self.echoes.discard(e.turn)
                return []
            ms = self.since(e)
            self.asr_ms[e.turn] = ms or 0.0
            if not e.text.strip():
                self.state = "listening"
                return ["you: (nothing recognisable)"]
            return [f"you: {e.text}"]
        elif isinstance(e, ev.FirstAudio):
            ms = self.since(e)
            self.state = "speaking"
            if ms is not None:
                return [f"  [turn {e.turn}: first sound {ms:.0f} ms after you stopped]"]
        elif isinstance(e, ev.AudioOut):
            self.state = "speaking"
            tag = "" if e.source in ANSWER_SOURCES else f" ({e.source})"
            return [f"assistant{tag}: {e.text}"] if e.text else []
        elif isinstance(e, ev.PlaybackStopped) and self.state == "speaking":
            self.state = "listening"
        elif isinstance(e, ev.BargeIn):
            self.state = "hearing"
            return [f"  [interrupted turn {e.interrupted}; it had said: {e.spoken!r}]"]
        elif isinstance(e, ev.ReplyPaused):
            self.state = "hearing"
        elif isinstance(e, ev.Interruption):
            said = f"{e.text!r}" if e.text.strip() else "no words"
            if e.outcome == "echo":
                self.echoes = {t for t in self.echoes if t > e.turn - 10} | {e.turn}
                self.state = "speaking"
                return [f"  [turn {e.turn} was my own voice coming back ({e.reason}): ignored]"]
            if e.outcome == "resumed":
                self.state = "speaking"
                return [f"  [reply resumed after a {e.pause_ms:.0f} ms pause: {said} ({e.reason})]"]
            return [f"  [reply {e.outcome} after a {e.pause_ms:.0f} ms pause: {said} ({e.reason})]"]
        elif isinstance(e, ev.ReplySkipped):
            self.state = "listening"
        elif isinstance(e, ev.WakeIgnored):
            self.state = "listening"
            return [f"  [not for me (no wake phrase): {e.text!r}]"]
        elif isinstance(e, ev.Action):
            extra = f" ({e.reason})" if e.reason else ""
            return [f"  [action {e.action}: {e.outcome}{extra}]"]
        elif isinstance(e, ev.Stopped):
            self.state = "listening"
            return ["  [stopped]"]
        elif isinstance(e, ev.Device):
            return [f"  [{e.device} {e.state}: {e.detail or ''}]".replace(": ]", "]")]
        return []


class LiveView:
    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._turns = _Turns()
        self._lock = threading.Lock()
        self._level_db = -90.0
        self._partial = ""
        self._drawn_at = 0.0
        self._status_shown = False

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            if isinstance(e, ev.InputLevel):
                self._level_db = e.dbfs
            elif isinstance(e, ev.TranscriptPartial | ev.TranscriptSpeculative):  # speculative: at each pause
                self._partial = e.text
            elif isinstance(e, ev.TranscriptFinal | ev.SpeechStarted):
                self._partial = ""
            lines = self._turns.lines(e)
            if lines:
                self._clear_status()
                for line in lines:
                    self.stream.write(line + "\n")
            urgent = lines or isinstance(e, URGENT)
            if self.tty and (urgent or time.monotonic() - self._drawn_at >= REDRAW_S):
                self._draw_status()
            self.stream.flush()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.stream.write("\r\033[K")
            self._status_shown = False

    def _draw_status(self) -> None:
        state = self._turns.state
        level = min(len(BAR) - 1, max(0, int((self._level_db + 70) / 70 * (len(BAR) - 1))))
        partial = f"  … {self._partial}" if self._partial and state == "hearing" else ""
        line = f"{STATE_MARK[state]} {state:<9} mic {BAR[level]} {self._level_db:5.0f} dBFS{partial}"
        self.stream.write("\r\033[K" + line[:120])
        self._status_shown = True
        self._drawn_at = time.monotonic()


class PlainLog:
    """``--quiet``: one plain line per fact, with the wall-clock time; no status line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._turns = _Turns()
        self._lock = threading.Lock()

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            for line in self._turns.lines(e):
                self.stream.write(f"{time.strftime('%H:%M:%S')} {line.strip()}\n")
            self.stream.flush()


class _RotatingFile(RotatingFileHandler):
    """The standard library's size-based rotation, minus its habit of printing a write error to
    stderr and carrying on: the error reaches the event bus, which logs it once and detaches the log."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - the stdlib's name
        raise  # noqa: PLE0704 - re-raises the write error being handled


class JsonlLog:
    """Every event (except the 10 Hz input level) as a JSON line: t (monotonic), wall time, kind,
    turn and the event's fields. Flushed per line so a crash loses nothing and tools can follow it.
    Past ``max_kb`` (0: never) the file is renamed to ``PATH.1`` (older ones to ``.2`` ... up to
    ``backups``) and a new one begun, so a long-running agent keeps a bounded record."""

    SKIP = (ev.InputLevel,)

    def __init__(self, path: Path, max_kb: int = 0, backups: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = _RotatingFile(self.path, maxBytes=max_kb * 1024, backupCount=backups, encoding="utf-8")
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, self.SKIP):
            return
        fields = e.record()
        record: dict[str, Any] = {"t": round(fields.pop("t"), 4), "wall": round(time.time(), 4), **fields}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            if not self._closed:
                self._file.handle(logging.makeLogRecord({"msg": line}))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            try:
                self._file.close()
            except OSError as exc:  # what was left unwritten (a full disk) is lost; the exit is not
                log.warning("closing the event log %s: %s", self.path, exc)


def event_log(path: Path | None, cfg: LoggingConfig, events: EventBus) -> JsonlLog | None:
    """The JSONL event log at ``path`` with the configured rotation, listening to ``events``; None
    (no log) without a path."""
    if path is None:
        return None
    jsonl = JsonlLog(path, cfg.event_log_max_kb, cfg.event_log_backups)
    events.subscribe(jsonl)
    return jsonl
