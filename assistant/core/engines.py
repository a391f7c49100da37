"""What the stages and responders need of a model: the engine interfaces, and nothing that loads one.

The real engines (``assistant.engines``) and the scripted fakes in the tests both satisfy these, so a
stage never knows which it was handed. ``ANSWER_SOURCES`` lives here too: playback, the views and the
reports all need to tell the answer itself from a fallback without importing the responders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

ChatMessage = dict[str, str]

# Clause sources that are the answer itself ("action": the agent did what was asked); the others
# are fallbacks ("ack", "timeout", "error") or the agent's own announcements ("announcement").
ANSWER_SOURCES = ("llm", "fastpath", "action")


class EngineUnavailable(RuntimeError):
    """A remote engine could not serve this request (every server down, cut off or failing): the
    stage makes it a failed turn and carries on; the next request tries again."""


class Recognizer(Protocol):
    def transcribe(self, pcm: np.ndarray) -> str: ...

    def warm_up(self) -> None: ...


class Synthesizer(Protocol):
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]: ...

    def synthesize_all(self, text: str) -> np.ndarray: ...


class TextStreamer(Protocol):
    """What the responder needs of a language model (the real engine, or a scripted fake)."""

    def stream(self, messages: list[ChatMessage], should_stop: Callable[[], bool] = ...) -> Iterator[str]: ...

    def warm_up(self) -> None: ...


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
    is known (None: not yet; ``blend`` may read the text with a language model, engines/llm_turn.py).
    The VAD holds an unfinished turn open longer."""

    def complete(self, pcm: np.ndarray) -> float: ...

    def blend(self, p_audio: float | None, text: str | None) -> float: ...

    def warm_up(self) -> None: ...
