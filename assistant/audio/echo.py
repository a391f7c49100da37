"""Echo handling: the assistant must never hear itself.

- ``FarEnd`` keeps what the speaker actually played (the speaker's callback feeds it), placed on the
  monotonic clock: the reference for echo cancellation and for echo-aware gating.
- ``EchoGuard`` wraps the microphone (an audio source itself). It removes the assistant's own voice from
  the mic signal (WebRTC AEC3, ``barge_in.echo: aec``) and/or gates it (``gate``): while the speaker
  plays and for an echo tail after it, a frame reaches the VAD only when it is louder than the echo
  could be. So the VAD never hears the assistant, and only real user speech can start a turn.
  Once a turn has started, the gate stays open until it ends: the barge-in has emptied the speaker,
  so only the echo's tail is left (the canceller still removes it), and a gate that closed on the
  user's quieter syllables would cut pauses into the question that end the turn halfway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, StreamResampler, float_to_int16
from assistant.config import BargeInConfig
from assistant.core.bus import EventBus
from assistant.core.events import (
    EchoResync,
    InputLevel,
    PlaybackStarted,
    PlaybackStopped,
    SpeechEnded,
    SpeechStarted,
)
from assistant.core.messages import AudioChunk
from assistant.core.pipeline import AudioSource

log = logging.getLogger(__name__)

SILENT_RMS = 30.0  # int16 RMS under which the far end counts as silent (about -60 dBFS)
GATE_HOLD_S = 0.25  # once a frame passes the gate, keep it open this long: words have quiet parts
AEC_IDLE_S = 30.0  # keep the canceller running this long after playback: pausing it between
# replies was followed by echo getting through; idle (no reply for 30 s) it costs nothing
LEVEL_EVERY_S = 0.1
RESIDUAL_WINDOW = 250  # frames of playback (5 s) over which the canceller's residue is judged
RESIDUAL_HEADROOM_DB = 6.0  # input level events for the live view


class FarEnd:
    """What the speaker played, at 16 kHz, read by the microphone side in lock-step.

    The speaker's callback appends every block it plays (silence included); the echo guard reads as
    many samples as each microphone frame holds. Both streams run on sample clocks, so the distance
    between writer and reader stays fixed (up to slow drift) and the echo canceller sees a steady
    delay. Mapping both through callback times instead was measured to jitter by several ms and
    halve the cancellation. The reader starts ``margin_s`` behind the writer so callback jitter does
    not make it catch up; it skips ahead when more than ``max_lag_s`` behind (start-up, a stall), and
    gets silence without moving when the writer is late.
    """

    def __init__(self, seconds: float = 4.0, margin_s: float = 0.06, max_lag_s: float = 2.0) -> None:
        self._ring = np.zeros(int(seconds * PIPELINE_RATE), dtype=np.int16)
        self._written = 0  # samples appended so far
        self._read = 0  # next sample the reader gets
        self.margin = int(margin_s * PIPELINE_RATE)
        self.max_lag = int(max_lag_s * PIPELINE_RATE)
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
            if self._written - self._read > self.max_lag:  # fell behind (start-up, a stall): skip on
                self._read = self._written - n - self.margin
                self.resyncs += 1
            if self._written - self._read < n:  # the speaker is late: wait for it, never re-read
                return np.zeros(n, dtype=np.int16)
            size = len(self._ring)
            start = self._read % size
            self._read += n
            if start + n <= size:
                return self._ring[start : start + n].copy()
            return np.concatenate([self._ring[start:], self._ring[: start + n - size]])


class Canceller(Protocol):
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray: ...


def webrtc_canceller(delay_ms: int = 0) -> Canceller:
    """WebRTC's AEC3 (pywebrtc-audio): the canceller Chrome uses, with its own delay estimator."""
    from pywebrtc_audio import EchoCanceller

    return EchoCanceller(sample_rate=PIPELINE_RATE, num_channels=1, stream_delay_ms=delay_ms)


def _rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def dbfs(rms: float) -> float:
    return 20 * np.log10(max(rms, 1.0) / 32768)


