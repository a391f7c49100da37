"""What `assistant eval` makes of its results: aggregates, the baseline comparison, report.json,
report.md, the end-of-run table and the progress bar.

Only light imports here: the CLI imports this module to show the tolerance in ``--help``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.eval.stats import latency_summary

if TYPE_CHECKING:
    from assistant.eval.run import CaseResult

# the latencies a turn reports, in pipeline order (ms from the end of user speech)
STAGES = ("asr_final", "llm_first_token", "first_clause", "answer_audio", "first_audio")


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the baseline a run may be before it counts as a regression."""

    wer_points: float = 2.0  # WER, percentage points, absolute
    sentence_points: float = 10.0  # sentence accuracy may drop this many points
    fallback_points: float = 10.0  # fallback rate may rise this many points
    latency_ratio: float = 1.25  # a stage's median latency may grow 25 % ...
    latency_ms: float = 100.0  # ... or 100 ms, whichever is larger (jitter on small values)


TOLERANCE_HELP = (
    "Regression tolerance against --baseline: WER +2 points absolute; sentence accuracy -10 points; "
    "fallback rate +10 points; the median latency of any stage (asr_final, llm_first_token, "
    "first_clause, answer_audio, first_audio) more than +25% AND more than +100 ms. Latencies are "
    "compared only when both runs used the same pace (real-time or --fast)."
)


# -- aggregates -----------------------------------------------------------------------------------


def latency_stats(turns: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The latency summary of turn dicts (report.json's), stages in pipeline order."""
    return latency_summary((t["latency_ms"] for t in turns), STAGES)


def aggregate(results: list[CaseResult]) -> dict[str, Any]:
    turns = [t for r in results for t in r.turns]
    words = sum(r.words for r in results)
    errors = sum(r.word_errors for r in results)
    fallbacks = sum(t["fallback"] for t in turns)
    acks = sum(t.get("acknowledged", False) for t in turns)
    groups = sorted({r.group for r in results})
    return {
        "cases": len(results),
        "passed": sum(r.passed for r in results),
        "failed": [r.name for r in results if not r.passed],
        "errors": [r.name for r in results if r.error],
        "turns": len(turns),
        "words": words,
        "word_errors": errors,
        "wer": round(errors / words, 4) if words else 0.0,
        "sentence_accuracy": round(sum(r.sentence_ok for r in results) / len(results), 4) if results else 0.0,
        "fallbacks": fallbacks,
        "fallback_rate": round(fallbacks / len(turns), 4) if turns else 0.0,  # timeouts, errors
        "acks": acks,
        "ack_rate": round(acks / len(turns), 4) if turns else 0.0,  # fillers before a late answer
        "fastpath_turns": sum(t["fastpath"] for t in turns),
        # remote speech servers (asr/tts.backend: wyoming): taken over by another server, or lost
        "failovers": sum(t.get("failovers", 0) for t in turns),
        "speech_errors": sum(t.get("speech_errors", 0) for t in turns),
        "latency_ms": latency_stats(turns),
        "by_group": {g: _group([r for r in results if r.group == g]) for g in groups}
        if len(groups) > 1
        else {},
    }


def _group(results: list[CaseResult]) -> dict[str, Any]:
    words = sum(r.words for r in results)
    first = latency_stats([t for r in results for t in r.turns]).get("first_audio", {})
    return {
        "cases": len(results),
        "passed": sum(r.passed for r in results),
        "wer": round(sum(r.word_errors for r in results) / words, 4) if words else 0.0,
        "sentence_accuracy": round(sum(r.sentence_ok for r in results) / len(results), 4),
        "first_audio_median_ms": first.get("median"),
    }


# -- the baseline ---------------------------------------------------------------------------------


def load_baseline(path: Path) -> dict[str, Any]:
    from assistant.eval.run import CorpusError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data["aggregate"]["wer"]  # noqa: B018 - a report.json of `assistant eval`, not any JSON
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a report.json of `assistant eval` ({exc})") from None
    return data


def compare(current: dict[str, Any], baseline: dict[str, Any], tol: Tolerance) -> list[dict[str, Any]]:
    """One row per compared metric; ``regression`` marks those beyond the tolerance."""
    now, old = current["aggregate"], baseline["aggregate"]
    rows = [
        _row("WER %", old["wer"] * 100, now["wer"] * 100, old["wer"] * 100 + tol.wer_points),
        _row(
            "sentence accuracy %",
            old["sentence_accuracy"] * 100,
            now["sentence_accuracy"] * 100,
            old["sentence_accuracy"] * 100 - tol.sentence_points,
            lower_is_worse=True,
        ),
        _row(
            "fallback rate %",
            old["fallback_rate"] * 100,
            now["fallback_rate"] * 100,
            old["fallback_rate"] * 100 + tol.fallback_points,
        ),
    ]
    same_pace = current["mode"] == baseline.get("mode")
    for stage in STAGES:
        a, b = old["latency_ms"].get(stage), now["latency_ms"].get(stage)
        if a is None or b is None:
            continue
        limit = max(a["median"] * tol.latency_ratio, a["median"] + tol.latency_ms)
        row = _row(f"{stage} median ms", a["median"], b["median"], limit)
        if not same_pace:
            row.update(regression=False, note=f"not compared: baseline ran {baseline.get('mode')}")
        rows.append(row)
    return rows


def _row(metric: str, old: float, new: float, limit: float, lower_is_worse: bool = False) -> dict[str, Any]:
    bad = new < limit if lower_is_worse else new > limit
    return {
        "metric": metric,
        "baseline": round(old, 1),
        "current": round(new, 1),
        "limit": round(limit, 1),
        "regression": bad,
        "note": "",
    }


# -- report.json ----------------------------------------------------------------------------------


def build_report(
    meta: dict[str, Any],
    results: list[CaseResult],
    baseline: dict[str, Any] | None = None,
    baseline_path: Path | None = None,
    tol: Tolerance = Tolerance(),
) -> dict[str, Any]:
    """``meta``: corpus, mode, models, config, wall_s (whatever describes the run)."""
    report: dict[str, Any] = {
        **meta,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "normaliser": "assistant.eval.textnorm: lowercase, no punctuation, digits written out as words",
        "tolerance": asdict(tol),
        "aggregate": aggregate(results),
        "cases": [r.as_dict() for r in results],
    }
    if baseline is not None:
        rows = compare(report, baseline, tol)
        report["baseline"] = {"path": str(baseline_path), "comparison": rows}
    report["regressions"] = [
        r["metric"] for r in report.get("baseline", {}).get("comparison", []) if r["regression"]
    ]
    report["ok"] = not report["aggregate"]["failed"] and not report["regressions"]
    return report


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
