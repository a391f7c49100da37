"""Turn policies: what the responder stage does with each transcript.

The responder stage answers; a policy decides whether to. The conversation answers every turn
(``AlwaysAddressed``); the agent answers only what is addressed to it (``assistant.agent.policy``).
A policy gets the typed events it asks for (on the emitting thread), a verdict per transcript, and a
look at the clock for what it has to say unasked (a due timer).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from assistant.core.events import Event
from assistant.core.messages import SpeechEnded, Transcript


@dataclass(frozen=True)
class Verdict:
    """``answer`` the question ``text``; ``ignore`` the turn (not addressed); ``stop`` talking;
    ``say`` the fixed reply ``text`` (tagged ``source``) without asking the LLM."""

    action: Literal["answer", "ignore", "stop", "say"]
    text: str = ""
    source: str = "action"


class TurnPolicy(Protocol):
    # the event types ``on_event`` is subscribed to; () for none
    listens_to: Sequence[type[Event]]

    def on_event(self, event: Any) -> None:
        """One of ``listens_to``, on the emitting thread: quick, and thread-safe."""

    def verdict(self, msg: Transcript) -> Verdict:
        """For every transcript, partial and speculative ones included (``msg.final`` False): an
        early ``answer`` may open the reply at the end of speech (see ``opens_early``), other early
        verdicts drop the speculation. An empty ``answer`` is skipped as "nothing recognisable"."""

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        """Whether the end of speech opens the reply (and starts its deadlines) before the final
        transcript; ``speculation_answered``: the turn's speculative transcript got ``answer``."""

    def answering(self, turn: int) -> AbstractContextManager[Any]:
        """Held while the stage answers ``turn`` (the LLM is asked and its clauses stream out)."""

    def stopped(self, turn: int) -> None:
        """After a ``stop`` verdict has cancelled the older turns, before it is reported."""

    def due(self, now: float) -> list[str]:
        """What to say unasked by ``now`` (announcements), called between messages."""


class AlwaysAddressed:
    """The conversation: every turn is for the assistant, and its end of speech opens the reply."""

    listens_to: Sequence[type[Event]] = ()

    def on_event(self, event: Any) -> None:
        pass

    def verdict(self, msg: Transcript) -> Verdict:
        return Verdict("answer", msg.text)

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        return True

    def answering(self, turn: int) -> AbstractContextManager[Any]:
        return nullcontext()

    def stopped(self, turn: int) -> None:
        pass

    def due(self, now: float) -> list[str]:
        return []
