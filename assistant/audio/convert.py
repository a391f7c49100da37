"""Sample-format and rate conversion, in one place.

Everything inside the pipeline is mono int16 at 16 kHz (what webrtcvad and Whisper want);
everything at the edges (files, microphones, speakers, voices) is converted here.
"""

from __future__ import annotations

import numpy as np
import soxr

PIPELINE_RATE = 16000
SILENCE_LEVEL = 300  # int16 amplitude (about -40 dBFS) below which synthesised audio counts as silent


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,) by averaging channels."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a whole mono signal (float32 or int16, same dtype out)."""
    if rate_in == rate_out or len(samples) == 0:
        return samples
    return soxr.resample(samples, rate_in, rate_out)


class StreamResampler:
    """Resamples a stream block by block without clicks at block edges (soxr keeps state)."""

    def __init__(self, rate_in: int, rate_out: int, channels: int = 1) -> None:
        self.passthrough = rate_in == rate_out
        self._stream = (
            None if self.passthrough else soxr.ResampleStream(rate_in, rate_out, channels, "float32")
        )

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        return self._stream.resample_chunk(block.astype(np.float32, copy=False), last=last)


def frames_of(samples: np.ndarray, frame_len: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Split into whole frames; return (frames, remainder)."""
    n = len(samples) // frame_len
    frames = [samples[i * frame_len : (i + 1) * frame_len] for i in range(n)]
    return frames, samples[n * frame_len :]


def trim_silence(
    pcm: np.ndarray, rate: int, lead_keep_s: float, trail_keep_s: float | None = None
) -> np.ndarray:
    """Cut leading (and, if ``trail_keep_s`` is given, trailing) near-silence from int16 audio,
    keeping a little so the sound does not start or stop with a click."""
    loud = np.nonzero(np.abs(pcm.astype(np.int32)) > SILENCE_LEVEL)[0]
    if len(loud) == 0:
        return pcm
    start = max(0, loud[0] - int(lead_keep_s * rate))
    end = len(pcm) if trail_keep_s is None else min(len(pcm), loud[-1] + 1 + int(trail_keep_s * rate))
    return pcm[start:end]
