"""The client's loudspeaker in its own microphone: barge-in's ``MicLevels`` for a Wyoming conversation.

A satellite that streams its microphone through the reply, and cancels no echo, sends the reply back
to the server: in tests, the start of "A car engine ..." came back as "I core in." or "Hi, Corey." and
stopped or answered the reply it was. The server knows what it sent and when the client plays it
(``ClientSpeaker``'s schedule): microphone audio that is that audio, delayed and scaled, is the
assistant's own voice (``best_squared_correlation``, as for a local loudspeaker in
``assistant.audio.echo``), whatever the recogniser would make of it. The delay is unknown (the
client's playback and capture buffers, the network): it is searched up to ``MAX_DELAY_S``.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, resample
from assistant.audio.echo import NO_PATH_LIKENESS, rms
from assistant.audio.echo_fit import best_squared_correlation

FRAME = PIPELINE_RATE // 50  # 20 ms: the microphone is kept in frames, whatever the client's chunks
KEEP_S = 3.0  # of microphone and played audio: barge-in looks at most 0.5 s back, plus the delay
MAX_DELAY_S = 1.0  # the longest client delay (playback + capture + network) the check looks for
EARLY_S = 0.1  # ... and how much earlier than scheduled the client may play
MAX_PLAYED = 256  # blocks of played audio kept (a client's 1024-sample blocks: 12 s at 22 kHz)
PROBE_EVERY_S = 0.5  # while the reply plays: is there an echo path at all?
PROBE_S = 0.3  # of microphone each probe correlates with what was played
PROBES = 4  # the last this many probes decide (2 s of playback)


class ClientEcho:
    """Fed the client's microphone (``heard``, the session's thread) and the reply's audio as it is
    scheduled to play (``played``, the sender's thread); asked by barge-in (the VAD's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # bounded in audio, not in time: a client may send far faster than it speaks (a flood)
        self._mic: deque[tuple[float, np.ndarray]] = deque(maxlen=int(KEEP_S * 50))  # (start, 20 ms)
        self._played: deque[tuple[float, np.ndarray, int]] = deque(maxlen=MAX_PLAYED)  # (start, pcm, rate)
        self._probes: deque[float] = deque(maxlen=PROBES)
        self._next_probe = 0.0

    def heard(self, pcm: np.ndarray, t_arrival: float) -> None:
        """Microphone audio (16 kHz) that arrived at ``t_arrival``: its last sample's time."""
        start = t_arrival - len(pcm) / PIPELINE_RATE
        with self._lock:
            for i in range(max(0, len(pcm) - self._mic.maxlen * FRAME), len(pcm), FRAME):  # type: ignore[operator]
                self._mic.append((start + i / PIPELINE_RATE, pcm[i : i + FRAME].copy()))
            playing = bool(self._played) and self._played[-1][0] + _duration(self._played[-1]) > t_arrival
        if playing and t_arrival >= self._next_probe:
            self._next_probe = t_arrival + PROBE_EVERY_S
            self._probes.append(self.echo_likeness(t_arrival - PROBE_S, t_arrival) or 0.0)

    def played(self, pcm: np.ndarray, rate: int, t_start: float) -> None:
        """Reply audio the client plays from ``t_start`` on (as scheduled here)."""
        with self._lock:
            self._played.append((t_start, pcm, rate))
            while self._played and self._played[0][0] + _duration(self._played[0]) < t_start - KEEP_S:
                self._played.popleft()

    # -- MicLevels ---------------------------------------------------------------------------------
    def echo_likeness(self, t0: float, t1: float) -> float | None:
        """How much of the microphone in ``t0..t1`` is the played audio, delayed and scaled (0..1);
        None when either was silent."""
        with self._lock:
            frames = [(t, pcm) for t, pcm in self._mic if t0 <= t <= t1]
            played = list(self._played)
        if not frames:
            return None
        near = np.concatenate([pcm for _, pcm in frames]).astype(np.float64)
        start = frames[0][0]
        far = _timeline(played, start - MAX_DELAY_S, start + len(near) / PIPELINE_RATE + EARLY_S)
        if not far.any() or not near.any():
            return None
        return best_squared_correlation(near, far)

    def peak_level(self, t0: float, t1: float) -> float | None:
        with self._lock:
            levels = [rms(pcm) for t, pcm in self._mic if t0 <= t <= t1]
        return max(levels) if levels else None

    @property
    def echo_path(self) -> bool:
        """Whether the reply comes back in the microphone, from the last probes (until known, assume so)."""
        probes = list(self._probes)
        return len(probes) < 2 or max(probes) >= NO_PATH_LIKENESS


def _duration(item: tuple[float, np.ndarray, int]) -> float:
    return len(item[1]) / item[2]


def _timeline(played: list[tuple[float, np.ndarray, int]], t0: float, t1: float) -> np.ndarray:
    """What was played in ``t0..t1`` at 16 kHz, silence where nothing was."""
    out = np.zeros(max(0, int((t1 - t0) * PIPELINE_RATE)))
    for start, pcm, rate in played:
        if start >= t1 or start + len(pcm) / rate <= t0:
            continue
        audio = resample(pcm.astype(np.float64), rate, PIPELINE_RATE) if rate != PIPELINE_RATE else pcm
        at = int(round((start - t0) * PIPELINE_RATE))
        lo, hi = max(0, at), min(len(out), at + len(audio))
        if hi > lo:
            out[lo:hi] = audio[lo - at : hi - at]
    return out
