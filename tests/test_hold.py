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


def _wait_first_clause(held: HeldStreamer, waited: list[float]) -> None:
    t0 = time.monotonic()
    held.after_first_clause(lambda: False)
    waited.append(time.monotonic() - t0)


def test_the_first_clause_waits_for_its_sound_or_a_cut_or_at_most_a_second() -> None:
    events = EventBus()
    HeldStreamer(FakeLlm()).after_first_clause(lambda: False)  # not asked to wait: returns at once
    held = HeldStreamer(FakeLlm(), first_clause_waits=True)
    FirstClauseHold(held, events)
    for release in (
        ev.AnswerAudio(1),
        ev.BargeIn(2, 1),
        ev.ReplySkipped(3, "stop"),
        ev.SpeechError(4, "tts", "down"),
    ):
        waited: list[float] = []
        thread = threading.Thread(target=_wait_first_clause, args=(held, waited))
        thread.start()
        time.sleep(0.2)
        assert not waited, release  # still waiting
        events.emit(release)
        thread.join(2)
        assert waited and waited[0] < 0.5, release
    t0 = time.monotonic()
    held.after_first_clause(lambda: False)  # nobody says the sound started
    assert 0.9 < time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    held.after_first_clause(lambda: True)  # the reply was dropped
    assert time.monotonic() - t0 < 0.1


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
    assert held.made_during_first_synthesis() == 0
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
    assert len(rec.synths) >= 2 and rec.made_during_first_synthesis() == 0
    (done,) = log.of(ev.ReplyDone)
    assert "paris" in done.text.lower()
    assert [e.turn for e in log.of(ev.AnswerAudio)] == [1]
