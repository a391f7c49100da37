"""Speech over a reply that is the assistant's own voice coming back through a loudspeaker.

The microphone tells: speech whose raw signal is the played audio, delayed and scaled (squared
correlation >= ``ECHO_LIKENESS``), is echo that got past the canceller, and barge-in neither pauses
the reply for it nor answers its transcript. The verdict at the speech's onset may be early: the VAD
hears a user in the canceller's output before the user is loud in the raw signal, and a question
whose soft first syllable ("How ...") came over a loud reply read 0.84 there and was ignored while
the reply played on. So while such speech goes on it is checked again every ``RECHECK_S``: once its
latest ``ECHO_ONSET_S`` is no longer the played audio, it is a user after all (``watch``'s callback).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from assistant.core import events as ev
from assistant.core.bus import EventBus

log = logging.getLogger(__name__)

ECHO_SPEECH_S = 0.5  # the speech's last this many seconds before the pause are checked for echo
ECHO_ONSET_S = 0.25  # ... and so are its last vad.min_speech_ms alone: live, a cough over a loud echo
# read 0.89 over 0.5 s (mostly the echo before it) and was taken for the assistant's own voice. (Each
# 0.1 s of it, tried: a cough passed, but the echo at a reply's start paused and stopped the reply)
ECHO_LIKENESS = 0.8  # squared correlation with the played audio above which it is echo: a user
# alone gives ~0; a user as loud as the echo ~0.5; the echo alone ~1 (a linear path)
RECHECK_S = 0.2  # while echo-judged speech goes on, how often its latest ECHO_ONSET_S is checked
RECHECKS = 10  # ... for at most 2 s: a question's first words, and the raw audio kept (2 s)
USER_CHECKS = 2  # ... and it is a user's once this many checks in a row are not the played audio: one
# is not enough (CI, a busy machine: an "mm-hmm" judged echo at its onset paused the reply 2 s later,
# at the last check, when a single window near the reply's end read low; the reply then resumed)
KEEP_TURNS = 10


class MicLevels(Protocol):
    def echo_likeness(self, t0: float, t1: float) -> float | None: ...
    def peak_level(self, t0: float, t1: float) -> float | None: ...
    @property
    def echo_path(self) -> bool: ...


class EchoTurns:
    """The turns judged to be echo. ``judge`` at a turn's onset; ``watch`` it while it is spoken."""

    def __init__(self, mic: MicLevels | None, events: EventBus) -> None:
        self.mic = mic
        self.events = events
        self._lock = threading.Lock()
        self._echoes: set[int] = set()
        self._speaking: set[int] = set()  # echo turns whose speech has not ended

    def __contains__(self, turn: int) -> bool:
        with self._lock:
            return turn in self._echoes

    def judge(self, turn: int, t: float, cut: int | None = None) -> bool:
        """Whether the speech that started ``turn`` by ``t`` (monotonic) is the played audio coming
        back; if so it is reported (``Interruption`` ``echo``: the policy neither opens nor answers
        it) and remembered. Checked before pausing: live, such echo paused the reply for 3-7 ms, an
        audible hiccup, and a stop phrase Whisper made of it ("That's it.") ended the reply."""
        likeness = self._likeness(t - ECHO_SPEECH_S, t)
        if likeness is None or likeness < ECHO_LIKENESS:
            return False
        onset = self._likeness(t - ECHO_ONSET_S, t)
        if onset is not None and onset < ECHO_LIKENESS:
            return False  # the speech itself is not the played audio
        log.info("barge-in: turn %d is the assistant's own echo (%.2f)", turn, likeness)
        with self._lock:
            self._echoes = {t for t in self._echoes if t > turn - KEEP_TURNS} | {turn}
            self._speaking = {t for t in self._speaking if t > turn - KEEP_TURNS} | {turn}
        reason = f"echo: {likeness:.2f} of it was the played audio"
        self.events.emit(ev.Interruption(turn, cut, "echo", 0.0, "", reason))
        return True

    def watch(self, turn: int, on_user: Callable[[], None], checks: int = RECHECKS, unlike: int = 0) -> None:
        """Check ``turn`` again in RECHECK_S, and so on while it is spoken; when its latest speech
        is not the played audio (USER_CHECKS times in a row), forget the verdict and call ``on_user``."""
        if checks <= 0:
            return
        timer = threading.Timer(RECHECK_S, self._recheck, (turn, on_user, checks - 1, unlike))
        timer.daemon = True
        timer.start()

    def ended(self, turn: int) -> None:
        """The turn's speech is over: no more checks (its transcript is judged as it is)."""
        with self._lock:
            self._speaking.discard(turn)

    def _recheck(self, turn: int, on_user: Callable[[], None], checks: int, unlike: int) -> None:
        with self._lock:
            if turn not in self._speaking:
                return
        now = time.monotonic()
        likeness = self._likeness(now - ECHO_ONSET_S, now)
        if likeness is not None:  # (a silent window is neither the echo nor a user: the run stands)
            unlike = unlike + 1 if likeness < ECHO_LIKENESS else 0
        if unlike < USER_CHECKS:
            self.watch(turn, on_user, checks, unlike)
            return
        with self._lock:
            self._echoes.discard(turn)
            self._speaking.discard(turn)
        log.info("barge-in: turn %d was a user over the echo after all (%.2f)", turn, likeness)
        on_user()

    def _likeness(self, t0: float, t1: float) -> float | None:
        return None if self.mic is None else self.mic.echo_likeness(t0, t1)
