"""The conversation history as the user heard it: what the responder puts in front of the LLM.

Each ``Exchange`` is one answered turn. A reply cut off by barge-in is kept only as far as it was
played (``BargeIn.spoken``, else the clauses whose audio started), so the model is not told it said
what the user never heard. The list itself belongs to whoever owns the conversation: the responder
stage, or a Wyoming session that hands the same list to each of its requests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from assistant.core.engines import ANSWER_SOURCES, ChatMessage
from assistant.core.events import AudioOut, BargeIn
from assistant.reply.intents import normalise

MAX_EXCHANGES = 50  # the LLM trims to its token budget; this only bounds memory in long sessions


@dataclass
class Exchange:
    turn: int
    user: str
    reply: str
    played: list[str] = field(default_factory=list)  # answer clauses whose audio started playing
    heard: str | None = None  # set on barge-in: the words played before the cut (live.py measures it)
    private: bool = False  # the reply said what the history must not keep (``reply`` is what it keeps)


def chat_messages(
    system_prompt: str, history: list[Exchange], user_text: str, is_stale: Callable[[int], bool]
) -> list[ChatMessage]:
    """System prompt, the history (as it was heard), and the new question. ``is_stale`` says
    whether a turn's reply was cut off."""
    messages: list[ChatMessage] = [{"role": "system", "content": system_prompt}]
    asked = normalise(user_text)
    for exchange in history:
        reply = as_heard(exchange, asked, is_stale(exchange.turn))
        if reply is None:
            continue
        messages.append({"role": "user", "content": exchange.user})
        messages.append({"role": "assistant", "content": reply})
    messages.append({"role": "user", "content": user_text})
    return messages


def as_heard(exchange: Exchange, asked: str, cut: bool) -> str | None:
    """A reply cut by barge-in enters the history as far as it was played; None when none of it
    was or when it is ``asked`` again (live, the model copied a bare "..." or "A car engine uses
    a ..." as its whole next reply)."""
    if exchange.private or not cut:
        return exchange.reply
    heard = exchange.heard if exchange.heard is not None else " ".join(exchange.played)
    return f"{heard} ..." if heard and normalise(exchange.user) != asked else None


def finish(history: list[Exchange], exchange: Exchange, spoken: list[str]) -> None:
    """The reply is over: keep what it said (an empty one is dropped) and bound the history."""
    exchange.reply = " ".join(spoken)
    if not exchange.reply:
        history.remove(exchange)
    del history[:-MAX_EXCHANGES]


def note_playback(history: list[Exchange], event: BargeIn | AudioOut) -> None:
    """Record what of a reply was heard: a barge-in's words, or an answer clause starting to play."""
    if isinstance(event, BargeIn):
        for exchange in [x for x in history if x.turn == event.interrupted]:
            exchange.heard = event.spoken
        return
    if not history or history[-1].turn != event.turn:
        return
    played, text = history[-1].played, event.text
    if text and event.source in ANSWER_SOURCES and (not played or played[-1] != text):
        played.append(text)
