"""The agent's turn policy: only speech addressed to it gets an answer.

A turn is addressed to the assistant when its transcript opens with the wake phrase, or when it
started inside the follow-up window: while the assistant is replying (a barge-in) or up to
``agent.followup_s`` after its last word. Everything else is dropped by the responder stage before
the LLM sees it (speculative transcripts included). "Stop" or "cancel" silences the assistant: the
barge-in has already cut its audio when the VAD heard the word; the stage also cancels any turn in
flight, and this drops a proposed action and closes the follow-up window. A word or two spoken over
a reply that is not a command counts as "stop" too, and so does speech over a reply in which nothing
was recognised (said over the assistant's voice, a lone "stop" is often misheard or lost). The wake
phrase alone gets a short "Yes?".

Unlike the conversation, a reply is opened from the VAD's end of speech only when the speculative
transcript (made at the user's first pause) was addressed to the assistant: otherwise the
deadline's filler would answer every passing remark. Other turns are opened by their final
transcript; the deadlines count from the end of speech either way. Due timers and reminders are
spoken from the stage's ``tick``, which asks ``due``.

With a wake-word model (agent/gate.py), its detection (``WakeWordDetected``) marks the next turn
that starts within ``listen_s`` as addressed; the transcript then rarely holds the wake word (the
gate passes only what follows it), and when it does (``word``, the model's phrase) it is taken off.
The wake word alone, with nothing said for ``ACK_AFTER_S``, gets the same "Yes?" as the phrase alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from assistant.agent.intents import STOP, match, normalise
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.core.events import AudioOut, BargeIn, Event, SpeechStarted, WakeWordDetected
from assistant.core.messages import SpeechEnded, Transcript
from assistant.stages.policy import Verdict

WAKE_REPLY = "Yes?"
SHORT_BARGE_IN_WORDS = 2
KEEP_TURNS = 10  # per-turn marks older than this many turns are forgotten
ACK_AFTER_S = 1.2  # the wake word alone: "Yes?" when no speech has started by then


class WakePolicy:
    listens_to: Sequence[type[Event]] = (SpeechStarted, BargeIn, AudioOut, WakeWordDetected)

    def __init__(
        self,
        wake: WakePhrase,
        followup_s: float,
        scheduler: Scheduler,
        on_stop: Callable[[], None] = lambda: None,
        word: WakePhrase | None = None,
        listen_s: float = 4.0,
    ) -> None:
        self.wake = wake
        self.word = word
        self.listen_s = listen_s
        self.followup_s = followup_s
        self.scheduler = scheduler
        self.on_stop = on_stop
        self._lock = threading.Lock()
        self._window_until = 0.0  # end of the follow-up window (monotonic)
        self._replying = False
        self._addressed: dict[int, bool] = {}  # turn -> started inside the follow-up window
        self._barged: set[int] = set()  # turns that interrupted a reply
        self._woken_at: float | None = None  # the last wake word no turn has taken up yet
        self._acked = True  # that wake word was answered with "Yes?" (or taken up)

    def in_window(self, now: float) -> bool:
        with self._lock:
            return self._replying or now <= self._window_until

    def on_event(self, event: SpeechStarted | BargeIn | AudioOut | WakeWordDetected) -> None:
        if isinstance(event, WakeWordDetected):
            with self._lock:
                self._woken_at, self._acked = event.t, False
        elif isinstance(event, SpeechStarted):
            addressed = self.in_window(event.t)
            with self._lock:
                woken, self._woken_at = self._woken_at, None  # one wake word addresses one turn
                if woken is not None and event.t - woken <= self.listen_s:
                    addressed = True
                self._acked = True
                self._addressed[event.turn] = addressed
                for old in [t for t in {*self._addressed, *self._barged} if t < event.turn - KEEP_TURNS]:
                    self._addressed.pop(old, None)
                    self._barged.discard(old)
        elif isinstance(event, BargeIn):
            # the barge-in interrupted a reply, or silenced audio still queued for the speaker
            if event.interrupted is not None or event.dropped_s > 0:
                with self._lock:
                    self._barged.add(event.turn)
        else:
            with self._lock:
                self._window_until = max(self._window_until, event.t + event.duration_s + self.followup_s)

    def verdict(self, msg: Transcript) -> Verdict:
        # nothing recognised is judged too when the speech cut a reply: zero words is the shortest
        # barge-in that is no command, so it stops (the onset of a word said over the reply is often lost)
        with self._lock:
            barged = msg.turn in self._barged
            addressed = self._addressed.get(msg.turn, False)
        if not msg.text.strip() and not barged:
            return Verdict("answer", msg.text)  # skipped as nothing recognisable, like any turn
        found = self.wake.find(msg.text)
        if found is None and addressed and self.word is not None:
            found = self.word.find(msg.text)  # the wake word, when some of it reached the recogniser
        if found is not None and not found.rest:
            return Verdict("say", WAKE_REPLY, "action")
        text = found.rest if found is not None else msg.text
        if found is None and not addressed:
            return Verdict("ignore", text)
        norm = normalise(text)
        if STOP.match(norm):
            return Verdict("stop", text)
        if barged and len(norm.split()) <= SHORT_BARGE_IN_WORDS and match(text) is None:
            # a word or two said over the reply that is no command: tiny.en often mishears a lone
            # "Stop." spoken over the assistant's voice ("Up.", "That's it."); the user wanted it to stop
            return Verdict("stop", text)
        return Verdict("answer", text)

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        return speculation_answered  # otherwise opened once the transcript shows it is addressed

    @contextmanager
    def answering(self, turn: int) -> Iterator[None]:
        self._replying = True  # speech now is a barge-in, addressed like a follow-up
        try:
            yield
        finally:
            self._replying = False

    def stopped(self, turn: int) -> None:
        self.on_stop()
        with self._lock:
            self._window_until = 0.0

    def due(self, now: float) -> list[str]:
        with self._lock:
            ack = not self._acked and self._woken_at is not None and now - self._woken_at >= ACK_AFTER_S
            if ack:
                self._acked = True  # the wake word still addresses a turn that starts after the "Yes?"
        return ([WAKE_REPLY] if ack else []) + self.scheduler.due(now)
