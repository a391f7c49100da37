"""The agent's responder stage: only speech addressed to it gets an answer.

A turn is addressed to the assistant when its transcript opens with the wake phrase, or when it
started inside the follow-up window: while the assistant is replying (a barge-in) or up to
``agent.followup_s`` after its last word. Everything else is dropped here, before the LLM sees it
(speculative transcripts included). "Stop" or "cancel" silences the assistant: the barge-in has
already cut its audio when the VAD heard the word; this also cancels any turn in flight, drops a
proposed action and closes the follow-up window. A word or two spoken over a reply that is not a
command counts as "stop" too, and so does speech over a reply in which nothing was recognised (said
over the assistant's voice, a lone "stop" is often misheard or lost). The wake phrase alone gets a
short "Yes?".

Unlike the conversation stage, a reply is opened from the VAD's end of speech only when the
speculative transcript (made at the user's first pause) was addressed to the assistant: otherwise the
deadline's filler would answer every passing remark. Other turns are opened by their final transcript;
the deadlines count from the end of speech either way. Due timers and reminders are spoken from ``tick``.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from assistant.agent.intents import STOP, match, normalise
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.core.events import Event
from assistant.core.messages import Message, ReplyText, SpeechEnded, SpeechResumed, Transcript
from assistant.core.stage import StageContext
from assistant.reply.base import Responder
from assistant.stages.responder import ResponderStage

WAKE_REPLY = "Yes?"
SHORT_BARGE_IN_WORDS = 2


class AgentStage(ResponderStage):
    name = "agent"

    def __init__(
        self,
        responder: Responder,
        system_prompt: str,
        wake: WakePhrase,
        followup_s: float,
        scheduler: Scheduler,
        on_stop: Callable[[], None] = lambda: None,
        speculative: bool = True,
    ) -> None:
        super().__init__(responder, system_prompt, speculative)
        self.wake = wake
        self.followup_s = followup_s
        self.scheduler = scheduler
        self.on_stop = on_stop
        self._lock = threading.Lock()
        self._window_until = 0.0  # end of the follow-up window (monotonic)
        self._replying = False
        self._addressed: dict[int, bool] = {}  # turn -> started inside the follow-up window
        self._last_turn = 0
        self._early: set[int] = set()  # turns whose speculative transcript was addressed to us
        self._barged: set[int] = set()  # turns that interrupted a reply
        self._timeline = (0.0, time.monotonic())  # (t_input, t_arrival) of the latest known instant

    def setup(self, ctx: StageContext) -> None:
        self._timeline = (0.0, time.monotonic())
        super().setup(ctx)

    def in_window(self, now: float) -> bool:
        with self._lock:
            return self._replying or now <= self._window_until

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechEnded):
            return  # opened once the transcript shows the turn is addressed (see the docstring)
        if isinstance(msg, SpeechResumed):
            self._early.discard(msg.turn)
        # nothing recognised is judged too when the speech cut a reply: zero words is the shortest
        # barge-in that is no command, so it stops (the onset of a word said over the reply is often lost)
        if not isinstance(msg, Transcript) or (not msg.text.strip() and msg.turn not in self._barged):
            yield from super().process(msg)
            return
        verdict, text = self._verdict(msg)
        if msg.final and verdict != "answer":
            self._drop_open(msg.turn)
        if not msg.final:
            if verdict == "answer":
                self._early.add(msg.turn)
                yield from super().process(dataclasses.replace(msg, text=text))
            else:
                self.responder.prefetch(None)
            return
        if verdict == "ignore":
            self.ctx.events.emit("wake_ignored", msg.turn, text=msg.text)
            self.ctx.events.emit("reply_skipped", msg.turn, reason="not addressed to the assistant")
        elif verdict == "stop":
            self._stop(msg.turn)
        elif verdict == "wake":
            assert msg.ended is not None
            yield from self._say(msg.turn, WAKE_REPLY, msg.ended, "action")
        else:
            self._replying = True
            try:
                yield from super().process(dataclasses.replace(msg, text=text))
            finally:
                self._replying = False

    def tick(self, now: float) -> Iterator[Message]:
        yield from super().tick(now)
        for text in self.scheduler.due(now):
            t_input, t_arrival = self._timeline
            ended = SpeechEnded(self._last_turn, t_input + (now - t_arrival), now, now)
            self.ctx.events.emit("announcement", self._last_turn, text=text)
            yield from self._say(self._last_turn, text, ended, "announcement")

    def _verdict(self, msg: Transcript) -> tuple[str, str]:
        """("answer" | "wake" | "stop" | "ignore", the text to answer)."""
        found = self.wake.find(msg.text)
        if found is not None and not found.rest:
            return "wake", ""
        text = found.rest if found is not None else msg.text
        if found is None and not self._addressed.get(msg.turn, False):
            return "ignore", text
        norm = normalise(text)
        if STOP.match(norm):
            return "stop", text
        if msg.turn in self._barged and len(norm.split()) <= SHORT_BARGE_IN_WORDS and match(text) is None:
            # a word or two said over the reply that is no command: tiny.en often mishears a lone
            # "Stop." spoken over the assistant's voice ("Up.", "That's it."); the user wanted it to stop
            return "stop", text
        return "answer", text

    def _drop_open(self, turn: int) -> None:
        """A reply opened early on a speculative transcript that the final one does not bear out."""
        self._early.discard(turn)
        with self._open_lock:
            state = self._open.pop(turn, None)
        if state is not None:
            state.reply.cancel()

    def _stop(self, turn: int) -> None:
        self.ctx.scope.interrupt(turn)  # whatever older reply is still queued or playing
        self.responder.prefetch(None)
        self.on_stop()
        with self._lock:
            self._window_until = 0.0
        self.ctx.events.emit("stopped", turn)
        self.ctx.events.emit("reply_skipped", turn, reason="stop")

    def _say(self, turn: int, text: str, ended: SpeechEnded, source: str) -> Iterator[Message]:
        self.ctx.events.emit("reply_clause", turn, text=text, source=source)
        yield ReplyText(turn, text, False, ended, time.monotonic(), source)
        self.ctx.events.emit("reply_done", turn, text=text)
        yield ReplyText(turn, "", True, ended, time.monotonic())

    def _on_event(self, event: Event) -> None:
        if event.kind == "speech_started":
            addressed = self.in_window(event.t)
            with self._lock:
                self._addressed[event.turn] = addressed
                self._last_turn = max(self._last_turn, event.turn)
                for old in [
                    t for t in {*self._addressed, *self._early, *self._barged} if t < event.turn - 10
                ]:
                    self._addressed.pop(old, None)
                    self._early.discard(old)
                    self._barged.discard(old)
            return
        if event.kind == "speech_ended":
            self._timeline = (float(event.data["t_input"]), event.t)
            if event.turn not in self._early:  # opened once the transcript shows it is addressed
                return
        if event.kind == "barge_in" and _cut_a_reply(event):
            self._barged.add(event.turn)
        if event.kind == "audio_out":
            with self._lock:
                end = event.t + float(event.data.get("duration_s", 0.0))
                self._window_until = max(self._window_until, end + self.followup_s)
        super()._on_event(event)


def _cut_a_reply(barge_in: Event) -> bool:
    """The barge-in interrupted a reply, or silenced audio still queued for the speaker."""
    return barge_in.data.get("interrupted") is not None or float(barge_in.data.get("dropped_s") or 0) > 0
