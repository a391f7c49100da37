"""What a responder hands back: one turn's reply, a stream of speakable clauses.

A reply is *opened* the moment the user stops speaking (so deadlines run from then, even while the
transcript is still being made) and *asked* once the transcript is known. The responder stage then
pulls clauses with a timeout, keeping an eye on the clock and on cancellation while the LLM works
on its own thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from assistant.core.engines import ChatMessage, ToolCall


@dataclass(frozen=True)
class Clause:
    text: str
    source: str = "llm"  # one of ANSWER_SOURCES, or a fallback kind: "ack", "timeout", "error"
    kept: str | None = None  # what the conversation history keeps instead of ``text`` (private words)
    # a tool the model called (text empty): whoever offered the tools turns it into what is said,
    # when the clause is taken (never while a speculative reply is being prepared)
    call: ToolCall | None = None
    continues: bool = False  # the sentence goes on in the next clause (the splitter cut it at its verb)


class Reply(Protocol):
    """``next`` returns a Clause, None when the reply is complete, or raises ``queue.Empty`` when
    nothing came within ``timeout`` (and re-raises the producer's error)."""

    @property
    def t_first_token(self) -> float | None: ...

    def ask(self, messages: list[ChatMessage]) -> None: ...

    def next(self, timeout: float) -> Clause | None: ...

    def cancel(self) -> None: ...


class Responder(Protocol):
    """Answers user turns. ``prefetch`` may start work on a speculative transcript (None: drop it,
    the user went on); ``open`` begins the reply to a turn that just ended."""

    def setup(self) -> None: ...

    def prefetch(self, messages: list[ChatMessage] | None) -> None: ...

    def open(self, t_speech_end: float) -> Reply: ...

    def close(self) -> None: ...


class ReplyStream:
    """A queue of clauses filled by a producer (a worker thread, or a ready answer)."""

    def __init__(self) -> None:
        # one reply's clauses: bounded by llm.max_new_tokens (and a fallback's one clause)
        self._items: queue.Queue[Clause | BaseException | None] = queue.Queue()
        self.cancelled = threading.Event()
        self.t_first_token: float | None = None

    # producer side
    def put(self, clause: Clause) -> None:
        self._items.put(clause)

    def fail(self, error: BaseException) -> None:
        self._items.put(error)

    def close(self) -> None:
        self._items.put(None)

    def first_token(self) -> None:
        if self.t_first_token is None:
            self.t_first_token = time.monotonic()

    # consumer side
    def next(self, timeout: float) -> Clause | None:
        item = self._items.get(timeout=max(0.0, timeout))
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled.set()


def ready_answer(*clauses: Clause) -> ReplyStream:
    stream = ReplyStream()
    for clause in clauses:
        stream.put(clause)
    stream.close()
    return stream


def produce(stream: ReplyStream, work: Callable[[ReplyStream], None], name: str) -> ReplyStream:
    """Run ``work(stream)`` on a daemon thread; errors reach the consumer, the stream always closes."""

    def body() -> None:
        try:
            work(stream)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, not swallowed
            stream.fail(exc)
        finally:
            stream.close()

    threading.Thread(target=body, name=name, daemon=True).start()
    return stream


class DeferredReply:
    """A reply whose question comes later: until ``ask`` it has nothing to say (``next`` waits and
    raises ``queue.Empty``); ``ask`` calls ``start`` and from then on it is that reply."""

    def __init__(self, start: Callable[[list[ChatMessage]], ReplyStream | Reply]) -> None:
        self._start = start
        self._asked = threading.Event()
        self._reply: ReplyStream | Reply | None = None
        self._cancelled = False

    @property
    def t_first_token(self) -> float | None:
        return self._reply.t_first_token if self._reply else None

    def ask(self, messages: list[ChatMessage]) -> None:
        try:
            self._reply = self._start(messages)
        except Exception as exc:  # the failure belongs to the reply: the consumer hears of it in next()
            self._reply = ReplyStream()
            self._reply.fail(exc)
        if self._cancelled:
            self._reply.cancel()
        self._asked.set()

    def next(self, timeout: float) -> Clause | None:
        start = time.monotonic()
        if not self._asked.wait(max(0.0, timeout)) or self._reply is None:
            raise queue.Empty
        return self._reply.next(timeout - (time.monotonic() - start))

    def cancel(self) -> None:
        self._cancelled = True
        if self._reply is not None:
            self._reply.cancel()
