"""Which of the assistant's stages serve each kind of Wyoming request.

Every list is the assistant's own stages (build.py builds the conversation ones, as for `respond` and
`listen`) with a network edge: ``UtteranceStage`` in place of the VAD when the client has done its
own, and a last stage that turns messages into events for the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from assistant import build
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.pipeline import Pipeline
from assistant.core.stage import Stage
from assistant.core.turn import TurnScope
from assistant.reply.clauses import ClauseSplitter
from assistant.stages.bargein import BargeIn
from assistant.stages.history import Exchange
from assistant.stages.playback import PlaybackStage
from assistant.stages.responder import ResponderStage
from assistant.stages.tts import TtsStage
from assistant.wyoming.bridge import AudioFeed, Feed, Outbox
from assistant.wyoming.echo import ClientEcho
from assistant.wyoming.speaker import ClientPlayback, ClientSpeaker
from assistant.wyoming.stages import (
    ConversationEvents,
    HandledEvents,
    SpeechEvents,
    TranscriptEvents,
    UtteranceStage,
)
from assistant.wyoming.wire import PcmConverter


def transcription(cfg: Config, engines: build.Engines, outbox: Outbox) -> list[Stage]:
    """One voice command (audio-start .. audio-stop) to a transcript, with chunks on the way."""
    asr = replace(cfg.asr, partial_interval_ms=cfg.wyoming.partial_interval_ms)
    return [
        UtteranceStage(),
        build.asr_stage(replace(cfg, asr=asr), engines.recognizer),
        TranscriptEvents(outbox),
    ]


def synthesis(cfg: Config, engines: build.Engines, outbox: Outbox, streaming: bool) -> list[Stage]:
    return [TtsStage(cfg.tts, engines.synth), SpeechEvents(outbox, streaming)]


def text_conversation(
    cfg: Config, engines: build.Engines, outbox: Outbox, history: list[Exchange]
) -> list[Stage]:
    """A question as text (the handle program): the responder chain, the connection's history."""
    responder = build.responder_stage(cfg, build.responder_chain(cfg, engines.llm), speculative=False)
    responder.history = history
    return [responder, HandledEvents(outbox)]


@dataclass
class Plumbing:
    """A spoken conversation's pipeline plumbing, made before its stages: barge-in listens on it."""

    feed: AudioFeed
    events: EventBus = field(default_factory=EventBus)
    scope: TurnScope = field(default_factory=TurnScope)


def conversation(
    cfg: Config,
    engines: build.Engines,
    outbox: Outbox,
    history: list[Exchange],
    end: str,
    on_reply_done: Callable[[int], None],
    plumbing: Plumbing,
) -> list[Stage]:
    """A spoken conversation (run-pipeline): VAD, ASR, responder, TTS, with the client as speaker;
    ``end`` (asr, handle or tts) is where the pipeline stops. With ``wyoming.barge_in``, the client's
    audio during the reply is speech over it, judged as in `listen` (its own echo told apart by
    ``ClientEcho``), and a pause holds this conversation's reply, not the shared model."""
    barge_in = end == "tts" and cfg.wyoming.barge_in and cfg.barge_in.enabled
    stages = build.listening_stages(cfg, engines)
    if end == "asr":
        return stages
    # (a held first clause is released by its sound: a "handle" pipeline has none)
    if end == "tts":
        engines = build.held_engines(cfg, engines, plumbing.events, barge_in)
    speaking = build.speaking_stages(cfg, engines, [])
    responder, playback = speaking[0], speaking[-1]
    assert isinstance(responder, ResponderStage) and isinstance(playback, PlaybackStage)
    responder.history = history
    if end == "handle":
        return [*stages, responder]
    if not barge_in:
        return [*stages, *speaking[:-1], ClientPlayback(ClientSpeaker(outbox), on_reply_done)]
    echo = ClientEcho()
    plumbing.feed.on_audio = echo.heard
    # paced: speech over the reply may pause or stop it
    speaker = ClientSpeaker(outbox, cfg.wyoming.playback_lead_s, on_play=echo.played)
    client = ClientPlayback(speaker, on_reply_done)
    BargeIn(cfg.barge_in, plumbing.scope, speaker, client, plumbing.events, mic=echo)
    return [*stages, *speaking[:-1], client]


@dataclass
class Request:
    """One request of a session, running: its pipeline, its feed, and what it has seen so far."""

    kind: str  # transcribe, synthesize, synthesize-stream, handle, pipeline
    pipeline: Pipeline
    feed: Feed
    takes_audio: bool = False
    converter: PcmConverter | None = None
    splitter: ClauseSplitter | None = None
    chars: int = 0
    turns: int = 0
    conversation: ConversationEvents | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
