"""Recorded-audio regression: run a corpus of recordings through the full pipeline and score it.

A corpus is a folder, searched recursively, of ``NAME.wav`` + ``NAME.txt`` (the reference transcript;
wyoming-bench's STT corpus layout), each with an optional ``NAME.json`` of expectations. A WAV without
its ``.txt`` is not a case (a folder of reply WAVs inside the corpus is not picked up).

Expectations (every key optional; unknown keys are an error, so a typo cannot silently pass)::

    {"reply_contains_any": ["Paris"], "fallback": false, "max_first_audio_ms": 1500}

Top-level keys apply to every turn of the recording; ``"turns": [{...}, {...}]`` gives per-turn
expectations (and says how many turns the recording must yield). Per-turn keys:
``reply_contains_any`` (any keyword, whole words, after the text normaliser), ``fallback`` (whether a
deadline fallback -- acknowledgement, timeout or error apology -- may speak), ``max_first_audio_ms``
and ``max_answer_audio_ms`` (from the end of speech). File keys: ``turn_count`` and ``max_wer``
(0..1, over the whole recording).

Each recording runs through ``build.conversation_pipeline`` -- the same code as ``assistant respond`` --
with engines loaded once and shared, so only the first case pays for loading the models.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant import build
from assistant.audio.file_source import AudioFileError
from assistant.audio.sinks import AudioSink, ListSink, TimelineWavSink
from assistant.config import Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import Event
from assistant.core.pipeline import PipelineError
from assistant.eval.textnorm import reply_mentions, sentence_match, word_errors
from assistant.eval.turns import build_turns, turns_as_dicts

log = logging.getLogger(__name__)

TURN_KEYS = {"reply_contains_any", "fallback", "max_first_audio_ms", "max_answer_audio_ms"}
FILE_KEYS = {"turns", "turn_count", "max_wer"}
CASE_TIMEOUT_S = 120.0  # beyond the recording's own length: a case this late is stuck, not slow


class CorpusError(ValueError):
    """A corpus that cannot be evaluated (no cases, a malformed expectations file); names the file."""


@dataclass(frozen=True)
class CorpusItem:
    name: str  # path relative to the corpus root, without suffix, with "/" separators
    wav: Path
    reference: str
    expect: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The first folder under the root (a variant, a speaker); "." for files at the top."""
        return self.name.split("/")[0] if "/" in self.name else "."


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    turn: int | None = None


@dataclass
class CaseResult:
    name: str
    group: str
    wav: str
    reference: str
    expect: dict[str, Any]
    duration_s: float = 0.0
    transcript: str = ""
    reply: str = ""
    word_errors: int = 0
    words: int = 0
    sentence_ok: bool = False
    turns: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    error: str | None = None
    reply_wav: str | None = None
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["wer"] = round(self.word_errors / self.words, 4) if self.words else None
        return data


# -- the corpus ----------------------------------------------------------------------------------


