"""Word errors and pass times of the pipeline's recognition per encoder window and precision, on the
golden test corpus.

    .venv/bin/python bench/asr_window.py [--windows 30,20,15,12,10] [--compute-types float32,int16]
                                         [--blas-threads 1,2] [--set vad.pause_ms=60]

Every file of tests/test_golden.py's corpus (6 questions x 8 voice and channel variants) runs
through the pipeline's VAD and recogniser (the test's own `pipeline_transcript`) once per
(`asr.compute_type`, `asr.window_s`); raw faster-whisper on the whole file (its own 30 s window, the
first compute type) is the baseline, as in the test, whose bound is raw + 1% of the words. Printed:
word errors per setting (and per variant), the median time of one recognition pass over each
file's speech (trimmed as the VAD cuts it, within 0.1 s), side by side in the same run, then every
transcript that has an error. ``--blas-threads`` times each pass once per count of numpy's BLAS
threads (the recogniser runs with 1: engines/openmp.py), alternating, in columns of their own.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from assistant import build
from assistant.audio.convert import PIPELINE_RATE, int16_to_float
from assistant.config import load_config
from tests.speech.make_speech import render, word_errors
from tests.test_golden import CASES, VARIANTS, load_16k, pipeline_transcript

Setting = tuple[str, float]  # (compute_type, window_s)


def speech_only(pcm: np.ndarray) -> np.ndarray:
    """The file's audio from 0.1 s before its first loud sample to 0.1 s after its last."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 600)
    if not len(loud):
        return pcm
    pad = PIPELINE_RATE // 10
    return pcm[max(0, loud[0] - pad) : loud[-1] + pad]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", default="30,20,15,12,10", help="asr.window_s values, comma-separated")
    parser.add_argument(
        "--compute-types", default=None, help="asr.compute_type values, comma-separated (default: config's)"
    )
    parser.add_argument(
        "--blas-threads", default="1", help="numpy BLAS thread counts to time each pass with, comma-separated"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="every setting")
    args = parser.parse_args()
    blas = [int(b) for b in args.blas_threads.split(",")]
    cfg = load_config(overrides=args.set)
    store = build.model_store(cfg)
    windows = [float(w) for w in args.windows.split(",")]
    types = args.compute_types.split(",") if args.compute_types else [cfg.asr.compute_type]
    settings: list[Setting] = [(ct, w) for ct in types for w in windows]
    configs = {
        s: dataclasses.replace(cfg, asr=dataclasses.replace(cfg.asr, compute_type=s[0], window_s=s[1]))
        for s in settings
    }
    engines = {s: build.whisper_engine(c, store) for s, c in configs.items()}
    raw_engine = engines[(types[0], max(windows))]
    raw = words = 0
    errors = {s: dict.fromkeys(VARIANTS, 0) for s in settings}
    pass_ms: dict[tuple[Setting, int], list[float]] = {(s, b): [] for s in settings for b in blas}
    wrong: list[tuple[Setting, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in VARIANTS:
            for case_id in CASES:
                path = render(case_id, variant, Path(tmp))
                reference = path.with_suffix(".txt").read_text()
                pcm = load_16k(path)
                raw_errors, n = word_errors(reference, raw_engine.transcribe_full(int16_to_float(pcm)))
                raw, words = raw + raw_errors, words + n
                speech = speech_only(pcm)
                for s in settings:  # side by side, file by file: the machine's load hits all alike
                    text = pipeline_transcript(configs[s], engines[s], path)
                    e = word_errors(reference, text)[0]
                    errors[s][variant] += e
                    if e:
                        wrong.append((s, variant, case_id, text))
                    for b in blas:  # (a pass computes its features, then encodes: as in the pipeline)
                        with threadpool_limits(limits=b, user_api="blas"):
                            t0 = time.perf_counter()
                            engines[s].hear(speech)
                            pass_ms[(s, b)].append((time.perf_counter() - t0) * 1000)
    print(f"{words} words; raw faster-whisper ({types[0]}, whole files, 30 s window): {raw} word errors")
    base = statistics.median(pass_ms[(settings[0], blas[0])])
    heads = "".join(f"{f'pass ms, blas {b}':>17}{'ratio':>6}" for b in blas)
    print(f"{'compute_type':>12} {'window_s':>8} {'errors':>6}{heads}  per variant")
    for s in settings:
        times = ""
        for b in blas:
            ms = statistics.median(pass_ms[(s, b)])
            times += f"{ms:17.0f}{ms / base:6.2f}"
        print(f"{s[0]:>12} {s[1]:8.0f} {sum(errors[s].values()):6d}{times}  {errors[s]}")
    for s, variant, case_id, text in wrong:
        print(f"  {s[0]} {s[1]:.0f} s  {variant}/{case_id}: {text}")


if __name__ == "__main__":
    main()
