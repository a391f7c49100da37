"""Which of the assistant's stages serve each kind of Wyoming request.

Every list is the assistant's own stages (app.py builds the conversation ones, as for `respond` and
`listen`) with a network edge: ``UtteranceStage`` in place of the VAD when the client has done its
own, and a last stage that turns messages into events for the client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from assistant import app
from assistant.asr import AsrStage
from assistant.audio.sinks import PlaybackStage
from assistant.config import Config
from assistant.modelstore import ModelStore
from assistant.responder import Exchange, ResponderStage
from assistant.stage import Stage
from assistant.tts import TtsStage
from assistant.wyoming.bridge import Outbox
from assistant.wyoming.stages import (
    ClientPlayback,
    ClientSpeaker,
    HandledEvents,
    SpeechEvents,
    TranscriptEvents,
    UtteranceStage,
)


def transcription(cfg: Config, engines: app.Engines, outbox: Outbox) -> list[Stage]:
    """One voice command (audio-start .. audio-stop) to a transcript, with chunks on the way."""
    asr = replace(cfg.asr, partial_interval_ms=cfg.wyoming.partial_interval_ms)
    return [UtteranceStage(), AsrStage(asr, engine=engines.recognizer), TranscriptEvents(outbox)]


def synthesis(cfg: Config, engines: app.Engines, outbox: Outbox, streaming: bool) -> list[Stage]:
    return [TtsStage(cfg.tts, engine=engines.synth), SpeechEvents(outbox, streaming)]


def text_conversation(
    cfg: Config, store: ModelStore, engines: app.Engines, outbox: Outbox, history: list[Exchange]
) -> list[Stage]:
    """A question as text (the handle program): the responder chain, the connection's history."""
    responder = ResponderStage(
        app.responder(cfg, store, _quiet, engines.llm), cfg.llm.system_prompt, speculative=False
    )
    responder.history = history
    return [responder, HandledEvents(outbox)]


def conversation(
    cfg: Config,
    store: ModelStore,
    engines: app.Engines,
    outbox: Outbox,
    history: list[Exchange],
    end: str,
    on_reply_done: Callable[[int], None],
) -> list[Stage]:
    """A spoken conversation (run-pipeline): VAD, ASR, responder, TTS, with the client as speaker;
    ``end`` (asr, handle or tts) is where the pipeline stops."""
    stages = app.listening_stages(cfg, store, engines)
    if end == "asr":
        return stages
    speaking = app.speaking_stages(cfg, store, [], _quiet, engines)
    responder, playback = speaking[0], speaking[-1]
    assert isinstance(responder, ResponderStage) and isinstance(playback, PlaybackStage)
    responder.history = history
    if end == "handle":
        return [*stages, responder]
    return [*stages, *speaking[:-1], ClientPlayback(ClientSpeaker(outbox), on_reply_done)]


def _quiet(_message: str) -> None:
    """Progress messages of model loading: the server's engines are loaded before any request."""
