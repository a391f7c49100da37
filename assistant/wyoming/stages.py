"""The stages at the edges of a Wyoming request: one utterance in, Wyoming events out.

Everything in between is the assistant's own stages. These only translate: the last stage of each
request turns the pipeline's messages (transcripts, reply clauses, speech audio) into events in the
connection's ``Outbox``; ``ConversationEvents`` does the same for what a whole conversation reports
on its event bus (voice started/stopped, the transcript, the reply text).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
from wyoming.asr import Transcript as WyTranscript
from wyoming.asr import TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk as WyAudioChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.handle import Handled, HandledChunk, HandledStart, HandledStop, NotHandled
from wyoming.tts import SynthesizeStopped
from wyoming.vad import VoiceStarted, VoiceStopped

from assistant.core import events as ev
from assistant.core.messages import (
    AudioChunk,
    End,
    Message,
    ReplyText,
    SpeechAudio,
    SpeechEnded,
    SpeechStarted,
    Transcript,
)
from assistant.core.stage import Stage
from assistant.wyoming.bridge import Outbox

log = logging.getLogger(__name__)

SAMPLES_PER_CHUNK = 1024  # audio-chunk size sent to clients (wyoming-piper's default)
# Audio that arrives at more than this multiple of real time is a recording, not a person speaking:
# its final transcript is moments away, so partial passes would only delay it.
LIVE_PACE = 2.0
NOT_INTERRUPTIONS = ("resumed", "echo")  # Interruption outcomes after which the reply goes on
KEEP_TURNS = 10  # turns older than this are forgotten
FILLER_SOURCES = ("ack",)  # the deadline's "Hmm.": for ears only, not for text clients


class UtteranceStage(Stage):
    """Stands in for the VAD when the client did its own: a transcribe request is one voice command
    (audio-start .. audio-stop), as Home Assistant sends it, so the whole stream is one turn."""

    name = "utterance"
    drops_stale = False

    def __init__(self) -> None:
        self._started: float | None = None  # arrival of the first chunk
        self._end: tuple[float, float] | None = None  # (t_input, t_arrival) of the stream's end

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, AudioChunk):
            if self._started is None:
                self._started = msg.t_arrival
                yield SpeechStarted(1, msg.t_input, t=msg.t_arrival)
            end = msg.t_input + msg.duration
            self._end = (end, msg.t_arrival)
            live = end <= LIVE_PACE * (msg.t_arrival - self._started) + 0.5
            # "voiced" is what lets AsrStage make partial transcripts (transcript chunks)
            yield AudioChunk(1, msg.pcm, msg.sample_rate, msg.t_input, msg.t_arrival, voiced=live)
        elif isinstance(msg, End) and self._end is not None:
            yield SpeechEnded(1, self._end[0], t_decided=time.monotonic(), t=self._end[1])


class TranscriptEvents(Stage):
    """Transcripts -> transcript-start, transcript-chunk..., transcript, transcript-stop.

    A chunk cannot be taken back, and Whisper may revise earlier words as it hears more; so a
    partial only adds the words past those already sent, and only while it agrees with them. The
    final ``transcript`` is the authoritative text (the protocol sends it for that reason).
    """

    name = "to-client"

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._sent: list[str] = []
        self._started = False
        self._done = False

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, Transcript) and not self._done:
            words = msg.text.split()
            # a partial pass hears audio cut mid-speech: its last word is a guess ("in a..." for
            # "in our"), so it waits for the next pass or the final
            self._chunk(words if msg.final else words[:-1])
            if msg.final:
                self._finish(msg.text)
        elif isinstance(msg, End) and not self._done:
            self._finish("")  # no audio at all: an empty transcript, as the reference servers answer
        yield from ()

    def _chunk(self, words: list[str]) -> None:
        if words[: len(self._sent)] != self._sent or len(words) == len(self._sent):
            return
        if not self._started:
            self.outbox.put(TranscriptStart())
            self._started = True
        new = words[len(self._sent) :]
        self.outbox.put(TranscriptChunk((" " if self._sent else "") + " ".join(new)))
        self._sent = words

    def _finish(self, text: str) -> None:
        if not self._started:
            self.outbox.put(TranscriptStart())
        self.outbox.put(WyTranscript(text))
        self.outbox.put(TranscriptStop())
        self._done = True


def audio_events(pcm: np.ndarray, rate: int) -> Iterator[WyAudioChunk]:
    for start in range(0, len(pcm), SAMPLES_PER_CHUNK):
        block = pcm[start : start + SAMPLES_PER_CHUNK]
        yield WyAudioChunk(rate=rate, width=2, channels=1, audio=block.astype("<i2").tobytes())


class SpeechEvents(Stage):
    """Synthesised speech -> one audio-start, audio-chunk..., audio-stop cycle per turn.

    A synthesize request is one turn; a streamed one makes each sentence a turn, so each sentence
    is its own cycle as soon as it is ready (as wyoming-piper does), and the end of the stream is
    ``synthesize-stopped``.
    """

    name = "to-client"

    def __init__(self, outbox: Outbox, streaming: bool) -> None:
        self.outbox = outbox
        self.streaming = streaming
        self._open: int | None = None

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, SpeechAudio):
            if self._open != msg.turn:
                self.outbox.put(AudioStart(rate=msg.sample_rate, width=2, channels=1))
                self._open = msg.turn
            for event in audio_events(msg.pcm, msg.sample_rate):
                self.outbox.put(event)
            if msg.final:
                self.outbox.put(AudioStop())
                self._open = None
        elif isinstance(msg, End) and self.streaming:
            self.outbox.put(SynthesizeStopped())
        yield from ()


class HandledEvents(Stage):
    """Reply clauses -> handled-start, handled-chunk..., handled (the whole answer), handled-stop."""

    name = "to-client"

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._parts: list[str] = []
        self._started = False

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, ReplyText) and msg.source not in FILLER_SOURCES:
            if not self._started:
                self.outbox.put(HandledStart())
                self._started = True
            if msg.text:
                self._parts.append(msg.text)
                self.outbox.put(HandledChunk(msg.text))
            if msg.final:
                self.outbox.put(Handled(" ".join(self._parts)))
                self.outbox.put(HandledStop())
                self._parts, self._started = [], False
        yield from ()


class ConversationEvents:
    """A conversation's event bus -> voice-started/stopped, transcript and the reply's text.

    The text goes out as it is decided; the reply's audio follows from ``ClientPlayback`` (speaker.py).
    ``end_stage`` says where this pipeline run ends: after the transcript (asr), the reply text
    (handle) or its audio (tts, reported by ClientPlayback); ``on_turn_done`` is told then.
    """

    def __init__(self, outbox: Outbox, end_stage: str, on_turn_done: Callable[[int], None]) -> None:
        self.outbox = outbox
        self.end_stage = end_stage
        self.on_turn_done = on_turn_done
        self.heard = 0  # turns with words in them: none at all (silence, noise), and the client is told so
        # what each turn said (fillers aside): `handled` carries it all, a deadline's apology included,
        # which ReplyDone's text (the answer the history keeps) leaves out
        self._said: dict[int, list[str]] = {}
        # speech over a reply that turned out no interruption (a cough, an "mm-hmm", the reply's own
        # echo): the reply goes on, so the client hears of it nothing but voice-started/-stopped
        self._not_turns: set[int] = set()

    LISTENS_TO = (
        ev.SpeechStarted,
        ev.SpeechEnded,
        ev.TranscriptFinal,
        ev.ReplyClause,
        ev.ReplyDone,
        ev.ReplySkipped,
        ev.Interruption,
    )

    def __call__(self, event: ev.Event) -> None:
        turn = event.turn
        if isinstance(event, ev.Interruption):  # (barge-in reports it before the transcript's event)
            self._not_turns = {t for t in self._not_turns if t > turn - KEEP_TURNS}
            if event.outcome in NOT_INTERRUPTIONS:
                self._not_turns.add(turn)
            else:  # a transcript after the timeout resumed the reply may still cut it
                self._not_turns.discard(turn)
        elif turn in self._not_turns and isinstance(event, ev.TranscriptFinal | ev.ReplySkipped):
            return
        elif isinstance(event, ev.SpeechStarted):
            self.outbox.put(VoiceStarted(timestamp=_ms(event.t_input)))
        elif isinstance(event, ev.SpeechEnded):
            self.outbox.put(VoiceStopped(timestamp=_ms(event.t_input)))
        elif isinstance(event, ev.TranscriptFinal):
            self.heard += bool(event.text.strip())
            self.outbox.put(WyTranscript(event.text))
            if self.end_stage == "asr":
                self.on_turn_done(turn)
        elif isinstance(event, ev.ReplyClause) and event.source not in FILLER_SOURCES:
            if turn not in self._said:
                self._said[turn] = []
                self.outbox.put(HandledStart())
            self._said[turn].append(event.text)
            self.outbox.put(HandledChunk(event.text))
        elif isinstance(event, ev.ReplyDone):
            said = self._said.pop(turn, None)
            if said is None:
                self.outbox.put(HandledStart())
            self.outbox.put(Handled(" ".join(said) if said else event.text))
            self.outbox.put(HandledStop())
            if self.end_stage == "handle":
                self.on_turn_done(turn)
        elif isinstance(event, ev.ReplySkipped):
            self.outbox.put(NotHandled(event.reason))
            self.on_turn_done(turn)


def _ms(seconds: object) -> int | None:
    return int(seconds * 1000) if isinstance(seconds, int | float) else None
