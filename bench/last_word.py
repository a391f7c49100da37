"""How sure Whisper is of the last word at a pause: hesitations' heads against complete questions.

    .venv/bin/python bench/last_word.py [--voices piper,espeak_us] [--show]

Every hesitation of tests/speech/hesitations.py (both lists) is cut where the speculative pass cuts
it (0.1 s of audio after its last voiced 20 ms frame, then 0.1 s of digital silence), and every
complete question at its end; raw faster-whisper transcribes the cut with word timestamps. Printed
per kind: how many cuts, the last word's probability (median, and the share under 0.5 and 0.75),
and the share of last words that end after the real audio (in the appended silence). tiny.en often
closes a sentence's first half with a word that was not said ("Set a timer for it."): this is the
measure of whether such words can be told apart from a question's real last word (issue 13).
--show lists every cut's last words.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from assistant import build
from assistant.audio.convert import PIPELINE_RATE, int16_to_float
from assistant.config import load_config
from tests.speech.hesitations import HELD_OUT, VOICES, Item, render_corpus

FRAME = PIPELINE_RATE // 50  # 20 ms, the VAD's frame
VOICED_RMS = 300  # mean absolute level of a voiced frame in these clean recordings
AFTER_S, ZEROS_S = 0.1, 0.1  # what the speculative pass hears after the last voiced frame


def cut_point(item: Item, pcm: np.ndarray) -> int:
    """Sample index of the end of speech before the pause (a hesitation) or at the end (a question)."""
    level = np.abs(pcm.astype(np.float32))
    voiced = np.array([level[i : i + FRAME].mean() > VOICED_RMS for i in range(0, len(pcm) - FRAME, FRAME)])
    frames = np.nonzero(voiced)[0]
    first, last = int(frames[0]), int(frames[-1])
    if item.kind != "hesitation":
        return (last + 1) * FRAME
    best_len, best_start, run = 0, first, 0
    for i in range(first, last + 1):  # the inserted pause: the longest silence inside the speech
        run = 0 if voiced[i] else run + 1
        if run > best_len:
            best_len, best_start = run, i - run + 1
    return best_start * FRAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--show", action="store_true", help="print every cut's last words")
    args = parser.parse_args()
    cfg = load_config()
    whisper = build.whisper_engine(cfg, build.model_store(cfg))
    out = Path(tempfile.gettempdir()) / "bench-turns"
    voices = args.voices.split(",")
    corpus = render_corpus(out, voices) + render_corpus(
        out / "heldout", voices, 6, HELD_OUT, skip_questions=6
    )
    last: dict[str, list[tuple[float, bool]]] = {"hesitation": [], "question": []}
    for item in corpus:
        if item.kind not in last:
            continue
        pcm, rate = sf.read(item.path, dtype="int16")
        assert rate == PIPELINE_RATE, item.path
        heard = pcm[: cut_point(item, pcm) + int(AFTER_S * PIPELINE_RATE)]
        audio = int16_to_float(np.concatenate([heard, np.zeros(int(ZEROS_S * PIPELINE_RATE), np.int16)]))
        segments, _ = whisper.model.transcribe(
            audio, language="en", beam_size=1, condition_on_previous_text=False, word_timestamps=True
        )
        words = [w for s in segments for w in s.words]
        if not words:
            continue
        past = words[-1].end > len(heard) / PIPELINE_RATE
        last[item.kind].append((words[-1].probability, past))
        if args.show:
            said = " ".join(f"{w.word.strip()}({w.probability:.2f})" for w in words[-3:])
            print(f"{item.kind:10} {item.path.parent.name:12} {said}{'  [past the audio]' if past else ''}")
    print(f"\n{'kind':12}{'cuts':>6}{'median p':>10}{'p < 0.5':>9}{'p < 0.75':>10}{'past audio':>12}")
    for kind, found in last.items():
        probs = [p for p, _ in found]
        if not probs:
            continue
        under = [sum(p < cut for p in probs) / len(probs) for cut in (0.5, 0.75)]
        past = sum(pa for _, pa in found) / len(found)
        print(
            f"{kind:12}{len(probs):6}{statistics.median(probs):10.2f}{under[0]:9.0%}{under[1]:10.0%}{past:12.0%}"
        )


if __name__ == "__main__":
    main()
