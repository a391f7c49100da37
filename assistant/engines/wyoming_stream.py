"""A turn's audio streamed to a Wyoming recognition server while it is spoken.

A Wyoming transcription is ``transcribe``, ``audio-start``, audio chunks, ``audio-stop``; the server
answers with the transcript (wyoming-faster-whisper transcribes only then: its chunks go to a WAV
file as they come, so what streaming saves is the transfer, not the recognition). So a turn keeps one
connection open and sends its audio as it arrives; a recognition pass (at the first pause, at the
end of speech) then sends only the tail it lacks, and ``audio-stop``, and reads the transcript.

A connection serves one pass (the server ends the request at ``audio-stop``): the next audio of the
turn opens another, which gets the turn's audio so far at once, while the user is still speaking.
Audio is sent only up to where a pass could end (the last voiced frame plus the pause the passes
add, see AsrStage): sent audio cannot be taken back, and a pass that covers less than was sent cannot
use the connection. A pass that cannot use it, or whose connection fails, is sent whole, as a
request of its own, to whichever server the pool picks (so a server lost mid-turn fails over).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event

from assistant.audio.convert import PIPELINE_RATE
from assistant.engines.wyoming_pool import Connection, Server, ServerError, ServerPool

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 8000  # 0.5 s of 16 kHz audio per audio-chunk event: few events, no server limit hit
FORMAT = {"rate": PIPELINE_RATE, "width": 2, "channels": 1}


def audio_events(pcm: np.ndarray) -> list[Event]:
    audio = np.ascontiguousarray(pcm, dtype="<i2")
    return [
        AudioChunk(audio=audio[i : i + CHUNK_SAMPLES].tobytes(), **FORMAT).event()
        for i in range(0, len(audio), CHUNK_SAMPLES)
    ]


def request_start(language: str | None) -> list[Event]:
    return [Transcribe(language=language).event(), AudioStart(**FORMAT).event()]


def read_transcript(conn: Connection) -> str:
    while True:  # (streaming servers send transcript-start/-chunk first; the transcript ends it)
        event = conn.read()
        if Transcript.is_type(event.type):
            return Transcript.from_event(event).text.strip()


@dataclass
class StreamStats:
    """How the passes of an engine's streams went (for the benchmark and the tests)."""

    streamed: int = 0  # served on the connection the audio was streamed on: only the tail sent
    whole: int = 0  # sent whole (no usable connection)
    tail_samples: int = 0  # what streamed passes still had to send (tails and digital silence)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, streamed: bool, tail: int = 0) -> None:
        with self._lock:  # (several pipelines may share one engine)
            self.streamed += streamed
            self.whole += not streamed
            self.tail_samples += tail


class WyomingStream:
    """One turn's audio for one pool of recognition servers (used from the ASR stage's thread)."""

    def __init__(self, pool: ServerPool, language: str | None, stats: StreamStats) -> None:
        self.pool = pool
        self.language = language
        self.stats = stats
        self._audio: list[np.ndarray] = []  # the turn's audio not yet committed to text
        self._samples = 0
        self._sendable = 0  # samples a pass may end at, at the earliest: sent as soon as known
        self._open: tuple[Server, Connection] | None = None
        self._sent = 0  # samples sent on the open connection
        self._closed = False

    def feed(self, pcm: np.ndarray, sendable: int) -> None:
        """The turn's next audio; the server may have it up to ``sendable`` samples (from the start
        of the audio not yet dropped)."""
        self._audio.append(pcm)
        self._samples += len(pcm)
        self._sendable = min(self._samples, max(self._sendable, sendable))
        self._send()

    def drop(self, samples: int) -> None:
        """The oldest ``samples`` are transcribed into text: no pass hears them again."""
        audio = np.concatenate(self._audio)[samples:] if self._audio else np.zeros(0, np.int16)
        self._audio, self._samples = [audio], len(audio)
        self._sendable = max(0, self._sendable - samples)
        self._abandon()  # (it carries the dropped audio)

    def transcribe(self, pcm: np.ndarray) -> str:
        """What ``Recognizer.transcribe(pcm)`` says, where ``pcm`` is the start of the turn's audio
        (then any digital silence): only what the server lacks travels now."""
        if self._open is not None:
            server, conn = self._open
            sent = self._sent
            if sent <= len(pcm) and np.array_equal(pcm[:sent], self._slice(0, sent)):
                self._open = None
                try:
                    conn.send(*audio_events(pcm[sent:]), AudioStop().event())
                    text = read_transcript(conn)
                except (OSError, ServerError, ValueError) as exc:
                    self.pool.release(server, conn, exc)  # lost mid-turn: the whole pass goes elsewhere
                else:
                    self.pool.release(server, conn)
                    self.pool.ok(server)
                    self.stats.add(True, len(pcm) - sent)
                    return text
        self.stats.add(False)
        return self.pool.call(lambda conn: self._whole(conn, pcm))

    def close(self) -> None:
        self._closed = True
        self._abandon()

    def _whole(self, conn: Connection, pcm: np.ndarray) -> str:
        conn.send(*request_start(self.language), *audio_events(pcm), AudioStop().event())
        return read_transcript(conn)

    def _all(self) -> np.ndarray:
        return self._slice(0, self._samples)

    def _slice(self, start: int, end: int) -> np.ndarray:
        """Samples ``start:end`` of the turn's audio, joining only the chunks they lie in (a pass is
        rare, but audio is sent every frame: joining all of it each time would cost the square)."""
        parts, pos = [], self._samples
        for chunk in reversed(self._audio):
            if pos <= start:
                break
            low = pos - len(chunk)
            parts.append(chunk[max(0, start - low) : max(0, end - low)])
            pos = low
        return np.concatenate(parts[::-1]) if parts else np.zeros(0, np.int16)

    def _send(self) -> None:
        if self._closed or self._sendable <= self._sent and self._open is not None:
            return
        events = []
        if self._open is None:  # (after a pass, or a failure: the next audio starts another)
            if self._sendable == 0:
                return
            self._open = self.pool.open()
            self._sent = 0
            if self._open is None:
                return  # no server now: the pass goes whole, and the pool says why
            events = request_start(self.language)
        server, conn = self._open
        try:
            conn.send(*events, *audio_events(self._slice(self._sent, self._sendable)))
        except (OSError, ServerError, ValueError) as exc:
            self._open = None
            self.pool.release(server, conn, exc)
            return
        self._sent = self._sendable

    def _abandon(self) -> None:
        if self._open is not None:
            server, conn = self._open
            self._open = None
            self.pool.release(server, conn)  # the server takes a closed connection as the end
