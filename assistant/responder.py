"""The responder stage: a final transcript in, speakable reply clauses out, streamed.

It keeps the conversation history and talks to a ``Responder`` (the LLM, wrapped by the fast path and
the deadline fallback). A speculative transcript (the user paused) starts the work early through
``prefetch``; the final transcript commits it. Only what was actually played enters the history when
a reply is cut off by barge-in.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from assistant.events import Event
from assistant.messages import Message, ReplyText, SpeechResumed, Transcript
from assistant.replies import ChatMessage, Responder
from assistant.stage import Stage, StageContext

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often a waiting reply looks at cancellation


@dataclass
class Exchange:
    turn: int
    user: str
    reply: str
    played: list[str] = field(default_factory=list)  # clauses whose audio started playing


class ResponderStage(Stage):
    name = "responder"

    def __init__(self, responder: Responder, system_prompt: str, speculative: bool = True) -> None:
        self.responder = responder
        self.system_prompt = system_prompt
        self.speculative = speculative
        self.history: list[Exchange] = []

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        ctx.events.subscribe(self._on_event)
        self.responder.setup()

    def close(self) -> None:
        self.responder.close()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechResumed):
            self.responder.prefetch(None)  # the user went on: drop the speculative reply
        if not isinstance(msg, Transcript):
            return
        if not msg.final:
            if msg.speculative and self.speculative and msg.text.strip():
                self.responder.prefetch(self.messages(msg.text))
            return
        if not msg.text.strip() or msg.ended is None:
            self.responder.prefetch(None)
            self.ctx.events.emit("reply_skipped", msg.turn, reason="nothing recognisable was said")
            return
        yield from self._reply(msg)

    def messages(self, user_text: str) -> list[ChatMessage]:
        """System prompt, the history (as it was heard), and the new question."""
        messages: list[ChatMessage] = [{"role": "system", "content": self.system_prompt}]
        for exchange in self.history:
            messages.append({"role": "user", "content": exchange.user})
            messages.append({"role": "assistant", "content": self._as_heard(exchange)})
        messages.append({"role": "user", "content": user_text})
        return messages

    def _reply(self, msg: Transcript) -> Iterator[Message]:
        assert msg.ended is not None
        turn = msg.turn
        stream = self.responder.start(self.messages(msg.text), msg.ended.t_arrival)
        exchange = Exchange(turn, msg.text, "")
        self.history.append(exchange)  # now, so playback can mark clauses as played meanwhile
        spoken: list[str] = []
        first_token_reported = False
        while True:
            if self.ctx.scope.is_stale(turn) or self.ctx.stop.is_set():
                stream.cancel()
                break
            try:
                clause = stream.next(POLL_S)
            except queue.Empty:
                clause = False  # type: ignore[assignment]
            if not first_token_reported and stream.t_first_token is not None:
                self.ctx.events.emit("llm_first_token", turn, t=stream.t_first_token)
                first_token_reported = True
            if clause is False:
                continue
            if clause is None:
                break
            if clause.source == "llm" or clause.source == "fastpath":
                spoken.append(clause.text)
            self.ctx.events.emit("reply_clause", turn, text=clause.text, source=clause.source)
            yield ReplyText(turn, clause.text, False, msg.ended, time.monotonic(), clause.source)
        exchange.reply = " ".join(spoken)
        if not exchange.reply:
            self.history.remove(exchange)
        self.ctx.events.emit("reply_done", turn, text=exchange.reply)
        yield ReplyText(turn, "", True, msg.ended, time.monotonic())

    def _as_heard(self, exchange: Exchange) -> str:
        """A reply cut off by barge-in enters the history as far as it was played."""
        if not self.ctx.scope.is_stale(exchange.turn):
            return exchange.reply
        return " ".join(exchange.played) + " ..." if exchange.played else "..."

    def _on_event(self, event: Event) -> None:
        if event.kind != "audio_out" or not self.history or self.history[-1].turn != event.turn:
            return
        played = self.history[-1].played
        text = event.data.get("text", "")
        if (
            text
            and event.data.get("source", "llm") in ("llm", "fastpath")
            and (not played or played[-1] != text)
        ):
            played.append(text)
