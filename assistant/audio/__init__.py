"""Audio in and out: the test seam between the pipeline and the outside world.

Sources (a recording, the microphone), sinks (a WAV on the input's timeline, the speaker, a list for
tests), device lookup, sample-rate and channel conversion, and echo handling (the assistant must never
hear itself). Imports only ``assistant.core`` and ``assistant.config``.
"""
