"""Per-turn records built from the event stream: what was heard, what was said, and how fast.

Every latency is measured from the turn's end of speech (the arrival of its last voiced frame), so
the VAD's hangover is counted honestly. Sound the recogniser found no words in (noise, music the VAD
took for speech) is no turn: nothing was asked, and nothing answered; a turn whose recognition was
lost (every speech server down) is one: it was apologised for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.core import events as ev
from assistant.core.engines import ANSWER_SOURCES

# event type -> latency name in the report
LATENCY_EVENTS: dict[type[ev.Event], str] = {
    ev.TranscriptFinal: "asr_final",
    ev.LlmFirstToken: "llm_first_token",
    ev.FirstAudio: "first_audio",  # first sound of any kind (a deadline acknowledgement included)
    ev.AnswerAudio: "answer_audio",  # first sound of the answer itself
    ev.ReplyDone: "reply_done",
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
    failovers: int = 0  # remote speech: requests a failed server left to another one
    speech_errors: int = 0  # remote speech: requests no server could serve (recognition, clauses)
    latency_ms: dict[str, float] = field(default_factory=dict)


def build_turns(events: list[ev.Event]) -> list[TurnRecord]:
    turns: dict[int, TurnRecord] = {}
    speech_end: dict[int, float] = {}
    wordless: set[int] = set()
    lost_asr: set[int] = set()
    for e in events:  # emission order: causal within a turn (times may be backdated)
        if isinstance(e, ev.SpeechStarted):
            turns[e.turn] = TurnRecord(e.turn, start_s=round(e.t_input, 3))
        record = turns.get(e.turn)
        if record is None:
            continue
        if isinstance(e, ev.SpeechEnded):
            record.end_s = round(e.t_input, 3)
            speech_end[e.turn] = e.t
            record.latency_ms["vad_decided"] = _ms(e.t_decided - e.t)
        elif isinstance(e, ev.TranscriptFinal):
            record.transcript = e.text
            if not record.transcript.strip():
                wordless.add(e.turn)
            record.speculative_asr = e.speculative
        elif isinstance(e, ev.ReplyClause):
            source = e.source
            record.fastpath |= source == "fastpath"
            if source == "ack":  # manners, not a failure: kept apart so real fallbacks still show
                record.acknowledged = True
            elif source not in ANSWER_SOURCES:
                record.fallback = True
                record.fallback_kind = record.fallback_kind or source
            elif e.turn in speech_end:  # the answer's first clause, fillers aside
                record.latency_ms.setdefault("first_clause", _ms(e.t - speech_end[e.turn]))
        elif isinstance(e, ev.ReplyDone):
            record.reply = e.text
        elif isinstance(e, ev.SpeechFailover):
            record.failovers += 1
        elif isinstance(e, ev.SpeechError):
            record.speech_errors += 1
            if e.role == "asr":  # heard, but not understood: a turn, apologised for
                lost_asr.add(e.turn)
        if type(e) in LATENCY_EVENTS and e.turn in speech_end:
            record.latency_ms.setdefault(LATENCY_EVENTS[type(e)], _ms(e.t - speech_end[e.turn]))
    return [turns[k] for k in sorted(turns) if k not in wordless - lost_asr]


def turns_as_dicts(turns: list[TurnRecord]) -> list[dict[str, Any]]:
    return [asdict(t) for t in turns]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
