"""PNG plots of an eval report: the latency distribution per stage, and a waterfall of each turn.

matplotlib is imported only when a plot is drawn, and through its object API (``Figure`` +
``savefig``), which renders with Agg and touches no global backend or pyplot state: safe in threads,
on headless machines, and inside a test run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from assistant.eval.summary import STAGES

log = logging.getLogger(__name__)

MAX_WATERFALL_TURNS = 120  # beyond this the rows are unreadable; the first ones are drawn
# waterfall segments: (latency, colour, legend label); each segment ends at its event
WATERFALL = (
    ("asr_final", "#4c72b0", "until final transcript"),
    ("llm_first_token", "#dd8452", "until first token"),
    ("first_audio", "#55a868", "until first audio"),
    ("answer_audio", "#c44e52", "until the answer's audio (after a filler)"),
)


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Both plots into ``out_dir``; returns the files written (none when there are no turns)."""
    turns = [(c["name"], t) for c in report["cases"] for t in c["turns"]]
    if not turns:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{report['corpus']} ({report['mode']})"
    return [
        latency_distribution([t for _, t in turns], out_dir / "latency.png", title),
        waterfall(turns, out_dir / "waterfall.png", title),
    ]


def latency_distribution(turns: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """A box per stage (median, quartiles, 1.5 IQR whiskers) with every turn as a dot over it."""
    from matplotlib.figure import Figure

    stages = [s for s in STAGES if any(s in t["latency_ms"] for t in turns)]
    data = [[t["latency_ms"][s] for t in turns if s in t["latency_ms"]] for s in stages]
    fig = Figure(figsize=(8, 1.2 + 0.6 * len(stages)), layout="constrained")
    ax = fig.add_subplot()
    if stages:
        ax.boxplot(data, orientation="horizontal", tick_labels=stages, showfliers=False, widths=0.5)
        for row, values in enumerate(data, start=1):
            # a fixed, deterministic spread so coincident dots stay visible
            offsets = [((i * 7919) % 21 - 10) / 60 for i in range(len(values))]
            ax.scatter(values, [row + o for o in offsets], s=10, alpha=0.6, color="#4c72b0", zorder=3)
    ax.invert_yaxis()  # pipeline order, top to bottom
    ax.set_xlabel("ms from the end of user speech")
    ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"Latency per stage: {title}" if title else "Latency per stage")
    fig.savefig(path, dpi=100)
    return path


def waterfall(turns: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> Path:
    """One row per turn, time 0 = end of speech: consecutive segments up to each event, in the order
    the events happened (speculation can put the first token before the final transcript)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    shown = turns[:MAX_WATERFALL_TURNS]
    fig = Figure(figsize=(10, 1.6 + 0.28 * len(shown)), layout="constrained")
    ax = fig.add_subplot()
    labels = []
    for row, (name, turn) in enumerate(shown):
        labels.append(f"{name} #{turn['turn']}")
        lat = turn["latency_ms"]
        events = sorted((lat[key], colour) for key, colour, _ in WATERFALL if key in lat)
        previous = 0.0
        for t, colour in events:
            if t > previous:
                ax.barh(row, t - previous, left=previous, height=0.6, color=colour)
            previous = max(previous, t)
        if "vad_decided" in lat:  # the hangover: when the VAD decided the turn was over
            ax.plot([lat["vad_decided"]] * 2, [row - 0.35, row + 0.35], color="black", lw=1)
        if turn["fallback"]:
            ax.text(previous, row, f" {turn['fallback_kind']}", va="center", fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms from the end of user speech (black tick: VAD decided the turn ended)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=c, label=label) for _, c, label in WATERFALL]
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    more = f" (first {len(shown)} of {len(turns)} turns)" if len(turns) > len(shown) else ""
    ax.set_title(f"Each turn: {title}{more}" if title else f"Each turn{more}")
    fig.savefig(path, dpi=100)
    return path
