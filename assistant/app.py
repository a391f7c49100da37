"""Assembling pipelines from the config: the one place that knows which stages make which job."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from assistant.asr import AsrStage
from assistant.audio.sinks import AudioSink, PlaybackStage
from assistant.config import Config
from assistant.events import EventBus
from assistant.modelstore import ModelStore
from assistant.pipeline import AudioSource, Pipeline
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


def speaking_stages(
    cfg: Config, store: ModelStore, sinks: Sequence[AudioSink], progress: Progress
) -> list[Stage]:
    """Responder + TTS + playback: transcripts in, audio out."""
    llm_dir = store.llm_path(cfg.llm.model, progress=progress)
    voice, voice_config = store.voice_paths(cfg.tts.voice)
    return [ResponderStage(cfg.llm, llm_dir), TtsStage(cfg.tts, (voice, voice_config)), PlaybackStage(sinks)]


def conversation_pipeline(
    cfg: Config, source: AudioSource, sinks: Sequence[AudioSink], events: EventBus, progress: Progress
) -> Pipeline:
    store = model_store(cfg)
    stages = listening_stages(cfg, store) + speaking_stages(cfg, store, sinks, progress)
    return Pipeline(source, stages, events=events)


def transcription_pipeline(cfg: Config, source: AudioSource, events: EventBus) -> Pipeline:
    return Pipeline(source, listening_stages(cfg, model_store(cfg)), events=events)
