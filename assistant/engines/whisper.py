"""Speech recognition: a faster-whisper model with the options this assistant uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, int16_to_float
from assistant.config import AsrConfig


class WhisperEngine:
    """A faster-whisper model with the options this assistant uses."""

    def __init__(self, model_dir: Path, cfg: AsrConfig) -> None:
        from faster_whisper import WhisperModel

        device = cfg.device
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        self.cfg = cfg
        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=cfg.compute_type, cpu_threads=cfg.cpu_threads
        )

    def transcribe(self, pcm: np.ndarray) -> str:
        if len(pcm) == 0:
            return ""
        segments, _info = self.model.transcribe(
            int16_to_float(pcm),
            beam_size=self.cfg.beam_size,
            language=self.cfg.language,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
        )
        # the generator does the work lazily: consume it here, on this thread
        return " ".join(s.text.strip() for s in segments).strip()

    def warm_up(self) -> None:
        self.transcribe(np.zeros(PIPELINE_RATE // 2, dtype=np.int16))


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:
        return False
