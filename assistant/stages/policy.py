"""Turn policies: what the responder stage does with each transcript.

The responder stage answers; a policy decides whether to. The conversation answers every turn
(``AlwaysAddressed``); the agent answers only what is addressed to it (``assistant.agent.policy``).
A policy gets the typed events it asks for (on the emitting thread), a verdict per transcript, and a
look at the clock for what it has to say unasked (a due timer).

Speech over a reply is judged by one set of rules for both (``InterruptionRules``): live, the barge-in
(``assistant.stages.bargein``) pauses the reply when the VAD hears speech and applies them to its
transcript (``Interruption`` event); the policies turn that outcome into the verdict: ``stop`` (a stop
phrase, or a word or two that is no command), ``resume`` (no words, a backchannel, the assistant's own
words coming back) or the usual answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal, Protocol

from assistant.config import BargeInConfig
from assistant.core.events import Action, BargeIn, Event, Interruption, ReplyPaused
from assistant.core.messages import SpeechEnded, Transcript
from assistant.reply.intents import default_matcher, normalise

Outcome = Literal["stop", "resume", "answer"]
KEEP_TURNS = 10  # per-turn marks older than this many turns are forgotten
ALIKE = 0.6  # two transcripts of the same speech whose letters match less than this disagree, unless
ALIKE_RUN = 6  # they share a run of this many letters (a word or two: "aspiderhave")
# ... but a few short words match that well by chance: live, an "mm-hmm" over a loudspeaker came out
# "end of month." and "in a month." (0.67), "in the month." and "in the model." (0.70, a run of 7)
# and was answered. Transcripts of up to SHORT_WORDS words must match to ALIKE_SHORT, letters alone
# ("what's the time" and "what is the time": 0.88)
SHORT_WORDS, ALIKE_SHORT = 3, 0.8
# ... unless the other heard a sentence of LONG_WORDS or more and the few words lie inside it, nearly
# whole (live, the canceller lost all but the end of a question: "Spider has." against "How many legs
# do the spider have?", a run of 8 of 9 letters; what a hum made matched by 5-7 of 10)
LONG_WORDS, CONTAINED = 5, 0.8
# a hum however Whisper spells it ("Mmm.", "Mmhmm", "Hm."): a backchannel, never a word
HUM = re.compile(r"h?m+(h?m+)*|m+h+m*")
# what Whisper makes of a cough, a breath or a scrap of echo (it was trained on subtitled videos):
# heard over a reply, these are no words (a self-interruption live gave "Thanks for watching.")
NOISE_TRANSCRIPTS = frozenset(
    {
        "you",
        "thank you",
        "thanks",
        "thank you for watching",
        "thanks for watching",
        "bye",
        "thank you so much",
    }
)
# a yes or no over a reply while the agent awaits one for a proposed action (agent/actions.py) answers
# it: not a backchannel, nor the prompt's own "Say yes" coming back, nor a short word that stops
ANSWERS = ("yes", "no")
ANSWER_WINDOW_S = 30.0  # the agent takes a "yes" this long after its proposal (agent/actions.py)


@dataclass(frozen=True)
class Verdict:
    """``answer`` the question ``text``; ``ignore`` the turn (not addressed); ``stop`` talking;
    ``say`` the fixed reply ``text`` (tagged ``source``) without asking the LLM; ``resume``: the turn
    was a false interruption (the paused reply goes on), nothing to answer. ``reply``: what to say
    after a ``stop`` (a short confirmation, or nothing)."""

    action: Literal["answer", "ignore", "stop", "say", "resume"]
    text: str = ""
    source: str = "action"
    reply: str = ""


class InterruptionRules:
    """What speech over a reply is, from its transcript: ``stop``, ``resume`` or ``answer``.

    ``played``: the reply's words heard lately (a transcript made only of them is the assistant's own
    voice coming back); ``can_resume``: False when the reply was already cut (no pause to undo), so
    what would resume it stops it instead (the reply is gone; answering a cough would be worse).
    ``note`` the agent's ``Action`` events: while an action is proposed, a yes or no answers it."""

    def __init__(self, cfg: BargeInConfig | None = None) -> None:
        self.cfg = cfg or BargeInConfig()
        self.stop_phrases = {normalise(p) for p in self.cfg.stop_phrases} - {""}
        self.backchannel_words = {w for p in self.cfg.backchannels for w in normalise(p).split()}
        self._proposed_at: float | None = None  # an action awaits yes or no since (monotonic)

    def note(self, action: Action) -> None:
        """An action was proposed (the agent awaits yes or no) or settled (done, declined, ...)."""
        self._proposed_at = action.t if action.outcome == "proposed" else None

    def awaits_answer(self) -> bool:
        at = self._proposed_at
        return at is not None and time.monotonic() - at <= ANSWER_WINDOW_S

    def decide(self, text: str, played: str = "", can_resume: bool = True) -> tuple[Outcome, str]:
        """The outcome and why (for reports)."""
        norm = normalise(text)
        words = norm.split()
        resume: Outcome = "resume" if can_resume else "stop"
        if not words:
            return resume, "no words"
        if norm in NOISE_TRANSCRIPTS:
            return resume, "noise"
        intent = default_matcher().match(text)
        if intent is not None and intent.name in ANSWERS and self.awaits_answer():
            # "Yes." said before "... Say yes to confirm." has ended answers it, though "yes" is a
            # backchannel and a word of the prompt, and "no" a stop phrase (live, the prompt's own
            # voice is judged echo from the mic's levels before a transcript: stages/echo_turns.py)
            return "answer", "answers the proposal"
        if (intent is not None and intent.name == "stop") or self._has_stop_phrase(words, intent is None):
            return "stop", "stop phrase"
        heard = set(normalise(played).split())
        if heard and all(w in heard for w in words):
            return resume, "echo"  # its own words came back through the loudspeaker
        backchannel = [w in self.backchannel_words or bool(HUM.fullmatch(w)) for w in words]
        if all(backchannel):
            return resume, "backchannel"
        if any(backchannel) and all(b or w in heard for b, w in zip(backchannel, words, strict=True)):
            # an "mm-hmm" with a scrap of the reply's own echo before the pause ("the capital mmm")
            return resume, "backchannel"
        if len(words) <= self.cfg.stop_short_words and intent is None:
            # a word or two over the reply that is no command: a lone "Stop." said over the
            # assistant's voice is often misheard ("Up.", "Time."); the user wanted it to stop
            return "stop", "short"
        return "answer", "question"

    @staticmethod
    def heard_alike(text: str, other: str) -> bool:
        """Whether two recognitions of the same speech agree (over a loudspeaker: the canceller's
        output and the mic minus the fitted echo). A user's words come out alike in both; what the
        recogniser makes of a hum or a cough under each signal's own echo residue does not: live, an
        "mm-hmm" came out "in a moment." and "I love that.", "in a month." and "and then mom." (letters
        alike: 0.33, no common run over 3), where questions came out alike to 0.79-0.96, or shared
        a run of 10 or more letters ("I'll just as a spider have.": the canceller lost the onset)."""
        words = [normalise(t).split() for t in (text, other)]
        a, b = ("".join(w) for w in words)
        if not (a and b):
            return False
        match = SequenceMatcher(None, a, b, autojunk=False)
        if min(len(w) for w in words) <= SHORT_WORDS:
            if max(len(w) for w in words) >= LONG_WORDS:  # one lost most of a question the other heard
                short = min(a, b, key=len)
                run = match.find_longest_match(0, len(a), 0, len(b)).size
                return run >= ALIKE_RUN and run >= CONTAINED * len(short)
            return match.ratio() >= ALIKE_SHORT
        return match.ratio() >= ALIKE or match.find_longest_match(0, len(a), 0, len(b)).size >= ALIKE_RUN

    def _has_stop_phrase(self, words: list[str], no_intent: bool) -> bool:
        norm = " ".join(words)
        if norm in self.stop_phrases:
            return True
        if not no_intent:  # another command that names a stop word ("stop the timer")
            return False
        padded = f" {norm} "
        # "okay, stop now": a stop phrase with a word or two around it, not a sentence that has one
        return any(f" {p} " in padded and len(words) <= len(p.split()) + 2 for p in self.stop_phrases)


