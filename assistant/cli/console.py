"""The console view: what the assistant hears and says, as it happens (an event listener)."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from assistant.core import events as ev


class ConsoleView:
    def __init__(self, stream: TextIO | None = None, show_partials: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.show_partials = show_partials and self.stream.isatty()
        self._lock = threading.Lock()
        self._speech_end: dict[int, float] = {}
        self._partial_shown = False

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            line = self._line(e)
            if line is None:
                return
            if self._partial_shown:
                self.stream.write("\r\033[K")
                self._partial_shown = False
            if isinstance(e, ev.TranscriptPartial):
                self.stream.write(line)
                self._partial_shown = True
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def _line(self, e: ev.Event) -> str | None:
        since = self._since(e)
        if isinstance(e, ev.SpeechStarted):
            return f"[turn {e.turn}] hearing speech from {e.t_input:.2f} s"
        if isinstance(e, ev.SpeechEnded):
            self._speech_end[e.turn] = e.t
            return None
        if isinstance(e, ev.TranscriptPartial) and self.show_partials:
            return f"  ... {e.text}"
        if isinstance(e, ev.TranscriptFinal):
            return f"  you said:  {e.text or '(nothing recognisable)'}  [{since}]"
        if isinstance(e, ev.ReplyClause):
            tag = "" if e.source == "llm" else f" ({e.source})"
            return f"  assistant{tag}: {e.text}  [{since}]"
        if isinstance(e, ev.FirstAudio):
            return f"  first sound of the reply [{since}]"
        if isinstance(e, ev.WakeIgnored):
            return "  (not for me: no wake phrase)"
        if isinstance(e, ev.Action):
            return f"  action {e.action}: {e.outcome}"
        return None

    def _since(self, e: ev.Event) -> str:
        end = self._speech_end.get(e.turn)
        return f"+{(e.t - end) * 1000:.0f} ms after end of speech" if end is not None else ""
