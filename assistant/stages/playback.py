"""The last stage: it models one loudspeaker and hands the audio to the sinks.

A clause starts playing when it arrives, or when the previous clause has finished, whichever is later.
That start time is the turn's ``first_audio``; the same placement puts the audio on the input's
timeline in REPLY.wav.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence

from assistant.audio.sinks import AudioSink
from assistant.core.engines import ANSWER_SOURCES
from assistant.core.events import AnswerAudio, AudioOut, FirstAudio, ReplyAudioDone
from assistant.core.messages import End, Message, SpeechAudio
from assistant.core.stage import Stage


class PlaybackStage(Stage):
    name = "playback"

    def __init__(self, sinks: Sequence[AudioSink]) -> None:
        self.sinks = list(sinks)
        self._busy_until = 0.0  # wall time at which the speaker falls silent
        self._started: set[int] = set()  # turns whose first sound (of any kind) has played
        self._answered: set[int] = set()  # turns whose answer itself has started

    def interrupt(self) -> None:
        """Barge-in: the speaker was cleared, so it is free now (the next reply starts at once)."""
        self._busy_until = 0.0

    def delay(self, seconds: float) -> None:
        """A paused reply resumed: what was queued starts ``seconds`` later than planned."""
        if self._busy_until > 0:
            self._busy_until += seconds

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, End):
            for sink in self.sinks:
                sink.finish()
            return
        if isinstance(msg, SpeechAudio) and msg.final:
            # every clause of the reply is on its way to the speaker (barge-in tracks replies by this)
            self.ctx.events.emit(ReplyAudioDone(msg.turn))
        if not isinstance(msg, SpeechAudio) or len(msg.pcm) == 0:
            return
        start = max(time.monotonic(), self._busy_until)
        self._busy_until = start + msg.duration
        at_input = msg.ended.t_input + (start - msg.ended.t_arrival)
        if msg.turn not in self._started:
            self._started.add(msg.turn)
            self.ctx.events.emit(FirstAudio(msg.turn, at_input, msg.source, t=start))
        if msg.source in ANSWER_SOURCES and msg.turn not in self._answered:
            self._answered.add(msg.turn)
            self.ctx.events.emit(AnswerAudio(msg.turn, t=start))
        self.ctx.events.emit(AudioOut(msg.turn, msg.text, msg.duration, msg.source, t=start))
        for sink in self.sinks:
            sink.write(msg.pcm, msg.sample_rate, at_input)
        yield from ()
