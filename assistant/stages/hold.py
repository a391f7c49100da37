"""While barge-in holds a reply paused, its generation is held too (issue 14: "pause first").

The speech over the reply must be transcribed before anything is decided, and on a small CPU the
recogniser shares the cores with the LLM's decoding: live on 2 cores, the transcript of a "Stop."
said over a reply took 2-3 s with the reply still being generated beside it, and the reply stayed
paused that long. ``GenerationHold`` listens to the pause and its outcome and holds the LLM between,
through the conversation's ``HeldStreamer`` around the model (``listen``, ``agent``, each Wyoming
conversation): where the model serves other conversations too, only the paused reply waits.

While an answer's first clause is synthesised, its reply waits too (``tts.first_clause_priority``).
On a small CPU piper and the LLM share the cores, and the clause the user is waiting for is made at
half speed beside the decoding of the next one. On 2 cores "The capital of France," took 69 ms
alone, 152 ms with a single decode step running beside it, and 193 ms beside the decoding going on.
So the hold must begin before the next step does: the reply's producer calls
``HeldStreamer.after_first_clause`` on its own thread once the first clause is out (an event, on
another thread, came a step too late), and ``FirstClauseHold`` releases it when that clause's sound
starts. The next clause is only needed once the first has played (a second or so).
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
# the first clause's synthesis takes ~0.1 s on 2 cores; a wait for a sound that never came (a
# synthesiser that hangs, a sink that is stuck, a reply prepared while the user still speaks) ends here
FIRST_CLAUSE_MAX_S = 1.0
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


class FirstClauseHold:
    """Lets ``target``'s reply go on once the first clause's sound has started (``AnswerAudio``) or
    there is none to wait for: the reply was cut or skipped, or synthesis failed."""

    LISTENS_TO = (ev.AnswerAudio, ev.BargeIn, ev.ReplySkipped, ev.SpeechError)

    def __init__(self, target: HeldStreamer, events: EventBus) -> None:
        self.target = target
        events.subscribe(self, *self.LISTENS_TO)

    def __call__(self, _e: ev.Event) -> None:
        self.target.first_clause_sounded()


class HeldStreamer:
    """One conversation's view of a shared language model that can be held: while held, its reply
    is not advanced (the consumer does not pull the next piece, so nothing is decoded for it), and
    other conversations' replies are not touched. (A model serves one reply at a time: one waiting
    behind the held reply waits at most as long as the pause, ``barge_in.decide_timeout_s``.)
    With ``first_clause_waits``, the producer of a reply waits in ``after_first_clause`` too, until
    ``first_clause_sounded`` (``FirstClauseHold``, from the events)."""

    def __init__(self, inner: TextStreamer, first_clause_waits: bool = False) -> None:
        self.inner = inner
        self.first_clause_waits = first_clause_waits
        self._running = threading.Event()
        self._running.set()
        self._sounded = 0  # first clauses whose sound started (or that had none to wait for)
        self._changed = threading.Condition()

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

    def after_first_clause(self, should_stop: Callable[[], bool]) -> None:
        """On the reply producer's thread: wait until the first clause's sound has started (or the
        reply is stopped, or ``FIRST_CLAUSE_MAX_S`` has passed)."""
        if not self.first_clause_waits:
            return
        end = time.monotonic() + FIRST_CLAUSE_MAX_S
        with self._changed:
            seen = self._sounded
            while self._sounded == seen and not should_stop() and time.monotonic() < end:
                self._changed.wait(POLL_S)

    def first_clause_sounded(self) -> None:
        with self._changed:
            self._sounded += 1
            self._changed.notify_all()

    def warm_up(self) -> None:
        self.inner.warm_up()
