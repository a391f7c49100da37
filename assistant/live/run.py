"""Live conversation: the microphone in, the speaker out, barge-in, and no answering itself.

``run_listen`` wires the microphone through the echo guard (``assistant.audio.echo``) into the usual
stages, with ``BargeIn`` (``assistant.stages.bargein``) listening for the user speaking over a reply and a
``Watchdog`` reopening a lost speaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from assistant import build
from assistant.audio.echo import EchoGuard, FarEnd
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.events import Device, Ready
from assistant.core.pipeline import Pipeline
from assistant.core.stage import Stage
from assistant.stages.bargein import BargeIn
from assistant.stages.playback import PlaybackStage

log = logging.getLogger(__name__)

# Builds the stages from the responder to the speaker, given the engines and the audio sinks.
SpeakingStages = Callable[[build.Engines, list[AudioSink]], list[Stage]]
ListeningStages = Callable[[build.Engines], list[Stage]]


class Watchdog:
    """Checks the speaker every ``every_s`` and reopens it when its device went away and came back."""

    def __init__(self, speaker: Any, events: EventBus, every_s: float = 0.5) -> None:
        self.speaker = speaker
        self.events = events
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speaker-watchdog", daemon=True)
        self._lost = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(0.2)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            ok = self.speaker.reopen_if_lost()
            if ok == self._lost:  # state changed
                self._lost = not ok
                self.events.emit(Device(-1, "speaker", "lost" if self._lost else "opened"))
                (log.warning if self._lost else log.info)(
                    "speaker %s", "lost; retrying" if self._lost else "is back"
                )


def run_listen(
    cfg: Config,
    events: EventBus,
    progress: Callable[[str], None],
    input_device: str | int | None = None,
    output_device: str | int | None = None,
    duration_s: float | None = None,
    speaking: SpeakingStages | None = None,
    listening: ListeningStages | None = None,
) -> None:
    """Microphone -> echo stage -> the usual listening and speaking stages -> speaker, until Ctrl-C
    (or ``duration_s``). ``speaking`` builds other speaking stages (the agent's) for the speaker, ``listening``
    other listening stages (the agent's, behind its wake-word gate).
    Device errors at start-up raise DeviceError; later ones are survived."""
    from assistant.audio.microphone import Microphone
    from assistant.audio.sinks import SpeakerSink

    def mic_status(state: str, detail: str) -> None:
        events.emit(Device(-1, "microphone", state, detail))

    far = FarEnd()
    mic = Microphone(
        input_device if input_device is not None else cfg.audio.input_device,
        frame_ms=cfg.audio.frame_ms,
        rate=cfg.audio.input_rate,
        on_status=mic_status,
    )
    mic.open()  # before the models load: a missing or busy device is reported at once
    speaker = None
    try:
        out = output_device if output_device is not None else cfg.audio.output_device
        speaker = SpeakerSink(out, block_s=0.02, on_played=far.push, latency="low")
        engines = build.load_engines(cfg, progress)
        engines = build.held_engines(cfg, engines, events, barge_in=True)
        if speaking is None:
            speaking_stages = build.speaking_stages(cfg, engines, [speaker])
        else:
            speaking_stages = speaking(engines, [speaker])
        listening_stages = build.listening_stages(cfg, engines) if listening is None else listening(engines)
        stages = [*listening_stages, *speaking_stages]
        guard = EchoGuard(mic, cfg.barge_in, far, events)
        pipeline = Pipeline(guard, stages, events=events)
        playback = next((s for s in stages if isinstance(s, PlaybackStage)), None)
        BargeIn(cfg.barge_in, pipeline.scope, speaker, playback, events, mic=guard)
        watchdog = Watchdog(speaker, events)
        try:
            pipeline.setup()
            pipeline.start()
            watchdog.start()
            events.emit(Ready(-1, cfg.barge_in.echo, cfg.barge_in.enabled))
            end = None if duration_s is None else time.monotonic() + duration_s
            while not pipeline.wait(timeout=0.1):
                if end is not None and time.monotonic() >= end:
                    break
        finally:
            # devices first: aborting the streams is instant and frees them even if a model call
            # keeps a thread busy past the pipeline's join budget
            mic.close()
            speaker.close()
            watchdog.stop()
            pipeline.stop()
    finally:
        mic.close()
        if speaker is not None:
            speaker.close()
