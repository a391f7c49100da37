"""GPU check for the LLM, in one call on a lent GPU machine (nothing to install: torch with CUDA,
transformers and this package must already be importable; torchao is optional).

    python bench/gpu_check.py [--model DIR] [--tokens 32]

1. Correctness: greedy output of each GPU setting against the CPU fp32 reference on fixed prompts
   (share of identical tokens, and whether the first sentence is the same).
2. Speed: time to first token and tokens/s per GPU setting (median over the prompts, after warm-up).
Exit code 0 when every available setting matches, 1 when one diverges, 3 when there is no CUDA device.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from assistant.config import load_config
from assistant.engines.local_llm import LlmEngine
from assistant.engines.store import ModelStore

PROMPTS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "Which planet is known as the red planet?",
    "What do bees make?",
    "What is the capital of Japan?",
]
SETTINGS = ["bf16", "fp16", "none", "int8", "int4"]  # int8/int4: torchao weight-only, when installed


def run(engine: LlmEngine, system: str, prompt: str) -> tuple[str, float, float]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    start = time.monotonic()
    first = None
    pieces = []
    for piece in engine.stream(messages):
        first = first or time.monotonic()
        pieces.append(piece)
    end = time.monotonic()
    ttft = (first or end) - start
    rate = (len(pieces) - 1) / (end - first) if first and len(pieces) > 1 else float("nan")
    return "".join(pieces), ttft, rate


def first_sentence(text: str) -> str:
    return text.strip().split(".")[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="LLM folder (default: the configured model's cache)")
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens per prompt")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check (this script is for a GPU machine)")
        return 3
    cfg = load_config(overrides=[f"llm.max_new_tokens={args.tokens}"])
    model_dir = args.model or ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    system = cfg.llm.system_prompt
    print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, model {model_dir}")

    reference = LlmEngine(model_dir, replace(cfg.llm, device="cpu", quantization="none", prefix_cache=False))
    expected = [run(reference, system, p)[0] for p in PROMPTS]
    del reference

    ok = True
    print(f"\n{'setting':8} {'ttft ms':>8} {'tok/s':>8} {'same tokens':>12} {'same 1st sentence':>18}")
    for setting in SETTINGS:
        try:
            engine = LlmEngine(
                model_dir, replace(cfg.llm, device="cuda", quantization=setting, prefix_cache=False)
            )
        except Exception as exc:  # torchao missing, kernel unsupported: say so, go on
            print(f"{setting:8} skipped: {exc}")
            continue
        engine.warm_up()
        results = [run(engine, system, p) for p in PROMPTS]
        tok = engine.tokenizer
        same = []
        for (text, _, _), want in zip(results, expected, strict=True):
            a, b = tok(text)["input_ids"], tok(want)["input_ids"]
            same.append(sum(x == y for x, y in zip(a, b, strict=False)) / max(len(a), len(b), 1))
        sentences = sum(
            first_sentence(r[0]) == first_sentence(w) for r, w in zip(results, expected, strict=True)
        )
        matches = sentences >= len(PROMPTS) - 1  # low precision may flip one late token
        ok &= matches or setting in ("int8", "int4")  # weight-only int: reported, not required
        print(
            f"{setting:8} {statistics.median(r[1] for r in results) * 1000:8.1f} "
            f"{statistics.median(r[2] for r in results):8.1f} {statistics.mean(same):12.0%} "
            f"{sentences:>12}/{len(PROMPTS)}"
        )
        del engine
        torch.cuda.empty_cache()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
