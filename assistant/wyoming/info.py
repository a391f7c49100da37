"""The answer to ``describe``: speech-to-text, text-to-speech and conversation (handle), all streaming,
and wake-word detection (wake.py)."""

from __future__ import annotations

import re

from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
)

from assistant import __version__
from assistant.config import Config
from assistant.wyoming.wake import wake_program

PROGRAM = "assistant"  # one program name per domain; select-program with it is accepted
SELF = Attribution(name="assistant (local voice assistant)", url="")


def build_info(cfg: Config) -> Info:
    language = cfg.asr.language or "en"
    # piper voice names start with their locale (en_US-joe-medium); Home Assistant matches on it
    locale = re.match(r"^([a-z]{2,3}(?:_[A-Z]{2})?)-", cfg.tts.voice)
    voice_language = locale.group(1) if locale else language
    return Info(
        asr=[
            AsrProgram(
                name=PROGRAM,
                attribution=SELF,
                installed=True,
                description="Speech to text: faster-whisper, streaming transcript chunks",
                version=__version__,
                models=[
                    AsrModel(
                        name=cfg.asr.model,
                        attribution=Attribution(name="OpenAI Whisper via faster-whisper", url=""),
                        installed=True,
                        description=f"Whisper {cfg.asr.model}",
                        version=None,
                        languages=[language],
                    )
                ],
                supports_transcript_streaming=True,
            )
        ],
        tts=[
            TtsProgram(
                name=PROGRAM,
                attribution=SELF,
                installed=True,
                description="Text to speech: piper, streamed sentence by sentence",
                version=__version__,
                voices=[
                    TtsVoice(
                        name=cfg.tts.voice,
                        attribution=Attribution(name="piper", url=""),
                        installed=True,
                        description=f"piper voice {cfg.tts.voice}",
                        version=None,
                        languages=[voice_language],
                    )
                ],
                supports_synthesize_streaming=True,
            )
        ],
        handle=[
            HandleProgram(
                name=PROGRAM,
                attribution=SELF,
                installed=True,
                description="Conversation: a local LLM with a deadline fallback; one history per connection",
                version=__version__,
                models=[
                    HandleModel(
                        name=cfg.llm.model,
                        attribution=Attribution(name="local LLM (transformers)", url=""),
                        installed=True,
                        description=cfg.llm.model,
                        version=None,
                        languages=[language],
                    )
                ],
                supports_handled_streaming=True,
            )
        ],
        wake=[wake_program()],
    )
