"""The pipeline's stages, one thread each: VAD, ASR, responder, TTS and playback.

Each takes its config section and an engine (``(cfg, engine)``) and never loads a model; the
engines come from ``assistant.build``. A stage turns messages into messages and emits events. Beside
them, what the stages share: the responder's turn policies and history, and the listeners on the
events that judge speech over a reply (``bargein``, ``hold``), for `listen`, `agent` and Wyoming alike.
"""
