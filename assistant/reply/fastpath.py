"""Answers that need no LLM: the time, the date, what the assistant can do.

They are instant and always right, so they go before the LLM (a small model gets the time wrong),
and the deadline wrapper can fall back on them too. Matching is deliberately narrow: a question that
only mentions "time" in passing ("how much time does an egg take") goes to the LLM.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from assistant.core.engines import ChatMessage
from assistant.reply.base import Clause, DeferredReply, Reply, Responder, ready_answer

CAPABILITIES = (
    "I can answer short questions, tell you the time and the date, and chat. "
    "Just speak, and interrupt me whenever you like."
)


def _time(now: dt.datetime) -> str:
    hour = now.hour % 12 or 12
    suffix = "in the morning" if now.hour < 12 else "in the afternoon" if now.hour < 18 else "in the evening"
    minutes = (
        "o'clock" if now.minute == 0 else f"{now.minute:02d}" if now.minute >= 10 else f"oh {now.minute}"
    )
    return f"It's {hour} {minutes} {suffix}."


def _date(now: dt.datetime) -> str:
    return f"Today is {now:%A}, {now:%B} {now.day}, {now.year}."


INTENTS: list[tuple[str, re.Pattern[str], Callable[[dt.datetime], str]]] = [
    (
        "time",
        re.compile(
            r"\bwhat(?:'s| is)? (?:the )?(?:current )?time\b|\bwhat time is it\b|\btell me the time\b"
        ),
        _time,
    ),
    (
        "date",
        re.compile(
            r"\bwhat(?:'s| is)? (?:the |today's )?date\b|\bwhat day is (?:it|today)\b|\bwhich day is today\b"
        ),
        _date,
    ),
    (
        "capabilities",
        re.compile(r"\bwhat can you do\b|\bwhat are you able to do\b|\bhow can you help\b|^help\b"),
        lambda _now: CAPABILITIES,
    ),
    (
        "identity",
        re.compile(r"\bwho are you\b|\bwhat(?:'s| is) your name\b"),
        lambda _now: "I'm your local voice assistant. Everything I hear stays on this computer.",
    ),
]


def quick_intent(text: str, now: dt.datetime | None = None) -> tuple[str, str] | None:
    """(which intent, its answer) for ``text``: "time", "date", "capabilities" or "identity"; None
    when the LLM should answer."""
    normalised = re.sub(r"[^\w' ]+", " ", text.lower()).strip()
    for name, pattern, answer in INTENTS:
        if pattern.search(normalised):
            return name, answer(now or dt.datetime.now())
    return None


def quick_answer(text: str, now: dt.datetime | None = None) -> str | None:
    """The fast answer to ``text``, or None when the LLM should answer."""
    found = quick_intent(text, now)
    return found[1] if found else None


class FastPathResponder:
    """Looks like the responder it wraps; answers the easy questions itself."""

    def __init__(self, inner: Responder, clock: Callable[[], dt.datetime] = dt.datetime.now) -> None:
        self.inner = inner
        self.clock = clock

    def setup(self) -> None:
        self.inner.setup()

    def prefetch(self, messages: list[ChatMessage] | None) -> None:
        if messages is None or quick_answer(messages[-1]["content"]) is None:
            self.inner.prefetch(messages)

    def open(self, t_speech_end: float) -> Reply:
        inner = self.inner.open(t_speech_end)

        def start(messages: list[ChatMessage]) -> Reply:
            answer = quick_answer(messages[-1]["content"], self.clock())
            if answer is not None:
                inner.cancel()
                return ready_answer(Clause(answer, "fastpath"))
            inner.ask(messages)
            return inner

        return DeferredReply(start)

    def close(self) -> None:
        self.inner.close()