class Interruptions:
    """Which turns interrupted a reply, and what each turned out to be: the part of a policy that
    applies ``InterruptionRules``. Fed ``ReplyPaused``, ``Interruption``, ``BargeIn`` and ``Action``
    events (any thread); ``outcome`` for a turn that came over a reply, else None."""

    listens_to: tuple[type[Event], ...] = (ReplyPaused, Interruption, BargeIn, Action)

    def __init__(self, rules: InterruptionRules | None = None) -> None:
        self.rules = rules or InterruptionRules()
        self._lock = threading.Lock()
        self._paused: set[int] = set()  # a pause waits for this turn's transcript
        self._decided: dict[int, Outcome] = {}
        self._cut: set[int] = set()  # turns that cut a reply without a pause (barge_in.pause off)

    def on_event(self, event: Any) -> None:
        if isinstance(event, Action):
            self.rules.note(event)
            return
        with self._lock:
            if isinstance(event, ReplyPaused):
                self._paused.add(event.turn)
            elif isinstance(event, Interruption):
                outcome = {"stopped": "stop", "resumed": "resume", "echo": "resume"}.get(
                    event.outcome, "answer"
                )
                self._decided[event.turn] = outcome  # type: ignore[assignment]
                if event.outcome == "echo":  # its own voice, no reply paused: open no reply for it
                    self._paused.add(event.turn)
            elif event.interrupted is not None or event.dropped_s > 0:
                self._cut.add(event.turn)
            for marks in (self._paused, self._cut):
                marks.difference_update({t for t in marks if t < event.turn - KEEP_TURNS})
            for t in [t for t in self._decided if t < event.turn - KEEP_TURNS]:
                del self._decided[t]

    def paused(self, turn: int) -> bool:
        """Speech that paused a reply: its end opens no reply (a deadline's filler would sound after
        the paused reply, or answer the assistant's own echo); its final transcript opens one if it
        is answered."""
        with self._lock:
            return turn in self._paused

    def outcome(self, msg: Transcript, text: str | None = None) -> Outcome | None:
        with self._lock:
            decided = self._decided.get(msg.turn)
            cut = msg.turn in self._cut
        if decided is not None:
            return decided
        if cut:  # no pause to decide it: the same rules, but the reply is gone
            return self.rules.decide(msg.text if text is None else text, can_resume=False)[0]
        return None

    def verdict(self, outcome: Outcome, text: str) -> Verdict | None:
        if outcome == "stop":
            return Verdict("stop", text, reply=self.rules.cfg.stop_reply)
        if outcome == "resume":
            return Verdict("resume", text)
        return None


