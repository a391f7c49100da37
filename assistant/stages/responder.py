"""The responder stage: the end of a user turn in, speakable reply clauses out, streamed.

It keeps the conversation history and talks to a ``Responder`` (the LLM, wrapped by the fast path and
the deadline fallback). Per turn:
- a speculative transcript (the user paused) starts the work early through ``prefetch``;
- the end of speech opens the reply, so its deadlines run from then even while the final transcript
  is still being made (an acknowledgement can sound before the question is known). It arrives as the
  VAD's ``speech_ended`` event, a control signal: the ``SpeechEnded`` message would queue behind the
  recogniser's speculative pass, which may still be running when the hangover ends;
- the final transcript asks the reply, and clauses stream out as they come.
Only what was actually played enters the history when a reply is cut off by barge-in.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from assistant.core.engines import ANSWER_SOURCES, ChatMessage
from assistant.core.events import Event
from assistant.core.messages import End, Message, ReplyText, SpeechEnded, SpeechResumed, Transcript
from assistant.core.stage import IDLE_POLL_S, Stage, StageContext
from assistant.reply.base import Clause, Reply, Responder

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often a waiting reply looks at cancellation
MAX_EXCHANGES = 50  # the LLM trims to its token budget; this only bounds memory in long sessions


@dataclass
class Exchange:
    turn: int
    user: str
    reply: str
    played: list[str] = field(default_factory=list)  # answer clauses whose audio started playing
    heard: str | None = None  # set on barge-in: the words played before the cut (live.py measures it)


@dataclass
class _OpenReply:
    reply: Reply
    ended: SpeechEnded
    done: bool = False
    first_token_reported: bool = False


class ResponderStage(Stage):
    name = "responder"

    def __init__(
        self, responder: Responder, system_prompt: str, speculative: bool = True, apology: str = ""
    ) -> None:
        self.responder = responder
        self.apology = apology  # said when recognition failed (a speech server down)
        self.system_prompt = system_prompt
        self.speculative = speculative
        self.history: list[Exchange] = []
        self._open: dict[int, _OpenReply] = {}
        self._open_lock = threading.Lock()  # the VAD's thread opens replies through the event bus
        self._hearing = False  # the user is speaking: a reply (and its deadline) may open any moment

    @property
    def poll_s(self) -> float:  # type: ignore[override]
        """Tick often only while a reply may need the deadline's acknowledgement; idle, each wake-up
        is CPU spent on nothing (speech starts at least vad.min_speech_ms before a reply opens)."""
        return POLL_S if self._hearing or self._open else IDLE_POLL_S

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        ctx.events.subscribe(self._on_hearing)
        ctx.events.subscribe(self._on_event)
        self.responder.setup()

    def close(self) -> None:
        for state in self._open.values():
            state.reply.cancel()
        self.responder.close()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechResumed):
            self.responder.prefetch(None)  # the user went on: drop the speculative reply
        elif isinstance(msg, SpeechEnded):
            self._open_reply(msg)
        elif isinstance(msg, Transcript) and not msg.final:
            if msg.speculative and self.speculative and msg.text.strip():
                self.responder.prefetch(self.messages(msg.text))
        elif isinstance(msg, Transcript):
            yield from self._answer(msg)
        elif isinstance(msg, End):
            yield from self.tick(time.monotonic())

    def tick(self, now: float) -> Iterator[Message]:
        """Between end of speech and the final transcript: let the deadline speak if it must."""
        with self._open_lock:
            open_replies = list(self._open.items())
        for turn, state in open_replies:
            if self.ctx.scope.is_stale(turn):
                state.reply.cancel()
                with self._open_lock:
                    self._open.pop(turn, None)
                continue
            while not state.done:
                try:
                    clause = state.reply.next(0)
                except queue.Empty:
                    break
                yield from self._emit(turn, state, clause, [])

    def messages(self, user_text: str) -> list[ChatMessage]:
        """System prompt, the history (as it was heard), and the new question."""
        messages: list[ChatMessage] = [{"role": "system", "content": self.system_prompt}]
        for exchange in self.history:
            messages.append({"role": "user", "content": exchange.user})
            messages.append({"role": "assistant", "content": self._as_heard(exchange)})
        messages.append({"role": "user", "content": user_text})
        return messages

    def _answer(self, msg: Transcript) -> Iterator[Message]:
        assert msg.ended is not None
        turn = msg.turn
        state = self._open_reply(msg.ended)
        with self._open_lock:
            self._open.pop(turn, None)
        if msg.failed:
            yield from self._apologise(turn, state)
            return
        if not msg.text.strip():
            self.responder.prefetch(None)
            state.reply.cancel()
            self.ctx.events.emit("reply_skipped", turn, reason="nothing recognisable was said")
            return
        if not state.done:  # (the deadline may have given up while recognition was still running)
            state.reply.ask(self.messages(msg.text))
        exchange = Exchange(turn, msg.text, "")
        self.history.append(exchange)  # now, so playback can mark clauses as played meanwhile
        spoken: list[str] = []
        while not state.done:
            if self.ctx.scope.is_stale(turn) or self.ctx.stop.is_set():
                state.reply.cancel()
                break
            try:
                clause = state.reply.next(POLL_S)
            except queue.Empty:
                self._report_first_token(turn, state)
                continue
            yield from self._emit(turn, state, clause, spoken)
        exchange.reply = " ".join(spoken)
        if not exchange.reply:
            self.history.remove(exchange)
        del self.history[:-MAX_EXCHANGES]
        self.ctx.events.emit("reply_done", turn, text=exchange.reply)
        yield ReplyText(turn, "", True, state.ended, time.monotonic())

    def _apologise(self, turn: int, state: _OpenReply) -> Iterator[Message]:
        """Recognition failed: the question is unknown, so say so (unless the deadline already gave
        up) instead of answering, and keep listening."""
        self.responder.prefetch(None)
        state.reply.cancel()
        if not state.done and self.apology:
            self.ctx.events.emit("reply_clause", turn, text=self.apology, source="error")
            yield ReplyText(turn, self.apology, False, state.ended, time.monotonic(), "error")
        self.ctx.events.emit("reply_done", turn, text="")
        yield ReplyText(turn, "", True, state.ended, time.monotonic())

    def _open_reply(self, ended: SpeechEnded) -> _OpenReply:
        """The turn's reply, opened now unless it already is (the event usually comes first)."""
        with self._open_lock:
            state = self._open.get(ended.turn)
            if state is None:
                state = self._open[ended.turn] = _OpenReply(self.responder.open(ended.t_arrival), ended)
            return state

    def _emit(
        self, turn: int, state: _OpenReply, clause: Clause | None, spoken: list[str]
    ) -> Iterator[Message]:
        self._report_first_token(turn, state)
        if clause is None:
            state.done = True
            return
        if clause.source in ANSWER_SOURCES:
            spoken.append(clause.text)
        self.ctx.events.emit("reply_clause", turn, text=clause.text, source=clause.source)
        yield ReplyText(turn, clause.text, False, state.ended, time.monotonic(), clause.source)

    def _report_first_token(self, turn: int, state: _OpenReply) -> None:
        if not state.first_token_reported and state.reply.t_first_token is not None:
            self.ctx.events.emit("llm_first_token", turn, t=state.reply.t_first_token)
            state.first_token_reported = True

    def _as_heard(self, exchange: Exchange) -> str:
        """A reply cut off by barge-in enters the history as far as it was played."""
        if not self.ctx.scope.is_stale(exchange.turn):
            return exchange.reply
        heard = exchange.heard if exchange.heard is not None else " ".join(exchange.played)
        return f"{heard} ..." if heard else "..."

    def _on_hearing(self, event: Event) -> None:
        if event.kind in ("speech_started", "speech_ended"):
            self._hearing = event.kind == "speech_started"

    def _on_event(self, event: Event) -> None:
        if event.kind == "speech_ended":
            data = event.data
            self._open_reply(SpeechEnded(event.turn, data["t_input"], event.t, data["t_decided"]))
            return
        if event.kind == "barge_in":
            for exchange in self.history:
                if exchange.turn == event.data.get("interrupted"):
                    exchange.heard = str(event.data.get("spoken", ""))
            return
        if event.kind != "audio_out" or not self.history or self.history[-1].turn != event.turn:
            return
        played = self.history[-1].played
        text = event.data.get("text", "")
        if text and event.data.get("source", "llm") in ANSWER_SOURCES and (not played or played[-1] != text):
            played.append(text)
