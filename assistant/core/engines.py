"""What the stages and responders need of a model: the engine interfaces, and nothing that loads one.

The real engines (``assistant.engines``) and the scripted fakes in the tests both satisfy these, so a
stage never knows which it was handed. ``ANSWER_SOURCES`` lives here too: playback, the views and the
reports all need to tell the answer itself from a fallback without importing the responders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

ChatMessage = dict[str, str]
Tool = dict[str, Any]  # one OpenAI function tool: {"type": "function", "function": {name, parameters}}

# Clause sources that are the answer itself ("action": the agent did what was asked); the others
# are fallbacks ("ack", "timeout", "error") or the agent's own announcements ("announcement").
ANSWER_SOURCES = ("llm", "fastpath", "action")


class EngineUnavailable(RuntimeError):
    """A remote engine could not serve this request (every server down, cut off or failing): the
    stage makes it a failed turn and carries on; the next request tries again."""


@runtime_checkable
class ReportsFailures(Protocol):
    """A remote engine (a pool of servers) tells the stage that called it which servers failed its
    requests on this thread since it last asked: (server, error) pairs. The stage reports them as
    events of its turn; when the request still succeeded, another server took over (a failover)."""

    def take_failures(self) -> list[tuple[str, str]]: ...


def take_failures(engine: object) -> list[tuple[str, str]]:
    """The engine's server failures since the last take (none for an in-process engine)."""
    return engine.take_failures() if isinstance(engine, ReportsFailures) else []


class Recognizer(Protocol):
    def transcribe(self, pcm: np.ndarray) -> str: ...

    def warm_up(self) -> None: ...


@runtime_checkable
class PromptableRecognizer(Protocol):
    """A recogniser that can be told what it is likely to hear (Whisper's initial prompt): over a
    reply, a few words most interruptions are ("Mm-hmm. Stop.")."""

    def transcribe_with_prompt(self, pcm: np.ndarray, prompt: str) -> str: ...


@dataclass(frozen=True)
class Heard:
    """A transcript, and how sure the recogniser was of its last word (None: not measured). tiny.en
    often closes the first half of a sentence at a pause with a word that was not said ("Set a
    timer for it.", the last word at 0.3-0.4 where a question's real last word is ~0.99), so the
    end-of-turn judgement may doubt it (engines/llm_turn.py)."""

    text: str
    last_word_p: float | None = None


@runtime_checkable
class ScoredRecognizer(Protocol):
    """A recogniser that also says how sure it was of the last word (``Heard``)."""

    def hear(self, pcm: np.ndarray, prompt: str = "") -> Heard: ...


class RecognitionStream(Protocol):
    """One turn's audio, given to a remote recogniser as it is spoken (see StreamingRecognizer)."""

    def feed(self, pcm: np.ndarray, sendable: int) -> None: ...

    def drop(self, samples: int) -> None: ...

    def transcribe(self, pcm: np.ndarray) -> str: ...

    def close(self) -> None: ...


@runtime_checkable
class StreamingRecognizer(Protocol):
    """A recogniser on a server: a turn's audio can travel while it is spoken (``open_stream``),
    so that a pass at the end of speech sends only the last moments. In-process engines have no
    such thing: they read the audio where it lies."""

    def open_stream(self) -> RecognitionStream: ...


class Synthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]: ...

    def synthesize_all(self, text: str) -> np.ndarray: ...


class TextStreamer(Protocol):
    """What the responder needs of a language model (the real engine, or a scripted fake)."""

    def stream(self, messages: list[ChatMessage], should_stop: Callable[[], bool] = ...) -> Iterator[str]: ...

    def warm_up(self) -> None: ...


@runtime_checkable
class FirstClauseAware(TextStreamer, Protocol):
    """A language model its reply's producer tells when the first clause is out, on the producer's
    thread, before it asks for the next piece: it may wait there (stages/hold.py: until that
    clause's sound has started, so that synthesising it has the cores)."""

    def after_first_clause(self, should_stop: Callable[[], bool]) -> None: ...


@dataclass(frozen=True)
class ToolCall:
    """A function the model asked to call: its name and its arguments exactly as it wrote them (JSON
    text, unchecked: whoever offered the tool validates them like any other untrusted input)."""

    name: str
    arguments: str
    id: str = ""


@runtime_checkable
class ToolStreamer(TextStreamer, Protocol):
    """A language model that can be offered ``tools``: the reply's text increments, then the calls
    it made (whole: after the stream ended). A model or server that cannot take tools just talks."""

    def stream_tools(
        self, messages: list[ChatMessage], tools: Sequence[Tool], should_stop: Callable[[], bool] = ...
    ) -> Iterator[str | ToolCall]: ...


class WakeWordDetector(Protocol):
    """A streaming wake-word model: 16 kHz int16 audio in, in any block size; ``feed`` says whether
    the word ended inside that block. One instance per audio stream (it keeps the stream's state)."""

    name: str  # the model's id ("hey_jarvis")
    phrase: str  # what the user says ("Hey Jarvis")

    def feed(self, pcm: np.ndarray) -> bool: ...

    def reset(self) -> None: ...


class TurnDetector(Protocol):
    """At a pause: the probability (0..1) that the speaker has finished the turn, from its audio
    (16 kHz mono, ending at the pause), then ``blend``ed with the speculative transcript when it
    is known (None: not yet; ``blend`` may read the text with a language model, engines/llm_turn.py)
    and how sure the recogniser was of its last word (``last_word_p``, None: not known). The VAD
    holds an unfinished turn open longer."""

    def complete(self, pcm: np.ndarray) -> float: ...

    def blend(self, p_audio: float | None, text: str | None, last_word_p: float | None = None) -> float: ...

    def warm_up(self) -> None: ...
