"""N concurrent conversations' LLM requests against `transformers serve`, with and without
continuous batching, beside the in-process engine at N=1.

    .venv/bin/python bench/llm_server.py [--ns 1,2,4,8,16] [--requests 8] [--modes local,plain,cb]

Each level fires N chat-completion streams at once (one per simulated user, through the same
OpenAiEngine the assistant uses, default config: max_new_tokens, read timeout), the questions being
the 16 spoken test questions (tests/speech/questions.yaml); a level repeats until it has made at
least --requests requests. Per level: time to first token (median, p95), aggregate tokens/s (all
tokens generated / wall time of the level), failures, and "late": first token after
deadline.answer_ms, i.e. turns the assistant would have apologised for. Tokens are counted with the
model's tokenizer, so every backend is counted alike.

Modes: local = LlmEngine in this process (the shipped default, int8 on CPU) at N=1 only (it runs
one generation at a time by design); local-fp32 = the same in fp32, the server's precision; plain =
`transformers serve` (one inference thread: requests queue); cb = `transformers serve
--continuous-batching` (paged attention, requests batched per step). The servers run on this
machine, on the same cores as this client; they are started by this bench and stopped after
(assistant/llm_server.py; with cb, its cache is bounded to 64 pages of 256 tokens).

--threads 1 on a shared 2-core machine: measured at load ~6, two torch threads in the server made
it 4x slower than one (3.4 vs 14.5 tok/s): OpenMP threads wait on each other when a core is taken.

Measured here (2 shared cores, load 3-4, --threads 1; README "Scaling out" has the table): plain
serves one request at a time, so at N=8 the first token takes 5.7 s (median) and the 10 s read
timeout fails 7-12 of 16 at N=16; cb answers all 16 with a first token at 2.0-2.6 s and 2-3x the
tokens/s, but then each stream gets 1.6-2.0 tok/s, slower than speech: this CPU saturates at 4-8.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from assistant.config import Config, load_config
from assistant.core.engines import TextStreamer
from assistant.engines.local_llm import LlmEngine
from assistant.engines.openai_llm import OpenAiEngine
from assistant.engines.store import ModelStore
from assistant.eval.stats import percentile
from tests.llm_server import TransformersServer
from tests.speech.make_speech import load_questions


@dataclass
class Level:
    mode: str
    n: int
    ttfts: list[float] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    late: int = 0

    def row(self) -> tuple[str, ...]:
        t = sorted(self.ttfts)
        done = len(self.ttfts) + len(self.failures)
        return (
            self.mode,
            str(self.n),
            str(done),
            f"{percentile(t, 50) * 1000:.0f}",
            f"{percentile(t, 95) * 1000:.0f}",
            f"{self.tokens / self.wall_s:.1f}" if self.wall_s else "-",
            str(len(self.failures)),
            str(self.late),
        )


def ask(engine: TextStreamer, messages: list[dict[str, str]], start: threading.Barrier, out: dict) -> None:
    start.wait()
    t0 = time.monotonic()
    out["t0"] = t0
    text = ""
    try:
        for piece in engine.stream(messages):
            if "ttft" not in out and piece.strip():
                out["ttft"] = time.monotonic() - t0
            text += piece
    except Exception as exc:  # noqa: BLE001 - counted and reported, the level goes on
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["end"] = time.monotonic()
    out["text"] = text


def run_level(
    mode: str, engine: TextStreamer, n: int, requests: int, cfg: Config, questions, tokenizer
) -> Level:  # type: ignore[no-untyped-def]
    level = Level(mode, n)
    asked = 0
    while asked < requests:
        barrier = threading.Barrier(n)
        outs: list[dict] = [{} for _ in range(n)]
        threads = []
        for i in range(n):
            question = questions[(asked + i) % len(questions)]
            messages = [
                {"role": "system", "content": cfg.llm.system_prompt},
                {"role": "user", "content": question},
            ]
            threads.append(
                threading.Thread(target=ask, args=(engine, messages, barrier, outs[i]), daemon=True)
            )
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        asked += n
        level.wall_s += max(o["end"] for o in outs) - min(o["t0"] for o in outs)
        for o in outs:
            level.tokens += len(tokenizer.encode(o["text"], add_special_tokens=False))
            if "error" in o:
                level.failures.append(o["error"])
            elif "ttft" in o:
                level.ttfts.append(o["ttft"])
                level.late += o["ttft"] > cfg.deadline.answer_ms / 1000
    return level


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ns", default="1,2,4,8,16", help="concurrency levels (default 1,2,4,8,16)")
    parser.add_argument("--requests", type=int, default=8, help="at least this many requests per level")
    parser.add_argument("--modes", default="local,local-fp32,plain,cb", help="local, local-fp32, plain, cb")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads for every backend (default: llm.threads)"
    )
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cfg = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    threads = args.threads or cfg.llm.threads
    cfg = replace(cfg, llm=replace(cfg.llm, threads=threads))
    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    questions = [turn.text for case in load_questions() for turn in case.turns]
    ns = [int(n) for n in args.ns.split(",")]
    modes = args.modes.split(",")
    load_before = os.getloadavg()
    levels: list[Level] = []
    for mode in [m for m in modes if m.startswith("local")]:
        llm = cfg.llm if mode == "local" else replace(cfg.llm, quantization="none")
        engine = LlmEngine(model_dir, llm)
        engine.warm_up()
        levels.append(run_level(mode, engine, 1, args.requests, cfg, questions, tokenizer))
        print(" ".join(levels[-1].row()), file=sys.stderr, flush=True)
        del engine
    logs = Path(tempfile.mkdtemp(prefix="llm-server-bench-"))
    for mode in [m for m in modes if m in ("plain", "cb")]:
        started = time.monotonic()
        server = TransformersServer(
            model_dir, logs / f"{mode}.log", continuous_batching=mode == "cb", threads=threads
        )
        with server:
            start_s = time.monotonic() - started
            engine = OpenAiEngine(replace(cfg.llm, backend="openai", base_url=server.base_url))
            engine.warm_up()
            print(
                f"{mode}: server up in {start_s:.1f} s (log {server.log_path})", file=sys.stderr, flush=True
            )
            for n in ns:
                levels.append(run_level(mode, engine, n, args.requests, cfg, questions, tokenizer))
                print(" ".join(levels[-1].row()), file=sys.stderr, flush=True)
    print_table(levels, cfg)
    print(
        f"{threads} torch thread(s) per backend; load average before {load_before[0]:.2f}, "
        f"after {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores, shared)"
    )
    for level in levels:
        for failure in sorted(set(level.failures)):
            print(f"  {level.mode} N={level.n}: {failure}")


def print_table(levels: list[Level], cfg: Config) -> None:
    header = ("mode", "N", "requests", "TTFT p50 ms", "TTFT p95 ms", "tok/s total", "failed", "late")
    rows = [header] + [level.row() for level in levels]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))
    print(
        f"(max_new_tokens {cfg.llm.max_new_tokens}; late = first token after answer_ms {cfg.deadline.answer_ms} ms)"
    )


if __name__ == "__main__":
    main()