def find_corpus(root: Path) -> list[CorpusItem]:
    """Every NAME.wav with a NAME.txt under ``root``, sorted by name; expectations validated."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: not a folder")
    items = []
    for wav in sorted(root.rglob("*.wav")):
        txt = wav.with_suffix(".txt")
        if not txt.exists():
            log.debug("skipping %s: no %s beside it", wav, txt.name)
            continue
        expect_path = wav.with_suffix(".json")
        expect = load_expectations(expect_path) if expect_path.exists() else {}
        name = wav.relative_to(root).with_suffix("").as_posix()
        items.append(CorpusItem(name, wav, txt.read_text(encoding="utf-8").strip(), expect))
    if not items:
        raise CorpusError(f"{root}: no recordings (NAME.wav with a NAME.txt transcript beside it)")
    return items


def load_expectations(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CorpusError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    _check_keys(path, data, TURN_KEYS | FILE_KEYS)
    turns = data.get("turns", [])
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        raise CorpusError(f"{path}: 'turns' must be a list of objects")
    for turn in turns:
        _check_keys(path, turn, TURN_KEYS)
    for entry in [data, *turns]:
        keywords = entry.get("reply_contains_any", [])
        if not isinstance(keywords, list) or not all(isinstance(k, str) for k in keywords):
            raise CorpusError(f"{path}: 'reply_contains_any' must be a list of strings")
    return data


def _check_keys(path: Path, data: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CorpusError(f"{path}: unknown expectation {unknown[0]!r}; known: {', '.join(sorted(allowed))}")


# -- running ------------------------------------------------------------------------------------


def run_corpus(
    cfg: Config,
    engines: build.Engines,
    items: list[CorpusItem],
    realtime: bool,
    reply_dir: Path | None = None,
    on_start: Callable[[int, CorpusItem], None] = lambda _i, _item: None,
    on_done: Callable[[int, CaseResult], None] = lambda _i, _r: None,
) -> list[CaseResult]:
    results = []
    for i, item in enumerate(items):
        on_start(i, item)
        result = run_case(cfg, engines, item, realtime, reply_dir)
        results.append(result)
        on_done(i, result)
    return results


def run_case(
    cfg: Config, engines: build.Engines, item: CorpusItem, realtime: bool, reply_dir: Path | None = None
) -> CaseResult:
    """One recording through the whole pipeline; a failing case is recorded, not raised."""
    result = CaseResult(item.name, item.group, str(item.wav), item.reference, item.expect)
    start = time.monotonic()
    try:
        events = _run_pipeline(cfg, engines, item, realtime, reply_dir, result)
    except (AudioFileError, PipelineError, TimeoutError) as exc:
        log.debug("case %s failed", item.name, exc_info=True)
        result.error = str(exc)
        events = []
    result.wall_s = round(time.monotonic() - start, 2)
    result.turns = turn_dicts(events)
    result.transcript = " ".join(t["transcript"] for t in result.turns if t["transcript"])
    result.reply = " ".join(t["reply"] for t in result.turns if t["reply"])
    result.word_errors, result.words = word_errors(item.reference, result.transcript)
    result.sentence_ok = sentence_match(item.reference, result.transcript)
    if result.error is None:
        result.checks = check_case(item.expect, result)
    return result


def _run_pipeline(
    cfg: Config,
    engines: build.Engines,
    item: CorpusItem,
    realtime: bool,
    reply_dir: Path | None,
    result: CaseResult,
) -> list[Event]:
    source = build.file_source(cfg, item.wav, realtime)
    result.duration_s = round(source.duration_s, 3)
    sinks: list[AudioSink] = [ListSink()]
    if reply_dir is not None:
        reply_wav = reply_dir / f"{item.name}.wav"
        sinks = [TimelineWavSink(reply_wav, min_duration_s=source.duration_s)]
        result.reply_wav = str(reply_wav)
    events, event_log = EventBus(), EventLog()
    events.subscribe(event_log)
    pipeline = build.conversation_pipeline(cfg, engines, source, sinks, events)
    try:
        pipeline.setup()
        pipeline.start()
        limit = CASE_TIMEOUT_S + source.duration_s
        if not pipeline.wait(timeout=limit):
            raise TimeoutError(f"no end after {limit:.0f} s")
    finally:
        pipeline.stop()
    return event_log.events


def turn_dicts(events: list[Event]) -> list[dict[str, Any]]:
    return turns_as_dicts(build_turns(events))


# -- expectations -------------------------------------------------------------------------------


def check_case(expect: dict[str, Any], result: CaseResult) -> list[Check]:
    checks = []
    per_turn = expect.get("turns", [])
    wanted = expect.get("turn_count", len(per_turn) or None)
    has_turn_keys = bool(TURN_KEYS & set(expect)) or bool(per_turn)
    got = len(result.turns)
    if wanted is not None:
        checks.append(Check("turn_count", got == wanted, f"{got} turns, expected {wanted}"))
    elif has_turn_keys:
        checks.append(Check("turn_count", got >= 1, f"{got} turns, expected at least one"))
    if "max_wer" in expect:
        wer = result.word_errors / result.words if result.words else 0.0
        checks.append(
            Check("max_wer", wer <= expect["max_wer"], f"WER {wer:.0%} (max {expect['max_wer']:.0%})")
        )
    for i, turn in enumerate(result.turns):
        rules = {k: v for k, v in expect.items() if k in TURN_KEYS}
        if i < len(per_turn):
            rules.update(per_turn[i])
        checks += _check_turn(rules, turn)
    return checks


def _check_turn(rules: dict[str, Any], turn: dict[str, Any]) -> list[Check]:
    n = turn["turn"]
    checks = []
    if "reply_contains_any" in rules:
        words = rules["reply_contains_any"]
        ok = reply_mentions(turn["reply"], words)
        checks.append(Check("reply_contains_any", ok, f"reply {turn['reply']!r}, wanted any of {words}", n))
    if "fallback" in rules:
        ok = turn["fallback"] == rules["fallback"]
        detail = (
            f"fallback {turn['fallback_kind'] or 'none'}, expected {'one' if rules['fallback'] else 'none'}"
        )
        checks.append(Check("fallback", ok, detail, n))
    for key, metric in (("max_first_audio_ms", "first_audio"), ("max_answer_audio_ms", "answer_audio")):
        if key in rules:
            value = turn["latency_ms"].get(metric)
            ok = value is not None and value <= rules[key]
            shown = "never" if value is None else f"{value:.0f} ms"
            checks.append(Check(key, ok, f"{metric} {shown} (max {rules[key]} ms)", n))
    return checks
