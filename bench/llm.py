"""LLM benchmark: time to first token, tokens per second, memory and answer quality per setting,
and the prefix cache's effect on turn 1 vs turn 5.

    .venv/bin/python bench/llm.py [--settings none,int8] [--questions N] [--prompt TEXT]

Quality: share of the spoken-style questions in bench/llm_questions.yaml whose answer contains an
expected keyword. Every setting runs in this process, one after the other, on the same questions.
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import statistics
import time
from dataclasses import replace
from pathlib import Path

import yaml

from assistant.config import load_config
from assistant.engines.local_llm import LlmEngine
from assistant.engines.store import ModelStore

HERE = Path(__file__).resolve().parent


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def mentions(text: str, keywords: list[str]) -> bool:
    low = text.lower()
    return any(re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", low) for k in keywords)


def run_setting(model_dir: Path, cfg, questions, system_prompt: str) -> dict:  # type: ignore[no-untyped-def]
    gc.collect()
    before = rss_mb()
    start = time.monotonic()
    engine = LlmEngine(model_dir, cfg)
    load_s = time.monotonic() - start
    engine.warm_up()
    ttfts, rates, correct, samples = [], [], 0, []
    for text, keywords in questions:
        messages = [{"role": "system", "content": system_prompt}, {"role": "user", "content": text}]
        t0 = time.monotonic()
        first = None
        reply = ""
        n = 0
        for piece in engine.stream(messages):
            first = first or time.monotonic()
            reply += piece
            n += 1
        end = time.monotonic()
        if first is not None:
            ttfts.append(first - t0)
            if n > 1:
                rates.append((n - 1) / (end - first))
        correct += mentions(reply, keywords)
        samples.append(reply.strip().replace("\n", " ")[:70])
    return {
        "load_s": load_s,
        "ttft": statistics.median(ttfts),
        "tok_s": statistics.median(rates),
        "mem_mb": rss_mb() - before,
        "quality": correct / len(questions),
        "samples": samples,
        "engine": engine,
    }


def turn_ttfts(engine: LlmEngine, system_prompt: str, questions, turns: int = 5) -> list[float]:  # type: ignore[no-untyped-def]
    """Time to first token of each turn of one conversation (history grows turn by turn)."""
    history: list[dict[str, str]] = []
    out = []
    for text, _ in questions[:turns]:
        messages = [{"role": "system", "content": system_prompt}, *history, {"role": "user", "content": text}]
        t0 = time.monotonic()
        reply = ""
        first = None
        for piece in engine.stream(messages):
            first = first or time.monotonic()
            reply += piece
        out.append((first or time.monotonic()) - t0)
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settings", default="none,int8", help="quantisation settings to compare")
    parser.add_argument("--questions", type=int, default=0, help="use only the first N questions")
    parser.add_argument("--prompt", help="system prompt (default: the config's)")
    parser.add_argument("--samples", action="store_true", help="print each setting's answers")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    cfg = load_config(overrides=args.set)
    prompt = args.prompt or cfg.llm.system_prompt
    questions = yaml.safe_load((HERE / "llm_questions.yaml").read_text())
    questions = questions[: args.questions] if args.questions else questions
    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    print(
        f"model {cfg.llm.model}, {len(questions)} questions, threads {cfg.llm.threads}, device {cfg.llm.device}"
    )

    results = {}
    for setting in args.settings.split(","):
        results[setting] = run_setting(model_dir, replace(cfg.llm, quantization=setting), questions, prompt)
    base = results[args.settings.split(",")[0]]
    print(
        f"\n{'setting':8} {'ttft ms':>8} {'x base':>7} {'tok/s':>7} {'x base':>7} {'mem MB':>7} {'quality':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:8} {r['ttft'] * 1000:8.0f} {base['ttft'] / r['ttft']:7.2f} {r['tok_s']:7.1f} "
            f"{r['tok_s'] / base['tok_s']:7.2f} {r['mem_mb']:7.0f} {r['quality']:8.0%}"
        )
    if args.samples:
        for name, r in results.items():
            print(f"\n{name}:")
            for (text, _), answer in zip(questions, r["samples"], strict=True):
                print(f"  {text} -> {answer}")

    print("\nprefix cache: time to first token by turn of one conversation (ms)")
    print(f"{'setting':8} {'cache':6} " + " ".join(f"{'turn ' + str(i + 1):>7}" for i in range(5)))
    for name, r in results.items():
        engine: LlmEngine = r["engine"]
        for cached in (False, True):
            engine.cfg = replace(engine.cfg, prefix_cache=cached)
            times = statistics_of(lambda e=engine: turn_ttfts(e, prompt, questions))
            print(f"{name:8} {'on' if cached else 'off':6} " + " ".join(f"{t * 1000:7.0f}" for t in times))


def statistics_of(run, repeats: int = 3) -> list[float]:  # type: ignore[no-untyped-def]
    """Per-turn medians over a few repeats of the same conversation."""
    runs = [run() for _ in range(repeats)]
    return [statistics.median(r[i] for r in runs) for i in range(len(runs[0]))]


if __name__ == "__main__":
    main()
