"""What a responder hands back: a stream of speakable clauses, filled by a worker thread.

The responder stage asks a ``Responder`` to ``start`` a reply and then pulls clauses with a timeout,
so it can keep an eye on the clock (the deadline wrapper) and on cancellation while the LLM works.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

ChatMessage = dict[str, str]


@dataclass(frozen=True)
class Clause:
    text: str
    source: str = "llm"  # "llm", "fastpath", or a fallback kind: "ack", "timeout", "error"


class ReplyStream:
    """A one-reply queue of clauses; ``next`` returns a Clause, ``None`` when done, or raises
    ``queue.Empty`` on timeout (and re-raises a producer's error)."""

    def __init__(self) -> None:
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


class Responder(Protocol):
    """Answers one user turn. ``prefetch`` may start work early on a speculative transcript (None:
    drop it, the user went on);
    ``start`` returns the stream for the committed one (reusing a matching prefetch)."""

    def setup(self) -> None: ...

    def prefetch(self, messages: list[ChatMessage] | None) -> None: ...

    def start(self, messages: list[ChatMessage], t_speech_end: float) -> ReplyStream: ...

    def close(self) -> None: ...


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
