"""Text to speech: a piper voice, one piece of audio per sentence."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from assistant.config import TtsConfig


class PiperEngine:
    def __init__(self, model: Path, config: Path, cfg: TtsConfig) -> None:
        from piper import PiperVoice, SynthesisConfig

        self.voice = PiperVoice.load(str(model), config_path=str(config))
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
