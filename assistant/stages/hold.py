"""While barge-in holds a reply paused, its generation is held too (issue 14: "pause first").

The speech over the reply must be transcribed before anything is decided, and on a small CPU the
recogniser shares the cores with the LLM's decoding: live on 2 cores, the transcript of a "Stop."
said over a reply took 2-3 s with the reply still being generated beside it, and the reply stayed
paused that long. ``GenerationHold`` listens to the pause and its outcome and holds the LLM between,
through the conversation's ``HeldStreamer`` around the model (``listen``, ``agent``, each Wyoming
conversation): where the model serves other conversations too, only the paused reply waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from assistant.core import events as ev
from assistant.core.bus import EventBus
from assistant.core.engines import ChatMessage, TextStreamer

MAX_HOLD_S = 30.0  # a hold nobody released (a lost event) must not leave a reply stuck for good
POLL_S = 0.02


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


class HeldStreamer:
    """One conversation's view of a shared language model that can be held: while held, its reply
    is not advanced (the consumer does not pull the next piece, so nothing is decoded for it), and
    other conversations' replies are not touched. (A model serves one reply at a time: one waiting
    behind the held reply waits at most as long as the pause, ``barge_in.decide_timeout_s``.)"""

    def __init__(self, inner: TextStreamer) -> None:
        self.inner = inner
        self._running = threading.Event()
        self._running.set()

    def hold(self, on: bool) -> None:
        if on:
            self._running.clear()
        else:
            self._running.set()

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        for piece in self.inner.stream(messages, should_stop):
            end = time.monotonic() + MAX_HOLD_S
            while not self._running.wait(POLL_S) and not should_stop() and time.monotonic() < end:
                pass
            yield piece

    def warm_up(self) -> None:
        self.inner.warm_up()
