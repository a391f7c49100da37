"""The engines every connection shares: loaded once, warmed once, serialised where they must be.

- Whisper (CTranslate2): one transcription at a time. On a small CPU concurrent passes only slow
  each other down, and the model's memory is not duplicated.
- The LLM: ``LlmEngine`` already runs one generation at a time under its own lock (its prefix cache
  belongs to whoever holds it), and only ever reuses an identical token prefix, so one client's
  history cannot leak into another's reply.
- piper phonemises through espeak-ng, a C library with global state: one sentence at a time. The
  lock is taken per sentence, so two clients' replies interleave at sentence boundaries instead of
  one waiting for the other's whole reply.

Each per-request pipeline calls ``warm_up`` and synthesises its fallback phrases in ``setup``; here
that happens once for the server, so a new request costs no model time before its own work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np

from assistant.build import Engines
from assistant.core.engines import ChatMessage, Recognizer, Synthesizer, TextStreamer

MEMO_LIMIT = 32  # phrases synthesised whole (start-up and fallback phrases): a handful in practice


class SharedRecognizer:
    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._warm = False

    def transcribe(self, pcm: np.ndarray) -> str:
        with self._lock:
            return self.inner.transcribe(pcm)

    def warm_up(self) -> None:
        with self._lock:
            if not self._warm:
                self.inner.warm_up()
                self._warm = True


class SharedLlm:
    def __init__(self, inner: TextStreamer) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._warm = False

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        return self.inner.stream(messages, should_stop)

    def warm_up(self) -> None:
        with self._lock:
            if not self._warm:
                self.inner.warm_up()
                self._warm = True


class SharedSynth:
    def __init__(self, inner: Synthesizer) -> None:
        self.inner = inner
        self.sample_rate = inner.sample_rate
        self._lock = threading.Lock()
        self._memo: dict[str, np.ndarray] = {}

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        pieces = self.inner.synthesize(text)
        while True:
            with self._lock:
                piece = next(pieces, None)
            if piece is None:
                return
            yield piece

    def synthesize_all(self, text: str) -> np.ndarray:
        audio = self._memo.get(text)
        if audio is None:
            pieces = list(self.synthesize(text))
            audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
            if len(self._memo) < MEMO_LIMIT:
                self._memo[text] = audio
        return audio


def shared(engines: Engines) -> Engines:
    """The same engines, safe to use from every connection's pipelines at once."""
    assert engines.recognizer and engines.llm and engines.synth, "load every engine first"
    return Engines(
        SharedRecognizer(engines.recognizer),
        SharedLlm(engines.llm),
        SharedSynth(engines.synth),
        engines.turn,  # an onnxruntime session may be run from several threads at once
    )


def warm(engines: Engines, phrases: tuple[str, ...]) -> None:
    """Pay every first-call cost now, before the first client."""
    assert engines.recognizer and engines.llm and engines.synth
    engines.recognizer.warm_up()
    engines.llm.warm_up()
    for text in ("Ready.", *phrases):  # what TtsStage.setup synthesises
        engines.synth.synthesize_all(text)
