"""Speech recognition and synthesis on Wyoming servers (``asr.backend`` / ``tts.backend: wyoming``).

Any Wyoming STT or TTS server will do: wyoming-faster-whisper (on a GPU box: ``--device cuda``),
wyoming-piper, or another assistant's ``assistant serve --wyoming``. The engines satisfy the same
Recognizer / Synthesizer interfaces as the in-process ones, so the stages above them (speculative
recognition, clause-by-clause synthesis, the caches, barge-in) work unchanged. Requests go to a
ServerPool: several servers per role, a failed one skipped until it answers again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.info import Describe
from wyoming.tts import Synthesize

from assistant.audio.convert import PIPELINE_RATE, resample, to_mono
from assistant.config import AsrConfig, TtsConfig
from assistant.core.engines import EngineUnavailable
from assistant.engines.wyoming_pool import Connection, ServerError, ServerPool
from assistant.engines.wyoming_stream import (
    StreamStats,
    WyomingStream,
    audio_events,
    read_transcript,
    request_start,
)

log = logging.getLogger(__name__)

DEFAULT_RATE = 22050  # piper's medium voices; used until a TTS server has answered once


def _describe(conn: Connection) -> None:
    conn.send(Describe().event())
    while conn.read().type != "info":
        pass


class WyomingRecognizer:
    """A Recognizer on Wyoming STT servers: one connection per transcription."""

    def __init__(self, cfg: AsrConfig) -> None:
        self.cfg = cfg
        self.pool = ServerPool("ASR", "asr.uri", cfg.uri)
        self.stream_stats = StreamStats()

    def take_failures(self) -> list[tuple[str, str]]:
        return self.pool.take_failures()

    def transcribe(self, pcm: np.ndarray) -> str:
        if len(pcm) == 0:
            return ""
        return self.pool.call(lambda conn: self._transcribe(conn, pcm))

    def _transcribe(self, conn: Connection, pcm: np.ndarray) -> str:
        conn.send(*request_start(self.cfg.language), *audio_events(pcm), AudioStop().event())
        return read_transcript(conn)

    def open_stream(self) -> WyomingStream:
        """A turn's audio, sent to a server as it is spoken (see wyoming_stream.py)."""
        return WyomingStream(self.pool, self.cfg.language, self.stream_stats)

    def warm_up(self) -> None:
        """Ask every server what it is, and have one transcribe a moment of silence (the first pass
        of a fresh server pays its set-up). A server that is down only warns: see ServerPool."""
        self.pool.check(_describe)
        try:
            self.transcribe(np.zeros(PIPELINE_RATE // 2, dtype=np.int16))
        except EngineUnavailable as exc:
            log.warning("speech recognition is not available yet: %s", exc)
        self.pool.take_failures()  # start-up's, no turn's


class WyomingSynthesizer:
    """A Synthesizer on Wyoming TTS servers: one connection per text; the audio comes back as
    int16 mono at ``sample_rate`` (learned from the first server that answers at start-up; a server
    at another rate is resampled).

    Each clause is one ``synthesize``, also on a server that offers streamed synthesis
    (``supports_synthesize_streaming``): the TTS stage sends a clause the moment the responder has
    it, so its audio already comes back before the reply is finished; a stream would only delay it,
    since wyoming-piper holds each sentence of a stream until the text after it arrives (its sentence
    detector needs the next word) and our server a comma clause until its sentence ends
    (bench/remote_speech.py measures it: README, "Speech on its own servers")."""

    def __init__(self, cfg: TtsConfig) -> None:
        self.cfg = cfg
        self.pool = ServerPool("TTS", "tts.uri", cfg.uri)
        self.sample_rate = DEFAULT_RATE
        self._rate_known = False
        try:
            self.pool.check(_describe)
            self.synthesize_all("Ready.")  # learns the rate, and warms the server
        except EngineUnavailable as exc:
            log.warning("speech synthesis is not available yet (%s); assuming %d Hz", exc, DEFAULT_RATE)
        self._rate_known = True  # fixed from now on: the TTS stage's prepared audio is at this rate

    def take_failures(self) -> list[tuple[str, str]]:
        return self.pool.take_failures()

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """The text's audio as one piece (a server streams chunks of any length, and the TTS stage
        trims the leading silence of every piece it is given: pieces must start at a sentence)."""
        yield from self.pool.stream(lambda conn: self._request(conn, text))

    def synthesize_all(self, text: str) -> np.ndarray:
        pieces = list(self.synthesize(text))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)

    def _request(self, conn: Connection, text: str) -> Iterator[np.ndarray]:
        conn.send(Synthesize(text=text).event())  # the server's own voice (tts.voice is for local)
        pieces: list[np.ndarray] = []
        rate = None
        while True:
            event = conn.read()
            if AudioStart.is_type(event.type):
                rate = int(AudioStart.from_event(event).rate)
            elif AudioChunk.is_type(event.type):
                chunk = AudioChunk.from_event(event)
                if chunk.width != 2:
                    raise ServerError(f"{conn.uri} sent {chunk.width * 8}-bit audio; 16-bit expected")
                rate = chunk.rate
                samples = np.frombuffer(chunk.audio, dtype="<i2")
                if chunk.channels > 1:
                    samples = to_mono(samples.reshape(-1, chunk.channels))
                pieces.append(samples.astype(np.int16))
            elif AudioStop.is_type(event.type):
                break
        audio = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        if rate is not None and not self._rate_known:
            self.sample_rate, self._rate_known = rate, True
        if rate is not None and rate != self.sample_rate:
            audio = resample(audio, rate, self.sample_rate)
        yield audio
