"""How `assistant eval` shows its results: the progress bar, the end-of-run table and report.md."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from assistant.eval.summary import STAGES, TOLERANCE_HELP

if TYPE_CHECKING:
    from assistant.eval.run import CaseResult, CorpusItem

MODE_TEXT = {
    "realtime": "fed at real-time pace: latencies are what a user would experience",
    "fast": "fed as fast as possible: latencies measure compute under load, not experience",
}
STAGE_TEXT = {
    "asr_final": "the final transcript is ready",
    "llm_first_token": "the language model's first token",
    "first_clause": "the first speakable clause of the reply",
    "answer_audio": "the answer itself starts playing",
    "first_audio": "any sound starts playing (a deadline filler included)",
}

# -- the console ----------------------------------------------------------------------------------


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; one plain line per case otherwise (CI logs).

    Hand-written on purpose (25 lines): rich.progress redraws from a thread of its own and takes
    over stderr (its Live display) for a bar that changes once per case; the one-line form
    redrawn with "\\r" is what the tests pin."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True, width: int = 24) -> None:
        self.total, self.stream, self.enabled, self.width = total, stream, enabled, width
        self.tty = enabled and stream.isatty()
        self._start = time.monotonic()
        self._failed = 0

    def start(self, i: int, item: CorpusItem) -> None:
        if self.tty:
            self._draw(i, item.name)

    def done(self, i: int, result: CaseResult) -> None:
        self._failed += not result.passed
        if not self.enabled:
            return
        status = "ok" if result.passed else ("ERROR" if result.error else "FAIL")
        if self.tty:
            self._draw(i + 1, f"{result.name} {status}")
        else:
            self.stream.write(
                f"[{i + 1:>{len(str(self.total))}}/{self.total}] {status:<5} {result.name} ({result.wall_s:.1f} s)\n"
            )
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, done: int, label: str) -> None:
        filled = self.width * done // max(self.total, 1)
        elapsed = time.monotonic() - self._start
        eta = f"eta {elapsed / done * (self.total - done):.0f} s" if done else ""
        failed = f" {self._failed} failed" if self._failed else ""
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r\033[K[{bar}] {done}/{self.total}{failed} {eta}  {label}"[:200])
        self.stream.flush()


def summary_table(report: dict[str, Any], width: int = 120) -> str:
    """The end-of-run summary as plain text (tables by rich, no colour): verdict line, latency per
    stage, per folder, then one line per failure and per regression."""
    from rich import box
    from rich.table import Table

    agg = report["aggregate"]
    head = (
        f"{agg['passed']}/{agg['cases']} recordings passed, {agg['turns']} turns, "
        f"WER {agg['wer']:.1%}, sentence accuracy {agg['sentence_accuracy']:.0%}, "
        f"fallback rate {agg['fallback_rate']:.0%}, ack rate {agg.get('ack_rate', 0):.0%} ({report['mode']})"
    )
    if agg.get("failovers") or agg.get("speech_errors"):  # remote speech servers that failed
        head += f"; speech servers: {agg['failovers']} failovers, {agg['speech_errors']} errors"
    stages = Table("stage (ms from end of speech)", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name in ("median", "p95", "max", "n"):
        stages.add_column(name, justify="right")
    for stage, s in agg["latency_ms"].items():
        stages.add_row(stage, f"{s['median']:.0f}", f"{s['p95']:.0f}", f"{s['max']:.0f}", str(s["n"]))
    tables = [stages]
    if agg["by_group"]:
        groups = Table("group", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for name in ("cases", "passed", "WER", "sent.", "1st audio"):
            groups.add_column(name, justify="right")
        for name, g in agg["by_group"].items():
            first = "-" if g["first_audio_median_ms"] is None else f"{g['first_audio_median_ms']:.0f}"
            groups.add_row(
                name,
                str(g["cases"]),
                str(g["passed"]),
                f"{g['wer']:.1%}",
                f"{g['sentence_accuracy']:.0%}",
                first,
            )
        tables.append(groups)
    lines = [head]
    for table in tables:
        lines += ["", plain_text(table, width)]
    for case in report["cases"]:
        for problem in failures(case):
            lines.append(f"FAIL {case['name']}: {problem}")
    for row in report.get("baseline", {}).get("comparison", []):
        if row["regression"]:
            lines.append(
                f"REGRESSION {row['metric']}: {row['baseline']} -> {row['current']} (limit {row['limit']})"
            )
    return "\n".join(lines)


def plain_text(renderable: Any, width: int = 200) -> str:
    """A rich renderable as plain text for a file, a pipe or a test: no colour codes, no markup
    (names and transcripts are text), lines up to ``width`` never wrapped, no trailing spaces, and
    ASCII rules ("-") so any encoding and any grep take it."""
    import io

    from rich.console import Console

    out = io.StringIO()
    console = Console(
        file=out, width=width, force_terminal=False, no_color=True, markup=False, highlight=False, emoji=False
    )
    console.print(renderable, crop=False)
    return "\n".join(line.rstrip().replace("\u2500", "-") for line in out.getvalue().splitlines())


def failures(case: dict[str, Any]) -> list[str]:
    if case["error"]:
        return [f"error: {case['error']}"]
    return [
        (f"turn {c['turn']} " if c["turn"] is not None else "") + f"{c['name']}: {c['detail']}"
        for c in case["checks"]
        if not c["ok"]
    ]


# -- report.md ------------------------------------------------------------------------------------


def markdown(report: dict[str, Any], plots: Sequence[Path] = ()) -> str:
    agg = report["aggregate"]
    verdict = "PASS" if report["ok"] else "FAIL"
    out = [
        f"# Eval of `{report['corpus']}`: {verdict}",
        "",
        f"{report['created']}; {agg['cases']} recordings, {report['mode']} ({MODE_TEXT[report['mode']]}); "
        f"models: {', '.join(f'{k} {v}' for k, v in report['models'].items())}; {report['wall_s']:.0f} s.",
        "",
        "## Summary",
        "",
        "| recordings | passed | failed | errors | turns | WER | sentence accuracy | fallback rate | fast-path turns |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {agg['cases']} | {agg['passed']} | {len(agg['failed'])} | {len(agg['errors'])} | {agg['turns']} "
        f"| {agg['wer']:.1%} ({agg['word_errors']}/{agg['words']} words) | {agg['sentence_accuracy']:.0%} "
        f"| {agg['fallback_rate']:.0%} ({agg['fallbacks']}) | {agg['fastpath_turns']} |",
        "",
        *(
            [f"Speech servers: {agg['failovers']} failovers, {agg['speech_errors']} requests lost.", ""]
            if agg.get("failovers") or agg.get("speech_errors")
            else []
        ),
        "## Latency, ms from the end of user speech (the last voiced frame)",
        "",
        "| stage | median | p95 | max | turns | until |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for stage in STAGES:
        s = agg["latency_ms"].get(stage)
        if s:
            out.append(
                f"| {stage} | {s['median']:.0f} | {s['p95']:.0f} | {s['max']:.0f} | {s['n']} | {STAGE_TEXT[stage]} |"
            )
    if agg["by_group"]:
        out += [
            "",
            "## By folder",
            "",
            "| folder | recordings | passed | WER | sentence accuracy | first audio median |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, g in agg["by_group"].items():
            first = "-" if g["first_audio_median_ms"] is None else f"{g['first_audio_median_ms']:.0f} ms"
            out.append(
                f"| {name} | {g['cases']} | {g['passed']} | {g['wer']:.1%} | {g['sentence_accuracy']:.0%} | {first} |"
            )
    if "baseline" in report:
        out += ["", f"## Against the baseline `{report['baseline']['path']}`", "", TOLERANCE_HELP, ""]
        out += ["| metric | baseline | now | limit | |", "|---|---:|---:|---:|---|"]
        for r in report["baseline"]["comparison"]:
            mark = "REGRESSION" if r["regression"] else (r["note"] or "ok")
            out.append(f"| {r['metric']} | {r['baseline']} | {r['current']} | {r['limit']} | {mark} |")
    problems = [(c["name"], p) for c in report["cases"] for p in failures(c)]
    if problems:
        out += ["", "## Failures", ""] + [f"- `{name}`: {_md(p)}" for name, p in problems]
    if plots:
        out += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    out += [
        "",
        "## Recordings",
        "",
        "| recording | turn | heard | reply | asr | 1st token | 1st audio | result |",
        "|---|---:|---|---|---:|---:|---:|---|",
    ]
    for c in report["cases"]:
        result = "pass" if c["passed"] else ("error" if c["error"] else "FAIL")
        for t in c["turns"] or [None]:
            lat = t["latency_ms"] if t else {}
            reply = (
                (t["reply"] + (f" [{t['fallback_kind']}]" if t["fallback"] else "") + servers_note(t))
                if t
                else ""
            )
            out.append(
                f"| {c['name']} | {t['turn'] if t else '-'} | {_md(t['transcript'] if t else '')} | {_md(reply)} "
                f"| {_ms(lat.get('asr_final'))} | {_ms(lat.get('llm_first_token'))} | {_ms(lat.get('first_audio'))} | {result} |"
            )
    out += [
        "",
        "## How to read this",
        "",
        "WER and sentence accuracy compare each recording's whole transcript with its NAME.txt after the "
        "text normaliser (assistant/textnorm.py): lowercase, punctuation dropped, digits written out as "
        "words, so '8' and 'eight' match. A sentence is accurate when the normalised texts are equal. "
        "A fallback is a turn where the deadline apologised (no answer in time, or an error); an ack "
        "is one where it said a filler before a late answer; fast-path answers "
        "(time, date) are answers, not fallbacks. Reply audio of each recording, on the input's "
        "timeline, is in replies/.",
        "",
    ]
    return "\n".join(out)


def servers_note(turn: dict[str, Any]) -> str:
    """ " [1 failover]", " [asr lost]"...: what remote speech servers did to a turn (empty when fine)."""
    parts = [
        f"{n} {name}"
        for name, n in (
            ("failover", turn.get("failovers", 0)),
            ("speech error", turn.get("speech_errors", 0)),
        )
        if n
    ]
    return f" [{', '.join(parts)}]" if parts else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
