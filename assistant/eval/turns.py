"""Per-turn records built from the event stream: what was heard, what was said, and how fast.

Every latency is measured from the turn's end of speech (the arrival of its last voiced frame), so
the VAD's hangover is counted honestly.
"""

from __future__ import annotations

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
    fallback: bool = False  # the deadline apologised instead of answering (late, or an error)
    fallback_kind: str | None = None  # "timeout", "error"
    acknowledged: bool = False  # a filler ("Hmm.") before a late answer: counted apart (ack_rate)
    fastpath: bool = False  # answered without the LLM (time, date, ...)
    speculative_asr: bool = False
    latency_ms: dict[str, float] = field(default_factory=dict)


def build_turns(events: list[Event]) -> list[TurnRecord]:
    turns: dict[int, TurnRecord] = {}
    speech_end: dict[int, float] = {}
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
            record.speculative_asr = bool(e.data.get("speculative"))
        elif e.kind == "reply_clause":
            source = e.data.get("source", "llm")
            record.fastpath |= source == "fastpath"
            if source == "ack":  # manners, not a failure: kept apart so real fallbacks still show
                record.acknowledged = True
            elif source not in ANSWER_SOURCES:
                record.fallback = True
                record.fallback_kind = record.fallback_kind or source
            elif e.turn in speech_end:  # the answer's first clause, fillers aside
                record.latency_ms.setdefault("first_clause", _ms(e.t - speech_end[e.turn]))
        elif e.kind == "reply_done":
            record.reply = e.data["text"]
        if e.kind in LATENCY_EVENTS and e.turn in speech_end:
            record.latency_ms.setdefault(LATENCY_EVENTS[e.kind], _ms(e.t - speech_end[e.turn]))
    return [turns[k] for k in sorted(turns)]


def turns_as_dicts(turns: list[TurnRecord]) -> list[dict[str, Any]]:
    return [asdict(t) for t in turns]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
