"""Typed events: subscription by type, isolation of failing listeners, and the rotated JSONL log."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.core import events as ev
from assistant.core.bus import EventBus, EventLog
from assistant.eval.turns import build_turns
from assistant.live.view import JsonlLog
from tests.test_pipeline import SAMPLES, fake_pipeline


def test_every_kind_keeps_its_snake_case_name() -> None:
    assert ev.SpeechStarted.kind == "speech_started" and ev.LlmFirstToken.kind == "llm_first_token"
    assert ev.BargeIn(2, interrupted=1).kind == "barge_in" and ev.Device.kind == "device"
    kinds = [cls.kind for cls in ev.Event.__subclasses__()]
    assert len(kinds) == len(set(kinds))


def test_listeners_get_only_the_types_they_subscribed_to() -> None:
    bus, heard, everything = EventBus(), EventLog(), EventLog()
    bus.subscribe(heard, ev.SpeechStarted, ev.SpeechEnded)
    bus.subscribe(everything)
    bus.emit(ev.SpeechStarted(1, 0.5))
    bus.emit(ev.TranscriptFinal(1, "hello"))
    bus.emit(ev.SpeechEnded(1, 1.0, t_decided=time.monotonic()))
    assert [e.kind for e in heard.events] == ["speech_started", "speech_ended"]
    assert len(everything.events) == 3
    assert everything.first(ev.TranscriptFinal, 1) == ev.TranscriptFinal(1, "hello", t=everything.events[1].t)


def test_a_failing_listener_is_logged_once_and_detached(caplog: pytest.LogCaptureFixture) -> None:
    bus, log = EventBus(), EventLog()
    calls = []

    def broken(event: ev.Event) -> None:
        calls.append(event)
        raise BrokenPipeError("the console went away")

    bus.subscribe(broken)
    bus.subscribe(log)
    with caplog.at_level(logging.ERROR, logger="assistant.core.events"):
        for turn in (1, 2, 3):
            bus.emit(ev.SpeechStarted(turn, 0.0))
    assert len(calls) == 1  # detached after its first failure
    assert [e.turn for e in log.events] == [1, 2, 3]  # the others go on
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "detached" in errors[0].getMessage()


def test_a_failing_listener_does_not_end_the_pipeline(cfg: Config) -> None:
    pipeline, log, sink = fake_pipeline(cfg, SAMPLES / "question.wav")

    def broken(event: ev.ReplyClause) -> None:
        raise RuntimeError("a view with a bug")

    pipeline.events.subscribe(broken, ev.ReplyClause)  # fails on the responder stage's thread
    pipeline.run()
    (turn,) = build_turns(log.events)
    assert turn.reply == "Paris is the capital, of course. It is lovely."
    assert sink.finished.is_set() and len(sink.items) == 3


def test_the_jsonl_log_keeps_the_record_format(tmp_path: Path) -> None:
    jsonl = JsonlLog(tmp_path / "events.jsonl")
    jsonl(ev.SpeechEnded(3, 2.5, t_decided=10.25, t=10.0))
    jsonl(ev.Action(-1, "timer", "done", {"seconds": 5.0}))
    jsonl(ev.Action(-1, "open_app", "refused", {}, reason="unknown app"))
    jsonl(ev.InputLevel(-1, -30.0))  # 10 Hz: never logged
    jsonl.close()
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [list(r) for r in records] == [
        ["t", "wall", "kind", "turn", "t_input", "t_decided"],
        ["t", "wall", "kind", "turn", "action", "outcome", "slots"],  # no reason: none was given
        ["t", "wall", "kind", "turn", "action", "outcome", "slots", "reason"],
    ]
    assert records[0]["kind"] == "speech_ended" and records[0]["t"] == 10.0 and records[0]["t_input"] == 2.5


def test_the_jsonl_log_is_rotated_at_its_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "agent.jsonl"
    jsonl = JsonlLog(path, max_kb=1, backups=2)
    for turn in range(200):
        jsonl(ev.TranscriptFinal(turn, "an overheard sentence that nobody meant for the assistant"))
    jsonl.close()
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["agent.jsonl", "agent.jsonl.1", "agent.jsonl.2"]
    assert all(f.stat().st_size <= 1024 for f in files)
    last = [json.loads(line) for line in path.read_text().splitlines()]
    assert last and last[-1]["turn"] == 199  # the newest events are in the current file


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_log_on_a_full_disk_is_detached_and_the_session_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    bus, log = EventBus(), EventLog()
    jsonl = JsonlLog(Path("/dev/full"), max_kb=1)  # every write fails with ENOSPC
    bus.subscribe(jsonl)
    bus.subscribe(log)
    with caplog.at_level(logging.ERROR, logger="assistant.core.events"):
        for turn in (1, 2, 3):
            bus.emit(ev.TranscriptFinal(turn, "what is the capital of France"))
    jsonl.close()
    assert [e.turn for e in log.events] == [1, 2, 3]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "No space left" in errors[0].getMessage()
