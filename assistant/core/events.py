"""Events: what stages tell the outside world (UI, reports, logs) without knowing who listens.

Stages never print; they ``emit``. Each kind of event is a frozen dataclass with the turn it belongs
to and ``t``, when it happened (``time.monotonic()``); ``kind`` is its stable snake_case name (from
the class name), which the JSONL log and reports use. Listeners subscribe to the types they want
and run synchronously on the emitting thread, so they must be quick (append to a list, write a
line). A listener that raises is logged and detached: a view or a log never ends the session.

The VAD's ``SpeechStarted`` and ``SpeechEnded`` are events and messages at once: the same object is
emitted (for the barge-in and the responder, which must not wait behind a queue) and queued.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

log = logging.getLogger(__name__)

_OMIT_IF_NONE = "omit_if_none"


def _optional(default: Any = None) -> Any:
    """A field left out of the log record while None (it was an optional key of the old dict events)."""
    return field(default=default, metadata={_OMIT_IF_NONE: True})


@dataclass(frozen=True)
class Event:
    turn: int
    t: float = field(default_factory=time.monotonic, kw_only=True)
    kind: ClassVar[str] = "event"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" not in cls.__dict__:
            cls.kind = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()

    def record(self) -> dict[str, Any]:
        """As the JSONL log writes it: t, kind, turn, then the event's own fields."""
        data = dataclasses.asdict(self)
        out: dict[str, Any] = {"t": self.t, "kind": self.kind, "turn": self.turn}
        for f in dataclasses.fields(self):
            if f.name not in out and not (data[f.name] is None and f.metadata.get(_OMIT_IF_NONE)):
                out[f.name] = data[f.name]
        return out


# -- hearing (the VAD and the recogniser) ------------------------------------------------------------


@dataclass(frozen=True)
class SpeechStarted(Event):
    """A user turn starts; ``t_input`` is the onset of speech on the input timeline."""

    t_input: float


@dataclass(frozen=True)
class WakeWordDetected(Event):
    """The wake-word model heard its word (``t_input`` on the input timeline: where the word ended)."""

    name: str
    t_input: float


@dataclass(frozen=True)
class SpeechEnded(Event):
    """End of a user turn. ``t_input`` and ``t`` (its arrival) are those of the *last voiced frame*,
    not of the moment the VAD decided (``t_decided``): every latency is measured from here, so
    hangover time counts honestly."""

    t_input: float
    t_decided: float

    @property
    def t_arrival(self) -> float:
        return self.t


@dataclass(frozen=True)
class UtteranceLimit(Event):
    """The turn reached ``vad.max_utterance_s`` of speech and was ended there (it is answered)."""

    limit_s: float


@dataclass(frozen=True)
class TranscriptCommitted(Event):
    """A long turn's oldest ``seconds`` of audio were transcribed once and kept as text only, so no
    recognition pass (nor the shared Whisper lock) covers more than one bounded window."""

    seconds: float


@dataclass(frozen=True)
class EndOfTurn(Event):
    """The VAD's judgement at a pause: is the turn finished (``complete``: it ends now) or held open?
    ``probability`` is the audio model's (None when the transcript decided), ``score`` the blend."""

    probability: float | None
    text: str | None
    score: float
    complete: bool
    infer_ms: float | None
    silence_ms: int


@dataclass(frozen=True)
class TranscriptPartial(Event):
    text: str


@dataclass(frozen=True)
class TranscriptSpeculative(Event):
    text: str
    until: float | None = _optional()  # the pause it was made at (input timeline): the VAD waits on it


@dataclass(frozen=True)
class TranscriptFinal(Event):
    text: str
    speculative: bool = False  # the speculation made at the last pause was reused


# -- replying (the responder stage) --------------------------------------------------------------------


@dataclass(frozen=True)
class LlmFirstToken(Event):
    pass


@dataclass(frozen=True)
class ReplyClause(Event):
    text: str
    source: str = "llm"


@dataclass(frozen=True)
class ReplyDone(Event):
    text: str


@dataclass(frozen=True)
class ReplySkipped(Event):
    reason: str


