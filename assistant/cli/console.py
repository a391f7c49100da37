"""The console view: what the assistant hears and says, as it happens (an event listener)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from assistant.core.events import Event


class ConsoleView:
    def __init__(self, stream: TextIO | None = None, show_partials: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.show_partials = show_partials and self.stream.isatty()
        self._lock = threading.Lock()
        self._speech_end: dict[int, float] = {}
        self._partial_shown = False

    def __call__(self, e: Event) -> None:
        with self._lock:
            line = self._line(e)
            if line is None:
                return
            if self._partial_shown:
                self.stream.write("\r\033[K")
                self._partial_shown = False
            if e.kind == "transcript_partial":
                self.stream.write(line)
                self._partial_shown = True
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _line(self, e: Event) -> str | None:
        since = self._since(e)
        if e.kind == "speech_started":
            return f"[turn {e.turn}] hearing speech from {e.data['t_input']:.2f} s"
        if e.kind == "speech_ended":
            self._speech_end[e.turn] = e.t
            return None
        if e.kind == "transcript_partial" and self.show_partials:
            return f"  ... {e.data['text']}"
        if e.kind == "transcript_final":
            return f"  you said:  {e.data['text'] or '(nothing recognisable)'}  [{since}]"
        if e.kind == "reply_clause":
            tag = "" if e.data.get("source", "llm") == "llm" else f" ({e.data['source']})"
            return f"  assistant{tag}: {e.data['text']}  [{since}]"
        if e.kind == "first_audio":
            return f"  first sound of the reply [{since}]"
        if e.kind == "wake_ignored":
            return "  (not for me: no wake phrase)"
        if e.kind == "action":
            return f"  action {e.data['action']}: {e.data['outcome']}"
        return None

    def _since(self, e: Event) -> str:
        end = self._speech_end.get(e.turn)
        return f"+{(e.t - end) * 1000:.0f} ms after end of speech" if end is not None else ""
