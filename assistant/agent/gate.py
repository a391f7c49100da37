"""The wake-word gate: the first stage of the agent's pipeline, before the VAD.

Every frame goes through the wake-word model (a few per cent of one core); only addressed audio goes
on to the VAD, and so to Whisper: from a detection until the request that follows it ends (or
``listen_s`` passes without one), inside the follow-up window (the policy's ``in_window``: while the
assistant replies, so barge-in works, and for ``followup_s`` after), and until a turn already started
ends. Everything else reaches the VAD as silence, which keeps its timeline whole and starts no turn:
room speech without the wake word costs no recognition pass.

A detection is refused while the assistant's own voice plays (``PlaybackStarted`` .. ``PlaybackStopped``
from the echo handling, plus a short tail for the room's echo) and within ``refractory_s`` of the last
one. It is announced as ``WakeWordDetected``, which marks the next turn as addressed (WakePolicy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np

from assistant.core.engines import WakeWordDetector
from assistant.core.events import PlaybackStarted, PlaybackStopped, WakeWordDetected
from assistant.core.messages import AudioChunk, Message, SpeechEnded, SpeechStarted
from assistant.core.stage import Stage, StageContext

log = logging.getLogger(__name__)

ECHO_TAIL_S = 0.3  # after the speaker stops, the room still rings with the reply for a moment


class WakeGate(Stage):
    name = "wake"
    drops_stale = False  # raw audio has no turn yet

    def __init__(
        self,
        detector: WakeWordDetector,
        in_window: Callable[[float], bool],
        listen_s: float = 4.0,
        refractory_s: float = 2.0,
    ) -> None:
        self.detector = detector
        self.in_window = in_window  # the policy's follow-up window, on the monotonic clock
        self.listen_s = listen_s
        self.refractory_s = refractory_s
        self._open_until = float("-inf")  # input timeline: a detection opens the gate until then
        self._refractory_until = float("-inf")  # input timeline
        self._in_turn = False  # the VAD started a turn that has not ended: let it finish
        self._playing = False
        self._quiet_until = float("-inf")  # monotonic: the echo tail after playback
        self.detections = 0
        self.passed_s = 0.0  # audio let through to the VAD (for benchmarks and tests)

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        ctx.events.subscribe(self.on_event, PlaybackStarted, PlaybackStopped, SpeechStarted, SpeechEnded)

    def on_event(self, event: PlaybackStarted | PlaybackStopped | SpeechStarted | SpeechEnded) -> None:
        # runs on the emitting thread: single assignments only
        if isinstance(event, PlaybackStarted):
            self._playing = True
        elif isinstance(event, PlaybackStopped):
            self._playing = False
            self._quiet_until = event.t + ECHO_TAIL_S
        elif isinstance(event, SpeechStarted):
            self._in_turn = True
        else:
            self._in_turn = False
            self._open_until = float("-inf")  # the request after the wake word is over

    def hearing_itself(self, now: float) -> bool:
        return self._playing or now < self._quiet_until

    def process(self, msg: Message) -> Iterator[Message]:
        if not isinstance(msg, AudioChunk):
            return  # End: the loop forwards it
        t = msg.t_input
        if self.detector.feed(msg.pcm):
            if self.hearing_itself(msg.t_arrival):
                log.debug("wake word %s in the assistant's own voice: ignored", self.detector.name)
            elif t < self._refractory_until:
                log.debug("wake word %s again within the refractory period: ignored", self.detector.name)
            else:
                self.detections += 1
                self._refractory_until = t + self.refractory_s
                self._open_until = t + self.listen_s
                self.ctx.events.emit(WakeWordDetected(-1, self.detector.name, t_input=t))
        if self._in_turn or t <= self._open_until or self.in_window(msg.t_arrival):
            self.passed_s += len(msg.pcm) / msg.sample_rate
            yield msg
        else:
            yield replace(msg, pcm=np.zeros_like(msg.pcm))
