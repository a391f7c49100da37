"""Holding a conversation's LLM between tokens: while a paused reply is judged, and while the first
clause of an answer is synthesised (stages/hold.py). Scripted engines for the plumbing, then the
real models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import Config
from assistant.core import events as ev
from assistant.core.bus import EventBus, EventLog
from assistant.core.engines import Synthesizer, TextStreamer
from assistant.stages.hold import FirstClauseHold, HeldStreamer
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth

SAMPLES = Path(__file__).resolve().parent.parent / "assistant" / "samples"


def test_the_first_answer_clause_holds_until_its_sound_starts() -> None:
    calls: list[tuple[bool, str]] = []
    events = EventBus()
    FirstClauseHold(type("T", (), {"hold": lambda _s, on, reason, *_: calls.append((on, reason))})(), events)
    events.emit(ev.ReplyClause(1, "Hmm.", "ack"))  # prepared sound: nothing to make room for
    assert calls == []
    events.emit(ev.ReplyClause(1, "The capital of France", "llm"))
    events.emit(ev.ReplyClause(1, "is Paris.", "llm"))  # only the first clause
    assert calls == [(True, "first clause")]
    events.emit(ev.AnswerAudio(1))
    assert calls[-1] == (False, "first clause")
    events.emit(ev.ReplyClause(2, "Yes.", "llm"))
    events.emit(ev.BargeIn(3, 2))  # a cut reply has no sound to wait for
    assert calls[-2:] == [(True, "first clause"), (False, "first clause")]


def test_a_held_stream_runs_when_no_reason_holds_it_and_a_forgotten_hold_lapses() -> None:
    held = HeldStreamer(FakeLlm("one two three"))
    held.hold(True, "pause")
    held.hold(True, "first clause")
    held.hold(False, "first clause")
    assert held.held()  # the pause still holds it
    held.hold(False, "pause")
    assert not held.held()
    held.hold(True, "first clause", max_s=0.2)  # nobody releases this one
    t0 = time.monotonic()
    assert "".join(held.stream([])) == "one two three"
    assert 0.15 < time.monotonic() - t0 < 2.0


class _Recorded:
    """A language model that notes when each piece is made, and a synthesiser that notes when each
    clause is made, on one clock."""

    def __init__(self, llm: TextStreamer, synth: Synthesizer) -> None:
        self.llm, self.synth = llm, synth
        self.sample_rate = synth.sample_rate
        self.pieces: list[float] = []
        self.synths: list[tuple[str, float, float]] = []

    def stream(self, messages, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:  # type: ignore[no-untyped-def]
        for piece in self.llm.stream(messages, should_stop):
            self.pieces.append(time.monotonic())
            yield piece

    def warm_up(self) -> None:
        self.llm.warm_up()

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        t0 = time.monotonic()
        audio = list(self.synth.synthesize(text))
        self.synths.append((text, t0, time.monotonic()))
        yield from audio

    def synthesize_all(self, text: str) -> np.ndarray:
        return self.synth.synthesize_all(text)

    def made_during_first_synthesis(self) -> int:
        _text, start, end = self.synths[0]
        return sum(start < t < end for t in self.pieces)


class _SlowSynth(FakeSynth):
    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        time.sleep(0.3)
        yield from super().synthesize(text)


def run_fake(cfg: Config, priority: bool) -> _Recorded:
    cfg = replace(cfg, tts=replace(cfg.tts, first_clause_priority=priority))
    rec = _Recorded(
        FakeLlm("Paris is the capital, of course, and it is lovely in spring.", token_s=0.02), _SlowSynth()
    )
    engines = build.Engines(FakeRecognizer(), rec, rec)  # type: ignore[arg-type]
    source = build.file_source(cfg, SAMPLES / "question.wav", realtime=False)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], EventBus()).run()
    return rec


def test_no_token_is_made_while_the_first_clause_is_synthesised(cfg: Config) -> None:
    held = run_fake(cfg, priority=True)
    assert held.made_during_first_synthesis() <= 1  # the one already being made when it began
    side_by_side = run_fake(cfg, priority=False)
    assert side_by_side.made_during_first_synthesis() >= 5  # (0.3 s at a token per 20 ms)
    assert "".join(c for c, *_ in held.synths) == "".join(c for c, *_ in side_by_side.synths)


@pytest.mark.real
def test_with_the_real_models_the_first_clause_is_made_alone_and_the_answer_is_whole(cfg: Config) -> None:
    loaded = build.load_engines(cfg)
    rec = _Recorded(loaded.llm, loaded.synth)
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = build.file_source(cfg, SAMPLES / "question.wav", realtime=True)
    build.conversation_pipeline(cfg, replace(loaded, llm=rec, synth=rec), source, [ListSink()], events).run()
    assert len(rec.synths) >= 2 and rec.made_during_first_synthesis() <= 1
    (done,) = log.of(ev.ReplyDone)
    assert "paris" in done.text.lower()
    assert [e.turn for e in log.of(ev.AnswerAudio)] == [1]


def test_a_hold_waits_for_the_release_not_for_its_poll() -> None:
    held = HeldStreamer(FakeLlm("a b"))
    held.hold(True, "first clause")
    got: list[float] = []
    thread = threading.Thread(target=lambda: got.extend(time.monotonic() for _ in held.stream([])))
    thread.start()
    time.sleep(0.3)
    assert got == []
    released = time.monotonic()
    held.hold(False, "first clause")
    thread.join(2)
    assert len(got) == 2 and got[0] - released < 0.1
