"""The event bus: listeners subscribe to the event types they want; stages ``emit``.

Listeners run synchronously on the emitting thread, so they must be quick (append to a list, write a
line). A listener that raises is logged and detached: a view or a log never ends the session.
``EventLog`` keeps every event, for reports and tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from assistant.core.events import Event

log = logging.getLogger(__name__)

Listener = Callable[[Any], None]  # takes the event types it subscribed to
E = TypeVar("E", bound=Event)


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, tuple[type[Event], ...]]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener, *types: type[Event]) -> None:
        """Call ``listener`` with every event of one of ``types`` (no types: every event)."""
        with self._lock:
            self._listeners.append((listener, types or (Event,)))

    def unsubscribe(self, listener: Listener) -> bool:
        """Detach ``listener``; False if it was not subscribed (any more)."""
        with self._lock:
            kept = [(fn, types) for fn, types in self._listeners if fn != listener]  # == : bound methods
            removed, self._listeners = len(kept) < len(self._listeners), kept
        return removed

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener, types in listeners:
            if not isinstance(event, types):
                continue
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a failing view or log must not end the session
                if self.unsubscribe(listener):  # once, though several threads may have seen it fail
                    log.error(
                        "event listener %r failed on %s and was detached: %r", listener, event.kind, exc
                    )
                    log.debug("the listener's traceback", exc_info=True)


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

    def of(self, kind: type[E], turn: int | None = None) -> list[E]:
        """The events of one type (and turn), in emission order."""
        return [e for e in self.events if isinstance(e, kind) and (turn is None or e.turn == turn)]

    def first(self, kind: type[E], turn: int) -> E | None:
        return next(iter(self.of(kind, turn)), None)
