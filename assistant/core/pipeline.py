"""Wires a source and stages with queues, one thread each, and owns start-up and shutdown.

The data path is ordered (queues); control is not: a stop flag every loop polls, and the turn scope
for cancelling replies. Shutdown is bounded: every thread polls the stop flag at least every
``POLL_S`` and the joins are timed, so Ctrl-C ends the run within a second even if a model call is
in flight (threads are daemons; a stuck native call cannot hold the process).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from assistant.core import allocator
from assistant.core.bus import EventBus
from assistant.core.events import Event, ReplyAudioDone, ReplySkipped
from assistant.core.messages import AudioChunk, End, Message
from assistant.core.stage import MAX_QUEUED, Stage, StageContext, put, run_stage
from assistant.core.turn import TurnScope

log = logging.getLogger(__name__)

JOIN_BUDGET_S = 0.8  # total time shutdown may spend joining threads


class AudioSource(Protocol):
    """Produces mono int16 chunks at the pipeline rate, stamped with their arrival time."""

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]: ...

    def close(self) -> None: ...


class PipelineError(RuntimeError):
    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"stage '{stage}' failed: {cause}")
        self.stage = stage
        self.cause = cause


class Pipeline:
    def __init__(
        self,
        source: AudioSource,
        stages: Sequence[Stage],
        events: EventBus | None = None,
        scope: TurnScope | None = None,
    ) -> None:
        self.source = source
        self.stages = list(stages)
        self.events = events or EventBus()
        self.scope = scope or TurnScope()
        self.stop_flag = threading.Event()
        self.ctx = StageContext(self.scope, self.events, self.stop_flag)
        # Bounded: a stage that cannot keep up makes the one before it wait, back to the source (a
        # microphone's callback never waits: it has a queue of its own, audio/microphone.py).
        self._queues: list[queue.Queue[Message]] = [queue.Queue(MAX_QUEUED) for _ in self.stages]
        self._threads: list[threading.Thread] = []
        self._errors: queue.Queue[PipelineError] = queue.Queue()  # at most one per stage: it then ends
        self._done = threading.Event()
        # A turn's end leaves the models' scratch memory freed but kept by malloc, which grows the
        # process turn after turn (bench/soak.py: -170 MB after 20 turns): hand it back while
        # nobody waits for an answer. A few ms (allocator.trim); once more when the pipeline stops.
        self.events.subscribe(self._trim, ReplyAudioDone, ReplySkipped)

    # -- lifecycle -------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load every stage's engine, in parallel: start-up costs the slowest model, not the sum."""
        with ThreadPoolExecutor(max_workers=len(self.stages) or 1) as pool:
            futures = {stage.name: pool.submit(stage.setup, self.ctx) for stage in self.stages}
            for name, future in futures.items():
                try:
                    future.result()
                except Exception as exc:
                    raise PipelineError(name, exc) from exc

    def start(self) -> None:
        for i, stage in enumerate(self.stages):
            outbox = self._queues[i + 1] if i + 1 < len(self.stages) else None
            self._spawn(stage.name, run_stage, stage, self._queues[i], outbox, self.ctx, self._on_error)
        self._spawn("source", self._feed)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the input is fully processed (True) or ``timeout`` passes (False).

        Raises PipelineError if a stage failed. Waits in short slices so Ctrl-C is seen promptly.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        last = self._threads[len(self.stages) - 1] if self.stages else None
        while True:
            self._raise_if_failed()
            if last is None or not last.is_alive():
                self._raise_if_failed()
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            last.join(0.05)

    def stop(self) -> None:
        """Ask every thread to stop and join them within a bounded time."""
        self.stop_flag.set()
        end = time.monotonic() + JOIN_BUDGET_S
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
            if thread.is_alive():
                log.warning("thread %s did not stop in time; abandoning it", thread.name)
        try:
            self.source.close()
        except Exception:
            log.exception("closing the audio source failed")
        if self.events.unsubscribe(self._trim):  # once, though stop may be called again
            allocator.trim()

    def run(self) -> None:
        """setup + start + wait + stop; always stops, also on error or Ctrl-C."""
        try:
            self.setup()
            self.start()
            self.wait()
        finally:
            self.stop()

    # -- internals -------------------------------------------------------------------------------
    def _trim(self, _event: Event) -> None:
        allocator.trim()

    def _spawn(self, name: str, target, *args) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _feed(self) -> None:
        inbox = self._queues[0]
        try:
            for chunk in self.source.chunks(self.stop_flag):
                if self.stop_flag.is_set() or not put(inbox, chunk, self.stop_flag):
                    return
            put(inbox, End(), self.stop_flag)
        except BaseException as exc:  # noqa: BLE001 - reported, not swallowed
            self._on_error("source", exc)

    def _on_error(self, stage: str, exc: BaseException) -> None:
        self._errors.put(PipelineError(stage, exc))
        self.stop_flag.set()

    def _raise_if_failed(self) -> None:
        try:
            error = self._errors.get_nowait()
        except queue.Empty:
            return
        raise error from error.cause
