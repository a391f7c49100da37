"""Where the network meets the pipeline's threads.

A connection is served by asyncio; its requests run on pipeline threads. ``Feed`` carries what the
client sent into a pipeline (it is the pipeline's source, like a microphone or a WAV file), and
``Outbox`` carries Wyoming events from any pipeline thread back to the connection, in order, through
the event loop (``call_soon_threadsafe`` keeps the order of the calls).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
from wyoming.event import Event, Eventable

from assistant.audio.convert import PIPELINE_RATE
from assistant.core.messages import AudioChunk, Message
from assistant.wyoming.wire import ProtocolError

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often the source thread looks at the stop flag


class Feed:
    """A pipeline source fed from the connection: messages in, in order, until ``finish``."""

    def __init__(self) -> None:
        # bounded by what the client may send: AudioFeed's backlog limit, wyoming.max_text_chars
        self._queue: queue.Queue[Message | None] = queue.Queue()
        self.finished = threading.Event()

    def put(self, msg: Message) -> None:
        if not self.finished.is_set():
            self._queue.put(msg)

    def finish(self) -> None:
        """No more input (audio-stop, synthesize-stop, or the request is over): the pipeline drains."""
        if not self.finished.is_set():
            self.finished.set()
            self._queue.put(None)

    def chunks(self, stop: threading.Event) -> Iterator[Message]:
        while not stop.is_set():
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if item is None:
                return
            yield from self._taken(item)

    def _taken(self, item: Message) -> Iterator[Message]:
        yield item

    def close(self) -> None:
        self.finish()


class AudioFeed(Feed):
    """Audio from the client as the pipeline's ``AudioChunk`` stream, on its own input timeline.

    Bounded twice: ``max_audio_s`` caps one request's recording (how long a transcription runs; the
    recogniser keeps at most one window of it),
    and ``max_backlog_s`` caps audio received but not yet taken by the pipeline, so a client sending
    faster than the pipeline can follow gets an error instead of making the server buffer it.
    """

    def __init__(self, max_audio_s: float | None, max_backlog_s: float = 30.0) -> None:
        super().__init__()
        self.max_samples = None if max_audio_s is None else int(max_audio_s * PIPELINE_RATE)
        self.max_backlog = int(max_backlog_s * PIPELINE_RATE)
        self.samples = 0  # received
        self.on_audio: Callable[[np.ndarray, float], None] | None = None  # (pcm, arrival): echo.py
        self._backlog = 0  # received, not yet taken
        self._lock = threading.Lock()

    def put_audio(self, pcm: np.ndarray) -> None:
        if len(pcm) == 0 or self.finished.is_set():
            return
        with self._lock:
            if self.max_samples is not None and self.samples + len(pcm) > self.max_samples:
                raise ProtocolError(
                    f"audio stream longer than this server's limit of {self.max_samples / PIPELINE_RATE:.0f} s",
                    "audio-too-long",
                )
            if self._backlog + len(pcm) > self.max_backlog:
                raise ProtocolError("audio arrives faster than it can be processed", "audio-backlog")
            t_input = self.samples / PIPELINE_RATE
            self.samples += len(pcm)
            self._backlog += len(pcm)
        now = time.monotonic()
        if self.on_audio is not None:
            self.on_audio(pcm, now)
        self.put(AudioChunk(-1, pcm, PIPELINE_RATE, t_input, now))

    def _taken(self, item: Message) -> Iterator[Message]:
        if isinstance(item, AudioChunk):
            with self._lock:
                self._backlog -= len(item.pcm)
        yield item


class Outbox:
    """Events for one client, from any thread, in order; the connection's writer task sends them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # bounded by backpressure: the server stops reading requests past MAX_PENDING_EVENTS (server.py)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._closed = False

    def put(self, event: Event | Eventable) -> None:
        if self._closed:
            return
        item = event.event() if isinstance(event, Eventable) else event
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the server is gone, and so is the client
            self._closed = True

    def close(self) -> None:
        """After what is queued, the writer stops."""
        if not self._closed:
            self.put(Event("__close__"))
            self._closed = True

    def pending(self) -> int:
        """Events queued but not yet written (the client is slow to read, or not reading)."""
        return self._queue.qsize()

    async def get(self) -> Event | None:
        item = await self._queue.get()
        return None if item is None or item.type == "__close__" else item
