"""Scripted engines for unit tests of the plumbing (the real engines have their own tests)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np

from assistant.core.messages import Message
from assistant.core.stage import Stage, StageContext, run_stage


class FakeRecognizer:
    """Returns a fixed transcript, after an optional delay."""

    def __init__(self, text: str = "what is the capital of france", delay_s: float = 0.0) -> None:
        self.text = text
        self.delay_s = delay_s
        self.calls: list[int] = []  # number of samples per call

    def transcribe(self, pcm: np.ndarray) -> str:
        self.calls.append(len(pcm))
        time.sleep(self.delay_s)
        return self.text if len(pcm) > 0 else ""

    def warm_up(self) -> None:
        pass


class FakeLlm:
    """Streams a scripted reply word by word with a scripted first-token time and speed."""

    def __init__(
        self,
        reply: str = "Paris is the capital, of course. It is lovely.",
        ttft_s: float = 0.0,
        token_s: float = 0.0,
    ) -> None:
        self.reply = reply
        self.ttft_s = ttft_s
        self.token_s = token_s
        self.prompts: list[list[dict[str, str]]] = []

    def stream(
        self, messages: list[dict[str, str]], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        self.prompts.append(messages)
        time.sleep(self.ttft_s)
        for i, word in enumerate(self.reply.split(" ")):
            if should_stop():
                return
            if i:
                time.sleep(self.token_s)
            yield word if i == 0 else " " + word

    def warm_up(self) -> None:
        pass


class FakeSynth:
    """A 440 Hz tone, 50 ms per character, at 16 kHz."""

    sample_rate = 16000

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        n = int(0.05 * len(text) * self.sample_rate)
        t = np.arange(n) / self.sample_rate
        yield (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)

    def synthesize_all(self, text: str) -> np.ndarray:
        return next(self.synthesize(text))


def fail_the_test(stage: str, exc: BaseException) -> None:
    """A stage error handler for tests that run a stage on its own thread: any failure fails the test."""
    raise AssertionError(f"{stage} failed: {exc}")


def start_stage(
    stage: Stage, ctx: StageContext
) -> tuple[queue.Queue[Message], queue.Queue[Message], threading.Thread]:
    """Run ``stage`` on its own thread as the pipeline does (inbox, outbox, thread); a failure fails the test."""
    inbox: queue.Queue[Message] = queue.Queue()
    outbox: queue.Queue[Message] = queue.Queue()
    thread = threading.Thread(target=run_stage, args=(stage, inbox, outbox, ctx, fail_the_test), daemon=True)
    thread.start()
    return inbox, outbox, thread
