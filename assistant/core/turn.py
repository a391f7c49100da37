"""The cancel scope: which user turns are still wanted.

Barge-in calls ``interrupt(turn)``: every turn before it becomes stale. Stages check ``is_stale``
between messages and inside long loops (the LLM's stopping criterion, the speaker's next block), so a
cancelled reply dies where it stands instead of being flushed out of queues under locks.
"""

from __future__ import annotations

import threading


class TurnScope:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._floor = 0  # turns below this are cancelled
        self._changed = threading.Event()

    @property
    def floor(self) -> int:
        return self._floor

    def interrupt(self, turn: int) -> None:
        """Cancel every turn before ``turn``."""
        with self._lock:
            if turn > self._floor:
                self._floor = turn
                self._changed.set()

    def is_stale(self, turn: int) -> bool:
        return turn < self._floor

    def wait_for_change(self, timeout: float) -> bool:
        """Block until an interrupt happens (True) or ``timeout`` passes (False)."""
        fired = self._changed.wait(timeout)
        self._changed.clear()
        return fired
