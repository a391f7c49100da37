"""Timers and reminders: what is due when, on the monotonic clock. The agent stage polls ``due``."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field


@dataclass(order=True)
class Due:
    at: float  # time.monotonic()
    seq: int
    text: str = field(compare=False)  # what to say when it is due


class Scheduler:
    def __init__(self) -> None:
        self._heap: list[Due] = []
        self._lock = threading.Lock()
        self._seq = itertools.count()

    def add(self, after_s: float, text: str, now: float | None = None) -> Due:
        item = Due((time.monotonic() if now is None else now) + after_s, next(self._seq), text)
        with self._lock:
            heapq.heappush(self._heap, item)
        return item

    def due(self, now: float) -> list[str]:
        """Pop and return what is due by ``now``, oldest first."""
        out: list[str] = []
        with self._lock:
            while self._heap and self._heap[0].at <= now:
                out.append(heapq.heappop(self._heap).text)
        return out

    def clear(self) -> int:
        with self._lock:
            n = len(self._heap)
            self._heap.clear()
        return n

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)


def describe_duration(seconds: float) -> str:
    """3 -> "3 seconds", 90 -> "1 minute 30 seconds"."""
    seconds = max(1, round(seconds))
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n > 1 else ''}")
    return " ".join(parts)
