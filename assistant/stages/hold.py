"""While barge-in holds a reply paused, its generation is held too (issue 14: "pause first").

The speech over the reply must be transcribed before anything is decided, and on a small CPU the
recogniser shares the cores with the LLM's decoding: live on 2 cores, the transcript of a "Stop."
said over a reply took 2-3 s with the reply still being generated beside it, and the reply stayed
paused that long. ``GenerationHold`` listens to the pause and its outcome and holds the LLM between,
through the conversation's ``HeldStreamer`` around the model (``listen``, ``agent``, each Wyoming
conversation): where the model serves other conversations too, only the paused reply waits.

``FirstClauseHold`` holds it for another reason: while the first clause of an answer is being
synthesised. On a small CPU piper and the LLM share the cores, and the clause the user is waiting
for is synthesised at half speed beside the decoding of the next one: on 2 cores "The capital of
France," took 86 ms alone and 193 ms with the LLM decoding (median of 7). The next clause is only
needed once the first has played (a second or so), so it can wait the ~90 ms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Protocol, runtime_checkable

from assistant.core import events as ev
from assistant.core.bus import EventBus
from assistant.core.engines import ANSWER_SOURCES, ChatMessage, TextStreamer

MAX_HOLD_S = 30.0  # a hold nobody released (a lost event) must not leave a reply stuck for good
# the first clause's synthesis takes ~0.1-0.2 s on 2 cores; a hold whose audio never came (a
# synthesiser that failed, a sink that is stuck) lapses after this and decoding goes on
FIRST_CLAUSE_MAX_S = 1.0
POLL_S = 0.02


@runtime_checkable
class Holdable(Protocol):
    def hold(self, on: bool, reason: str = ..., max_s: float = ...) -> None: ...


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
            self.target.hold(bool(self._paused), "pause")


class FirstClauseHold:
    """Holds ``target`` from a turn's first answer clause (``ReplyClause``) until its sound starts
    (``AnswerAudio``), the reply is cut or skipped, or ``FIRST_CLAUSE_MAX_S`` has passed; once per
    turn. The acknowledgement and apologies do not hold it: they are prepared sound, not synthesised."""

    LISTENS_TO = (ev.ReplyClause, ev.AnswerAudio, ev.BargeIn, ev.ReplySkipped, ev.SpeechError)

    def __init__(self, target: Holdable, events: EventBus) -> None:
        self.target = target
        self._held: int | None = None  # the turn whose first clause is being synthesised
        self._seen: set[int] = set()  # turns whose first clause was held already (the latest few)
        self._lock = threading.Lock()
        events.subscribe(self, *self.LISTENS_TO)

    def __call__(self, e: ev.Event) -> None:
        with self._lock:
            if isinstance(e, ev.ReplyClause):
                if e.source not in ANSWER_SOURCES or e.turn in self._seen:
                    return
                self._seen = {t for t in self._seen if t > e.turn - 8} | {e.turn}
                self._held = e.turn
                self.target.hold(True, "first clause", FIRST_CLAUSE_MAX_S)
            elif self._held is not None and (e.turn >= self._held or isinstance(e, ev.BargeIn)):
                self._held = None
                self.target.hold(False, "first clause")


class HeldStreamer:
    """One conversation's view of a shared language model that can be held: while held, its reply
    is not advanced (the consumer does not pull the next piece, so nothing is decoded for it), and
    other conversations' replies are not touched. (A model serves one reply at a time: one waiting
    behind the held reply waits at most as long as the pause, ``barge_in.decide_timeout_s``.)
    Holds have reasons (a paused reply, the first clause's synthesis): it runs when none is on,
    and each lapses after its ``max_s`` if nobody released it."""

    def __init__(self, inner: TextStreamer) -> None:
        self.inner = inner
        self._holds: dict[str, float] = {}  # reason -> when it lapses (time.monotonic())
        self._changed = threading.Condition()

    def hold(self, on: bool, reason: str = "pause", max_s: float = MAX_HOLD_S) -> None:
        with self._changed:
            if on:
                self._holds[reason] = time.monotonic() + max_s
            else:
                self._holds.pop(reason, None)
            self._changed.notify_all()

    def held(self) -> bool:
        now = time.monotonic()
        with self._changed:
            return any(until > now for until in self._holds.values())

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        for piece in self.inner.stream(messages, should_stop):
            while self.held() and not should_stop():
                with self._changed:
                    self._changed.wait(POLL_S)
            yield piece

    def warm_up(self) -> None:
        self.inner.warm_up()
