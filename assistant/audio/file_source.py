"""A WAV (or any soundfile-readable) recording as an audio source.

Real-time mode feeds each frame when it would have been heard, so latencies are what a user would
experience; fast mode feeds as fast as the pipeline takes it (compute only). The file is read and
resampled block by block, so a long recording costs no more memory than a block.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16, to_mono
from assistant.core.messages import AudioChunk

log = logging.getLogger(__name__)

READ_BLOCK_S = 0.5


class AudioFileError(ValueError):
    """A recording that cannot be used; the message names the file."""


def probe(path: Path) -> sf._SoundFileInfo:
    """Check that ``path`` is a readable, non-empty recording, or raise AudioFileError."""
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable input
        reason = str(exc).split(":")[-1].strip() or type(exc).__name__
        raise AudioFileError(f"{path}: not a readable audio file ({reason})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioFileError(f"{path}: contains no audio")
    return info


class FileSource:
    def __init__(self, path: Path, realtime: bool = True, frame_ms: int = 20, tail_silence_s: float = 0.0):
        self.path = Path(path)
        self.realtime = realtime
        self.frame_len = PIPELINE_RATE * frame_ms // 1000
        # silence appended after the recording, so a turn that ends at the very end of the file is
        # closed by the VAD's hangover like any other
        self.tail_silence_s = tail_silence_s
        self.info = probe(self.path)
        self.duration_s = self.info.frames / self.info.samplerate

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        resampler = StreamResampler(self.info.samplerate, PIPELINE_RATE)
        pending = np.zeros(0, dtype=np.int16)
        position = 0  # samples at the pipeline rate already emitted
        t0 = time.monotonic()
        try:
            handle = sf.SoundFile(str(self.path))
        except Exception as exc:
            raise AudioFileError(f"{self.path}: cannot open ({exc})") from None
        with handle:
            block = max(1, int(READ_BLOCK_S * handle.samplerate))
            while not stop.is_set():
                try:
                    data = handle.read(block, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise AudioFileError(
                        f"{self.path}: unreadable after {position / PIPELINE_RATE:.1f} s ({exc})"
                    ) from None
                last = len(data) < block
                mono = resampler.process(to_mono(data), last=last)
                pending = np.concatenate([pending, float_to_int16(mono)])
                if last:
                    tail = np.zeros(int(self.tail_silence_s * PIPELINE_RATE), dtype=np.int16)
                    pending = np.concatenate([pending, tail])
                n = len(pending) // self.frame_len
                for i in range(n):
                    frame = pending[i * self.frame_len : (i + 1) * self.frame_len]
                    t_input = position / PIPELINE_RATE
                    position += self.frame_len
                    t_arrival = self._arrive(t0, position / PIPELINE_RATE, stop)
                    if stop.is_set():
                        return
                    yield AudioChunk(-1, frame, PIPELINE_RATE, t_input, t_arrival)
                pending = pending[n * self.frame_len :]
                if last:
                    return

    def _arrive(self, t0: float, t_end: float, stop: threading.Event) -> float:
        """In real-time mode wait until the frame's last sample would have been heard."""
        if self.realtime:
            delay = t0 + t_end - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        return time.monotonic()

    def close(self) -> None:
        pass
