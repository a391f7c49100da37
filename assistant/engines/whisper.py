"""Speech recognition: a faster-whisper model with the options this assistant uses.

Whisper's encoder is built for 30 s windows, and faster-whisper pads every utterance to one: on
tiny.en that padding is about 80% of a pass (2 cores: encoding 30 s took ~400 ms, 4 s ~35 ms).
CTranslate2 accepts shorter windows, so with ``asr.window_s`` below 30 a turn is encoded in a
window of ``max(asr.window_s, audio + WINDOW_PAD_S)``. Too short a window and the decoder does not
know where to stop: it repeats the sentence (measured on the test speech: a 6 s minimum looped on 4
of 154 files, 10 s on none); so a pass whose text looks repetitive or unsure by faster-whisper's own
thresholds is done again on the full window, and so is anything longer than one window or with the
language left to detection, and a turn under FULL_WINDOW_UNDER_S. The default is 12 (config.yaml
has the word errors per window on the pipeline's VAD-cut turns).
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import numpy as np

from assistant.audio.convert import PIPELINE_RATE, int16_to_float
from assistant.config import AsrConfig
from assistant.core.engines import Heard

log = logging.getLogger(__name__)

FULL_WINDOW_S = 30.0
# silence after the audio inside the window: with less, the decoder loops more often (measured: a
# 1 s pad and a 10 s minimum made one more word error in 1,500 than 2 s)
WINDOW_PAD_S = 2.0
FRAMES_PER_S = 100  # Whisper's log-mel frames
# faster-whisper's defaults for a pass it would retry at a higher temperature
COMPRESSION_RATIO_MAX = 2.4
AVG_LOGPROB_MIN = -1.0
# audio shorter than this goes to the full window: a one-word turn is where a short window went
# wrong ("No." came out "No? No?", too short a repeat for the compression check; "Stop." "dot.")
FULL_WINDOW_UNDER_S = 1.5


class WhisperEngine:
    """A faster-whisper model with the options this assistant uses."""

    def __init__(self, model_dir: Path, cfg: AsrConfig) -> None:
        from faster_whisper import WhisperModel
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        device = cfg.device
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        self.cfg = cfg
        compute_type = supported_compute_type(device, cfg.compute_type)
        self.model = WhisperModel(
            str(model_dir), device=device, compute_type=compute_type, cpu_threads=cfg.cpu_threads
        )
        multilingual = self.model.model.is_multilingual
        self._tokenizer = Tokenizer(
            self.model.hf_tokenizer, multilingual, task="transcribe", language=cfg.language or "en"
        )
        self._task_tokens = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        self._suppress = get_suppressed_tokens(self._tokenizer, [-1])
        # a multilingual model with no language set must detect it: only the full path does that
        self._language_known = bool(cfg.language or not multilingual)
        self._short_ok = cfg.window_s < FULL_WINDOW_S and self._language_known
        self._full_warm = False

    def transcribe(self, pcm: np.ndarray) -> str:
        return self.transcribe_with_prompt(pcm, "")

    def transcribe_with_prompt(self, pcm: np.ndarray, prompt: str) -> str:
        """``prompt``: text the speech is likely to follow or resemble (Whisper's initial prompt,
        the "previous text" it was trained to continue); "" for none."""
        return self._recognise(pcm, prompt, scored=False).text

    def hear(self, pcm: np.ndarray, prompt: str = "") -> Heard:
        """The transcript and the last word's probability, from the decoder's own scores. Audio
        the short window does not take is given faster-whisper's first try on the full window
        here, for its scores (faster-whisper's word timestamps would give them through a second,
        aligning pass: measured +400 ms on a 1 s turn, 2 cores)."""
        return self._recognise(pcm, prompt, scored=True)

    def _recognise(self, pcm: np.ndarray, prompt: str, scored: bool) -> Heard:
        if len(pcm) == 0:
            return Heard("")
        audio = int16_to_float(pcm)
        seconds = len(audio) / PIPELINE_RATE
        if self._short_ok and FULL_WINDOW_UNDER_S <= seconds < FULL_WINDOW_S - WINDOW_PAD_S:
            heard = self._transcribe_short(audio, max(self.cfg.window_s, seconds + WINDOW_PAD_S), prompt)
            if heard is not None:
                return heard
        if scored and self._language_known and seconds < FULL_WINDOW_S - WINDOW_PAD_S:
            # faster-whisper's first try on the full window, done here for its scores
            heard = self._transcribe_short(audio, FULL_WINDOW_S, prompt)
            if heard is not None:
                return heard
        return Heard(self.transcribe_full(audio, prompt))

    def transcribe_full(self, audio: np.ndarray, prompt: str = "") -> str:
        """faster-whisper's own transcription: the 30 s window, its temperature fallback."""
        segments, _info = self.model.transcribe(
            audio,
            beam_size=self.cfg.beam_size,
            language=self.cfg.language,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            initial_prompt=prompt or None,
        )
        # the generator does the work lazily: consume it here, on this thread
        return " ".join(s.text.strip() for s in segments).strip()

    def _transcribe_short(self, audio: np.ndarray, window_s: float, prompt: str = "") -> Heard | None:
        """One greedy pass on a window of ``window_s``; None when its text must not be trusted."""
        from faster_whisper.transcribe import get_compression_ratio

        start = self._task_tokens
        if prompt:  # as faster-whisper lays out an initial prompt: previous text, then the task
            previous = self._tokenizer.encode(" " + prompt.strip())[-(self.model.max_length // 2 - 1) :]
            start = [self._tokenizer.sot_prev, *previous, *start]

        features = self.model.feature_extractor(audio)
        content = features.shape[-1] - 1  # as faster-whisper counts it: the last frame is padding
        frames = int(window_s * FRAMES_PER_S)
        window = np.zeros((features.shape[0], frames), dtype=features.dtype)
        window[:, :content] = features[:, :content]  # zeros after, as faster-whisper pads
        result = self.model.model.generate(
            self.model.encode(window),
            [start],
            beam_size=self.cfg.beam_size,
            max_length=self.model.max_length,
            return_scores=True,
            return_logits_vocab=True,  # the last word's probability: no slower (measured 69 / 73 ms)
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        tokens = result.sequences_ids[0]
        text = self._tokenizer.decode(tokens).strip()
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        ratio = get_compression_ratio(text) if text else 0.0
        if ratio > COMPRESSION_RATIO_MAX or avg_logprob < AVG_LOGPROB_MIN:
            log.debug("short window unsure (ratio %.2f, logprob %.2f): full window", ratio, avg_logprob)
            return None
        return Heard(text, self._last_word_p(tokens, result.logits[0]))

    def _last_word_p(self, tokens: list[int], logits: list) -> float | None:  # type: ignore[type-arg]
        """The mean probability of the last word's tokens, as faster-whisper's word timestamps
        count a word's (its closing punctuation apart: "it." is " it")."""
        pieces = [self._tokenizer.decode([t]) for t in tokens]
        word = [
            i for i, piece in enumerate(pieces) if piece.strip() and piece.strip() not in string.punctuation
        ]
        if not word or len(logits) < len(tokens):
            return None
        first = word[-1]
        while first > 0 and not pieces[first].startswith(" ") and first - 1 in word:
            first -= 1  # a word is its tokens back to the one that starts with a space
        probs = []
        for i in range(first, word[-1] + 1):
            step = np.asarray(logits[i], dtype=np.float64)
            probs.append(float(np.exp(step[tokens[i]] - step.max()) / np.exp(step - step.max()).sum()))
        return float(np.mean(probs))

    def warm_up(self) -> None:
        silence = np.zeros(PIPELINE_RATE // 2, dtype=np.int16)
        self.transcribe(silence)
        if self._short_ok and not self._full_warm:  # once: the first fallback should not pay set-up
            self.transcribe_full(int16_to_float(silence))
            self._full_warm = True


def supported_compute_type(device: str, wanted: str) -> str:
    """``wanted``, or float32 where this machine's CTranslate2 cannot run it: int16 needs its MKL
    backend, which it uses on Intel CPUs (on AMD it picks oneDNN, which has no int16 kernels)."""
    import ctranslate2

    if wanted in ("default", "auto") or wanted in ctranslate2.get_supported_compute_types(device):
        return wanted
    fallback = "float32" if device == "cpu" else "float16"
    log.warning("asr.compute_type %s is not supported on this %s: using %s", wanted, device, fallback)
    return fallback


def _cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:
        return False
