"""Barge-in: a new user turn cancels the older ones and empties the speaker at once.

``BargeIn`` listens to the VAD's ``SpeechStarted`` (``scope.interrupt``: the LLM loop, TTS and
playback drop the older turns). The VAD only starts a turn after ``vad.min_speech_ms`` of voice, so
coughs, clicks and short backchannels never interrupt.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from assistant.config import BargeInConfig
from assistant.core import events as ev
from assistant.core.bus import EventBus
from assistant.core.engines import ANSWER_SOURCES
from assistant.core.turn import TurnScope

log = logging.getLogger(__name__)


class Speaker(Protocol):
    def clear(self) -> float: ...

    def pending_s(self) -> float: ...


class Interruptible(Protocol):
    def interrupt(self) -> None: ...


@dataclass
class _Clause:
    text: str
    start: float
    duration: float


class BargeIn:
    """An event listener: a new user turn cancels the older ones and silences the speaker at once.

    Runs on the VAD's thread, synchronously with ``SpeechStarted``, so the stop is not delayed by
    any queue. Reports ``ev.BargeIn`` with what of the cut reply was actually heard. The other
    events come from other threads (ASR, responder, playback, the echo guard): ``_lock`` guards
    the state they share.
    """

    LISTENS_TO = (
        ev.SpeechStarted,
        ev.AudioOut,
        ev.TranscriptFinal,
        ev.ReplyAudioDone,
        ev.ReplySkipped,
        ev.PlaybackStopped,
    )

    def __init__(
        self,
        cfg: BargeInConfig,
        scope: TurnScope,
        speaker: Speaker,
        playback: Interruptible | None,
        events: EventBus,
    ) -> None:
        self.cfg = cfg
        self.scope = scope
        self.speaker = speaker
        self.playback = playback
        self.events = events
        self._lock = threading.Lock()
        self._clauses: dict[int, list[_Clause]] = {}
        self._replying: set[int] = set()  # turns with a transcript whose reply is not done playing
        self._done: set[int] = set()  # turns whose reply audio is all queued for the speaker
        events.subscribe(self, *self.LISTENS_TO)

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.SpeechStarted):
            self._on_speech(e)
        elif isinstance(e, ev.AudioOut) and e.source in ANSWER_SOURCES:
            # the answer only: what was heard of it enters the history, and a filler there ("Hmm.")
            # is copied by the model into its next replies
            with self._lock:
                self._clauses.setdefault(e.turn, []).append(_Clause(e.text, e.t, e.duration_s))
        elif isinstance(e, ev.TranscriptFinal) and e.text.strip():
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
                self._replying -= self._done

    def _on_speech(self, e: ev.SpeechStarted) -> None:
        if not self.cfg.enabled:
            return
        with self._lock:  # the other listeners change it on their threads
            older = [t for t in self._replying if t < e.turn]
        playing = self.speaker.pending_s() > 0
        self.scope.interrupt(e.turn)  # a new turn makes every older reply moot, spoken or not
        dropped = self.speaker.clear()
        if self.playback is not None:
            self.playback.interrupt()
        now = time.monotonic()
        with self._lock:
            self._replying.clear()
            self._done.clear()
            cut = max(older, default=None)
            spoken = self._spoken(cut, now) if cut is not None else ""
            for t in [t for t in self._clauses if t < e.turn]:
                del self._clauses[t]
        if cut is None and not playing:
            return
        log.info("barge-in: turn %s interrupted by turn %d after %.2f s of reply", cut, e.turn, dropped)
        reaction_ms = round((now - e.t) * 1000, 1)
        self.events.emit(ev.BargeIn(e.turn, cut, round(dropped, 3), spoken, reaction_ms, t=now))

    def _spoken(self, turn: int, now: float) -> str:
        """The words of ``turn``'s reply heard before ``now`` (a clause cut midway: pro rata)."""
        words: list[str] = []
        for c in self._clauses.get(turn, []):
            if now <= c.start:
                break
            part = c.text.split()
            heard = 1.0 if c.duration <= 0 else min(1.0, (now - c.start) / c.duration)
            words += part[: int(round(len(part) * heard))]
        return " ".join(words)
