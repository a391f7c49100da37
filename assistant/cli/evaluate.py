"""`eval`: score a corpus of recordings (WER, replies, latency) and write a report."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.cli.common import UsageError, check_output, load_engines, say
from assistant.eval.summary import TOLERANCE_HELP  # light: only the standard library

if TYPE_CHECKING:
    from assistant.config import Config


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "eval",
        parents=parents,
        help="regression: score a corpus of recordings (WER, replies, latency) and write a report",
        description="Run every recording of CORPUS through the full pipeline (as `respond` does; "
        "real-time pace unless --fast) and score it. CORPUS is searched recursively for NAME.wav + "
        "NAME.txt (the reference transcript), each with an optional NAME.json of expectations, e.g. "
        '{"reply_contains_any": ["Paris"], "fallback": false, "max_first_audio_ms": 1500}; '
        '"turns": [{...}, ...] gives per-turn ones. Writes DIR/report.json, DIR/report.md, '
        "DIR/latency.png, DIR/waterfall.png and DIR/replies/. Exit code 1 when an expectation fails "
        "or, with --baseline, on a regression beyond the tolerance.",
        epilog=TOLERANCE_HELP,
    )
    p.add_argument("corpus", type=Path, help="folder of NAME.wav + NAME.txt (+ NAME.json)")
    p.add_argument(
        "--report-dir", type=Path, default=Path("eval-report"), metavar="DIR", help="default: eval-report"
    )
    p.add_argument("--fast", action="store_true", help="feed each recording as fast as possible")
    p.add_argument("--baseline", type=Path, metavar="OLD.json", help="an earlier report.json to compare with")
    p.set_defaults(handler=evaluate)


def evaluate(cfg: Config, args: argparse.Namespace) -> int:
    from assistant import build
    from assistant.config import config_to_dict
    from assistant.eval import plots, summary, view
    from assistant.eval import run as eval_run

    try:
        items = eval_run.find_corpus(args.corpus)
        baseline = summary.load_baseline(args.baseline) if args.baseline else None
    except eval_run.CorpusError as exc:
        raise UsageError(str(exc)) from None
    if args.report_dir.exists() and not args.report_dir.is_dir():
        raise UsageError(f"{args.report_dir}: is a file; --report-dir needs a folder")
    check_output(args.report_dir / "report.json", "report")
    mode = "fast" if args.fast else "realtime"
    start = time.monotonic()
    engines = load_engines(cfg, args)
    say(args, f"Evaluating {len(items)} recordings from {args.corpus} ({mode})")
    bar = view.ProgressBar(len(items), sys.stderr, enabled=not args.quiet)
    sink_log = logging.getLogger("assistant.audio.sinks")
    level = sink_log.level
    sink_log.setLevel(logging.WARNING)  # a "wrote reply.wav" line per case would break the bar
    try:
        results = eval_run.run_corpus(
            cfg, engines, items, not args.fast, args.report_dir / "replies", bar.start, bar.done
        )
    finally:
        sink_log.setLevel(level)
        bar.close()
    meta = {
        "corpus": str(args.corpus),
        "mode": mode,
        "wall_s": round(time.monotonic() - start, 1),
        "models": {"asr": build.asr_label(cfg), "llm": build.llm_label(cfg), "tts": build.tts_label(cfg)},
        "config": config_to_dict(cfg),
    }
    report = summary.build_report(meta, results, baseline, args.baseline)
    summary.write_json(report, args.report_dir / "report.json")
    pngs = plots.write_plots(report, args.report_dir)
    (args.report_dir / "report.md").write_text(view.markdown(report, pngs), encoding="utf-8")
    print(view.summary_table(report))
    print(f"report: {args.report_dir / 'report.md'}")
    return 0 if report["ok"] else 1
