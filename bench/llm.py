"""LLM benchmark: answer quality, first token, first clause, tokens/s and memory per model x quantisation.

    .venv/bin/python bench/llm.py [--variants smollm2-135m-instruct:int8-mlp@PROFILE,...] [--half tune|held|all]
                                  [--prompt TEXT] [--samples] [--set KEY=VALUE]

Every variant (model:quantisation) is loaded in this one process and warmed up, then answers the
questions of bench/llm_questions.yaml through the app's own path: LlmEngine (prefix cache on, as the
app runs it) behind LlmResponder (clause splitting, loop and paragraph stops), with history for the
follow-ups. A variant may name a profile of bench/llm_profiles.yaml after '@' (llm settings: system
prompt, few-shot examples, decoding), so prompt and decoding variants run side by side with the
config's own ("model:quant" alone). The variants take turns question by question, so load from other processes on the shared
cores falls on all of them alike; the table gives medians and ratios against the first variant.

Grading: a reply passes when it is hygienic (not empty, no system-prompt leak, no repetition loop, at
most 60 words) and, where the question lists expected keywords, mentions one of them. Tune prompts and
decoding with --half tune; quote --half held (or all) as the result.
"""

from __future__ import annotations

import argparse
import gc
import queue
import re
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from assistant.config import LlmConfig, load_config
from assistant.engines.local_llm import LlmEngine
from assistant.engines.store import ModelStore
from assistant.reply.llm import LlmResponder

HERE = Path(__file__).resolve().parent
DEFAULT_VARIANTS = (
    "smollm2-135m-instruct:none,smollm2-135m-instruct:int8,smollm2-135m-instruct:int8-mlp,"
    "qwen2.5-coder-0.5b-instruct:none,qwen2.5-coder-0.5b-instruct:int8,qwen2.5-coder-0.5b-instruct:int8-mlp"
)
MAX_WORDS = 60


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e6


