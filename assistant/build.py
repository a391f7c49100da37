"""The one wiring place: loads the engines (in parallel) and assembles pipelines and the responder chain.

Nothing else in the package loads a model: stages and responders are handed engines. The ways the
assistant is used (``live``, ``agent``, ``wyoming``, ``eval``, ``cli``) call in here for what they run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from assistant.audio.file_source import FileSource
from assistant.audio.sinks import AudioSink
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.engines import Recognizer, Synthesizer, TextStreamer, Tool, TurnDetector, WakeWordDetector
from assistant.core.pipeline import AudioSource, Pipeline
from assistant.core.stage import Stage
from assistant.engines.openmp import load_ctranslate2_apart, single_threaded_blas
from assistant.engines.store import ModelStore
from assistant.reply.base import Responder
from assistant.reply.deadline import DeadlineResponder, acknowledgements
from assistant.reply.fastpath import FastPathResponder
from assistant.reply.llm import LlmResponder
from assistant.stages.asr import AsrStage
from assistant.stages.hold import FirstClauseHold, GenerationHold, HeldStreamer
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
    turn: TurnDetector | None = None  # end of turn (vad.end_of_turn); None: the hangover


def model_store(cfg: Config) -> ModelStore:
    return ModelStore(cfg.models.cache_dir)


def load_engines(cfg: Config, progress: Progress = _quiet) -> Engines:
    """Load the models in parallel: start-up costs the slowest one, not the sum."""
    if cfg.asr.backend == "local":
        load_ctranslate2_apart()  # before the LLM's loader imports torch (engines/openmp.py)
    single_threaded_blas()
    store = model_store(cfg)
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="load") as pool:
        recognizer = pool.submit(whisper_engine, cfg, store)
        llm = pool.submit(llm_engine, cfg, store, progress)
        synth = pool.submit(piper_engine, cfg, store)
        turn = pool.submit(lambda: turn_engine(cfg, llm.result()))  # llm: shares the loaded LLM
        return Engines(recognizer.result(), llm.result(), synth.result(), turn.result())


def turn_engine(cfg: Config, llm: TextStreamer | None = None) -> TurnDetector | None:
    """The end-of-turn model, or None (``vad.end_of_turn: none``, or not installed: the VAD's
    hangover alone then ends turns, as before, and a warning says why). ``llm``: the loaded
    language model, which ``llm`` mode reads (loaded here only where nothing else needs one)."""
    if cfg.vad.end_of_turn == "none":
        return None
    from assistant.engines.turn import SmartTurnEngine, TurnModelMissing

    try:
        audio: SmartTurnEngine | None = SmartTurnEngine(doubt=cfg.vad.last_word_doubt)
    except TurnModelMissing as exc:
        audio = None
        without = "the transcript alone" if cfg.vad.end_of_turn == "llm" else "vad.hangover_ms"
        log.warning("end of turn: %s; falling back to %s", exc, without)
    engine: TurnDetector | None = audio
    if cfg.vad.end_of_turn == "llm":
        engine = _llm_turn_engine(cfg, llm, audio)
    if engine is not None:
        engine.warm_up()
    return engine


def judges_turns_with_local_llm(cfg: Config) -> bool:
    """``llm`` end of turn with a model of our own (a server's gives no next-token probabilities)."""
    return cfg.vad.end_of_turn == "llm" and cfg.llm.backend == "local"


def _llm_turn_engine(
    cfg: Config, llm: TextStreamer | None, audio: TurnDetector | None
) -> TurnDetector | None:
    from assistant.engines.llm_turn import LlmTurnEngine
    from assistant.engines.local_llm import LlmEngine

    if llm is None and judges_turns_with_local_llm(cfg):
        llm = llm_engine(cfg, model_store(cfg))  # `transcribe` loads no LLM for itself
    if not isinstance(llm, LlmEngine):  # a server's model gives no next-token probabilities
        log.info("end of turn: llm needs llm.backend: local; using smart_turn")
        return audio
    return LlmTurnEngine(llm, cfg.vad.llm_threshold, cfg.llm.system_prompt, audio, cfg.vad.last_word_doubt)


def vad_stage(cfg: Config, turn: TurnDetector | None) -> VadStage:
    """The one place a VAD is made, so every command cuts turns the same way. ``none`` means the
    hangover even where shared engines hold a turn engine (a benchmark comparing settings)."""
    turn = None if cfg.vad.end_of_turn == "none" else turn
    return VadStage(cfg.vad, cfg.audio.frame_ms, turn, await_transcript=cfg.asr.speculative)


def asr_stage(cfg: Config, recognizer: Recognizer) -> AsrStage:
    """The recogniser behind a VAD: every pass hears the pause the VAD speculates at."""
    return AsrStage(cfg.asr, recognizer, end_pad_s=cfg.vad.pause_ms / 1000)


def longest_pause_ms(cfg: Config) -> int:
    """The most silence that can still belong to a turn."""
    vad = cfg.vad
    return vad.hangover_ms if vad.end_of_turn == "none" else max(vad.hangover_ms, vad.max_silence_ms)


def whisper_engine(cfg: Config, store: ModelStore) -> Recognizer:
    """faster-whisper in this process (``asr.backend: local``) or on Wyoming servers."""
    if cfg.asr.backend == "wyoming":
        from assistant.engines.wyoming_speech import WyomingRecognizer

        return WyomingRecognizer(cfg.asr)
    from assistant.engines.whisper import WhisperEngine

    load_ctranslate2_apart()
    single_threaded_blas()  # its spinning workers slow the encoder (engines/openmp.py)
    return WhisperEngine(store.asr_path(cfg.asr.model), cfg.asr)


def piper_engine(cfg: Config, store: ModelStore) -> Synthesizer:
    """A piper voice in this process (``tts.backend: local``) or on Wyoming servers."""
    if cfg.tts.backend == "wyoming":
        from assistant.engines.wyoming_speech import WyomingSynthesizer

        return WyomingSynthesizer(cfg.tts)
    from assistant.engines.piper import PiperEngine

    return PiperEngine(*store.voice_paths(cfg.tts.voice), cfg.tts)


def _uris(uri: str | tuple[str, ...]) -> str:
    return uri if isinstance(uri, str) else ", ".join(uri)


def asr_label(cfg: Config) -> str:
    """Where speech recognition runs, as messages and reports name it."""
    return f"Wyoming ASR at {_uris(cfg.asr.uri)}" if cfg.asr.backend == "wyoming" else cfg.asr.model


def tts_label(cfg: Config) -> str:
    return f"Wyoming TTS at {_uris(cfg.tts.uri)}" if cfg.tts.backend == "wyoming" else cfg.tts.voice


def llm_engine(cfg: Config, store: ModelStore, progress: Progress = _quiet) -> TextStreamer:
    """The model in this process (``llm.backend: local``) or on an OpenAI-compatible server."""
    if cfg.llm.backend == "openai":
        from assistant.engines.openai_llm import OpenAiEngine

        return OpenAiEngine(cfg.llm)
    from assistant.engines.local_llm import LlmEngine

    return LlmEngine(store.llm_path(cfg.llm.model, progress=progress), cfg.llm)


def wake_detector(name: str, cutoff: float | None = None) -> WakeWordDetector | None:
    """A fresh wake-word model for one audio stream (it keeps the stream's state; loading takes
    milliseconds), or None for ``none``."""
    if name == "none":
        return None
    from assistant.engines.wakeword import MicroWakeWordEngine

    return MicroWakeWordEngine(name, cutoff)


def llm_label(cfg: Config) -> str:
    """The LLM as messages and reports name it: the local model, or the server's model and address."""
    if cfg.llm.backend == "openai":
        return f"{cfg.llm.api_model or 'LLM'} at {cfg.llm.base_url}"
    return cfg.llm.model


def file_source(cfg: Config, path: Path, realtime: bool) -> FileSource:
    """A recording as the pipeline's input, followed by enough silence that a turn ending at the very
    end of the file is closed by the VAD's hangover like any other."""
    tail_s = longest_pause_ms(cfg) / 1000 + 0.3
    return FileSource(path, realtime=realtime, frame_ms=cfg.audio.frame_ms, tail_silence_s=tail_s)


def listening_stages(cfg: Config, engines: Engines) -> list[Stage]:
    """VAD + ASR: audio in, transcripts out."""
    return [vad_stage(cfg, engines.turn), asr_stage(cfg, engines.recognizer)]


def responder_chain(
    cfg: Config,
    llm: TextStreamer,
    wrap: Callable[[Responder], Responder] = lambda r: r,
    tools: Sequence[Tool] = (),
) -> Responder:
    """The LLM, behind the fast path, behind the deadline fallback: each looks like what it wraps.
    ``wrap`` adds a layer inside the deadline (the agent's actions), ``tools`` are offered to the
    LLM (the agent's, which its layer then handles)."""
    return DeadlineResponder(wrap(FastPathResponder(LlmResponder(cfg.llm, llm, tools))), cfg.deadline)


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
        cfg.deadline.apology_error,
    )


