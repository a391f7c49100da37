"""Events: what stages tell the outside world (UI, reports, logs) without knowing who listens.

Stages never print; they ``emit``. Each kind of event is a frozen dataclass with the turn it belongs
to and ``t``, when it happened (``time.monotonic()``); ``kind`` is its stable snake_case name (from
the class name), which the JSONL log and reports use. Listeners subscribe to the types they want
and run synchronously on the emitting thread, so they must be quick (append to a list, write a
line). The bus that carries them is ``assistant.core.bus``.

The VAD's ``SpeechStarted`` and ``SpeechEnded`` are events and messages at once: the same object is
emitted (for the barge-in and the responder, which must not wait behind a queue) and queued.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    last_word_p: float | None = _optional()  # the recogniser's probability of the text's last word


@dataclass(frozen=True)
class TranscriptPartial(Event):
    text: str


@dataclass(frozen=True)
class TranscriptSpeculative(Event):
    text: str
    until: float | None = _optional()  # the pause it was made at (input timeline): the VAD waits on it
    last_word_p: float | None = _optional()  # the recogniser's probability of the last word


@dataclass(frozen=True)
class TranscriptFinal(Event):
    text: str
    speculative: bool = False  # the speculation made at the last pause was reused
    # speech over a reply on a loudspeaker: a second pass over the mic minus the fitted echo (see
    # AudioChunk.near), which keeps what the canceller suppressed; None for other turns
    near_text: str | None = None


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
    via: str | None = _optional()  # "llm": the model's tool call asked for it (None: the intent matcher)


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


# -- remote speech servers (asr.backend / tts.backend: wyoming) ---------------------------------------


@dataclass(frozen=True)
class SpeechFailover(Event):
    """A speech server failed this turn's request and another server of the pool took it over."""

    role: str  # "asr" or "tts"
    server: str
    error: str


@dataclass(frozen=True)
class SpeechError(Event):
    """No speech server could serve this turn's request: its recognition is lost (the turn is
    apologised for) or, for "tts", one clause of the reply is not said."""

    role: str
    error: str


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
