"""Where the assistant's voice goes: a WAV on the input's timeline, a speaker, or a list (tests).

``PlaybackStage`` is the last stage. It models one loudspeaker: a clause starts playing when it
arrives, or when the previous clause has finished, whichever is later. That start time is the turn's
``first_audio``; the same placement puts the audio on the input's timeline in REPLY.wav.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from assistant.audio.convert import StreamResampler, float_to_int16, int16_to_float, resample
from assistant.messages import End, Message, SpeechAudio
from assistant.stage import Stage

log = logging.getLogger(__name__)


class AudioSink(Protocol):
    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None: ...

    def finish(self) -> None: ...


class PlaybackStage(Stage):
    name = "playback"

    def __init__(self, sinks: Sequence[AudioSink]) -> None:
        self.sinks = list(sinks)
        self._busy_until = 0.0  # wall time at which the speaker falls silent
        self._started: set[int] = set()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, End):
            for sink in self.sinks:
                sink.finish()
            return
        if not isinstance(msg, SpeechAudio) or len(msg.pcm) == 0:
            return
        start = max(time.monotonic(), self._busy_until)
        self._busy_until = start + msg.duration
        at_input = msg.ended.t_input + (start - msg.ended.t_arrival)
        if msg.turn not in self._started:
            self._started.add(msg.turn)
            self.ctx.events.emit("first_audio", msg.turn, t=start, at_input_s=at_input)
        self.ctx.events.emit("audio_out", msg.turn, t=start, text=msg.text, duration_s=msg.duration)
        for sink in self.sinks:
            sink.write(msg.pcm, msg.sample_rate, at_input)
        yield from ()


class TimelineWavSink:
    """Writes the reply audio placed on the input timeline, silence in between, incrementally."""

    def __init__(self, path: Path, min_duration_s: float = 0.0, default_rate: int = 22050) -> None:
        self.path = Path(path)
        self.min_duration_s = min_duration_s
        self.rate = default_rate
        self._file: sf.SoundFile | None = None
        self._written = 0  # samples

    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        if self._file is None:
            self.rate = sample_rate
            self._open()
        if sample_rate != self.rate:
            pcm = float_to_int16(resample(int16_to_float(pcm), sample_rate, self.rate))
        start = max(self._written, int(round(at_input_s * self.rate)))
        self._pad_to(start)
        self._file.write(pcm)  # type: ignore[union-attr]
        self._written += len(pcm)

    def finish(self) -> None:
        if self._file is None:
            self._open()
        self._pad_to(int(self.min_duration_s * self.rate))
        self._file.close()  # type: ignore[union-attr]
        log.info("wrote %s (%.1f s)", self.path, self._written / self.rate)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(str(self.path), "w", samplerate=self.rate, channels=1, subtype="PCM_16")

    def _pad_to(self, sample: int) -> None:
        while self._written < sample:
            n = min(sample - self._written, self.rate * 10)
            self._file.write(np.zeros(n, dtype=np.int16))  # type: ignore[union-attr]
            self._written += n


class ListSink:
    """Keeps what was played, for tests."""

    def __init__(self) -> None:
        self.items: list[tuple[np.ndarray, int, float]] = []
        self.finished = threading.Event()

    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        self.items.append((pcm, sample_rate, at_input_s))

    def finish(self) -> None:
        self.finished.set()


class SpeakerSink:
    """Plays through a sounddevice output stream; ``finish`` waits (bounded) for the buffer to drain."""

    def __init__(self, device: str | int | None = None, block_s: float = 0.02) -> None:
        import sounddevice as sd

        info = sd.query_devices(device, "output")
        self.rate = int(info["default_samplerate"])
        self._buffer: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._resamplers: dict[int, StreamResampler] = {}
        self._stream = sd.OutputStream(
            samplerate=self.rate,
            channels=1,
            dtype="float32",
            device=device,
            blocksize=int(self.rate * block_s),
            callback=self._callback,
        )
        self._stream.start()
        log.info("playing through %s at %d Hz", info["name"], self.rate)

    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        resampler = self._resamplers.setdefault(sample_rate, StreamResampler(sample_rate, self.rate))
        audio = resampler.process(int16_to_float(pcm))
        with self._lock:
            self._buffer.append(audio.astype(np.float32))

    def clear(self) -> None:
        """Drop everything not yet played (barge-in)."""
        with self._lock:
            self._buffer.clear()

    def pending_s(self) -> float:
        with self._lock:
            return sum(len(b) for b in self._buffer) / self.rate

    def finish(self, max_wait_s: float = 60.0) -> None:
        end = time.monotonic() + max_wait_s
        while self.pending_s() > 0 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.1)  # the last block is still in the device
        self._stream.stop()
        self._stream.close()

    def _callback(self, out: np.ndarray, frames: int, _time, _status) -> None:  # type: ignore[no-untyped-def]
        filled = 0
        with self._lock:
            while filled < frames and self._buffer:
                head = self._buffer[0]
                n = min(frames - filled, len(head))
                out[filled : filled + n, 0] = head[:n]
                filled += n
                if n == len(head):
                    self._buffer.popleft()
                else:
                    self._buffer[0] = head[n:]
        out[filled:, 0] = 0.0