def mentions(text: str, keywords: list[str]) -> bool:
    low = text.lower()
    return any(re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", low) for k in keywords)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def hygiene(reply: str, system_prompt: str) -> str:
    """'' when the reply is fit to be spoken, else what is wrong with it."""
    w = words(reply)
    if not w:
        return "empty"
    if len(w) > MAX_WORDS:
        return "too long"
    sp = words(system_prompt)
    leaks = {" ".join(sp[i : i + 4]) for i in range(len(sp) - 3)}
    text = " ".join(w)
    if any(leak in text for leak in leaks):
        return "prompt leak"
    trigrams = [" ".join(w[i : i + 3]) for i in range(len(w) - 2)]
    if trigrams and max(trigrams.count(t) for t in trigrams) >= 3:
        return "loop"
    return ""


def grade(reply: str, expected: list[str] | None, system_prompt: str) -> str:
    """'' for a pass, else the reason."""
    if problem := hygiene(reply, system_prompt):
        return problem
    if expected and not mentions(reply, expected):
        return "wrong"
    return ""


class Counting:
    """The engine as the responder sees it, counting tokens and timing the first one."""

    def __init__(self, engine: LlmEngine) -> None:
        self.engine = engine
        self.tokens = 0
        self.t_first: float | None = None
        self.t_last: float | None = None

    def warm_up(self) -> None:
        self.engine.warm_up()

    def stream(self, messages: list[Any], should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:
        for piece in self.engine.stream(messages, should_stop):
            self.tokens += 1
            self.t_last = time.monotonic()
            self.t_first = self.t_first or self.t_last
            yield piece


@dataclass
class Variant:
    name: str
    cfg: LlmConfig
    counting: Counting
    responder: LlmResponder
    mem_mb: float
    load_s: float
    ttft: list[float] = field(default_factory=list)
    first_clause: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    results: list[tuple[str, str, str, str]] = field(default_factory=list)  # (half, question, reply, problem)


def load_variant(spec: str, base: LlmConfig, cache_dir: Path) -> Variant:
    model_quant, _, profile = spec.partition("@")
    model, _, quant = model_quant.partition(":")
    cfg = replace(base, model=model, quantization=quant or base.quantization)
    if profile:
        profiles = yaml.safe_load((HERE / "llm_profiles.yaml").read_text())
        if profile not in profiles:
            raise SystemExit(
                f"no profile {profile!r} in bench/llm_profiles.yaml; known: {', '.join(profiles)}"
            )
        cfg = replace(cfg, **profiles[profile])
    gc.collect()
    before, t0 = rss_mb(), time.monotonic()
    engine = LlmEngine(ModelStore(cache_dir).llm_path(model), cfg)
    if quant == "int8-wo":  # torchao weight-only int8 on the CPU, if torchao is importable
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        quantize_(engine.model, Int8WeightOnlyConfig())
    counting = Counting(engine)
    responder = LlmResponder(cfg, engine=counting)  # type: ignore[arg-type]
    responder.setup()  # warm-up: leaves the system prompt in the prefix cache, as the app does
    return Variant(spec, cfg, counting, responder, rss_mb() - before, time.monotonic() - t0)


def ask(v: Variant, messages: list[dict[str, str]]) -> str:
    """One turn through the responder; records first token, first clause and tokens/s."""
    c = v.counting
    c.tokens, c.t_first, c.t_last = 0, None, None
    start = time.monotonic()
    reply = v.responder.open(start)
    reply.ask(messages)  # type: ignore[arg-type]
    clauses, t_clause = [], None
    while True:
        try:
            clause = reply.next(30.0)
        except queue.Empty:
            break
        if clause is None:
            break
        t_clause = t_clause or time.monotonic()
        clauses.append(clause.text)
    if c.t_first is not None:
        v.ttft.append(c.t_first - start)
        if c.tokens > 1 and c.t_last and c.t_last > c.t_first:
            v.rates.append((c.tokens - 1) / (c.t_last - c.t_first))
    if t_clause is not None:
        v.first_clause.append(t_clause - start)
    return " ".join(clauses)


def run(variants: list[Variant], items: list[dict[str, Any]], half_of: dict[int, str]) -> None:
    for n, item in enumerate(items):
        for v in variants:  # every variant answers the same question before the next one
            history: list[dict[str, str]] = []
            turn: dict[str, Any] | None = item
            prompt = v.cfg.system_prompt
            while turn is not None:
                messages = [
                    {"role": "system", "content": prompt},
                    *history,
                    {"role": "user", "content": turn["q"]},
                ]
                answer = ask(v, messages)
                v.results.append((half_of[n], turn["q"], answer, grade(answer, turn.get("a"), prompt)))
                history += [{"role": "user", "content": turn["q"]}, {"role": "assistant", "content": answer}]
                turn = turn.get("then")
        if (n + 1) % 10 == 0:
            print(f"  {n + 1}/{len(items)} questions", flush=True)


def ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000 if xs else float("nan")


def share(v: Variant, half: str | None = None) -> float:
    rows = [r for r in v.results if half is None or r[0] == half]
    return sum(not r[3] for r in rows) / max(1, len(rows))


def report(variants: list[Variant], samples: bool) -> None:
    base = variants[0]
    print(
        f"\n{'model:quantisation':42} {'right':>6} {'tune':>5} {'held':>5} {'1st tok ms':>10} {'x base':>6} "
        f"{'1st clause ms':>13} {'x base':>6} {'tok/s':>6} {'x base':>6} {'mem MB':>7}"
    )
    for v in variants:
        print(
            f"{v.name:42} {share(v):6.0%} {share(v, 'tune'):5.0%} {share(v, 'held'):5.0%} {ms(v.ttft):10.0f} "
            f"{ms(v.ttft) / ms(base.ttft):6.2f} {ms(v.first_clause):13.0f} "
            f"{ms(v.first_clause) / ms(base.first_clause):6.2f} {statistics.median(v.rates or [0]):6.1f} "
            f"{statistics.median(v.rates or [0]) / statistics.median(base.rates or [1]):6.2f} {v.mem_mb:7.0f}"
        )
    print(
        "\nfailures by kind: "
        + "; ".join(
            f"{v.name}: "
            + ", ".join(
                f"{k} {sum(r[3] == k for r in v.results)}"
                for k in ("wrong", "prompt leak", "loop", "empty", "too long")
            )
            for v in variants
        )
    )
    if samples:
        for v in variants:
            print(f"\n{v.name}:")
            for half, q, answer, problem in v.results:
                print(f"  [{half}] {'ok ' if not problem else problem.upper()[:5]:5} {q} -> {answer[:90]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated model:quantisation")
    parser.add_argument("--half", default="all", choices=("tune", "held", "all"))
    parser.add_argument("--questions", type=int, default=0, help="use only the first N items")
    parser.add_argument("--prompt", help="system prompt (default: the config's)")
    parser.add_argument("--samples", action="store_true", help="print every answer")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    cfg = load_config(overrides=args.set)
    prompt = args.prompt or cfg.llm.system_prompt
    all_items = yaml.safe_load((HERE / "llm_questions.yaml").read_text())
    keep = {"tune": 0, "held": 1}.get(args.half)
    picked = [(i, it) for i, it in enumerate(all_items) if keep is None or i % 2 == keep]
    picked = picked[: args.questions] if args.questions else picked
    items = [it for _, it in picked]
    half_of = {n: ("tune" if i % 2 == 0 else "held") for n, (i, _) in enumerate(picked)}
    turns = len(items) + sum("then" in it for it in items)
    print(
        f"{len(items)} items ({turns} turns, half {args.half}), threads {cfg.llm.threads}, prompt {prompt!r}"
    )

    variants = []
    for spec in args.variants.split(","):
        v = load_variant(spec, replace(cfg.llm, system_prompt=prompt), cfg.models.cache_dir)
        print(f"  loaded {spec} in {v.load_s:.1f} s (+{v.mem_mb:.0f} MB)", flush=True)
        variants.append(v)
    try:
        run(variants, items, half_of)
    finally:  # an interrupted run still reports what it measured
        report(variants, args.samples)


if __name__ == "__main__":
    main()
