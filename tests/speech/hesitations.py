"""A corpus of hesitations made the realistic way, for end-of-turn tests and bench/turns.py.

Each sentence is spoken whole, in one go (piper, and espeak-ng at several speeds), so the words before
the pause keep their mid-sentence intonation; then 0.6-1.2 s of silence is inserted at the word
boundary inside it ("What is the capital of ... France?"). The boundary is found by synthesising the
second half alone with the same voice (the whole's length less its length says roughly where it
starts: said alone, the first half would be longer, its last word drawn out as a sentence's end) and
taking the quietest 10 ms within 100 ms of there: the gap or energy dip between the two words.
The same sentences without the pause, and short complete questions, come with it.

    from tests.speech.hesitations import render_corpus
    items = render_corpus(tmp_path)          # [Item(kind, text, path), ...]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.speech.make_speech import (
    POST_SILENCE_S,
    PRE_SILENCE_S,
    SPEECH_PEAK,
    SYNTH_RATE,
    VARIANTS,
    _frame_rms,
    compose,
    load_questions,
    sox,
    synth,
    trim_silence,
    write_wav,
)

# (said before the pause, said after it): the first half is unfinished on its own
SENTENCES = [
    ("What is the capital of", "France?"),
    ("How many legs does a", "spider have?"),
    ("Set a timer for", "five minutes."),
    ("Tell me about the", "moon."),
    ("What is the largest", "planet in the solar system?"),
    ("Who was the first", "president of the United States?"),
]
# Held out: other phrasings, never used to choose a threshold, so the figures say how the choice
# carries to sentences it was not tuned on (render them into another folder: the names overlap).
HELD_OUT = [
    ("Can you tell me how", "tall Mount Everest is?"),
    ("Please remind me to buy", "milk on the way home."),
    ("How long should I boil", "an egg?"),
    ("Who wrote the novel", "Pride and Prejudice?"),
    ("Turn off all the lights in the", "kitchen."),
    ("What is the distance between the Earth and", "the Moon?"),
    ("Why is the sky", "blue?"),
    ("What's the weather going to be like", "tomorrow in London?"),
]
# voices: the assistant's own piper voice at two speeds, espeak-ng at two speeds
VOICES = ["piper", "tempo_fast", "espeak_us", "espeak_fast"]
PAUSES_S = [0.6, 0.8, 1.0, 1.2]  # cycled over the recordings
SEARCH_S = 0.1  # how far from the estimate the boundary may lie


@dataclass(frozen=True)
class Item:
    kind: str  # "hesitation", "whole" (the same sentence, no pause), "question" (short, complete)
    text: str  # the whole sentence as said
    path: Path
    pause_s: float = 0.0


def boundary(whole: np.ndarray, second: np.ndarray, rate: int = SYNTH_RATE) -> int:
    """Sample index of the word boundary in ``whole`` before the words synthesised alone in ``second``."""
    frame = rate // 100
    rms = _frame_rms(whole, frame)
    guess = (len(whole) - len(second)) // frame
    lo, hi = max(1, guess - round(SEARCH_S * 100)), min(len(rms) - 1, guess + round(SEARCH_S * 100))
    return (lo + int(np.argmin(rms[lo:hi]))) * frame


def _speech(text: str, variant: str) -> np.ndarray:
    v = VARIANTS[variant]
    return sox(trim_silence(synth(text, v), SYNTH_RATE), SYNTH_RATE, v.speech_fx)


def _write(path: Path, audio: np.ndarray, text: str) -> Path:
    audio = sox(audio, SYNTH_RATE, (), out_rate=16000)
    audio = np.clip(audio * (SPEECH_PEAK / max(float(np.max(np.abs(audio))), 1e-9)), -1, 1)
    write_wav(path, audio.astype(np.float32), 16000, text)
    return path


def render_corpus(
    out_dir: Path,
    voices: list[str] | None = None,
    questions: int = 6,
    sentences: list[tuple[str, str]] | None = None,
    skip_questions: int = 0,
) -> list[Item]:
    """Render (cached) every hesitation, its unbroken twin and ``questions`` short questions per voice
    (from questions.yaml's single-turn ones, after the first ``skip_questions``); ``sentences``:
    SENTENCES unless given (HELD_OUT)."""
    items: list[Item] = []
    for vi, voice in enumerate(voices or VOICES):
        for si, (head, tail) in enumerate(sentences or SENTENCES):
            text = f"{head} {tail}"
            pause = PAUSES_S[(vi + si) % len(PAUSES_S)]
            hes = out_dir / voice / f"hesitation_{si}.wav"
            whole_path = out_dir / voice / f"whole_{si}.wav"
            if not hes.exists() or not whole_path.exists():
                whole = _speech(text, voice)
                cut = boundary(whole, _speech(tail, voice))
                gap = np.zeros(round(pause * SYNTH_RATE), np.float32)
                broken = np.concatenate([whole[:cut], gap, whole[cut:]])
                _write(hes, compose([broken], SYNTH_RATE, PRE_SILENCE_S, 0, POST_SILENCE_S), text)
                _write(whole_path, compose([whole], SYNTH_RATE, PRE_SILENCE_S, 0, POST_SILENCE_S), text)
            items += [Item("hesitation", text, hes, pause), Item("whole", text, whole_path)]
        for case in [c for c in load_questions() if not c.multi_turn][skip_questions:][:questions]:
            path = out_dir / voice / f"question_{case.id}.wav"
            if not path.exists():
                _write(
                    path,
                    compose([_speech(case.text, voice)], SYNTH_RATE, PRE_SILENCE_S, 0, POST_SILENCE_S),
                    case.text,
                )
            items.append(Item("question", case.text, path))
    return items
