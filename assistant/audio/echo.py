"""Echo handling: the assistant must never hear itself.

- ``FarEnd`` (far_end.py) keeps what the speaker actually played (the speaker's callback feeds it), placed on the
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

from assistant.audio.convert import PIPELINE_RATE
from assistant.audio.echo_fit import WINDOW_FRAMES, best_squared_correlation, subtract_echo
from assistant.audio.far_end import FarEnd
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
RAW_FRAMES = 100  # frames (2 s) of raw microphone and played audio kept for barge-in's echo check
ECHO_LAGS = 20  # frames (0.4 s): the longest speaker-to-microphone delay the echo check looks for
RESIDUAL_WINDOW = 250  # frames of playback (5 s) over which the canceller's residue is judged
RESIDUAL_HEADROOM_DB = 6.0  # input level events for the live view
PATH_PROBE_EVERY = 10  # frames of playback between checks of whether there is an echo at all
PATH_PROBE_FRAMES = 15  # frames (0.3 s) of raw microphone each check correlates with the played audio
PATH_PROBES = 10  # the last this many checks decide (2 s of playback)
NO_PATH_LIKENESS = 0.2  # every recent check below this (or the microphone silent): no echo path
# frames that pass the gate marked ``echo`` (see AudioChunk.echo): the played audio dominates them
ECHO_FRAME_LIKENESS, ECHO_FRAME_FRAMES = 0.7, 3


class Canceller(Protocol):
    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray: ...


def webrtc_canceller(delay_ms: int = 0) -> Canceller:
    """WebRTC's AEC3 (pywebrtc-audio): the canceller Chrome uses, with its own delay estimator."""
    from pywebrtc_audio import EchoCanceller

    return EchoCanceller(sample_rate=PIPELINE_RATE, num_channels=1, stream_delay_ms=delay_ms)


def _likeness(frames: list[tuple[float, np.ndarray, np.ndarray]], i: int, j: int) -> float | None:
    """``best_squared_correlation`` of the raw microphone in ``frames[i:j]`` with the played audio
    from up to ECHO_LAGS frames earlier; None when either is silent. A far end that plays only its
    quiet stretches (a pause between clauses, the fade at a reply's end) counts as silent: against
    it the correlation measures noise, and reads low, as a user would."""
    near = np.concatenate([f[1] for f in frames[i:j]]).astype(np.float64)
    far = np.concatenate([f[2] for f in frames[max(0, i - ECHO_LAGS) : j]]).astype(np.float64)
    if rms(far) < SILENT_RMS or not near.any():
        return None
    return best_squared_correlation(near, far)


