"""The models: one class per model or server, and the store that finds and verifies their files.

Whisper (faster-whisper), piper, the local LLM (transformers + torch), an OpenAI-compatible LLM
server, and ``ModelStore`` (the shipped weights named in models/manifest.yaml). Each engine satisfies
an interface of ``assistant.core.engines``; only ``assistant.build`` constructs them.
"""
