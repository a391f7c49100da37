"""Assembling pipelines from the config: the one place that knows which stages make which job."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from assistant.asr import AsrStage
from assistant.audio.sinks import AudioSink, PlaybackStage
from assistant.config import Config
from assistant.deadline import DeadlineResponder
from assistant.events import EventBus
from assistant.fastpath import FastPathResponder
from assistant.llm_responder import LlmResponder
from assistant.modelstore import ModelStore
from assistant.pipeline import AudioSource, Pipeline
from assistant.replies import Responder
from assistant.responder import ResponderStage
from assistant.stage import Stage
from assistant.tts import TtsStage
from assistant.vad import VadStage

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def model_store(cfg: Config) -> ModelStore:
    return ModelStore(cfg.models.cache_dir)


def listening_stages(cfg: Config, store: ModelStore) -> list[Stage]:
    """VAD + ASR: audio in, transcripts out."""
    return [VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, store.asr_path(cfg.asr.model))]


def responder(cfg: Config, store: ModelStore, progress: Progress) -> Responder:
    """The LLM, behind the fast path, behind the deadline fallback: each looks like what it wraps."""
    llm = LlmResponder(cfg.llm, store.llm_path(cfg.llm.model, progress=progress))
    return DeadlineResponder(FastPathResponder(llm), cfg.deadline)


def fallback_phrases(cfg: Config) -> tuple[str, ...]:
    """What the deadline may say at once: TTS synthesises these at start-up."""
    d = cfg.deadline
    return (d.acknowledgement, d.apology_timeout, d.apology_error)


def speaking_stages(
    cfg: Config,
    store: ModelStore,
    sinks: Sequence[AudioSink],
    progress: Progress,
    answerer: Responder | None = None,
) -> list[Stage]:
    """Responder + TTS + playback: transcripts in, audio out."""
    return [
        ResponderStage(
            answerer or responder(cfg, store, progress), cfg.llm.system_prompt, cfg.llm.speculative
        ),
        TtsStage(cfg.tts, store.voice_paths(cfg.tts.voice), prepared=fallback_phrases(cfg)),
        PlaybackStage(sinks),
    ]


def conversation_pipeline(
    cfg: Config, source: AudioSource, sinks: Sequence[AudioSink], events: EventBus, progress: Progress
) -> Pipeline:
    store = model_store(cfg)
    stages = listening_stages(cfg, store) + speaking_stages(cfg, store, sinks, progress)
    return Pipeline(source, stages, events=events)


def transcription_pipeline(cfg: Config, source: AudioSource, events: EventBus) -> Pipeline:
    return Pipeline(source, listening_stages(cfg, model_store(cfg)), events=events)
