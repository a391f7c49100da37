"""Assembling pipelines from the config: the one place that knows which stages make which job."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.asr import AsrStage, Recognizer, WhisperEngine
from assistant.audio.file_source import FileSource
from assistant.audio.sinks import AudioSink, PlaybackStage
from assistant.config import Config
from assistant.deadline import DeadlineResponder
from assistant.events import EventBus
from assistant.fastpath import FastPathResponder
from assistant.llm import LlmEngine, TextStreamer
from assistant.llm_responder import LlmResponder
from assistant.modelstore import ModelStore
from assistant.openai_llm import OpenAiEngine
from assistant.pipeline import AudioSource, Pipeline
from assistant.replies import Responder
from assistant.responder import ResponderStage
from assistant.stage import Stage
from assistant.tts import PiperEngine, Synthesizer, TtsStage
from assistant.vad import VadStage

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Engines:
    """Loaded models, to share between pipelines (benchmarks, many runs in one process).

    A field left None is loaded by its stage's setup, from the config."""

    recognizer: Recognizer | None = None
    llm: TextStreamer | None = None
    synth: Synthesizer | None = None


def model_store(cfg: Config) -> ModelStore:
    return ModelStore(cfg.models.cache_dir)


def load_engines(cfg: Config, progress: Progress = lambda _m: None) -> Engines:
    store = model_store(cfg)
    return Engines(
        WhisperEngine(store.asr_path(cfg.asr.model), cfg.asr),
        llm_engine(cfg, store, progress),
        PiperEngine(*store.voice_paths(cfg.tts.voice), cfg.tts),
    )


def llm_engine(cfg: Config, store: ModelStore, progress: Progress = lambda _m: None) -> TextStreamer:
    """The model in this process (``llm.backend: local``) or on an OpenAI-compatible server."""
    if cfg.llm.backend == "openai":
        return OpenAiEngine(cfg.llm)
    return LlmEngine(store.llm_path(cfg.llm.model, progress=progress), cfg.llm)


def llm_label(cfg: Config) -> str:
    """The LLM as messages and reports name it: the local model, or the server's model and address."""
    if cfg.llm.backend == "openai":
        return f"{cfg.llm.api_model or 'LLM'} at {cfg.llm.base_url}"
    return cfg.llm.model


def file_source(cfg: Config, path: Path, realtime: bool) -> FileSource:
    """A recording as the pipeline's input, followed by enough silence that a turn ending at the very
    end of the file is closed by the VAD's hangover like any other."""
    tail_s = cfg.vad.hangover_ms / 1000 + 0.3
    return FileSource(path, realtime=realtime, frame_ms=cfg.audio.frame_ms, tail_silence_s=tail_s)


def listening_stages(cfg: Config, store: ModelStore, engines: Engines | None = None) -> list[Stage]:
    """VAD + ASR: audio in, transcripts out."""
    recognizer = engines.recognizer if engines else None
    model_dir = None if recognizer else store.asr_path(cfg.asr.model)
    return [VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, model_dir, engine=recognizer)]


def responder(
    cfg: Config,
    store: ModelStore,
    progress: Progress,
    llm: TextStreamer | None = None,
    wrap: Callable[[Responder], Responder] = lambda r: r,
) -> Responder:
    """The LLM, behind the fast path, behind the deadline fallback: each looks like what it wraps.
    ``wrap`` adds a layer inside the deadline (the agent's actions)."""
    if llm is None and cfg.llm.backend == "openai":
        llm = llm_engine(cfg, store)
    model_dir = None if llm else store.llm_path(cfg.llm.model, progress=progress)
    inner = wrap(FastPathResponder(LlmResponder(cfg.llm, model_dir, engine=llm)))
    return DeadlineResponder(inner, cfg.deadline)


def fallback_phrases(cfg: Config) -> tuple[str, ...]:
    """What the deadline may say at once: TTS synthesises these at start-up."""
    d = cfg.deadline
    return (d.acknowledgement, d.apology_timeout, d.apology_error)


def speaking_stages(
    cfg: Config,
    store: ModelStore,
    sinks: Sequence[AudioSink],
    progress: Progress,
    engines: Engines | None = None,
    responder_stage: ResponderStage | None = None,
    prepared: tuple[str, ...] = (),
) -> list[Stage]:
    """Responder + TTS + playback: transcripts in, audio out. ``responder_stage`` replaces the
    conversation's own (the agent's); ``prepared`` phrases are synthesised at start-up too."""
    engines = engines or Engines()
    voice = None if engines.synth else store.voice_paths(cfg.tts.voice)
    stage = responder_stage or ResponderStage(
        responder(cfg, store, progress, engines.llm), cfg.llm.system_prompt, cfg.llm.speculative
    )
    return [
        stage,
        TtsStage(cfg.tts, voice, engine=engines.synth, prepared=fallback_phrases(cfg) + prepared),
        PlaybackStage(sinks),
    ]


def conversation_pipeline(
    cfg: Config,
    source: AudioSource,
    sinks: Sequence[AudioSink],
    events: EventBus,
    progress: Progress,
    engines: Engines | None = None,
) -> Pipeline:
    store = model_store(cfg)
    stages = listening_stages(cfg, store, engines) + speaking_stages(cfg, store, sinks, progress, engines)
    return Pipeline(source, stages, events=events)


def transcription_pipeline(cfg: Config, source: AudioSource, events: EventBus) -> Pipeline:
    return Pipeline(source, listening_stages(cfg, model_store(cfg)), events=events)
