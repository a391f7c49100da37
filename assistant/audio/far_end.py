"""What the speaker played, kept for the microphone side: the echo guard's reference (see echo.py)."""

from __future__ import annotations

import threading

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16

OVER_READS = 25  # reads (0.5 s) the far end tolerates its reader lagging past the margin


class FarEnd:
    """What the speaker played, at 16 kHz, read by the microphone side in lock-step.

    The speaker's callback appends every block it plays (silence included); the echo guard reads as
    many samples as each microphone frame holds. Both streams run on sample clocks, so the distance
    between writer and reader stays fixed (up to slow drift) and the echo canceller sees a steady
    delay. Mapping both through callback times instead was measured to jitter by several ms and
    halve the cancellation. The reader starts ``margin_s`` behind the writer so callback jitter does
    not make it catch up; it skips ahead when more than ``max_lag_s`` behind (start-up, a stall), and
    gets silence without moving when the writer is late (``late``: the echo guard then gates).
    Each such wait leaves the reader a frame further behind, so the echo's delay to its reference
    shrinks: live, under load, it walked from 80 ms to 35 ms and below in a session until the echo
    came before its reference, and neither the canceller nor barge-in's echo check could match it.
    So a reader found more than 3 frames past its margin for OVER_READS reads in a row steps back
    up to the margin (a resync: the canceller re-converges on the small change).
    """

    def __init__(self, seconds: float = 4.0, margin_s: float = 0.06, max_lag_s: float = 2.0) -> None:
        self._ring = np.zeros(int(seconds * PIPELINE_RATE), dtype=np.int16)
        self._written = 0  # samples appended so far
        self._read = 0  # next sample the reader gets
        self.margin = int(margin_s * PIPELINE_RATE)
        self.max_lag = int(max_lag_s * PIPELINE_RATE)
        self._over = 0  # reads in a row that found the reader too far behind
        self.late = 0  # samples of the last read the writer had not delivered yet
        self._resamplers: dict[int, StreamResampler] = {}
        self._silent_blocks = 0
        self.resyncs = 0  # times the reader had to skip ahead (reported: the canceller re-converges)
        self._frac = 0.0  # fraction of a sample carried between skipped blocks
        self._lock = threading.Lock()

    def push(self, block: np.ndarray, rate: int) -> None:
        """Called from the speaker's callback with the float block it just handed to the device."""
        resampler = self._resamplers.get(rate)
        if resampler is None:
            resampler = self._resamplers[rate] = StreamResampler(rate, PIPELINE_RATE)
        silent = not block.any()
        if silent and self._silent_blocks >= 10:  # 10 blocks of silence flushed its filter
            # idle: the resampler holds only silence, so skip it (most of the idle CPU) and count
            # the samples it would have made; resumed later, its output lines up as if never paused
            self._frac += len(block) * PIPELINE_RATE / rate
            pcm = np.zeros(int(self._frac), dtype=np.int16)
            self._frac -= len(pcm)
        else:
            pcm = float_to_int16(resampler.process(block))
        self._silent_blocks = self._silent_blocks + 1 if silent else 0
        pcm = pcm[-len(self._ring) :]
        with self._lock:
            size = len(self._ring)
            start = self._written % size
            first = min(len(pcm), size - start)
            self._ring[start : start + first] = pcm[:first]
            self._ring[: len(pcm) - first] = pcm[first:]
            self._written += len(pcm)

    def read(self, n: int) -> np.ndarray:
        """The next ``n`` played samples (zeros while the speaker delivers nothing)."""
        with self._lock:
            behind = self._written - self._read
            # behind by more than the margin and some jitter for a while: the writer was late
            # and the reader waited; step back up to the margin (see the class comment)
            self._over = self._over + 1 if behind > self.margin + 3 * n else 0
            if behind > self.max_lag or self._over >= OVER_READS:
                self._read = self._written - n - self.margin
                self._over = 0
                self.resyncs += 1
                behind = n + self.margin
            self.late = n if behind < n else 0
            if behind < n:  # the speaker is late: wait for it, never re-read
                return np.zeros(n, dtype=np.int16)
            out = self._take(self._read, n)
            self._read += n
            return out

    def _take(self, start: int, n: int) -> np.ndarray:
        size = len(self._ring)
        start %= size
        if start + n <= size:
            return self._ring[start : start + n].copy()
        return np.concatenate([self._ring[start:], self._ring[: start + n - size]])
