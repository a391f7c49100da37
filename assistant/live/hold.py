"""While barge-in holds a reply paused, its generation is held too (issue 14: "pause first").

The speech over the reply must be transcribed before anything is decided, and on a small CPU the
recogniser shares the cores with the LLM's decoding: live on 2 cores, the transcript of a "Stop."
said over a reply took 2-3 s with the reply still being generated beside it, and the reply stayed
paused that long. ``GenerationHold`` listens to the pause and its outcome and holds the LLM between.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from assistant.core import events as ev
from assistant.core.bus import EventBus


@runtime_checkable
class Holdable(Protocol):
    def hold(self, on: bool) -> None: ...


class GenerationHold:
    """Holds ``target`` from a ``ReplyPaused`` until every pause is decided (``Interruption``) or a
    reply is cut (``BargeIn``: the pauses of older turns are dropped without an outcome of their own)."""

    LISTENS_TO = (ev.ReplyPaused, ev.Interruption, ev.BargeIn)

    def __init__(self, target: Holdable, events: EventBus) -> None:
        self.target = target
        self._paused: set[int] = set()
        self._lock = threading.Lock()  # events come from the VAD's and the recogniser's threads
        events.subscribe(self, *self.LISTENS_TO)

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            if isinstance(e, ev.ReplyPaused):
                self._paused.add(e.turn)
            else:
                self._paused = {t for t in self._paused if t > e.turn}
            self.target.hold(bool(self._paused))
