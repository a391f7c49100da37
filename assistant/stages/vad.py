"""Voice activity detection with webrtcvad: raw frames in, turn-tagged speech out.

States: idle -> (onset: a run of voiced frames) -> candidate -> (enough voice) -> speaking
-> (silence for the hangover) -> idle. A candidate that never gathers ``min_speech_ms`` of voice
(a cough, a click) is dropped without a trace. While speaking, a short silence emits
``SpeechPaused`` so the recogniser can start speculatively; the turn ends only after the hangover,
or at ``max_utterance_s`` (music, a TV, noise or a client streaming without end): then it is ended
and answered like any other, and what follows is a new turn, so no turn holds unbounded audio.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator

import numpy as np
import webrtcvad

from assistant.audio.convert import PIPELINE_RATE
from assistant.config import VadConfig
from assistant.core.events import UtteranceLimit
from assistant.core.messages import (
    AudioChunk,
    End,
    Message,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from assistant.core.stage import Stage

log = logging.getLogger(__name__)

PAUSE_MS = 100  # silence after which speculative recognition starts


class VadStage(Stage):
    name = "vad"
    drops_stale = False  # raw audio has no turn yet

    def __init__(self, cfg: VadConfig, frame_ms: int = 20) -> None:
        self.cfg = cfg
        self.frame_ms = frame_ms
        self.frame_len = PIPELINE_RATE * frame_ms // 1000
        self._vad = webrtcvad.Vad(cfg.aggressiveness)
        self._turn = 0
        self._state = "idle"
        self._pending = np.zeros(0, dtype=np.int16)
        self._pre_roll: deque[AudioChunk] = deque(maxlen=max(1, cfg.pre_roll_ms // frame_ms))
        self._candidate: list[AudioChunk] = []
        self._run_ms = 0  # current run of voiced frames
        self._voiced_ms = 0  # voice gathered in this candidate/turn
        self._silence_ms = 0
        self._last_voiced: AudioChunk | None = None
        self._paused = False
        self._turn_start = 0.0  # input time of the turn's first frame

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, End):
            if self._state == "speaking":
                yield from self._end()
            return
        if not isinstance(msg, AudioChunk):
            return
        for frame in self._frames(msg):
            yield from self._step(frame, self._vad.is_speech(frame.pcm.tobytes(), PIPELINE_RATE))

    def _frames(self, chunk: AudioChunk) -> Iterator[AudioChunk]:
        """Re-block the input into webrtcvad-sized frames (sources may deliver any size)."""
        if len(chunk.pcm) == self.frame_len and len(self._pending) == 0:
            yield chunk
            return
        start = chunk.t_input - len(self._pending) / PIPELINE_RATE
        self._pending = np.concatenate([self._pending, chunk.pcm])
        offset = 0
        while len(self._pending) - offset >= self.frame_len:
            pcm = self._pending[offset : offset + self.frame_len]
            yield AudioChunk(-1, pcm, PIPELINE_RATE, start + offset / PIPELINE_RATE, chunk.t_arrival)
            offset += self.frame_len
        self._pending = self._pending[offset:]

    def _step(self, frame: AudioChunk, voiced: bool) -> Iterator[Message]:
        self._run_ms = self._run_ms + self.frame_ms if voiced else 0
        if self._state == "idle":
            self._pre_roll.append(frame)
            if voiced and self._run_ms >= self.cfg.onset_ms:
                self._state = "candidate"
                self._candidate = list(self._pre_roll)
                self._voiced_ms, self._silence_ms = self._run_ms, 0
                self._last_voiced = frame
            return
        resumed = voiced and self._paused
        if voiced:
            self._voiced_ms += self.frame_ms
            self._silence_ms = 0
            self._last_voiced = frame
            self._paused = False
        else:
            self._silence_ms += self.frame_ms
        if self._state == "candidate":
            self._candidate.append(frame)
            if self._silence_ms >= self.cfg.hangover_ms:
                self._reset()  # too short to be speech
            elif self._voiced_ms >= max(self.cfg.min_speech_ms, self.cfg.onset_ms):
                yield from self._start()
            return
        if resumed:
            yield SpeechResumed(self._turn, frame.t_input, frame.t_arrival)
        yield AudioChunk(self._turn, frame.pcm, PIPELINE_RATE, frame.t_input, frame.t_arrival, voiced)
        if not voiced and not self._paused and self._silence_ms >= PAUSE_MS:
            self._paused = True
            yield SpeechPaused(self._turn, frame.t_input + self.frame_ms / 1000, frame.t_arrival)
        if self._silence_ms >= self.cfg.hangover_ms:
            yield from self._end()
        elif frame.t_input + self.frame_ms / 1000 - self._turn_start >= self.cfg.max_utterance_s:
            self.ctx.events.emit(UtteranceLimit(self._turn, self.cfg.max_utterance_s))
            self._last_voiced = frame  # the turn ends here, whether this frame was voiced or not
            yield from self._end()

    def _start(self) -> Iterator[Message]:
        self._turn += 1
        self._state = "speaking"
        self._paused = False
        self._turn_start = self._candidate[0].t_input
        started = SpeechStarted(self._turn, self._candidate[0].t_input)
        self.ctx.events.emit(started)  # the barge-in acts now, not when the queue gets to it
        yield started
        for frame in self._candidate:
            yield AudioChunk(self._turn, frame.pcm, PIPELINE_RATE, frame.t_input, frame.t_arrival, True)
        self._candidate = []

    def _end(self) -> Iterator[Message]:
        last = self._last_voiced
        assert last is not None
        ended = SpeechEnded(
            self._turn, last.t_input + self.frame_ms / 1000, t_decided=time.monotonic(), t=last.t_arrival
        )
        self.ctx.events.emit(ended)  # the responder opens the reply now (see stages/responder.py)
        yield ended
        self._reset()

    def _reset(self) -> None:
        self._state = "idle"
        self._candidate = []
        self._pre_roll.clear()
        self._voiced_ms = self._silence_ms = self._run_ms = 0
        self._last_voiced = None
        self._paused = False
