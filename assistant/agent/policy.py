"""The agent's turn policy: only speech addressed to it gets an answer.

A turn is addressed to the assistant when its transcript opens with the wake phrase, or when it
started inside the follow-up window: while the assistant is replying (a barge-in) or up to
``agent.followup_s`` after its last word. Everything else is dropped by the responder stage before
the LLM sees it (speculative transcripts included). "Stop" or "cancel" silences the assistant: the
stage cancels any turn in flight, and this drops a proposed action and closes the follow-up window.
The wake phrase alone gets a short "Yes?".

Unlike the conversation, a reply is opened from the VAD's end of speech only when the speculative
transcript (made at the user's first pause) was addressed to the assistant: otherwise the
deadline's filler would answer every passing remark. Other turns are opened by their final
transcript; the deadlines count from the end of speech either way. Due timers and reminders are
spoken from the stage's ``tick``, which asks ``due``.

Speech over a reply follows the conversation's interruption rules (``assistant.stages.policy``): a
stop phrase, or a word or two that is no command, stops; no words, a backchannel or the assistant's
own echo resume the paused reply; anything else is answered as a follow-up.

With a wake-word model (agent/gate.py), its detection (``WakeWordDetected``) marks the next turn
that starts within ``listen_s`` as addressed; the transcript then rarely holds the wake word (the
gate passes only what follows it), and when it does (``word``, the model's phrase) it is taken off.
The wake word alone, with nothing said for ``ACK_AFTER_S``, gets the same "Yes?" as the phrase alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from assistant.agent.intents import STOP, normalise
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.core.events import AudioOut, Event, SpeechStarted, WakeWordDetected
from assistant.core.messages import SpeechEnded, Transcript
from assistant.stages.policy import KEEP_TURNS, InterruptionRules, Interruptions, Verdict

WAKE_REPLY = "Yes?"
ACK_AFTER_S = 1.2  # the wake word alone: "Yes?" when no speech has started by then


class WakePolicy:
    listens_to: Sequence[type[Event]] = (SpeechStarted, AudioOut, WakeWordDetected, *Interruptions.listens_to)

    def __init__(
        self,
        wake: WakePhrase,
        followup_s: float,
        scheduler: Scheduler,
        on_stop: Callable[[], None] = lambda: None,
        rules: InterruptionRules | None = None,
        word: WakePhrase | None = None,
        listen_s: float = 4.0,
    ) -> None:
        self.interruptions = Interruptions(rules)
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
        self._woken_at: float | None = None  # the last wake word no turn has taken up yet
        self._acked = True  # that wake word was answered with "Yes?" (or taken up)

    def in_window(self, now: float) -> bool:
        with self._lock:
            return self._replying or now <= self._window_until

    def on_event(self, event: Event) -> None:
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
                for old in [t for t in self._addressed if t < event.turn - KEEP_TURNS]:
                    self._addressed.pop(old, None)
        elif isinstance(event, AudioOut):
            with self._lock:
                self._window_until = max(self._window_until, event.t + event.duration_s + self.followup_s)
        else:  # a pause, its outcome, or a reply cut without a pause
            self.interruptions.on_event(event)

    def verdict(self, msg: Transcript) -> Verdict:
        with self._lock:
            addressed = self._addressed.get(msg.turn, False)
        if not msg.final and self.interruptions.paused(msg.turn):
            return Verdict("ignore", msg.text)  # no speculative reply for speech over a reply
        found = self.wake.find(msg.text)
        if found is None and addressed and self.word is not None:
            found = self.word.find(msg.text)  # the wake word, when some of it reached the recogniser
        text = found.rest if found is not None else msg.text
        # speech over a reply: the interruption rules (zero words cannot resume a reply that was
        # cut without a pause: it stops, as the onset of a word said over the reply is often lost)
        outcome = self.interruptions.outcome(msg, text) if msg.final else None
        if outcome is None and not msg.text.strip():
            return Verdict("answer", msg.text)  # skipped as nothing recognisable, like any turn
        if found is not None and not found.rest:
            return Verdict("say", WAKE_REPLY, "action")
        if found is None and not addressed and outcome is None:
            return Verdict("ignore", text)
        if outcome is not None and (judged := self.interruptions.verdict(outcome, text)) is not None:
            return judged
        if STOP.match(normalise(text)):
            return Verdict("stop", text, reply=self.interruptions.rules.cfg.stop_reply)
        return Verdict("answer", text)

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        # otherwise opened once the transcript shows it is addressed (or what the pause was)
        return speculation_answered and not self.interruptions.paused(ended.turn)

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
