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
        self._paused: list[Due] = []  # `at` holds the time left, not a time on the clock

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
            n = len(self._heap) + len(self._paused)
            self._heap.clear()
            self._paused.clear()
        return n

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    # "how long is left", "pause", "resume", "add 5 minutes": they act on the timer due next
    def left(self, now: float) -> float | None:
        with self._lock:
            return max(0.0, self._heap[0].at - now) if self._heap else None

    def shift(self, seconds: float, now: float) -> bool:
        with self._lock:
            if not self._heap:
                return False
            self._heap[0].at = max(now, self._heap[0].at + seconds)
            heapq.heapify(self._heap)
            return True

    def pause(self, now: float) -> bool:
        with self._lock:
            if not self._heap:
                return False
            item = heapq.heappop(self._heap)
            item.at -= now
            self._paused.append(item)
            return True

    def resume(self, now: float) -> bool:
        with self._lock:
            if not self._paused:
                return False
            item = self._paused.pop()
            item.at += now
            heapq.heappush(self._heap, item)
            return True


def describe_duration(seconds: float) -> str:
    """3 -> "3 seconds", 90 -> "1 minute 30 seconds"."""
    seconds = max(1, round(seconds))
    parts = []
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'s' if n > 1 else ''}")
    return " ".join(parts)
