"""Events: what stages tell the outside world (UI, reports, logs) without knowing who listens.

Stages never print; they ``emit``. Listeners run synchronously on the emitting thread, so they must
be quick (append to a list, write a line).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. "speech_started", "transcript_final", "llm_first_token", "first_audio"
    turn: int
    t: float  # time.monotonic()
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def emit(self, kind: str, turn: int, t: float | None = None, **data: Any) -> None:
        event = Event(kind, turn, time.monotonic() if t is None else t, data)
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)


class EventLog:
    """A listener that keeps every event, for reports and tests."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def first(self, kind: str, turn: int) -> Event | None:
        return next((e for e in self.events if e.kind == kind and e.turn == turn), None)
