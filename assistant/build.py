"""The one wiring place: loads the engines (in parallel) and assembles pipelines and the responder chain.

Nothing else in the package loads a model: stages and responders are handed engines. The ways the
assistant is used (``live``, ``agent``, ``wyoming``, ``eval``, ``cli``) call in here for what they run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from assistant.audio.file_source import FileSource
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.core.engines import Recognizer, Synthesizer, TextStreamer
from assistant.core.events import EventBus
from assistant.core.pipeline import AudioSource, Pipeline
from assistant.core.stage import Stage
from assistant.engines.store import ModelStore
from assistant.reply.base import Responder
from assistant.reply.deadline import DeadlineResponder
from assistant.reply.fastpath import FastPathResponder
from assistant.reply.llm import LlmResponder
from assistant.stages.asr import AsrStage
from assistant.stages.playback import PlaybackStage
from assistant.stages.policy import AlwaysAddressed, InterruptionRules, TurnPolicy
from assistant.stages.responder import ResponderStage
from assistant.stages.tts import TtsStage
from assistant.stages.vad import VadStage

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass
class Engines:
    """The loaded models, shared by every pipeline of a process (benchmarks, a server's clients)."""

    recognizer: Recognizer
    llm: TextStreamer
    synth: Synthesizer


def model_store(cfg: Config) -> ModelStore:
    return ModelStore(cfg.models.cache_dir)


def load_engines(cfg: Config, progress: Progress = _quiet) -> Engines:
    """Load the three models in parallel: start-up costs the slowest one, not the sum."""
    store = model_store(cfg)
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="load") as pool:
        recognizer = pool.submit(whisper_engine, cfg, store)
        llm = pool.submit(llm_engine, cfg, store, progress)
        synth = pool.submit(piper_engine, cfg, store)
        return Engines(recognizer.result(), llm.result(), synth.result())


def whisper_engine(cfg: Config, store: ModelStore) -> Recognizer:
    from assistant.engines.whisper import WhisperEngine

    return WhisperEngine(store.asr_path(cfg.asr.model), cfg.asr)


def piper_engine(cfg: Config, store: ModelStore) -> Synthesizer:
    from assistant.engines.piper import PiperEngine

    return PiperEngine(*store.voice_paths(cfg.tts.voice), cfg.tts)


def llm_engine(cfg: Config, store: ModelStore, progress: Progress = _quiet) -> TextStreamer:
    """The model in this process (``llm.backend: local``) or on an OpenAI-compatible server."""
    if cfg.llm.backend == "openai":
        from assistant.engines.openai_llm import OpenAiEngine

        return OpenAiEngine(cfg.llm)
    from assistant.engines.local_llm import LlmEngine

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


def listening_stages(cfg: Config, engines: Engines) -> list[Stage]:
    """VAD + ASR: audio in, transcripts out."""
    return [VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, engines.recognizer)]


def responder_chain(
    cfg: Config, llm: TextStreamer, wrap: Callable[[Responder], Responder] = lambda r: r
) -> Responder:
    """The LLM, behind the fast path, behind the deadline fallback: each looks like what it wraps.
    ``wrap`` adds a layer inside the deadline (the agent's actions)."""
    return DeadlineResponder(wrap(FastPathResponder(LlmResponder(cfg.llm, llm))), cfg.deadline)


def responder_stage(
    cfg: Config, responder: Responder, policy: TurnPolicy | None = None, speculative: bool | None = None
) -> ResponderStage:
    """The responder stage; ``policy`` decides which turns it answers (default: every one, the
    conversation); ``speculative`` overrides ``llm.speculative`` (a server answering text has no
    pauses to speculate on)."""
    return ResponderStage(
        responder,
        cfg.llm.system_prompt,
        cfg.llm.speculative if speculative is None else speculative,
        policy or AlwaysAddressed(InterruptionRules(cfg.barge_in)),
    )


def fallback_phrases(cfg: Config) -> tuple[str, ...]:
    """What the deadline may say at once: TTS synthesises these at start-up."""
    d = cfg.deadline
    return (d.acknowledgement, d.apology_timeout, d.apology_error)


def speaking_stages(
    cfg: Config,
    engines: Engines,
    sinks: Sequence[AudioSink],
    responder: ResponderStage | None = None,
    prepared: tuple[str, ...] = (),
) -> list[Stage]:
    """Responder + TTS + playback: transcripts in, audio out. ``responder`` replaces the
    conversation's own (the agent's); ``prepared`` phrases are synthesised at start-up too."""
    return [
        responder or responder_stage(cfg, responder_chain(cfg, engines.llm)),
        TtsStage(cfg.tts, engines.synth, prepared=fallback_phrases(cfg) + prepared),
        PlaybackStage(sinks),
    ]


def conversation_pipeline(
    cfg: Config, engines: Engines, source: AudioSource, sinks: Sequence[AudioSink], events: EventBus
) -> Pipeline:
    stages = listening_stages(cfg, engines) + speaking_stages(cfg, engines, sinks)
    return Pipeline(source, stages, events=events)


def transcription_pipeline(
    cfg: Config, recognizer: Recognizer, source: AudioSource, events: EventBus
) -> Pipeline:
    stages: list[Stage] = [VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, recognizer)]
    return Pipeline(source, stages, events=events)
