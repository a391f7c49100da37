"""The pipeline's stages, one thread each: VAD, ASR, responder, TTS and playback.

Each takes its config section and an engine (``(cfg, engine)``) and never loads a model; the
engines come from ``assistant.build``. A stage turns messages into messages and emits events.
"""
