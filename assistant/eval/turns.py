"""Per-turn records built from the event stream: what was heard, what was said, and how fast.

Every latency is measured from the turn's end of speech (the arrival of its last voiced frame), so
the VAD's hangover is counted honestly. Sound the recogniser found no words in (noise, music the VAD
took for speech) is no turn: nothing was asked, and nothing answered.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.core.engines import ANSWER_SOURCES
from assistant.core.events import Event

# event kind -> latency name in the report
LATENCY_EVENTS = {
    "transcript_final": "asr_final",
    "llm_first_token": "llm_first_token",
    "first_audio": "first_audio",  # first sound of any kind (a deadline acknowledgement included)
    "answer_audio": "answer_audio",  # first sound of the answer itself
    "reply_done": "reply_done",
}


@dataclass
class TurnRecord:
    turn: int
    start_s: float = 0.0
    end_s: float = 0.0
    transcript: str = ""
    reply: str = ""
    fallback: bool = False  # the deadline spoke: a filler, or an apology instead of an answer
    fallback_kind: str | None = None  # "ack", "timeout", "error"
    fastpath: bool = False  # answered without the LLM (time, date, ...)
    speculative_asr: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)


def build_turns(events: list[Event]) -> list[TurnRecord]:
    turns: dict[int, TurnRecord] = {}
    speech_end: dict[int, float] = {}
    wordless: set[int] = set()
    for e in events:  # emission order: causal within a turn (times may be backdated)
        if e.kind == "speech_started":
            turns[e.turn] = TurnRecord(e.turn, start_s=round(e.data["t_input"], 3))
        record = turns.get(e.turn)
        if record is None:
            continue
        if e.kind == "speech_ended":
            record.end_s = round(e.data["t_input"], 3)
            speech_end[e.turn] = e.t
            record.latency_ms["vad_decided"] = _ms(e.data["t_decided"] - e.t)
        elif e.kind == "transcript_final":
            record.transcript = e.data["text"]
            if not record.transcript.strip():
                wordless.add(e.turn)
            record.speculative_asr = bool(e.data.get("speculative"))
        elif e.kind == "reply_clause":
            source = e.data.get("source", "llm")
            record.fastpath |= source == "fastpath"
            if source not in ANSWER_SOURCES:
                record.fallback = True
                record.fallback_kind = record.fallback_kind or source
            elif e.turn in speech_end:  # the answer's first clause, fillers aside
                record.latency_ms.setdefault("first_clause", _ms(e.t - speech_end[e.turn]))
        elif e.kind == "reply_done":
            record.reply = e.data["text"]
        if e.kind in LATENCY_EVENTS and e.turn in speech_end:
            record.latency_ms.setdefault(LATENCY_EVENTS[e.kind], _ms(e.t - speech_end[e.turn]))
    return [turns[k] for k in sorted(turns) if k not in wordless]


def summarize(turns: list[TurnRecord]) -> dict[str, dict[str, float]]:
    """Median / p95 / max of each latency over the turns."""
    names = sorted({name for t in turns for name in t.latency_ms})
    summary = {}
    for name in names:
        values = sorted(t.latency_ms[name] for t in turns if name in t.latency_ms)
        summary[name] = {
            "median": round(statistics.median(values), 1),
            "p95": round(percentile(values, 95), 1),
            "max": round(values[-1], 1),
            "n": len(values),
        }
    return summary


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def turns_as_dicts(turns: list[TurnRecord]) -> list[dict[str, Any]]:
    return [asdict(t) for t in turns]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
