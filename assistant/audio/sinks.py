"""Where the assistant's voice goes: a WAV on the input's timeline, a speaker, or a list (tests).

The playback stage (``assistant.stages.playback``) places each clause in time and writes it to these.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from assistant.audio.convert import StreamResampler, float_to_int16, int16_to_float, resample

log = logging.getLogger(__name__)


class AudioSink(Protocol):
    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None: ...

    def finish(self) -> None: ...


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
    """Plays through a sounddevice output stream; ``finish`` waits (bounded) for the buffer to drain.

    For live use: ``pause`` holds what is not yet played and ``resume`` plays it on from there (speech
    over the reply, until its words are known); ``clear`` drops it (barge-in); ``on_played`` receives every
    block as it goes to the device, silence included (the echo canceller's reference);
    ``reopen_if_lost`` brings the stream back after the device went away.
    """

    def __init__(
        self,
        device: str | int | None = None,
        block_s: float = 0.02,
        on_played: Callable[[np.ndarray, int], None] | None = None,
        latency: str | float = "high",
    ) -> None:
        self.device = device
        self.block_s = block_s
        self.on_played = on_played
        self.latency = latency  # "low" for live use: what is in the device cannot be taken back
        # audio not yet played: replies come one turn at a time, and barge-in clears it
        self._buffer: deque[np.ndarray] = deque()
        self._paused = False  # the device plays silence; the buffer waits
        self._lock = threading.Lock()
        self._resamplers: dict[int, StreamResampler] = {}
        self._stream = self._open()

    def _open(self):  # type: ignore[no-untyped-def]
        import sounddevice as sd

        from assistant.audio.devices import explain

        try:
            info = sd.query_devices(self.device, "output")
            self.rate = int(info["default_samplerate"])
            self._resamplers.clear()  # a reopened device may run at another rate
            stream = sd.OutputStream(
                samplerate=self.rate,
                channels=1,
                dtype="float32",
                device=self.device,
                blocksize=int(self.rate * self.block_s),
                latency=self.latency,
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:
            raise explain(exc, "output", self.device) from exc
        log.info("playing through %s at %d Hz", info["name"], self.rate)
        return stream

    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        resampler = self._resamplers.setdefault(sample_rate, StreamResampler(sample_rate, self.rate))
        audio = resampler.process(int16_to_float(pcm))
        with self._lock:
            self._buffer.append(audio.astype(np.float32))

    def clear(self) -> float:
        """Drop everything not yet played (barge-in); returns the seconds dropped. Unpauses."""
        with self._lock:
            dropped = sum(len(b) for b in self._buffer) / self.rate
            self._buffer.clear()
            self._paused = False
        return dropped

    def pause(self) -> float:
        """Hold the buffer from the next block on (what is in the device still plays: ``latency``);
        returns the seconds held."""
        with self._lock:
            self._paused = True
            return sum(len(b) for b in self._buffer) / self.rate

    def resume(self) -> None:
        with self._lock:
            self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    def pending_s(self) -> float:
        with self._lock:
            return sum(len(b) for b in self._buffer) / self.rate

    def healthy(self) -> bool:
        return self._stream is not None and self._stream.active

    def reopen_if_lost(self) -> bool:
        """Reopen a stream that stopped (device gone); True when the speaker is usable."""
        if self.healthy():
            return True
        self.close()
        try:
            self._stream = self._open()
        except Exception as exc:
            log.debug("speaker still unavailable: %s", exc)
            return False
        return True

    def finish(self, max_wait_s: float = 60.0) -> None:
        end = time.monotonic() + max_wait_s
        while self.pending_s() > 0 and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(0.1)  # the last block is still in the device
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        """Stop at once (Ctrl-C, a lost device): abort does not wait for the device buffer."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception:
                log.debug("closing the speaker failed", exc_info=True)

    def _callback(self, out: np.ndarray, frames: int, _time, _status) -> None:  # type: ignore[no-untyped-def]
        filled = 0
        with self._lock:
            while filled < frames and self._buffer and not self._paused:
                head = self._buffer[0]
                n = min(frames - filled, len(head))
                out[filled : filled + n, 0] = head[:n]
                filled += n
                if n == len(head):
                    self._buffer.popleft()
                else:
                    self._buffer[0] = head[n:]
        out[filled:, 0] = 0.0
        if self.on_played is not None:
            self.on_played(out[:, 0], self.rate)
