"""Small typed messages that travel between stages.

Every message carries the user turn it belongs to, so a cancelled turn's messages can be dropped
wherever they stand (see turn.py). Times are on one clock, ``time.monotonic()``; ``t_input`` values
are positions on the input recording's own timeline, in seconds. ``SpeechStarted`` and ``SpeechEnded``
are defined with the events (events.py): the VAD emits and queues the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the VAD's turn boundaries are events too (emitted for the barge-in and the responder, then queued)
from assistant.core.events import SpeechEnded, SpeechStarted

__all__ = [
    "AudioChunk",
    "End",
    "Message",
    "ReplyText",
    "SpeechAudio",
    "SpeechEnded",
    "SpeechPaused",
    "SpeechResumed",
    "SpeechStarted",
    "Transcript",
]


@dataclass(frozen=True)
class AudioChunk:
    """A block of mono 16-bit PCM at the pipeline rate.

    ``t_input`` is where the block starts on the input timeline; ``t_arrival`` is when it became
    available to the pipeline (for a real-time source: when its last sample was "heard").
    """

    turn: int
    pcm: np.ndarray = field(repr=False)  # int16, mono
    sample_rate: int
    t_input: float
    t_arrival: float
    voiced: bool = False  # set by the VAD on the frames it forwards
    # set by the echo guard (assistant.audio.echo) on a frame that passed its gate while the reply
    # played, whose last 60 ms of raw mic correlate >= 0.7 (squared) with the played audio: the
    # VAD takes it for silence and the recogniser hears silence (a user 10 dB under the echo reads
    # ~0.9: barge-in's own echo check already takes such speech for the echo). Live dumps replayed:
    # what AEC3 let by read 0.8-1.0, and tiny.en made words of it ("That's it.", "Enter.") that
    # stopped or answered a paused reply; zeroed, all such turns came out empty
    echo: bool = False
    # set by the echo guard while the reply plays over a loudspeaker: the raw mic minus a least-squares
    # fit of the played audio (assistant.audio.echo_fit), which keeps a user's words the canceller
    # suppresses at double talk; the recogniser makes a second transcript of it (``near_text``)
    near: np.ndarray | None = field(default=None, repr=False)
    # set by the echo guard while the assistant's voice is (or may still be) in the room: the
    # canceller suppresses the user too then, so a silence in such a frame may not be the user's
    masked: bool = False

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class SpeechPaused:
    """The user stopped voicing, but the hangover has not yet decided the turn is over.

    Stages may start speculative work on the audio so far; it is dropped if speech resumes.
    ``awaited``: the VAD's end-of-turn judgement waits for this pause's speculative transcript.
    """

    turn: int
    t_input: float
    t_arrival: float
    awaited: bool = False


@dataclass(frozen=True)
class SpeechResumed:
    """Voice again after a ``SpeechPaused``: speculative work on the earlier audio is void."""

    turn: int
    t_input: float
    t_arrival: float


@dataclass(frozen=True)
class Transcript:
    turn: int
    text: str
    final: bool
    ended: SpeechEnded | None  # the turn's end of speech (None for partials)
    t: float  # when this transcript was produced
    speculative: bool = False  # made at a pause: the final one, unless the user goes on
    failed: bool = False  # recognition failed (a speech server down): the reply is an apology


@dataclass(frozen=True)
class ReplyText:
    """One speakable clause of the reply; ``final`` marks the turn's last one (text may be empty)."""

    turn: int
    text: str
    final: bool
    ended: SpeechEnded
    t: float
    source: str = "llm"  # "llm", or the fallback kind that produced it
    continues: bool = False  # mid-sentence: the next clause goes on with it (said without a final fall)


@dataclass(frozen=True)
class SpeechAudio:
    """Synthesised speech for one clause (mono int16 at ``sample_rate``)."""

    turn: int
    pcm: np.ndarray = field(repr=False)
    sample_rate: int
    text: str
    final: bool
    ended: SpeechEnded
    t: float
    source: str = "llm"  # as in ReplyText

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class End:
    """The input is exhausted: each stage flushes, forwards this and exits."""

    turn: int = -1


Message = (
    AudioChunk
    | SpeechStarted
    | SpeechPaused
    | SpeechResumed
    | SpeechEnded
    | Transcript
    | ReplyText
    | SpeechAudio
    | End
)
