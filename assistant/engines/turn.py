"""End of turn from how it was said: pipecat's Smart Turn v3.2 audio model (ONNX, 8.7 MB, BSD-2-Clause).

Given the last 8 s of a turn (16 kHz) at a pause, the model returns the probability that the speaker
has finished: a question with a falling close scores ~0.9+, "How many legs does a ..." ~0.02. It
ships inside the ``pipecat-ai`` wheel, installed ``--no-deps`` (scripts/setup.sh): only the ONNX file
is used, found without importing pipecat (whose import pulls in its many dependencies).

The features are Whisper's log-mel spectrogram over an 8 s window with the waveform normalised to
zero mean and unit variance, as pipecat computes them (its vendored copy of transformers'
``WhisperFeatureExtractor(chunk_length=8)``); faster-whisper's extractor gives the same numbers
(max difference 2e-7 on a test signal) and is already installed for recognition.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Words a finished sentence rarely ends on (articles, prepositions, conjunctions, possessives,
# auxiliaries): "What is the capital of", "Set a timer for", "I was wondering if you could".
_DANGLING_WORDS = (
    "a", "an", "the", "of", "to", "for", "from", "with", "in", "on", "at", "by", "about", "into",
    "onto", "than", "and", "or", "but", "nor", "so", "because", "if", "that", "whether", "my",
    "your", "his", "her", "its", "our", "their", "this", "these", "those", "is", "are", "was",
    "were", "be", "been", "am", "do", "does", "did", "can", "could", "would", "should", "will",
    "shall", "may", "might", "must", "very",
)  # fmt: skip
# A filler as the last word: the speaker is still looking for the next one ("What is the, um")
FILLERS = frozenset(("um", "umm", "uh", "uhh", "uhm", "er", "erm"))
DANGLING = frozenset(_DANGLING_WORDS) | FILLERS
# The few a finished sentence all but never ends on: the LLM judge (engines/llm_turn.py) decides the
# rest, which questions often end on ("Where are you from?", "Can you repeat that?", "... it is?")
NEVER_LAST = FILLERS | frozenset(
    ("a", "an", "the", "my", "your", "our", "their", "and", "or", "nor", "of", "than", "very")
)
SAMPLE_RATE = 16000
WINDOW_S = 8  # the model's input: the last 8 s, zero-padded at the front when shorter
PACKAGE = "pipecat"
MODEL_FILE = Path("audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx")
MODEL_SHA256 = "2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f"  # pipecat-ai 1.14.0


TEXT_DOUBT = 0.2  # a transcript that does not dangle is finished with at least 1 - this


def ends_unfinished(text: str, words: frozenset[str] = DANGLING) -> bool:
    """The transcript stops on a word a sentence does not end on ("... the capital of"): one of
    ``words`` (or Whisper's mark for speech that trails off, or for a word broken off)."""
    # Whisper's own marks: "Set a timer for..." trails off, "Please remind me to-" breaks off (the
    # LLM gave "please remind me to-" 0.57 against the 0.5 cut: finished)
    if text.rstrip().endswith(("...", "…", "-", "–", "—")):
        return True
    said = text.lower().split()
    last = said[-1].strip(".,;:!?\"'-") if said else ""
    # a sentence mark after the word is Whisper's guess, not the speaker's: "capital of." still dangles
    return last in words


# The words Whisper's decoder puts in for an object it did not hear, closing a sentence's first half
STAND_INS = frozenset(("it", "that", "this", "them", "these", "those", "there", "one", "him", "her"))


def without_last_word(text: str, last_word_p: float | None, doubt: float) -> str | None:
    """The transcript without its last word when that word is a stand-in the recogniser doubted
    (probability under ``doubt``), else None. At a pause inside a sentence tiny.en often closes the
    first half with an object nobody said: "Set a timer for it." (its "it" at 0.23-0.43), "Tell me
    about that.", "How long should I boil it?" (0.32-0.49), where a question's real last word is
    ~0.99 (bench/last_word.py). The judge then also reads the text without it, and holds the turn
    when that is unfinished ("set a timer for"). Only stand-ins: a real last word doubted is most
    often a name ("What is the capital of France?" 0.46 in espeak-ng's voice), which doubting held
    2 s in 2 of 24 complete questions."""
    words = text.split()
    last = words[-1].strip(".,;:!?\"'-").lower() if words else ""
    if last_word_p is None or last_word_p >= doubt or last not in STAND_INS or len(words) < 2:
        return None
    return " ".join(words[:-1])


def blend(
    p_audio: float | None, text: str | None, last_word_p: float | None = None, doubt: float = 0.0
) -> float:
    """The turn's P(finished) from the audio's and, when known, the speculative transcript.

    Measured on tests/speech/hesitations.py (sentences spoken whole, a pause inserted mid-way):
    the audio model heard piper's "How many legs does a ..." as unfinished (0.34) but judged
    espeak-ng's robotic hesitations finished (0.83-0.98) and some of its complete questions
    unfinished ("What is two plus two?" 0.009). The transcript's last word is the stronger cue
    (though tiny.en sometimes rounds a sentence off: "What is the capital?"), so once the
    transcript is known it decides; the audio decides alone until then.
    """
    if text is None or not text.strip():
        return 1.0 if p_audio is None else p_audio  # nothing to go on (nothing said): end it
    shorter = without_last_word(text, last_word_p, doubt)
    if ends_unfinished(text) or (shorter is not None and ends_unfinished(shorter)):
        return 0.0
    return max(p_audio or 0.0, 1.0 - TEXT_DOUBT)


class TurnModelMissing(RuntimeError):
    """The Smart Turn model is not installed (or is not the file we know)."""


def smart_turn_path(verify: bool = True) -> Path:
    """The ONNX file inside the installed pipecat-ai package; the package is located, never imported."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TurnModelMissing("the Smart Turn model needs `pip install --no-deps pipecat-ai==1.14.0`")
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise TurnModelMissing(f"{path}: not found; install pipecat-ai==1.14.0")
    if verify and hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        raise TurnModelMissing(f"{path}: sha256 differs from pipecat-ai 1.14.0's Smart Turn v3.2")
    return path


class SmartTurnEngine:
    """``complete(pcm)``: P(the turn is finished) for 16 kHz mono audio ending at the pause."""

    def __init__(self, path: Path | None = None, threads: int = 1, doubt: float = 0.0) -> None:
        """``doubt``: a last word the recogniser was less sure of is read as maybe not said."""
        self.doubt = doubt
        import onnxruntime as ort
        from faster_whisper.feature_extractor import FeatureExtractor

        options = ort.SessionOptions()
        # one thread: it runs at a pause, alongside speculative recognition and generation
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(
            str(path or smart_turn_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._features = FeatureExtractor(chunk_length=WINDOW_S)

    def complete(self, pcm: np.ndarray) -> float:
        audio = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32)
        n = WINDOW_S * SAMPLE_RATE
        audio = audio[-n:]
        audio = np.pad(audio, (n - len(audio), 0))
        audio = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
        features = self._features(audio, padding=0)[None, :, : WINDOW_S * 100].astype(np.float32)
        return float(np.asarray(self._session.run(None, {"input_features": features})[0]).reshape(-1)[0])

    def blend(self, p_audio: float | None, text: str | None, last_word_p: float | None = None) -> float:
        return blend(p_audio, text, last_word_p, self.doubt)

    def warm_up(self) -> None:
        t0 = time.monotonic()
        self.complete(np.zeros(SAMPLE_RATE, dtype=np.int16))
        log.debug("smart turn warm-up took %.0f ms", (time.monotonic() - t0) * 1000)
