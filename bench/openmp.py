"""The LLM's decode step beside faster-whisper, with and without the OpenMP measures.

    .venv/bin/python bench/openmp.py [--rounds 3] [--tokens 40]

engines/openmp.py keeps CTranslate2 on its own libgomp and runs every torch call of the LLM on one
compute thread. Each setting here is a fresh process that loads faster-whisper and the LLM as the
assistant does, transcribes a second of audio, then times greedy decode steps of one prompt:
  shipped        both measures (what the assistant does)
  shared         CTranslate2 imported after torch, so it runs on torch's libgomp
  second_pool    a torch parallel region run on the main thread first, so torch keeps two pools
  before         both undone: how the assistant ran before the measures
Settings alternate round by round so a busy machine hurts them alike. Prints ms per decode step
(median of each process's median, p95 over all steps) and the ratio against ``before``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from assistant.eval.stats import percentile

SETTINGS = {
    "before": ["--shared", "--second-pool"],
    "shared": ["--shared"],
    "second_pool": ["--second-pool"],
    "shipped": [],
}
PROMPT = "Tell me a long story about a brave cat who sails the sea."


def child(args: argparse.Namespace) -> None:
    """One setting in this process: print the decode steps' times (ms) as JSON."""
    from assistant.engines.openmp import load_ctranslate2_apart

    if args.shared:
        import torch  # noqa: F401  # first: its libgomp goes into the global scope
    load_ctranslate2_apart()  # too late to keep it apart if torch came first
    import numpy as np

    from assistant import build
    from assistant.config import load_config

    cfg = load_config()
    if args.second_pool:
        import torch

        torch.randn(1 << 22).exp_()  # large enough for a parallel region on this thread
    store = build.model_store(cfg)
    whisper = build.whisper_engine(cfg, store)  # imports CTranslate2 apart, unless torch came first
    llm = build.llm_engine(cfg, store)
    llm.warm_up()
    whisper.transcribe((np.random.default_rng(0).standard_normal(16000) * 300).astype(np.int16))
    messages = [{"role": "system", "content": cfg.llm.system_prompt}, {"role": "user", "content": PROMPT}]
    steps: list[float] = []
    for _ in range(2):
        marks = []
        for _piece in llm.stream(messages):
            marks.append(time.perf_counter())
            if len(marks) > args.tokens:
                break
        steps += [1000 * (b - a) for a, b in zip(marks, marks[1:], strict=False)]
    print(json.dumps(steps))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--second-pool", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    root = Path(__file__).resolve().parent.parent
    medians: dict[str, list[float]] = {name: [] for name in SETTINGS}
    steps: dict[str, list[float]] = {name: [] for name in SETTINGS}
    names = list(SETTINGS)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            cmd = [sys.executable, __file__, "--child", "--tokens", str(args.tokens), *SETTINGS[name]]
            out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            medians[name].append(statistics.median(run))
            steps[name] += run
            print(f"  round {r + 1}: {name:12} {medians[name][-1]:6.1f} ms/step", file=sys.stderr)

    base = statistics.median(medians["before"])
    print(f"\nLLM decode step beside faster-whisper, ms ({args.rounds} processes each)")
    print(f"{'setting':14}{'median':>9}{'p95':>9}{'x before':>10}")
    for name in names:
        median = statistics.median(medians[name])
        p95 = percentile(sorted(steps[name]), 95)
        print(f"{name:14}{median:9.1f}{p95:9.1f}{base / median:10.2f}")


if __name__ == "__main__":
    main()
