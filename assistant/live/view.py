"""What `assistant listen` shows: event listeners for the terminal and for a JSONL log.

- ``LiveView``: finished lines (what you said, the reply as it is heard, per-turn latency,
  interruptions, device trouble) scroll; on a terminal one status line below them is redrawn at
  most ten times a second: state (listening / hearing / thinking / speaking), an input level meter
  and the partial transcript.
- ``PlainLog`` (``--quiet``): the same facts as plain timestamped lines, no redrawing.
- ``JsonlLog`` (``--log-events PATH``): every event as one JSON object per line, flushed at once.

Listeners run on the emitting stage's thread, so they only format and write.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from assistant.core.engines import ANSWER_SOURCES
from assistant.core.events import Event

BAR = " ▁▂▃▄▅▆▇█"
REDRAW_S = 0.1
URGENT = frozenset(
    {
        "transcript_partial",
        "transcript_speculative",
        "speech_started",
        "speech_ended",
        "playback_started",
        "playback_stopped",
    }
)
STATE_MARK = {"listening": "·", "hearing": "●", "thinking": "…", "speaking": "♪"}


class _Turns:
    """Per-turn facts shared by the two human-readable views."""

    def __init__(self) -> None:
        self.state = "listening"
        self.speech_end: dict[int, float] = {}
        self.asr_ms: dict[int, float] = {}

    def since(self, e: Event) -> float | None:
        end = self.speech_end.get(e.turn)
        return None if end is None else (e.t - end) * 1000

    def lines(self, e: Event) -> list[str]:
        """Update the state from ``e``; return the finished lines it makes (may be none)."""
        k, d = e.kind, e.data
        if k == "ready":
            return [f"Listening (echo handling: {d.get('echo')}). Speak; Ctrl-C to stop."]
        if k == "speech_started":
            self.state = "hearing"
        elif k == "speech_ended":
            self.speech_end[e.turn] = e.t
            self.state = "thinking"
        elif k == "transcript_final":
            ms = self.since(e)
            self.asr_ms[e.turn] = ms or 0.0
            if not d.get("text", "").strip():
                self.state = "listening"
                return ["you: (nothing recognisable)"]
            return [f"you: {d['text']}"]
        elif k == "first_audio":
            ms = self.since(e)
            self.state = "speaking"
            if ms is not None:
                return [f"  [turn {e.turn}: first sound {ms:.0f} ms after you stopped]"]
        elif k == "audio_out":
            self.state = "speaking"
            tag = "" if d.get("source", "llm") in ANSWER_SOURCES else f" ({d['source']})"
            return [f"assistant{tag}: {d['text']}"] if d.get("text") else []
        elif k == "playback_stopped" and self.state == "speaking":
            self.state = "listening"
        elif k == "barge_in":
            self.state = "hearing"
            heard = d.get("spoken") or ""
            return [f"  [interrupted turn {d.get('interrupted')}; it had said: {heard!r}]"]
        elif k == "reply_skipped":
            self.state = "listening"
        elif k == "wake_ignored":
            self.state = "listening"
            return [f"  [not for me (no wake phrase): {d.get('text', '')!r}]"]
        elif k == "action":
            extra = f" ({d['reason']})" if d.get("reason") else ""
            return [f"  [action {d.get('action')}: {d.get('outcome')}{extra}]"]
        elif k == "stopped":
            self.state = "listening"
            return ["  [stopped]"]
        elif k == "device":
            return [f"  [{d.get('device')} {d.get('state')}: {d.get('detail', '')}]".replace(": ]", "]")]
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

    def __call__(self, e: Event) -> None:
        with self._lock:
            if e.kind == "input_level":
                self._level_db = float(e.data.get("dbfs", -90.0))
            elif e.kind in ("transcript_partial", "transcript_speculative"):  # speculative: at each pause
                self._partial = e.data.get("text", "")
            elif e.kind in ("transcript_final", "speech_started"):
                self._partial = ""
            lines = self._turns.lines(e)
            if lines:
                self._clear_status()
                for line in lines:
                    self.stream.write(line + "\n")
            urgent = lines or e.kind in URGENT
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

    def __call__(self, e: Event) -> None:
        with self._lock:
            for line in self._turns.lines(e):
                self.stream.write(f"{time.strftime('%H:%M:%S')} {line.strip()}\n")
            self.stream.flush()


class JsonlLog:
    """Every event (except the 10 Hz input level) as a JSON line: t (monotonic), wall time, kind,
    turn and the event's data. Flushed per line so a crash loses nothing and tools can follow it."""

    SKIP = frozenset({"input_level"})

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        if e.kind in self.SKIP:
            return
        record: dict[str, Any] = {"t": round(e.t, 4), "wall": round(time.time(), 4), "kind": e.kind}
        record["turn"] = e.turn
        record.update(e.data)
        with self._lock:
            if not self._file.closed:
                self._file.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
