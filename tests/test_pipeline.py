"""The pipeline core with scripted engines: ordering, turns, cancellation, errors, shutdown."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from assistant.audio.file_source import FileSource
from assistant.audio.sinks import ListSink, TimelineWavSink
from assistant.config import Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import ReplyClause
from assistant.core.messages import End, Message, ReplyText, SpeechEnded
from assistant.core.pipeline import Pipeline, PipelineError
from assistant.core.stage import Stage, StageContext, run_stage
from assistant.core.turn import TurnScope
from assistant.eval.turns import build_turns
from assistant.reply.deadline import DeadlineResponder
from assistant.reply.fastpath import FastPathResponder
from assistant.reply.llm import LlmResponder
from assistant.stages.asr import AsrStage
from assistant.stages.playback import PlaybackStage
from assistant.stages.responder import ResponderStage
from assistant.stages.tts import TtsStage
from assistant.stages.vad import VadStage
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth

SAMPLES = Path(__file__).resolve().parent.parent / "assistant" / "samples"


def responder_chain(cfg: Config, llm: FakeLlm) -> DeadlineResponder:
    return DeadlineResponder(FastPathResponder(LlmResponder(cfg.llm, engine=llm)), cfg.deadline)


def fake_pipeline(
    cfg: Config,
    path: Path,
    llm: FakeLlm | None = None,
    extra: list[Stage] | None = None,
    synth: FakeSynth | None = None,
):
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    sink = ListSink()
    stages: list[Stage] = [
        VadStage(cfg.vad, cfg.audio.frame_ms),
        AsrStage(cfg.asr, engine=FakeRecognizer()),
        *(extra or []),
        ResponderStage(responder_chain(cfg, llm or FakeLlm()), cfg.llm.system_prompt),
        TtsStage(cfg.tts, engine=synth or FakeSynth()),
        PlaybackStage([sink]),
    ]
    source = FileSource(path, realtime=False, tail_silence_s=1.0)
    return Pipeline(source, stages, events=events), log, sink


def test_one_turn_flows_through_every_stage_in_order(cfg: Config) -> None:
    pipeline, log, sink = fake_pipeline(cfg, SAMPLES / "question.wav")
    pipeline.run()
    kinds = [e.kind for e in log.events if e.turn == 1]
    order = [
        "speech_started",
        "speech_ended",
        "transcript_final",
        "llm_first_token",
        "reply_clause",
        "first_audio",
    ]
    positions = [kinds.index(k) for k in order]
    assert positions == sorted(positions)
    clauses = [e.text for e in log.of(ReplyClause)]
    assert clauses == ["Paris is the capital,", "of course.", "It is lovely."]
    assert sink.finished.is_set() and len(sink.items) == 3
    (turn,) = build_turns(log.events)
    assert turn.transcript == "what is the capital of france"
    assert turn.reply == "Paris is the capital, of course. It is lovely."
    assert 0.2 < turn.start_s < turn.end_s
    assert {"asr_final", "llm_first_token", "first_audio"} <= set(turn.latency_ms)


def test_every_turn_of_a_recording_gets_a_reply_with_history(cfg: Config) -> None:
    llm = FakeLlm()
    pipeline, log, _ = fake_pipeline(cfg, SAMPLES / "two_questions.wav", llm=llm)
    pipeline.run()
    turns = build_turns(log.events)
    assert [t.turn for t in turns] == [1, 2]
    assert all(t.reply for t in turns)
    assert turns[0].end_s < turns[1].start_s
    # the second prompt carries the first exchange as history
    assert [m["role"] for m in llm.prompts[1]] == ["system", "user", "assistant", "user"]


def test_silence_gives_no_turns(cfg: Config, tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(16000 * 3, dtype=np.int16), 16000)
    pipeline, log, sink = fake_pipeline(cfg, path)
    pipeline.run()
    assert build_turns(log.events) == [] and sink.items == []


class Recorder(Stage):
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Message] = []

    def process(self, msg: Message) -> Iterator[Message]:
        self.seen.append(msg)
        yield msg


def test_messages_of_a_cancelled_turn_are_dropped() -> None:
    scope = TurnScope()
    ctx = StageContext(scope, EventBus(), threading.Event())
    stage = Recorder()
    stage.setup(ctx)
    inbox: queue.Queue[Message] = queue.Queue()
    outbox: queue.Queue[Message] = queue.Queue()
    ended = SpeechEnded(1, 1.0, t_decided=0.0, t=0.0)
    scope.interrupt(2)  # barge-in: turn 1 is cancelled
    for turn in (1, 2, 1):
        inbox.put(ReplyText(turn, f"t{turn}", False, ended, 0.0))
    inbox.put(End())
    run_stage(stage, inbox, outbox, ctx, on_error=lambda *_: pytest.fail("no error expected"))
    assert [m.turn for m in stage.seen if isinstance(m, ReplyText)] == [2]
    assert [type(outbox.get_nowait()).__name__ for _ in range(2)] == ["ReplyText", "End"]


class Exploding(Stage):
    name = "exploding"

    def process(self, msg: Message) -> Iterator[Message]:
        if isinstance(msg, ReplyText):
            raise RuntimeError("engine on fire")
        yield msg


def test_a_failing_stage_stops_the_pipeline_with_its_name(cfg: Config) -> None:
    pipeline, _, _ = fake_pipeline(cfg, SAMPLES / "question.wav")
    pipeline.stages.insert(3, Exploding())  # between responder and tts
    pipeline._queues.append(queue.Queue())
    start = time.monotonic()
    with pytest.raises(PipelineError, match="exploding.*engine on fire") as info:
        pipeline.run()
    assert info.value.stage == "exploding"
    assert time.monotonic() - start < 10
    assert not any(t.is_alive() for t in pipeline._threads)


def test_stop_ends_every_thread_within_a_second(cfg: Config, tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(16000 * 60, dtype=np.int16), 16000)
    pipeline, _, _ = fake_pipeline(cfg, path)
    pipeline.source = FileSource(path, realtime=True)  # a minute at real-time pace
    pipeline.setup()
    pipeline.start()
    assert not pipeline.wait(timeout=0.3)
    start = time.monotonic()
    pipeline.stop()
    assert time.monotonic() - start < 1.0
    assert not any(t.is_alive() for t in pipeline._threads)


def test_a_ten_minute_recording_streams_in_bounded_memory(cfg: Config, tmp_path: Path) -> None:
    """Memory must not grow with the recording: it is read, resampled and written block by block."""
    import tracemalloc

    question, rate = sf.read(SAMPLES / "question.wav", dtype="int16")
    path = tmp_path / "ten_minutes.wav"
    with sf.SoundFile(path, "w", samplerate=44100, channels=2, subtype="PCM_16") as out:  # 10 min, 101 MB
        loud = np.repeat(question[:, None], 2, axis=1)
        up = np.repeat(loud, 3, axis=0)[: int(len(loud) * 44100 / rate)]  # crude 16k -> 44.1k
        for minute in range(10):
            out.write(np.zeros((44100 * 50, 2), dtype=np.int16))
            out.write(up if minute % 3 == 0 else np.zeros_like(up))
            out.write(np.zeros((44100 * 10 - len(up), 2), dtype=np.int16))
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stages: list[Stage] = [
        VadStage(cfg.vad, cfg.audio.frame_ms),
        AsrStage(cfg.asr, engine=FakeRecognizer()),
        ResponderStage(responder_chain(cfg, FakeLlm()), cfg.llm.system_prompt),
        TtsStage(cfg.tts, engine=FakeSynth()),
        PlaybackStage([TimelineWavSink(tmp_path / "reply.wav", min_duration_s=600)]),
    ]
    tracemalloc.start()
    Pipeline(FileSource(path, realtime=False), stages, events=events).run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(build_turns(log.events)) == 4
    assert sf.info(tmp_path / "reply.wav").duration >= 600
    assert peak < 20e6, f"peak {peak / 1e6:.1f} MB of Python allocations for a 101 MB recording"


def test_a_clause_cut_mid_sentence_is_said_with_a_comma_and_a_short_pause(cfg: Config) -> None:
    from assistant.stages.tts import JOIN_PAUSE_S

    class TrailingSilence(FakeSynth):  # like piper: 250 ms of silence after the words
        def __init__(self) -> None:
            self.said: list[str] = []

        def synthesize(self, text: str) -> Iterator[np.ndarray]:
            self.said.append(text)
            tone = next(super().synthesize(text))
            yield np.concatenate([tone, np.zeros(int(0.25 * self.sample_rate), np.int16)])

    synth = TrailingSilence()
    tts = TtsStage(cfg.tts, engine=synth)
    tts.setup(StageContext(TurnScope(), EventBus(), threading.Event()))
    synth.said.clear()
    ended = SpeechEnded(1, 1.0, t_decided=time.monotonic(), t=time.monotonic())

    def said(text: str, continues: bool) -> float:
        out = list(tts.process(ReplyText(1, text, False, ended, time.monotonic(), "llm", continues)))
        assert all(m.text == text for m in out)  # what is reported and kept is the clause itself
        return sum(len(m.pcm) for m in out) / synth.sample_rate

    head, tail = said("The capital of France", True), said("is Paris.", False)
    assert synth.said == ["The capital of France,", "is Paris."]
    assert head <= 0.05 * len("The capital of France,") + JOIN_PAUSE_S + 0.01  # the pause cut short
    assert tail >= 0.05 * len("is Paris.") + 0.24  # a sentence's end keeps its silence

    # the responder marks the cut and the stages carry it to the voice
    synth = TrailingSilence()
    pipeline, log, _ = fake_pipeline(
        cfg, SAMPLES / "question.wav", FakeLlm("The capital of France is Paris."), synth=synth
    )
    pipeline.run()
    assert [e.text for e in log.of(ReplyClause)] == ["The capital of France", "is Paris."]
    assert synth.said[-2:] == ["The capital of France,", "is Paris."]


def test_tts_replays_short_clauses_it_said_before_and_prepared_ones_from_memory(cfg: Config) -> None:
    class CountingSynth(FakeSynth):
        def __init__(self) -> None:
            self.said: list[str] = []

        def synthesize(self, text: str) -> Iterator[np.ndarray]:
            self.said.append(text)
            yield from super().synthesize(text)

    synth = CountingSynth()
    tts = TtsStage(cfg.tts, engine=synth, prepared=("Done.",))
    tts.setup(StageContext(TurnScope(), EventBus(), threading.Event()))
    synth.said.clear()  # the start-up work (warm-up, prepared phrases) is not what is measured
    ended = SpeechEnded(1, 1.0, t_decided=time.monotonic(), t=time.monotonic())
    long = "A clause long enough that keeping it would only waste memory, since nobody repeats it."

    def say(text: str) -> np.ndarray:
        out = list(tts.process(ReplyText(1, text, False, ended, time.monotonic())))
        return np.concatenate([m.pcm for m in out])

    first = say("Timer set for 5 minutes.")
    assert np.array_equal(say("Timer set for 5 minutes."), first)
    say("Done.")
    say(long)
    say(long)
    assert synth.said == ["Timer set for 5 minutes.", long, long]
