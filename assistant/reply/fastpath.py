"""Answers that need no LLM: the time, the date, what the assistant can do.

They are instant and always right, so they go before the LLM (a small model gets the time wrong),
and the deadline wrapper can fall back on them too. The intent matcher (intents.py) matches whole
sentences: a question that only mentions "time" in passing ("how much time does an egg take", "what
time does the bank open") goes to the LLM.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from assistant.core.engines import ChatMessage
from assistant.reply.base import Clause, DeferredReply, Reply, Responder, ready_answer
from assistant.reply.intents import default_matcher, load

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


IDENTITY = "I'm your local voice assistant. Everything I hear stays on this computer."
ANSWERS: dict[str, Callable[[dt.datetime], str]] = {
    "time": _time,
    "date": _date,
    "capabilities": lambda _now: CAPABILITIES,
    "identity": lambda _now: IDENTITY,
}


def spoken_answer(intent: str, now: dt.datetime) -> str:
    """What the fast path says for ``intent`` (one of ``ANSWERS``) at ``now``."""
    return ANSWERS[intent](now)


def quick_intent(text: str, now: dt.datetime | None = None) -> tuple[str, str] | None:
    """(which intent, its answer) for ``text``: "time", "date", "capabilities" or "identity"; None
    when the LLM should answer."""
    found = default_matcher().match(text)
    if found is None or found.name not in ANSWERS:
        return None
    return found.name, spoken_answer(found.name, now or dt.datetime.now())


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
        load()  # the sentence templates, parsed before the first turn rather than during it
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