@dataclass(frozen=True)
class Announcement(Event):
    text: str


@dataclass(frozen=True)
class WakeIgnored(Event):
    text: str


@dataclass(frozen=True)
class Stopped(Event):
    pass


@dataclass(frozen=True)
class Action(Event):
    action: str
    outcome: str
    slots: dict[str, Any] = field(default_factory=dict)
    reason: str | None = _optional()


# -- speaking (playback, the speaker, the barge-in) ----------------------------------------------------


@dataclass(frozen=True)
class FirstAudio(Event):
    at_input_s: float
    source: str = "llm"


@dataclass(frozen=True)
class AnswerAudio(Event):
    pass


@dataclass(frozen=True)
class AudioOut(Event):
    text: str
    duration_s: float
    source: str = "llm"


@dataclass(frozen=True)
class ReplyAudioDone(Event):
    """Every clause of the turn's reply is on its way to the speaker."""


@dataclass(frozen=True)
class BargeIn(Event):
    interrupted: int | None  # the turn whose reply was cut, if any
    dropped_s: float = 0.0  # audio silenced in the speaker's buffer
    spoken: str = ""  # what of the cut reply was heard
    reaction_ms: float = 0.0


@dataclass(frozen=True)
class ReplyPaused(Event):
    """Speech over a reply paused it (``turn`` is the speech); the decision waits for its words."""

    interrupted: int | None
    reaction_ms: float = 0.0  # from the VAD hearing speech to the speaker pausing


@dataclass(frozen=True)
class Interruption(Event):
    """What a pause turned out to be: ``stopped`` (the reply ends), ``resumed`` (it goes on where it
    paused: no words, a backchannel, its own echo) or ``answered`` (cancelled; the new question is
    answered)."""

    interrupted: int | None
    outcome: str  # "stopped", "resumed", "answered"; "echo": a turn (no pause) that was its own voice
    pause_ms: float  # how long the speaker was paused (to the decision)
    text: str = ""  # the transcript that decided it
    reason: str = ""  # "stop phrase", "backchannel", "no words", "echo", "timeout", ...


@dataclass(frozen=True)
class PlaybackStarted(Event):
    pass


@dataclass(frozen=True)
class PlaybackStopped(Event):
    pass


# -- the devices and the session -----------------------------------------------------------------------


@dataclass(frozen=True)
class InputLevel(Event):
    dbfs: float
    gated: bool = False


@dataclass(frozen=True)
class EchoResync(Event):
    backlog_s: float


@dataclass(frozen=True)
class Device(Event):
    device: str  # "microphone" or "speaker"
    state: str
    detail: str | None = _optional()


@dataclass(frozen=True)
class Ready(Event):
    echo: str
    barge_in: bool = True


Listener = Callable[[Any], None]  # takes the event types it subscribed to
E = TypeVar("E", bound=Event)


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, tuple[type[Event], ...]]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener, *types: type[Event]) -> None:
        """Call ``listener`` with every event of one of ``types`` (no types: every event)."""
        with self._lock:
            self._listeners.append((listener, types or (Event,)))

    def unsubscribe(self, listener: Listener) -> bool:
        """Detach ``listener``; False if it was not subscribed (any more)."""
        with self._lock:
            kept = [(fn, types) for fn, types in self._listeners if fn != listener]  # == : bound methods
            removed, self._listeners = len(kept) < len(self._listeners), kept
        return removed

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener, types in listeners:
            if not isinstance(event, types):
                continue
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a failing view or log must not end the session
                if self.unsubscribe(listener):  # once, though several threads may have seen it fail
                    log.error(
                        "event listener %r failed on %s and was detached: %r", listener, event.kind, exc
                    )
                    log.debug("the listener's traceback", exc_info=True)


class EventLog:
    """A listener that keeps every event, for reports and tests."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def of(self, kind: type[E], turn: int | None = None) -> list[E]:
        """The events of one type (and turn), in emission order."""
        return [e for e in self.events if isinstance(e, kind) and (turn is None or e.turn == turn)]

    def first(self, kind: type[E], turn: int) -> E | None:
        return next(iter(self.of(kind, turn)), None)
