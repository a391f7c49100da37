"""The responder stage: the end of a user turn in, speakable reply clauses out, streamed.

It keeps the conversation history and talks to a ``Responder`` (the LLM, wrapped by the fast path and
the deadline fallback). Per turn:
- a speculative transcript (the user paused) starts the work early through ``prefetch``;
- the end of speech opens the reply, so its deadlines run from then even while the final transcript
  is still being made (an acknowledgement can sound before the question is known). The VAD emits its
  ``SpeechEnded`` on the event bus as well as queueing it: queued, it would wait behind the
  recogniser's speculative pass, which may still be running when the hangover ends;
- the final transcript asks the reply, and clauses stream out as they come.
Only what was actually played enters the history when a reply is cut off by barge-in (history.py).

The ``TurnPolicy`` (stages/policy.py) decides: answer, skip, stop, resume or a fixed reply.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from assistant.core.engines import ANSWER_SOURCES, ChatMessage
from assistant.core.events import (
    Announcement,
    AudioOut,
    BargeIn,
    LlmFirstToken,
    ReplyClause,
    ReplyDone,
    ReplySkipped,
    Stopped,
    WakeIgnored,
)
from assistant.core.messages import (
    End,
    Message,
    ReplyText,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    Transcript,
)
from assistant.core.stage import IDLE_POLL_S, Stage, StageContext
from assistant.reply.base import Clause, Reply, Responder
from assistant.stages.history import Exchange, chat_messages, finish, note_playback
from assistant.stages.policy import AlwaysAddressed, TurnPolicy, Verdict

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often a waiting reply looks at cancellation


@dataclass
class _OpenReply:
    reply: Reply
    ended: SpeechEnded
    done: bool = False
    first_token_reported: bool = False


class ResponderStage(Stage):
    name = "responder"

    def __init__(
        self,
        responder: Responder,
        system_prompt: str,
        speculative: bool = True,
        policy: TurnPolicy | None = None,
        apology: str = "",
    ) -> None:
        self.responder = responder
        self.system_prompt = system_prompt
        self.speculative = speculative
        self.apology = apology  # said when recognition failed (a speech server down)
        self.policy: TurnPolicy = policy or AlwaysAddressed()
        self.history: list[Exchange] = []
        self._open: dict[int, _OpenReply] = {}
        self._open_lock = threading.Lock()  # the VAD's thread opens replies through the event bus
        self._hearing = False  # the user is speaking: a reply (and its deadline) may open any moment
        self._early: set[int] = set()  # turns whose unfinished transcript the policy would answer
        self._last_turn = 0
        self._timeline = (0.0, time.monotonic())  # (t_input, arrival) of the latest end of speech

    @property
    def poll_s(self) -> float:  # type: ignore[override]
        """Tick often only while a reply may need the deadline's acknowledgement; idle, each wake-up
        is CPU spent on nothing (speech starts at least vad.min_speech_ms before a reply opens)."""
        return POLL_S if self._hearing or self._open else IDLE_POLL_S

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        self._timeline = (0.0, time.monotonic())
        ctx.events.subscribe(self._on_hearing, SpeechStarted, SpeechEnded)
        if self.policy.listens_to:  # before the stage's own listener: it may open the reply
            ctx.events.subscribe(self.policy.on_event, *self.policy.listens_to)
        ctx.events.subscribe(self._on_event, SpeechEnded, BargeIn, AudioOut)
        self.responder.setup()

    def close(self) -> None:
        for state in self._open.values():
            state.reply.cancel()
        self.responder.close()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechResumed):
            self._early.discard(msg.turn)
            self.responder.prefetch(None)  # the user went on: drop the speculative reply
        elif isinstance(msg, SpeechEnded):
            self._open_early(msg)  # (the event usually did already)
        elif isinstance(msg, Transcript):
            yield from self._judge(msg, self.policy.verdict(msg))
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
        for text in self.policy.due(now):
            t_input, t_arrival = self._timeline  # placed on the input timeline as if said now
            ended = SpeechEnded(self._last_turn, t_input + (now - t_arrival), t_decided=now, t=now)
            self.ctx.events.emit(Announcement(self._last_turn, text))
            yield from self._say(self._last_turn, text, ended, "announcement")

    def messages(self, user_text: str) -> list[ChatMessage]:
        """System prompt, the history (as it was heard), and the new question."""
        return chat_messages(self.system_prompt, self.history, user_text, self.ctx.scope.is_stale)

    def _judge(self, msg: Transcript, verdict: Verdict) -> Iterator[Message]:
        turn = msg.turn
        if msg.final:
            self._early = {t for t in self._early if t > turn}  # (a cancelled turn has no final)
            if verdict.action != "answer":
                self._drop_open(turn)
        if not msg.final:
            if verdict.action != "answer":
                self.responder.prefetch(None)
            elif verdict.text.strip():
                self._early.add(turn)
                if msg.speculative and self.speculative:
                    self.responder.prefetch(self.messages(verdict.text))
        elif verdict.action == "ignore":
            self.ctx.events.emit(WakeIgnored(turn, msg.text))
            self.ctx.events.emit(ReplySkipped(turn, "not addressed to the assistant"))
        elif verdict.action == "stop":
            self._stop(turn)
            if verdict.reply and msg.ended is not None:  # a short confirmation, if configured
                yield from self._say(turn, verdict.reply, msg.ended, "stop")
        elif verdict.action == "resume":  # a false interruption: the paused reply went on
            self.ctx.events.emit(ReplySkipped(turn, f"not an interruption: {msg.text!r}"))
        elif verdict.action == "say":
            assert msg.ended is not None
            yield from self._say(turn, verdict.text, msg.ended, verdict.source)
        elif not verdict.text.strip():
            yield from self._answer(msg)  # skipped: nothing recognisable
        else:
            with self.policy.answering(turn):
                yield from self._answer(replace(msg, text=verdict.text))

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
            self.ctx.events.emit(ReplySkipped(turn, "nothing recognisable was said"))
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
            exchange.private |= clause is not None and clause.kept is not None
            yield from self._emit(turn, state, clause, spoken)
        finish(self.history, exchange, spoken)
        self.ctx.events.emit(ReplyDone(turn, exchange.reply))
        yield ReplyText(turn, "", True, state.ended, time.monotonic())

    def _open_early(self, ended: SpeechEnded) -> None:
        if self.policy.opens_early(ended, ended.turn in self._early):
            self._open_reply(ended)

    def _drop_open(self, turn: int) -> None:
        """A reply opened early on a transcript that the final one does not bear out."""
        with self._open_lock:
            state = self._open.pop(turn, None)
        if state is not None:
            state.reply.cancel()

    def _stop(self, turn: int) -> None:
        self.ctx.scope.interrupt(turn)  # whatever older reply is still queued or playing
        self.responder.prefetch(None)
        self.policy.stopped(turn)
        self.ctx.events.emit(Stopped(turn))
        self.ctx.events.emit(ReplySkipped(turn, "stop"))

    def _say(self, turn: int, text: str, ended: SpeechEnded, source: str) -> Iterator[Message]:
        """A fixed reply, without the LLM."""
        self.ctx.events.emit(ReplyClause(turn, text, source))
        yield ReplyText(turn, text, False, ended, time.monotonic(), source)
        self.ctx.events.emit(ReplyDone(turn, text))
        yield ReplyText(turn, "", True, ended, time.monotonic())

    def _apologise(self, turn: int, state: _OpenReply) -> Iterator[Message]:
        """Recognition failed: the question is unknown, so say so (unless the deadline already gave
        up) instead of answering, and keep listening."""
        self.responder.prefetch(None)
        state.reply.cancel()
        if not state.done and self.apology:
            self.ctx.events.emit(ReplyClause(turn, self.apology, "error"))
            yield ReplyText(turn, self.apology, False, state.ended, time.monotonic(), "error")
        self.ctx.events.emit(ReplyDone(turn, ""))
        yield ReplyText(turn, "", True, state.ended, time.monotonic())

    def _open_reply(self, ended: SpeechEnded) -> _OpenReply:
        """The turn's reply, opened now unless it already is (the event usually came first)."""
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
            spoken.append(clause.text if clause.kept is None else clause.kept)
        self.ctx.events.emit(ReplyClause(turn, clause.text, clause.source))
        now = time.monotonic()
        yield ReplyText(turn, clause.text, False, state.ended, now, clause.source, clause.continues)

    def _report_first_token(self, turn: int, state: _OpenReply) -> None:
        if not state.first_token_reported and state.reply.t_first_token is not None:
            self.ctx.events.emit(LlmFirstToken(turn, t=state.reply.t_first_token))
            state.first_token_reported = True

    def _on_hearing(self, event: SpeechStarted | SpeechEnded) -> None:
        self._hearing = isinstance(event, SpeechStarted)
        if isinstance(event, SpeechStarted):
            self._last_turn = max(self._last_turn, event.turn)
        else:
            self._timeline = (event.t_input, event.t_arrival)

    def _on_event(self, event: SpeechEnded | BargeIn | AudioOut) -> None:
        if isinstance(event, SpeechEnded):
            self._open_early(event)  # the same object the VAD queues: nothing is rebuilt
        else:
            note_playback(self.history, event)
