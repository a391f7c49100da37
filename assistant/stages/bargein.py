"""Barge-in: pause first, decide after.

``BargeIn`` listens to the VAD's ``SpeechStarted``. Speech over a reply pauses the speaker at once
(``ReplyPaused``; generation goes on), and the speech's final transcript decides by the interruption
rules (``assistant.stages.policy.InterruptionRules``): a stop phrase, or a word or two that is no
command, cuts the reply (``scope.interrupt``, speaker cleared) and nothing more is said; no words, a
backchannel or the reply's own words resume it where it paused; anything else cuts it and is answered.
The microphone itself may tell first: speech whose raw signal is the played audio, delayed and scaled
(squared correlation >= ``ECHO_LIKENESS``), is the assistant's own voice that got past the canceller:
the reply is not paused and its transcript ignored. Speech after which the microphone fell silent
with the speaker (``SILENT_AFTER``) was too: unless a stop phrase, the reply resumes. Over a
loudspeaker a question is answered only if both transcripts heard it alike. Each decision is an
``Interruption`` event (outcome, pause length); a cut also reports ``BargeIn`` with what of the reply
was heard. Speech whose transcript does not come within ``barge_in.decide_timeout_s`` of its end
resumes the reply (a late transcript may still cut it). With ``barge_in.pause`` off, speech over a
reply cuts it at once (the policy then applies the rules)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from assistant.config import BargeInConfig
from assistant.core import events as ev
from assistant.core.bus import EventBus
from assistant.core.engines import ANSWER_SOURCES
from assistant.core.turn import TurnScope
from assistant.stages.echo_turns import ECHO_SPEECH_S, EchoTurns, MicLevels
from assistant.stages.policy import InterruptionRules

log = logging.getLogger(__name__)
ECHO_WORDS = 30  # the reply's last words heard before a pause: a transcript of only these is echo
AFTER_PAUSE_S = (0.2, 0.5)  # the mic this long after the pause: the echo has died out by then
SILENT_AFTER = 0.01  # its loudest frame under this part of the loudest before: no one speaks. Live,
# the echo left exactly 0 there in 8 self-pauses of 8; a user's "Stop." left 0.024 to 1 of it


class Speaker(Protocol):
    def clear(self) -> float: ...
    def pending_s(self) -> float: ...
    def pause(self) -> float: ...
    def resume(self) -> None: ...


class Interruptible(Protocol):
    def interrupt(self) -> None: ...
    def delay(self, seconds: float) -> None: ...


@dataclass
class _Clause:
    text: str
    start: float
    duration: float


@dataclass
class _Pause:
    cut: int | None  # the reply it paused
    t: float  # when the speaker paused
    spoken: str  # what of the reply was heard by then
    reaction_ms: float
    resumed: bool = False  # the timeout resumed it; a late transcript may still cut it
    silent_after: bool = False  # the mic fell silent once the speaker paused: it was the echo
    timer: threading.Timer | None = field(default=None, repr=False)


class BargeIn:
    """An event listener: speech over a reply pauses it, and its transcript decides what happens.

    Runs on the emitting threads (the VAD's for ``SpeechStarted``, so the pause waits on no queue;
    the recogniser's for ``TranscriptFinal``, so the ``Interruption`` reaches the policy before the
    transcript reaches the responder). ``_lock`` guards the state they share.
    """

    LISTENS_TO = (
        ev.SpeechStarted,
        ev.SpeechEnded,
        ev.AudioOut,
        ev.TranscriptFinal,
        ev.ReplyAudioDone,
        ev.ReplySkipped,
        ev.PlaybackStopped,
        ev.Action,  # the agent's proposals: a yes or no over one answers it (InterruptionRules.note)
    )

    def __init__(
        self,
        cfg: BargeInConfig,
        scope: TurnScope,
        speaker: Speaker,
        playback: Interruptible | None,
        events: EventBus,
        rules: InterruptionRules | None = None,
        mic: MicLevels | None = None,
    ) -> None:
        self.mic, self.cfg, self.scope, self.speaker, self.playback = mic, cfg, scope, speaker, playback
        self.events = events
        self.rules = rules or InterruptionRules(cfg)
        self._lock = threading.Lock()
        self._clauses: dict[int, list[_Clause]] = {}
        self._replying: set[int] = set()  # turns with a transcript whose reply is not done playing
        self._done: set[int] = set()  # turns whose reply audio is all queued for the speaker
        self._pauses: dict[int, _Pause] = {}  # speech turn -> the pause it made, until decided
        self._echoes = EchoTurns(mic, events)  # turns that were the assistant's own voice
        events.subscribe(self, *self.LISTENS_TO)

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.SpeechStarted):
            self._on_speech(e)
        elif isinstance(e, ev.SpeechEnded):
            self._echoes.ended(e.turn)
            self._check_after(e.turn)
            self._arm_timeout(e.turn)
        elif isinstance(e, ev.AudioOut) and e.source in ANSWER_SOURCES:
            # the answer only: what was heard of it enters the history, and a filler there ("Hmm.")
            # is copied by the model into its next replies
            with self._lock:
                self._clauses.setdefault(e.turn, []).append(_Clause(e.text, e.t, e.duration_s))
        elif isinstance(e, ev.TranscriptFinal):
            with self._lock:
                pause = self._pauses.pop(e.turn, None)
            if pause is not None:
                self._decide(e.turn, pause, e.text, e.near_text)
            elif e.text.strip() and e.turn not in self._echoes:
                with self._lock:
                    self._replying.add(e.turn)
        elif isinstance(e, ev.ReplyAudioDone | ev.ReplySkipped):
            # not reply_done: that is the text, and its last clauses may still be in synthesis
            with self._lock:
                self._done.add(e.turn)
                if self.speaker.pending_s() <= 0:  # already heard (or nothing to hear)
                    self._replying -= self._done
        elif isinstance(e, ev.PlaybackStopped):  # a reply is over once all its audio has been heard
            with self._lock:
                if all(p.resumed for p in self._pauses.values()):  # paused, it plays silence: no end
                    self._replying -= self._done
        elif isinstance(e, ev.Action):
            self.rules.note(e)

    def _on_speech(self, e: ev.SpeechStarted) -> None:
        if not self.cfg.enabled:
            return
        with self._lock:  # the other listeners change it on their threads
            older = [t for t in self._replying if t < e.turn]
            paused = [p for p in self._pauses.values() if not p.resumed]
        cut = max(older, default=None)
        if cut is None and not paused and self.speaker.pending_s() <= 0:
            # nothing to pause; unless it is the echo of what just played (a filler), a new turn
            # makes older replies still in the making moot, as ever
            if not self._echoes.judge(e.turn, time.monotonic()):
                self.scope.interrupt(e.turn)
            else:  # (a user after all: paused for, so that its transcript decides)
                self._echoes.watch(e.turn, lambda: self._pause(e.turn, None, e.t))
            return
        if not self.cfg.pause:
            self._cut(e.turn, cut, time.monotonic(), round((time.monotonic() - e.t) * 1000, 1))
            return
        if not paused and self._echoes.judge(e.turn, time.monotonic(), cut):
            # its own voice got past the canceller: the reply goes on, never paused, unless the
            # speech turns out to be a user's after all (a soft first syllable over a loud reply)
            self._echoes.watch(e.turn, lambda: self._pause(e.turn, cut, e.t))
            return
        self._pause(e.turn, cut, e.t)

    def _pause(self, turn: int, cut: int | None, t_onset: float) -> None:
        """Pause the speaker for speech that began at ``t_onset``, until its transcript decides."""
        self.speaker.pause()
        now = time.monotonic()
        reaction_ms = round((now - t_onset) * 1000, 1)
        with self._lock:
            paused = [p for p in self._pauses.values() if not p.resumed]
            if paused:  # still paused for earlier speech: keep its time and what had been heard
                first = min(paused, key=lambda p: p.t)
                pause = _Pause(first.cut, first.t, first.spoken, reaction_ms)
            else:
                pause = _Pause(cut, now, self._spoken(cut, now), reaction_ms)
            self._pauses[turn] = pause
        log.info("barge-in: turn %s paused by turn %d", pause.cut, turn)
        self.events.emit(ev.ReplyPaused(turn, pause.cut, reaction_ms, t=now))

    def _check_after(self, turn: int) -> None:
        """At the end of speech that paused a reply: did the mic fall silent once the speaker did?
        Then it was the assistant's own voice that got past the canceller (whatever Whisper makes
        of it: live, "Done.", "Works well." or "That's it." stopped replies); a user goes on."""
        with self._lock:
            pause = self._pauses.get(turn)
        if pause is None or self.mic is None or not self.mic.echo_path:
            return
        before = self.mic.peak_level(pause.t - ECHO_SPEECH_S, pause.t)
        after = self.mic.peak_level(pause.t + AFTER_PAUSE_S[0], pause.t + AFTER_PAUSE_S[1])
        if before and after is not None and after < SILENT_AFTER * before:
            pause.silent_after = True
            log.info("barge-in: turn %d: silent once paused (%.0f -> %.0f)", turn, before, after)

    def _arm_timeout(self, turn: int) -> None:
        with self._lock:
            pause = self._pauses.get(turn)
            if pause is None or pause.timer is not None:
                return
            pause.timer = threading.Timer(self.cfg.decide_timeout_s, self._timed_out, (turn,))
            pause.timer.daemon = True
        pause.timer.start()

    def _timed_out(self, turn: int) -> None:
        with self._lock:
            pause = self._pauses.get(turn)
            if pause is None or pause.resumed:
                return
            pause.resumed = True
        self._resume(turn, pause, "", "no transcript in time")

    def _decide(self, turn: int, pause: _Pause, text: str, near_text: str | None = None) -> None:
        if pause.timer is not None:
            pause.timer.cancel()
        played = " ".join(pause.spoken.split()[-ECHO_WORDS:])
        outcome, reason = self.rules.decide(text, played)
        near = self.rules.decide(near_text or "", played)
        # over a loudspeaker, the mic minus the fitted echo (TranscriptFinal.near_text) decides: live,
        # the canceller's output lost most of a "Stop." ('', "Yeah.") and made words of its own leaks
        # ("every book.", "And that's enough." for an "mm-hmm"), where this heard "Stop.", "MMM."; a stop
        # phrase in the canceller's output stands, unless this heard a backchannel, and a backchannel
        # there stands over a word or two made here (live, an "mm-hmm": "Mm-hmm." and "KMMM.")
        if near_text is not None and (reason != "stop phrase" or near[1] == "backchannel"):
            outcome, reason = (outcome, reason) if (reason, near[1]) == ("backchannel", "short") else near
            if outcome == "answer" and not self.rules.heard_alike(text, near_text):
                outcome, reason = "resume", "no words: the two transcripts disagree"  # (a hum, a cough)
            reason, text = f"{reason} (echo-fitted mic)", near_text
        # (not a stop phrase, nor words the echo-fitted mic heard: the VAD may hear a short "Stop." so
        # late that the mic falls silent with the speaker; live, "Stop." heard as '' and "come back."
        # was resumed so, where echo that got past the canceller leaves the fitted mic silent)
        fitted_words = near_text is not None and near[1] not in ("no words", "noise", "echo")
        if pause.silent_after and outcome != "resume" and "stop phrase" not in reason and not fitted_words:
            outcome, reason = "resume", "echo: the mic fell silent with the speaker"
        if outcome == "resume":
            if not pause.resumed:  # (a late transcript after the timeout: it is playing again)
                self._resume(turn, pause, text, reason)
            return
        now = time.monotonic()
        self._cut(turn, pause.cut, now, pause.reaction_ms, pause)
        result = "stopped" if outcome == "stop" else "answered"
        log.info("barge-in: turn %s %s by turn %d (%s: %r)", pause.cut, result, turn, reason, text)
        pause_ms = round((now - pause.t) * 1000, 1)
        self.events.emit(ev.Interruption(turn, pause.cut, result, pause_ms, text, reason, t=now))
        if outcome == "answer" and text.strip():
            with self._lock:
                self._replying.add(turn)

    def _resume(self, turn: int, pause: _Pause, text: str, reason: str) -> None:
        now = time.monotonic()
        held = now - pause.t
        with self._lock:
            still = [p for t, p in self._pauses.items() if t != turn and not p.resumed]
            if not pause.resumed:
                self._pauses.pop(turn, None)
            if not still:  # the reply's clauses start later by the pause (what was heard stays right)
                for c in self._clauses.get(pause.cut, []) if pause.cut is not None else []:
                    if c.start + c.duration > pause.t:
                        c.start += held
        if not still:
            self.speaker.resume()
            if self.playback is not None:
                self.playback.delay(held)
        log.info("barge-in: turn %s resumed after %.2f s (%s: %r)", pause.cut, held, reason, text)
        held_ms = round(held * 1000, 1)
        self.events.emit(ev.Interruption(turn, pause.cut, "resumed", held_ms, text, reason, t=now))

    def _cut(
        self, turn: int, cut: int | None, now: float, reaction_ms: float, pause: _Pause | None = None
    ) -> None:
        """Cancel every turn before ``turn`` and empty the speaker; report what was heard."""
        self.scope.interrupt(turn)  # a new turn makes every older reply moot, spoken or not
        dropped = self.speaker.clear()
        if self.playback is not None:
            self.playback.interrupt()
        with self._lock:
            if cut is None:
                cut = max((t for t in self._replying if t < turn), default=None)
            spoken = pause.spoken if pause is not None else self._spoken(cut, now)
            self._replying.clear()
            self._done.clear()
            for t in [t for t in self._clauses if t < turn]:
                del self._clauses[t]
            for t in [t for t in self._pauses if t < turn]:
                old = self._pauses.pop(t)
                if old.timer is not None:
                    old.timer.cancel()
        log.info("barge-in: turn %s interrupted by turn %d after %.2f s of reply", cut, turn, dropped)
        self.events.emit(ev.BargeIn(turn, cut, round(dropped, 3), spoken, reaction_ms, t=now))

    def _spoken(self, turn: int | None, now: float) -> str:
        """The words of ``turn``'s reply heard before ``now`` (a clause cut midway: pro rata)."""
        words: list[str] = []
        for c in self._clauses.get(turn, []) if turn is not None else []:
            if now <= c.start:
                break
            part = c.text.split()
            heard = 1.0 if c.duration <= 0 else min(1.0, (now - c.start) / c.duration)
            words += part[: int(round(len(part) * heard))]
        return " ".join(words)
