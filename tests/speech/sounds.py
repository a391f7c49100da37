"""The sounds said over a reply in the interruption tests and benchmarks (issue 14): short phrases in
the piper voice, a cough-like noise, and the question whose answer is long enough to talk over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000
LONG_QUESTION = "Explain how a car engine works."  # the shipped LLM answers it at length


def spoken(text: str, path: Path, post_s: float = 1.0) -> Path:
    """``text`` in the piper voice the tests use, 16 kHz, with a little silence around it."""
    from assistant.audio.convert import resample
    from tests.speech.make_speech import SYNTH_RATE, synth_piper, trim_silence

    audio = resample(trim_silence(synth_piper(text), SYNTH_RATE), SYNTH_RATE, RATE)
    return write(path, np.concatenate([np.zeros(int(0.1 * RATE)), audio * 0.7, np.zeros(int(post_s * RATE))]))


def said(text: str, voice: str = "piper") -> np.ndarray:
    """``text`` in piper's voice (or espeak-ng's en-us: ``voice="espeak"``), 16 kHz float, peak 0.5,
    no silence around it: a sound to mix over a reply (``over_reply``)."""
    from assistant.audio.convert import resample
    from tests.speech.make_speech import SYNTH_RATE, synth_espeak, synth_piper, trim_silence

    audio = synth_piper(text) if voice == "piper" else synth_espeak(text, "en-us")
    audio = resample(trim_silence(audio, SYNTH_RATE), SYNTH_RATE, RATE)
    return audio / np.abs(audio).max() * 0.5


def over_reply(user: np.ndarray, reply: np.ndarray, offset_s: float) -> np.ndarray:
    """``user`` (a quarter second of silence either side) with ``reply`` from ``offset_s`` on under it,
    as 16 kHz int16: what the microphone hears when the user talks over the assistant."""
    from assistant.audio.convert import float_to_int16

    mix = np.concatenate([np.zeros(RATE // 4), user, np.zeros(RATE // 4)])
    echo = reply[int(offset_s * RATE) :][: len(mix)]
    mix[: len(echo)] += echo
    return float_to_int16(mix)


def cough(path: Path) -> Path:
    """Two short bursts of low-passed noise with a sharp attack: a cough, no words."""
    rng = np.random.default_rng(14)
    bursts = []
    for length_s in (0.18, 0.14):
        n = int(length_s * RATE)
        noise = np.convolve(rng.standard_normal(n), np.ones(6) / 6, mode="same")
        envelope = np.exp(-np.arange(n) / (0.05 * RATE))
        bursts += [0.5 * noise * envelope / np.abs(noise).max(), np.zeros(int(0.08 * RATE))]
    return write(path, np.concatenate([np.zeros(int(0.1 * RATE)), *bursts, np.zeros(RATE)]))


def over_a_reply(work: Path) -> dict[str, Path]:
    """The long question ("long") and what the tests and benchmarks say over its answer: "stop",
    "cough", "mm-hmm", and another question ("question"), written into ``work``."""
    return {
        "long": spoken(LONG_QUESTION, work / "long.wav", post_s=1.5),
        "stop": spoken("Stop.", work / "stop.wav"),
        "cough": cough(work / "cough.wav"),
        "mm-hmm": spoken("Mm-hmm.", work / "mmhmm.wav"),
        "question": spoken("How many legs does a spider have?", work / "question.wav", post_s=1.5),
    }


def write(path: Path, audio: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.astype(np.float32), RATE, subtype="PCM_16")
    return path
