"""Voice activity detection with webrtcvad: raw frames in, turn-tagged speech out.

States: idle -> (onset: a run of voiced frames) -> candidate -> (enough voice) -> speaking
-> (silence for the hangover) -> idle. A candidate that never gathers ``min_speech_ms`` of voice
(a cough, a click) is dropped without a trace. While speaking, a short silence emits
``SpeechPaused`` so the recogniser can start speculatively; the turn ends only after the hangover,
or at ``max_utterance_s`` (music, a TV, noise or a client streaming without end): then it is ended
and answered like any other, and what follows is a new turn, so no turn holds unbounded audio.

With an end-of-turn engine (``vad.end_of_turn``), the hangover follows what was said: after
``min_silence_ms`` of a pause the turn is judged from the recogniser's speculative transcript of
the pause (an event) and, when that is not there, from the engine's hearing of the audio. A finished
turn ends at once, an unfinished one ("What is the capital of ...") is held open up to
``max_silence_ms``. The transcript is judged the moment it comes, on the recogniser's thread
before the recogniser passes it on (so a language-model judge runs before the speculative reply's
prefill competes with it for the cores, and the verdict is there when ``min_silence_ms`` is
reached). The judgement waits for that verdict on this thread (the frames that queue meanwhile are
caught up at once, so a user who goes on is still heard) but no longer than the longest pause could
last: an overloaded machine ends turns late rather than cutting sentences. Waiting, rather than
polling frame by frame, also judges a file fed faster than real time the same way every run.

A silence in a frame the echo guard marks ``masked`` (the assistant was playing, or its echo may
still ring) does not count toward a pause once the user has the floor: the echo canceller then
suppresses the user's voice as well, and such a gap, just after a barge-in, cut "How many legs
does a spider have?" into a finished-sounding "Help." and a second turn. The barge-in empties the
speaker, so this lasts the echo's tail at most. A candidate still needs real voice to start a turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import webrtcvad

from assistant.audio.convert import PIPELINE_RATE
from assistant.config import VadConfig
from assistant.core.engines import TurnDetector
from assistant.core.events import EndOfTurn, TranscriptSpeculative, UtteranceLimit
from assistant.core.messages import (
    AudioChunk,
    End,
    Message,
    SpeechEnded,
    SpeechPaused,
    SpeechResumed,
    SpeechStarted,
)
from assistant.core.stage import Stage, StageContext

log = logging.getLogger(__name__)

TURN_WINDOW_MS = 8000  # the audio an end-of-turn engine hears (Smart Turn's input is the last 8 s)


class VadStage(Stage):
    name = "vad"
    drops_stale = False  # raw audio has no turn yet

    def __init__(
        self,
        cfg: VadConfig,
        frame_ms: int = 20,
        engine: TurnDetector | None = None,
        await_transcript: bool = False,
    ) -> None:
        """``await_transcript``: the recogniser speculates at pauses (asr.speculative), so the
        end-of-turn judgement waits for its transcript."""
        self.cfg = cfg
        self.engine = engine
        self.await_transcript = await_transcript
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
        self._heard: deque[np.ndarray] = deque(maxlen=TURN_WINDOW_MS // frame_ms)  # the turn so far
        self._limit_ms = self._unjudged_ms()  # silence that ends this pause's turn
        self._judged = False
        self._pause_t = -1.0  # input time of this pause's SpeechPaused
        # (pause, its speculative transcript, the engine's verdict on it, ms the verdict took, the
        # recogniser's probability of its last word)
        self._spec: tuple[float, str, float, float, float | None] | None = None
        self._spec_lock = threading.Lock()  # set from the recogniser's thread
        self._spec_ready = threading.Condition(self._spec_lock)

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        if self.engine is not None:
            ctx.events.subscribe(self._on_speculative, TranscriptSpeculative)

    def _on_speculative(self, event: TranscriptSpeculative) -> None:
        """Judge the pause's transcript now, on the recogniser's thread (see the module's note)."""
        until = event.until
        if event.turn != self._turn or until is None or until != self._pause_t or self.engine is None:
            return  # a pause the speaker has already talked past: no verdict needed
        t0 = time.monotonic()
        score = self.engine.blend(None, event.text, event.last_word_p)
        judge_ms = round((time.monotonic() - t0) * 1000, 1)
        with self._spec_ready:
            self._spec = (until, event.text, score, judge_ms, event.last_word_p)
            self._spec_ready.notify_all()

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, End):
            if self._state == "speaking":
                yield from self._end()
            return
        if not isinstance(msg, AudioChunk):
            return
        for frame in self._frames(msg):
            # a frame the echo guard marked as the played audio is no speech (live over a loudspeaker,
            # such frames made turns of their own that swallowed a user's cough or "Stop.")
            voiced = not frame.echo and self._vad.is_speech(frame.pcm.tobytes(), PIPELINE_RATE)
            yield from self._step(frame, voiced)

    def _frames(self, chunk: AudioChunk) -> Iterator[AudioChunk]:
        """Re-block the input into webrtcvad-sized frames (sources may deliver any size; a re-blocked
        frame loses the echo guard's ``near``: the microphone's frames are the VAD's size)."""
        if len(chunk.pcm) == self.frame_len and len(self._pending) == 0:
            yield chunk
            return
        start = chunk.t_input - len(self._pending) / PIPELINE_RATE
        self._pending = np.concatenate([self._pending, chunk.pcm])
        offset = 0
        while len(self._pending) - offset >= self.frame_len:
            pcm = self._pending[offset : offset + self.frame_len]
            t = start + offset / PIPELINE_RATE
            yield AudioChunk(-1, pcm, PIPELINE_RATE, t, chunk.t_arrival, echo=chunk.echo, masked=chunk.masked)
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
            self._judged, self._limit_ms = False, self._unjudged_ms()
        elif not (frame.masked and self._state == "speaking"):
            self._silence_ms += self.frame_ms
        # else: a silence heard through the assistant's own voice is no pause (the module's note)
        if self._state == "candidate":
            self._candidate.append(frame)
            if self._silence_ms >= self.cfg.hangover_ms:
                self._reset()  # too short to be speech
            elif self._voiced_ms >= max(self.cfg.min_speech_ms, self.cfg.onset_ms):
                yield from self._start()
            return
        if resumed:
            yield SpeechResumed(self._turn, frame.t_input, frame.t_arrival)
        self._heard.append(frame.pcm)
        yield replace(frame, turn=self._turn, voiced=voiced)  # (keeps the echo guard's mark)
        if not voiced and not self._paused and self._silence_ms >= self.cfg.pause_ms:
            self._paused = True
            self._pause_t = frame.t_input + self.frame_ms / 1000
            awaited = self.engine is not None and self.await_transcript
            yield SpeechPaused(self._turn, self._pause_t, frame.t_arrival, awaited)
        if self.engine is not None and not self._judged and self._silence_ms >= self.cfg.min_silence_ms:
            self._judge(self.engine)
        if self._silence_ms >= self._limit_ms:
            yield from self._end()
        elif frame.t_input + self.frame_ms / 1000 - self._turn_start >= self.cfg.max_utterance_s:
            self.ctx.events.emit(UtteranceLimit(self._turn, self.cfg.max_utterance_s))
            self._last_voiced = frame  # the turn ends here, whether this frame was voiced or not
            yield from self._end()

    def _judge(self, engine: TurnDetector) -> None:
        """Once per pause: has the speaker finished? Sets the silence that ends this turn."""
        self._judged = True
        spec = self._transcript() if self.await_transcript else None
        text, p_audio, last_word_p = None, None, None
        if spec is not None:
            text, score, infer_ms, last_word_p = spec
        else:
            t0 = time.monotonic()
            p_audio = round(engine.complete(np.concatenate(self._heard)), 3)
            infer_ms = round((time.monotonic() - t0) * 1000, 1)
            score = engine.blend(p_audio, None)
        done = score >= self.cfg.end_of_turn_threshold
        self._limit_ms = self._silence_ms if done else self.cfg.max_silence_ms
        self.ctx.events.emit(
            EndOfTurn(
                self._turn, p_audio, text, round(score, 3), done, infer_ms, self._silence_ms, last_word_p
            )
        )

    def _transcript(self) -> tuple[str, float, float, float | None] | None:
        """This pause's speculative transcript, the verdict on it, the ms it took and its last
        word's probability, waited for as long as the pause could still last."""
        wait_s = max(0, self.cfg.max_silence_ms - self._silence_ms) / 1000
        with self._spec_ready:
            self._spec_ready.wait_for(
                lambda: self._spec is not None and self._spec[0] == self._pause_t, wait_s
            )
            return self._spec[1:] if self._spec is not None and self._spec[0] == self._pause_t else None

    def _start(self) -> Iterator[Message]:
        self._turn += 1
        self._state = "speaking"
        self._paused = False
        self._turn_start = self._candidate[0].t_input
        started = SpeechStarted(self._turn, self._candidate[0].t_input)
        self.ctx.events.emit(started)  # the barge-in acts now, not when the queue gets to it
        yield started
        for frame in self._candidate:
            self._heard.append(frame.pcm)
            yield replace(frame, turn=self._turn, voiced=True)
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
        self._heard.clear()
        self._judged, self._limit_ms = False, self._unjudged_ms()

    def _unjudged_ms(self) -> int:
        """Until the engine has heard this pause the turn stays open (up to max_silence_ms)."""
        return self.cfg.hangover_ms if self.engine is None else self.cfg.max_silence_ms
