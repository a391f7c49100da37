"""Word errors of the pipeline's recognition per Whisper encoder window, on the golden test corpus.

    .venv/bin/python bench/asr_window.py [--windows 30,20,15,12,10]

Every file of tests/test_golden.py's corpus (6 questions x 8 voice and channel variants) runs
through the pipeline's VAD and recogniser (the test's own `pipeline_transcript`) once per
`asr.window_s`; raw faster-whisper on the whole file (its own 30 s window) is the baseline, as in
the test, whose bound is raw + 1% of the words. Printed: word errors per window (and per variant),
then every transcript that has one.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from assistant import build
from assistant.audio.convert import int16_to_float
from assistant.config import load_config
from tests.speech.make_speech import render, word_errors
from tests.test_golden import CASES, VARIANTS, load_16k, pipeline_transcript


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="30,20,15,12,10", help="asr.window_s values, comma-separated")
    args = parser.parse_args()
    cfg = load_config()
    store = build.model_store(cfg)
    windows = [float(w) for w in args.windows.split(",")]
    configs = {w: dataclasses.replace(cfg, asr=dataclasses.replace(cfg.asr, window_s=w)) for w in windows}
    engines = {w: build.whisper_engine(c, store) for w, c in configs.items()}
    raw_engine = engines[max(windows)]
    raw = words = 0
    errors = {w: dict.fromkeys(VARIANTS, 0) for w in windows}
    wrong: list[tuple[float, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            for case_id in CASES:
                path = render(case_id, variant, Path(tmp))
                reference = path.with_suffix(".txt").read_text()
                raw_errors, n = word_errors(
                    reference, raw_engine.transcribe_full(int16_to_float(load_16k(path)))
                )
                raw, words = raw + raw_errors, words + n
                for w in windows:
                    text = pipeline_transcript(configs[w], engines[w], path)
                    e = word_errors(reference, text)[0]
                    errors[w][variant] += e
                    if e:
                        wrong.append((w, variant, case_id, text))
    print(f"{words} words; raw faster-whisper (whole files, 30 s window): {raw} word errors")
    print(f"{'window_s':>8} {'errors':>6}  per variant")
    for w in windows:
        print(f"{w:8.0f} {sum(errors[w].values()):6d}  {errors[w]}")
    for w, variant, case_id, text in wrong:
        print(f"  {w:.0f} s  {variant}/{case_id}: {text}")


if __name__ == "__main__":
    main()
