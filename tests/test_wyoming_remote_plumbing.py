"""The plumbing around remote speech (asr/tts.backend: wyoming), against a scripted Wyoming server
(tests/fake_wyoming.py): failovers and lost requests in the reports, the turn's audio streamed to
the recognition server as it is spoken, streamed synthesis. The real servers are in
test_wyoming_remote.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.events import Event, SpeechError, SpeechFailover
from assistant.engines.wyoming_pool import ServerPool
from assistant.engines.wyoming_speech import WyomingRecognizer, WyomingSynthesizer
from assistant.eval.turns import build_turns
from assistant.eval.view import servers_note
from tests.fake_wyoming import FakeWyoming
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth
from tests.llm_server import free_port

REPO = Path(__file__).resolve().parent.parent
QUESTION = REPO / "assistant" / "samples" / "question.wav"


@pytest.fixture
def fake() -> Iterator[FakeWyoming]:
    server = FakeWyoming()
    yield server
    server.close()


def dead() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


def converse(cfg: Config, engines: build.Engines) -> list[Event]:
    events, seen = EventBus(), []
    events.subscribe(seen.append)
    source = build.file_source(cfg, QUESTION, False)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], events).run()
    return seen


def test_a_pool_keeps_each_threads_failures_until_taken(fake: FakeWyoming) -> None:
    down = dead()
    pool = ServerPool("ASR", "asr.uri", [down, fake.uri])  # equally idle: the first is tried first
    pool.call(lambda conn: None)
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.extend(pool.take_failures()))
    thread.start()
    thread.join()
    assert other == []  # another stage's thread: not its failure
    [(server, error)] = pool.take_failures()
    assert server == down and "refused" in error
    assert pool.take_failures() == []


def test_a_failover_and_a_lost_request_are_in_the_turns_report(cfg: Config, fake: FakeWyoming) -> None:
    asr_cfg = replace(cfg.asr, backend="wyoming", uri=(dead(), fake.uri))
    asr = WyomingRecognizer(asr_cfg)
    asr.warm_up = lambda: None  # type: ignore[method-assign]  # (it would find the dead one first)
    seen = converse(cfg, build.Engines(asr, FakeLlm(), FakeSynth()))
    failovers = [e for e in seen if isinstance(e, SpeechFailover)]
    assert failovers and failovers[0].role == "asr" and failovers[0].server == asr_cfg.uri[0]
    [turn] = build_turns(seen)
    assert turn.failovers == 1 and turn.speech_errors == 0  # then the dead one sits out its back-off
    assert turn.transcript == fake.text and not turn.fallback
    assert servers_note({"failovers": 1, "speech_errors": 0}) == " [1 failover]"

    # every server down: the turn is lost, apologised for, and still a turn of the report
    down = replace(cfg.asr, backend="wyoming", uri=dead())
    seen = converse(cfg, build.Engines(WyomingRecognizer(down), FakeLlm(), FakeSynth()))
    errors = [e for e in seen if isinstance(e, SpeechError)]
    assert [e.role for e in errors] == ["asr"]
    [turn] = build_turns(seen)
    assert turn.speech_errors == 1 and turn.fallback_kind == "error" and turn.transcript == ""

    # a voice that fails over, then one that is down: counted on the turn whose clauses they were
    picky = FakeWyoming(fail_word="Paris")
    try:  # (round-robin: one of the two clauses goes to the picky voice first)
        synth = WyomingSynthesizer(replace(cfg.tts, backend="wyoming", uri=(picky.uri, fake.uri)))
        llm = FakeLlm("Paris is nice. Paris is big.")
        seen = converse(cfg, build.Engines(FakeRecognizer(), llm, synth))
    finally:
        picky.close()
    assert any(isinstance(e, SpeechFailover) and e.role == "tts" and e.server == picky.uri for e in seen)
    assert build_turns(seen)[0].failovers >= 1
    synth = WyomingSynthesizer(replace(cfg.tts, backend="wyoming", uri=dead()))
    seen = converse(cfg, build.Engines(FakeRecognizer(), FakeLlm(), synth))
    [turn] = build_turns(seen)
    assert turn.speech_errors >= 1 and turn.reply  # answered, in text; its audio is what was lost
