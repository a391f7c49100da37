"""Wake-word detection over Wyoming, as wyoming-microwakeword offers it: ``detect`` (the models
wanted, or any), then an audio stream; a ``detection`` (the model's name and the chunk's timestamp)
each time a word is heard, at most once per model within ``agent.wake_refractory_s`` of audio; at
``audio-stop`` without any detection, ``not-detected``. A Home Assistant satellite streams its
microphone here and starts the pipeline on a detection.

The models are the agent's (engines/wakeword.py), one fresh instance per stream: they keep the
stream's state. They run on the connection's event loop: a chunk costs well under a millisecond,
less than handing it to a thread would. A ``detect`` does not wait for an earlier request's answer
(its detections may come between that answer's events); any other request ends the wake stream.
"""

from __future__ import annotations

import logging

from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.info import Attribution, WakeModel, WakeProgram
from wyoming.pipeline import RunPipeline
from wyoming.tts import Synthesize, SynthesizeStart
from wyoming.wake import Detect, Detection, NotDetected

from assistant import __version__, build
from assistant.audio.convert import PIPELINE_RATE
from assistant.config import Config
from assistant.core.engines import WakeWordDetector
from assistant.engines.wakeword import MODELS
from assistant.wyoming.bridge import Outbox
from assistant.wyoming.wire import PcmConverter, ProtocolError

log = logging.getLogger(__name__)

PROGRAM = "assistant"
AUDIO_EVENTS = (AudioStart, AudioChunk, AudioStop)
OTHER_REQUESTS = (Detect, Transcribe, RunPipeline, Synthesize, SynthesizeStart)


def wake_program() -> WakeProgram:
    """The ``wake`` entry of ``describe``: every shipped model."""
    source = Attribution(
        name="microWakeWord (pymicro-wakeword)", url="https://github.com/kahrendt/microWakeWord"
    )
    return WakeProgram(
        name=PROGRAM,
        attribution=Attribution(name="assistant (local voice assistant)", url=""),
        installed=True,
        description="Wake word: microWakeWord models",
        version=__version__,
        models=[
            WakeModel(
                name=name,
                attribution=source,
                installed=True,
                description=phrase,
                version=None,
                languages=list(languages),
                phrase=phrase,
            )
            for name, (phrase, languages) in MODELS.items()
        ],
    )


def wanted_models(cfg: Config, names: list[str] | None) -> list[str]:
    """The models a ``detect`` asks for (by name or phrase, any case), or the agent's own when it
    names none; an unknown name is refused rather than silently never detected."""
    if not names:
        return [cfg.agent.wake_word if cfg.agent.wake_word != "none" else "okay_nabu"]
    by_key = {k: k for k in MODELS} | {phrase.lower(): k for k, (phrase, _) in MODELS.items()}
    wanted = []
    for name in names:
        key = by_key.get(str(name).lower().replace(" ", "_")) or by_key.get(str(name).lower())
        if key is None:
            raise ProtocolError(
                f"unknown wake word {name!r}: one of {', '.join(MODELS)}", "unknown-wake-word"
            )
        wanted.append(key)
    return list(dict.fromkeys(wanted))


class WakeRequest:
    """One ``detect`` and the audio stream after it."""

    def __init__(self, cfg: Config, event: Event, outbox: Outbox) -> None:
        detect = Detect.from_event(event)
        self.outbox = outbox
        self.context = detect.context
        self.refractory_s = cfg.agent.wake_refractory_s
        self.detectors: dict[str, WakeWordDetector] = {}
        for name in wanted_models(cfg, detect.names):
            detector = build.wake_detector(name)
            assert detector is not None
            self.detectors[name] = detector
        self._last: dict[str, float] = {}  # model -> audio time of its last detection
        self._converter: PcmConverter | None = None
        self._heard_s = 0.0  # audio time, from the stream's start
        self.detected = 0
        self.done = False

    @staticmethod
    def starts(kind: str) -> bool:
        return Detect.is_type(kind)

    def takes(self, kind: str) -> bool:
        """Whether the event is this stream's; another request ends the stream."""
        if any(e.is_type(kind) for e in OTHER_REQUESTS):
            self.done = True
        return not self.done and any(e.is_type(kind) for e in AUDIO_EVENTS)

    def handle(self, event: Event) -> None:
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._converter = PcmConverter(start.rate, start.width, start.channels)
        elif AudioChunk.is_type(event.type):
            self._chunk(AudioChunk.from_event(event))
        elif AudioStop.is_type(event.type):
            if self._converter is not None:
                self._feed(self._converter.flush(), None)
            if self.detected == 0:
                self.outbox.put(NotDetected(context=self.context))
            self.done = True

    def _chunk(self, chunk: AudioChunk) -> None:
        fmt = (chunk.rate, chunk.width, chunk.channels)
        if self._converter is None or self._converter.format != fmt:
            self._converter = PcmConverter(*fmt)
        self._feed(self._converter.convert(chunk.audio), chunk.timestamp)

    def _feed(self, pcm, timestamp: int | None) -> None:  # type: ignore[no-untyped-def]
        if len(pcm) == 0:
            return
        self._heard_s += len(pcm) / PIPELINE_RATE
        for name, detector in self.detectors.items():
            if not detector.feed(pcm):
                continue
            if self._heard_s - self._last.get(name, float("-inf")) < self.refractory_s:
                continue
            self._last[name] = self._heard_s
            self.detected += 1
            log.info("wake word %s detected at %.2f s of the stream", name, self._heard_s)
            self.outbox.put(Detection(name=name, timestamp=timestamp, context=self.context))