class EchoGuard:
    """The microphone without the assistant's voice: an audio source wrapping an audio source.

    A wrapper rather than a stage: it runs on the source thread, before any turn exists, and every
    frame it yields goes on (gated frames become silence, so the input timeline stays whole).
    """

    def __init__(
        self,
        source: AudioSource,
        cfg: BargeInConfig,
        far: FarEnd,
        events: EventBus,
        canceller: Callable[[], Canceller] | None = None,
    ) -> None:
        self.source = source
        self.cfg = cfg
        self.far = far
        self.events = events
        self._make_canceller = canceller or (lambda: webrtc_canceller(cfg.aec_delay_ms))
        self._aec: Canceller | None = None
        self._far_levels: deque[tuple[float, float]] = deque()  # (t, rms) within the echo tail
        self._far_heard_at = -1e9  # last time the far end was not silent
        self._open_until = -1e9
        self._residuals: deque[float] = deque(maxlen=RESIDUAL_WINDOW)
        self._playing = False
        self._level_at = 0.0
        self._level_peak = 0.0
        self._gated = False
        self._user_turn = threading.Event()  # set from the VAD's thread
        events.subscribe(self._on_turn, SpeechStarted, SpeechEnded)

    def _on_turn(self, e: SpeechStarted | SpeechEnded) -> None:
        if isinstance(e, SpeechStarted):
            self._user_turn.set()
        else:
            self._user_turn.clear()

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        if self.cfg.echo == "aec" and self._aec is None:
            self._aec = self._make_canceller()
        for chunk in self.source.chunks(stop):
            yield self.process(chunk)

    def close(self) -> None:
        self.source.close()

    def process(self, msg: AudioChunk) -> AudioChunk:
        t_end = msg.t_input + msg.duration  # the mic's own timeline: steady, unlike arrival times
        resyncs = self.far.resyncs
        far = self.far.read(len(msg.pcm))  # always: the reader must keep in step
        if self.far.resyncs != resyncs:
            self.events.emit(EchoResync(-1, round(time.monotonic() - msg.t_arrival, 3)))
        echo_rms = self._echo_level(t_end, _rms(far) if far.any() else 0.0, msg.duration)
        pcm = msg.pcm
        if self._aec is not None and t_end - self._far_heard_at < AEC_IDLE_S:
            pcm = self._aec.process(pcm, far)
        gated = self._gate(pcm, echo_rms, t_end)
        self._report(t_end, msg.pcm, echo_rms > 0, gated)
        pcm = np.zeros_like(pcm) if gated else pcm
        masked = echo_rms > 0  # playing, or within the echo's tail
        return AudioChunk(msg.turn, pcm, msg.sample_rate, msg.t_input, msg.t_arrival, masked=masked)

    def _echo_level(self, t: float, far_rms: float, frame_s: float) -> float:
        """The loudest far-end level within the echo tail: what may still be ringing in the room."""
        if far_rms > SILENT_RMS:
            self._far_heard_at = t
            self._far_levels.append((t, far_rms))
        tail = self.cfg.echo_tail_ms / 1000
        while self._far_levels and self._far_levels[0][0] < t - tail - frame_s:
            self._far_levels.popleft()
        return max((level for _, level in self._far_levels), default=0.0)

    def _gate(self, pcm: np.ndarray, echo_rms: float, t: float) -> bool:
        """True when the frame must not reach the VAD (it may be the assistant's own voice)."""
        if echo_rms <= 0 or self.cfg.echo == "none":
            return False
        if not self.cfg.enabled:
            return True  # half duplex: nobody can talk over the assistant
        if self._user_turn.is_set():
            return False  # the user has the floor (see the module's note)
        level = _rms(pcm)
        margin = self.cfg.gate_margin_db if self._aec is None else self._residual_threshold(level, echo_rms)
        if level >= echo_rms * 10 ** (margin / 20):
            self._open_until = t + GATE_HOLD_S
        return t > self._open_until

    def _residual_threshold(self, level: float, echo_rms: float) -> float:
        """The aec gate's margin: ``residual_margin_db``, raised while the canceller leaves more.

        When the echo path changes (a window opened, the mic moved, the loopback switched on) AEC3
        needs a second or two of speech to re-converge; meanwhile its residue is near the echo's own
        level and would pass a fixed gate. So the gate also keeps the residue's 80th percentile over
        the last frames of playback (a user's few hundred ms of barge-in cannot move it) and
        requires RESIDUAL_HEADROOM_DB above that. Before any playback it assumes the worst (0 dB).
        """
        self._residuals.append(20 * np.log10(max(level, 1.0) / echo_rms))
        typical = float(np.percentile(self._residuals, 80)) if len(self._residuals) >= 25 else 0.0
        return max(self.cfg.residual_margin_db, typical + RESIDUAL_HEADROOM_DB)

    def _report(self, t: float, raw: np.ndarray, playing: bool, gated: bool) -> None:
        if playing != self._playing:
            self._playing = playing
            self.events.emit(PlaybackStarted(-1) if playing else PlaybackStopped(-1))
        self._level_peak = max(self._level_peak, _rms(raw))
        self._gated = self._gated or gated
        if t - self._level_at >= LEVEL_EVERY_S:
            self.events.emit(InputLevel(-1, round(float(dbfs(self._level_peak)), 1), self._gated))
            self._level_at, self._level_peak, self._gated = t, 0.0, False
