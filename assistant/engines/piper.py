"""Text to speech: a piper voice, one piece of audio per sentence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import TtsConfig

# onnxruntime's CPU arena grows to the largest sentence synthesised so far (doubling as it extends)
# and never gives memory back: measured with this voice, sentences of 3..42 words took the process
# from +310 MB to +485 MB over 80 sentences. Shrinking the arena at the end of a run returns what
# the run added (+103 MB over the same sentences, flat after the first long one), but the next run
# must grow it again: 1.13x the time to a short clause's audio when done after every run (paired
# medians, 48 clauses). So only a long sentence's run shrinks it: the short clauses a reply starts
# with keep their arena, and what a long one took is given back.
ARENA_SHRINKAGE = ("memory.enable_memory_arena_shrinkage", "cpu:0")
SHRINK_AFTER_IDS = 200  # phoneme ids (piper interleaves pads: ~12-15 words); longer runs shrink
# onnxruntime's workers spin after each run by default, on the cores the LLM decodes on while a
# clause is spoken: measured on the 2-core machine (bench/spinning.py), the first decode step after
# synthesising "The capital of France," took 89 ms against 52 with no spinning at all, but the
# synthesis then took 1.11x as long. Spinning that stops the moment a run returns keeps both.
STOP_SPINNING = ("session.force_spinning_stop", "1")


class _ShrinkingSession:
    """The voice's onnxruntime session, a long run shrinking the CPU arena afterwards (piper calls
    only ``run(None, inputs)``; anything else goes to the session itself)."""

    def __init__(self, session: Any) -> None:
        import onnxruntime

        self.session = session
        self.run_options = onnxruntime.RunOptions()
        self.run_options.add_run_config_entry(*ARENA_SHRINKAGE)

    def run(self, output_names: Any, inputs: Any) -> Any:
        ids = inputs.get("input") if isinstance(inputs, dict) else None
        if ids is not None and ids.shape[-1] > SHRINK_AFTER_IDS:
            return self.session.run(output_names, inputs, self.run_options)
        return self.session.run(output_names, inputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


class PiperEngine:
    def __init__(self, model: Path, config: Path, cfg: TtsConfig) -> None:
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        # as PiperVoice.load makes it, but with session options of our own (STOP_SPINNING)
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry(*STOP_SPINNING)
        session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.voice = PiperVoice(
            session=_ShrinkingSession(session),  # type: ignore[arg-type]
            config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
        )
        self.sample_rate = int(self.voice.config.sample_rate)
        self._syn = SynthesisConfig(length_scale=cfg.length_scale)
        self._gap = np.zeros(int(cfg.sentence_silence_s * self.sample_rate), dtype=np.int16)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """Yield int16 audio, one piece per sentence piper finds in ``text``."""
        for chunk in self.voice.synthesize(text, syn_config=self._syn):
            audio = chunk.audio_int16_array
            yield np.concatenate([audio, self._gap]) if len(self._gap) else audio

    def synthesize_all(self, text: str) -> np.ndarray:
        pieces = list(self.synthesize(text))
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