def fallback_phrases(cfg: Config) -> tuple[str, ...]:
    """What the deadline may say at once: TTS synthesises these at start-up."""
    d = cfg.deadline
    return (*acknowledgements(d), d.apology_timeout, d.apology_error)


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


def held_engines(cfg: Config, engines: Engines, events: EventBus, barge_in: bool = False) -> Engines:
    """``engines`` with one conversation's own view of a local LLM, held between tokens while the
    first clause of an answer is synthesised (``tts.first_clause_priority``) and, with ``barge_in``,
    while speech over the reply is being judged (``barge_in.hold_generation``). A server's model
    (``llm.backend: openai``) decodes on other cores: it is not held."""
    first = cfg.tts.first_clause_priority and cfg.tts.backend == "local"
    pause = barge_in and cfg.barge_in.hold_generation
    if cfg.llm.backend != "local" or not (first or pause):
        return engines
    held = HeldStreamer(engines.llm, first_clause_waits=first)
    if first:
        FirstClauseHold(held, events)
    if pause:
        GenerationHold(held, events)
    return replace(engines, llm=held)


def conversation_pipeline(
    cfg: Config, engines: Engines, source: AudioSource, sinks: Sequence[AudioSink], events: EventBus
) -> Pipeline:
    engines = held_engines(cfg, engines, events)
    stages = listening_stages(cfg, engines) + speaking_stages(cfg, engines, sinks)
    return Pipeline(source, stages, events=events)


def transcription_pipeline(
    cfg: Config,
    recognizer: Recognizer,
    source: AudioSource,
    events: EventBus,
    turn: TurnDetector | None,
) -> Pipeline:
    """VAD and recogniser alone; ``turn``: the end-of-turn engine (``turn_engine``)."""
    stages: list[Stage] = [vad_stage(cfg, turn), asr_stage(cfg, recognizer)]
    return Pipeline(source, stages, events=events)