def rms(pcm: np.ndarray) -> float:
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
        # (arrival, raw microphone frame, the played audio read beside it): for echo_likeness
        self._raw: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=RAW_FRAMES)
        self._probes: deque[float] = deque(maxlen=PATH_PROBES)  # echo likeness while playing
        self._played_frames = 0
        self._user_turn = threading.Event()  # set from the VAD's thread
        events.subscribe(self._on_turn, SpeechStarted, SpeechEnded)

    def echo_likeness(self, t0: float, t1: float) -> float | None:
        """How much of the raw (uncancelled) microphone signal that arrived in ``t0..t1`` (monotonic)
        is the played audio, delayed and scaled: the best squared correlation over the echo delays
        (0..1). About 1 for the assistant's own voice through a loudspeaker, whatever the canceller
        let through; near 0 for a user alone; None without playback or frames. Barge-in asks it."""
        frames = list(self._raw)
        inside = [i for i, (t, _, _) in enumerate(frames) if t0 <= t <= t1]
        return _likeness(frames, inside[0], inside[-1] + 1) if inside else None

    def peak_level(self, t0: float, t1: float) -> float | None:
        """The loudest raw microphone frame (RMS) that arrived in ``t0..t1`` (monotonic); None if none."""
        levels = [rms(raw) for t, raw, _ in list(self._raw) if t0 <= t <= t1]
        return max(levels) if levels else None

    @property
    def echo_path(self) -> bool:
        """Whether the played audio comes back into the mic (a loudspeaker), from the raw signal over
        the last 2 s of playback (until known, assume so). Without (headphones) the canceller's output
        is not used and nothing is gated: AEC3 muted a user's onsets even then (live, a "Stop." 1 s
        into the first reply came out 30-60 dB down and was never heard)."""
        return len(self._probes) < 3 or max(self._probes) >= NO_PATH_LIKENESS

    def _probe_path(self) -> None:
        self._played_frames += 1
        if self._played_frames % PATH_PROBE_EVERY == 0 and len(self._raw) >= PATH_PROBE_FRAMES:
            frames = list(self._raw)
            was = self.echo_path
            self._probes.append(_likeness(frames, len(frames) - PATH_PROBE_FRAMES, len(frames)) or 0.0)
            if self.echo_path != was:
                log.info("echo path %s", "found: cancelling it" if self.echo_path else "none: mic used as is")

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
        far_rms = rms(far) if far.any() else 0.0
        if self.far.late and self._far_levels:  # not silence: the speaker's callback is late (a busy
            far_rms = max(far_rms, self._far_levels[-1][1])  # machine); what it plays is unknown
        echo_rms = self._echo_level(t_end, far_rms, msg.duration)
        pcm = msg.pcm
        self._raw.append((msg.t_arrival, pcm, far))
        if echo_rms > 0:
            self._probe_path()
        echo_path = self.echo_path  # (once a frame: the probe above is what may change it)
        if self._aec is not None and t_end - self._far_heard_at < AEC_IDLE_S:
            cancelled = self._aec.process(pcm, far)  # run on regardless: it stays converged
            pcm = cancelled if echo_path else pcm
        gated = self._gate(pcm, echo_rms, t_end)
        self._report(t_end, msg.pcm, echo_rms > 0, gated)
        frames = list(self._raw) if echo_rms > 0 and echo_path else []  # (~1 ms:)
        likeness = None
        if frames and not gated:
            likeness = _likeness(frames, max(0, len(frames) - ECHO_FRAME_FRAMES), len(frames))
        echo = likeness is not None and likeness >= ECHO_FRAME_LIKENESS  # (a user 10 dB under: ~0.9)
        out = np.zeros_like(pcm) if gated else pcm
        masked = echo_rms > 0 and echo_path  # playing, or within the echo's tail
        near = self._near(frames) if len(frames) > WINDOW_FRAMES + ECHO_LAGS else None
        return AudioChunk(
            msg.turn, out, msg.sample_rate, msg.t_input, msg.t_arrival, echo=echo, near=near, masked=masked
        )

    @staticmethod
    def _near(frames: list[tuple[float, np.ndarray, np.ndarray]]) -> np.ndarray:
        """The last frame's raw mic minus the played audio's fitted echo (see audio/echo_fit.py)."""
        near = np.concatenate([f[1] for f in frames[-WINDOW_FRAMES:]])
        far = np.concatenate([f[2] for f in frames[-WINDOW_FRAMES - ECHO_LAGS :]])
        return subtract_echo(near, far, len(frames[-1][1]))

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
        if not self.echo_path:
            return False  # headphones: the microphone never hears the reply
        if self._user_turn.is_set():
            return False  # the user has the floor (see the module's note)
        level = rms(pcm)
        if self._aec is None or self.far.late:  # (late: the canceller had no reference for this
            margin = self.cfg.gate_margin_db  # frame, so only a voice louder than the echo counts)
        else:
            margin = self._residual_threshold(level, echo_rms)
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
        self._level_peak = max(self._level_peak, rms(raw))
        self._gated = self._gated or gated
        if t - self._level_at >= LEVEL_EVERY_S:
            self.events.emit(InputLevel(-1, round(float(dbfs(self._level_peak)), 1), self._gated))
            self._level_at, self._level_peak, self._gated = t, 0.0, False