class TurnPolicy(Protocol):
    # the event types ``on_event`` is subscribed to; () for none
    listens_to: Sequence[type[Event]]

    def on_event(self, event: Any) -> None:
        """One of ``listens_to``, on the emitting thread: quick, and thread-safe."""

    def verdict(self, msg: Transcript) -> Verdict:
        """For every transcript, partial and speculative ones included (``msg.final`` False): an
        early ``answer`` may open the reply at the end of speech (see ``opens_early``), other early
        verdicts drop the speculation. An empty ``answer`` is skipped as "nothing recognisable"."""

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        """Whether the end of speech opens the reply (and starts its deadlines) before the final
        transcript; ``speculation_answered``: the turn's speculative transcript got ``answer``."""

    def answering(self, turn: int) -> AbstractContextManager[Any]:
        """Held while the stage answers ``turn`` (the LLM is asked and its clauses stream out)."""

    def stopped(self, turn: int) -> None:
        """After a ``stop`` verdict has cancelled the older turns, before it is reported."""

    def due(self, now: float) -> list[str]:
        """What to say unasked by ``now`` (announcements), called between messages."""


class AlwaysAddressed:
    """The conversation: every turn is for the assistant, and its end of speech opens the reply;
    speech over a reply is judged by the interruption rules."""

    listens_to: Sequence[type[Event]] = Interruptions.listens_to

    def __init__(self, rules: InterruptionRules | None = None) -> None:
        self.interruptions = Interruptions(rules)

    def on_event(self, event: Any) -> None:
        self.interruptions.on_event(event)

    def verdict(self, msg: Transcript) -> Verdict:
        outcome = self.interruptions.outcome(msg) if msg.final else None
        if outcome is not None:
            return self.interruptions.verdict(outcome, msg.text) or Verdict("answer", msg.text)
        if not msg.final and self.interruptions.paused(msg.turn):
            return Verdict("ignore", msg.text)  # no speculative reply for speech over a reply
        return Verdict("answer", msg.text)

    def opens_early(self, ended: SpeechEnded, speculation_answered: bool) -> bool:
        return not self.interruptions.paused(ended.turn)

    def answering(self, turn: int) -> AbstractContextManager[Any]:
        return nullcontext()

    def stopped(self, turn: int) -> None:
        pass

    def due(self, now: float) -> list[str]:
        return []
