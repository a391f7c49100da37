"""The plumbing around remote speech (asr/tts.backend: wyoming), against a scripted Wyoming server
(tests/fake_wyoming.py): failovers and lost requests in the reports, the turn's audio streamed to
the recognition server as it is spoken, streamed synthesis. The real servers are in
test_wyoming_remote.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest

from assistant import build
from assistant.audio.convert import PIPELINE_RATE
from assistant.audio.sinks import ListSink
from assistant.cli.respond import turn_table
from assistant.config import Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.engines import EngineUnavailable
from assistant.core.events import Event, SpeechError, SpeechFailover, TranscriptCommitted
from assistant.core.messages import AudioChunk, SpeechEnded, SpeechStarted, Transcript
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.engines.wyoming_pool import READ_TIMEOUT_S, Connection, ServerError, ServerPool
from assistant.engines.wyoming_speech import WyomingRecognizer, WyomingSynthesizer
from assistant.engines.wyoming_stream import StreamStats, WyomingStream
from assistant.eval.run import CaseResult
from assistant.eval.summary import aggregate
from assistant.eval.turns import build_turns, turns_as_dicts
from assistant.eval.view import plain_text, servers_note
from assistant.stages.asr import MAX_PASS_S, TAIL_ZEROS_S, AsrStage
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
    assert "speech servers" in plain_text(turn_table([turn])).splitlines()[0]  # respond's table
    assert plain_text(turn_table([turn])).splitlines()[-1].endswith(" 1 failover")

    # every server down: the turn is lost, apologised for, and still a turn of the report
    down = replace(cfg.asr, backend="wyoming", uri=dead())
    seen = converse(cfg, build.Engines(WyomingRecognizer(down), FakeLlm(), FakeSynth()))
    errors = [e for e in seen if isinstance(e, SpeechError)]
    assert [e.role for e in errors] == ["asr"]
    [turn] = build_turns(seen)
    assert turn.speech_errors == 1 and turn.fallback_kind == "error" and turn.transcript == ""
    assert servers_note(asdict(turn)) == " [1 speech error]"
    agg = aggregate([CaseResult("q", "g", "q.wav", "", {}, turns=turns_as_dicts([turn]))])
    assert (agg["failovers"], agg["speech_errors"], agg["fallbacks"]) == (0, 1, 1)  # `assistant eval`

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


# -- the turn's audio, streamed as it is spoken ----------------------------------------------------


def frames(seconds: float, value: int = 500) -> list[np.ndarray]:
    n = round(seconds * 50)
    return [np.full(320, value + i, np.int16) for i in range(n)]  # 20 ms each, all different


def test_a_pass_at_the_end_of_speech_sends_only_the_tail(fake: FakeWyoming) -> None:
    stats = StreamStats()
    stream = WyomingStream(ServerPool("ASR", "asr.uri", fake.uri), "en", stats)
    audio = frames(1.0)
    for i, pcm in enumerate(audio):
        stream.feed(pcm, (i + 1) * 320)
    zeros = np.zeros(1600, np.int16)
    assert stream.transcribe(np.concatenate([*audio, zeros])) == fake.text
    [conn] = fake.connections
    kinds = [e.type for e in conn]
    assert kinds[:2] == ["transcribe", "audio-start"] and kinds[-1] == "audio-stop"
    assert kinds.count("audio-chunk") == len(audio) + 1  # one per frame as it came, then the silence
    assert fake.audio_of(conn) == 16000 + 1600
    assert (stats.streamed, stats.whole, stats.tail_samples) == (1, 0, 1600)

    # the next audio opens another connection with the turn so far; audio past where a pass may
    # end is held back, and a pass that covers less than was sent goes whole
    more = frames(0.2, 2000)
    for pcm in more:
        stream.feed(pcm, 16000)  # (unvoiced: only up to the old end may go)
    wait_for(lambda: len(fake.connections) == 2 and fake.audio_of(fake.connections[1]) >= 16000)
    time.sleep(0.1)
    assert fake.audio_of(fake.connections[1]) == 16000  # the turn so far, not what came after it
    stream.feed(np.full(320, 7, np.int16), 16000 + 5 * 320)
    wait_for(lambda: fake.audio_of(fake.connections[1]) == 16000 + 5 * 320)
    assert stream.transcribe(np.concatenate([*audio, zeros])) == fake.text  # (covers less: whole)
    wait_for(lambda: len(fake.connections) == 3 and fake.connections[2][-1].type == "audio-stop")
    assert (stats.streamed, stats.whole) == (1, 1) and fake.audio_of(fake.connections[2]) == 16000 + 1600
    stream.close()


def test_a_server_lost_mid_turn_leaves_the_pass_to_another(fake: FakeWyoming) -> None:
    other = FakeWyoming(text="from the other one")
    try:
        pool = ServerPool("ASR", "asr.uri", [other.uri, fake.uri])
        stream = WyomingStream(pool, "en", StreamStats())
        audio = frames(0.5)
        for i, pcm in enumerate(audio):
            stream.feed(pcm, (i + 1) * 320)
        other.kill()  # and the streamed connection with it
        assert stream.transcribe(np.concatenate(audio)) == fake.text
        [(server, _)] = pool.take_failures()
        assert server == other.uri and stream.stats.whole == 1
        stream.close()
        stream = WyomingStream(ServerPool("ASR", "asr.uri", dead()), "en", StreamStats())
        stream.feed(audio[0], 320)  # no server: nothing to stream to, and no error yet
        with pytest.raises(EngineUnavailable):
            stream.transcribe(audio[0])
    finally:
        other.close()


def test_the_asr_stage_streams_to_a_remote_recogniser(cfg: Config, fake: FakeWyoming) -> None:
    asr = WyomingRecognizer(replace(cfg.asr, backend="wyoming", uri=fake.uri))
    seen = converse(cfg, build.Engines(asr, FakeLlm(), FakeSynth()))
    [turn] = build_turns(seen)
    assert turn.transcript == fake.text and turn.failovers == 0
    assert asr.stream_stats.streamed >= 1  # the speculative or final pass sent only its tail
    assert asr.stream_stats.tail_samples <= asr.stream_stats.streamed * 1600  # the pad of silence


def wait_for(ok, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_a_long_turn_streams_window_by_window(cfg: Config, fake: FakeWyoming) -> None:
    """Past one window the oldest audio is committed to text: the stream drops it and starts again
    with what is kept, so no connection carries more than a window and the final pass still
    sends only its pad."""
    asr = WyomingRecognizer(replace(cfg.asr, backend="wyoming", uri=fake.uri))
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stage = AsrStage(replace(cfg.asr, speculative=False, partial_interval_ms=0), asr)
    stage.ctx = StageContext(TurnScope(), events, threading.Event())  # (no warm-up: no model here)
    rng = np.random.default_rng(1)
    list(stage.process(SpeechStarted(1, 0.0, t=0.0)))
    for i in range(60 * 50):
        pcm = (rng.standard_normal(PIPELINE_RATE // 50) * 3000).astype(np.int16)
        list(stage.process(AudioChunk(1, pcm, PIPELINE_RATE, i / 50, 0.0, voiced=True)))
    outs = list(stage.process(SpeechEnded(1, 60.0, 0.0, t=0.0)))
    (final,) = [m for m in outs if isinstance(m, Transcript)]
    commits = len(log.of(TranscriptCommitted))
    assert commits >= 2 and final.text == " ".join([fake.text] * (commits + 1))
    assert asr.stream_stats.streamed == 1 and asr.stream_stats.whole == commits  # (a cut: sent whole)
    assert asr.stream_stats.tail_samples == round(TAIL_ZEROS_S * PIPELINE_RATE)
    assert (
        max(fake.audio_of(c) for c in fake.connections) <= (MAX_PASS_S + TAIL_ZEROS_S) * PIPELINE_RATE + 320
    )


def test_a_server_back_from_its_back_off_takes_its_share_again(fake: FakeWyoming) -> None:
    other = FakeWyoming()
    try:
        pool = ServerPool("ASR", "asr.uri", [fake.uri, other.uri])
        first, second = pool.servers
        failing = [True]

        def request(conn: Connection) -> str:
            if conn.uri == fake.uri and failing and failing.pop():
                raise ServerError("a hiccup")
            return conn.uri

        assert pool.call(request) == other.uri  # the first failed once: a failover
        assert first.backoff_s and pool.call(request) == other.uri  # skipped for its back-off
        first.down_until = 0.0  # its back-off is over
        served = {pool.call(request) for _ in range(4)}
        assert served == {fake.uri, other.uri} and not first.backoff_s  # asked describe, and used
        with socket.create_server(("127.0.0.1", 0)) as hung:  # a due server that never answers
            pool = ServerPool("ASR", "asr.uri", [f"tcp://127.0.0.1:{hung.getsockname()[1]}", other.uri])
            pool.servers[0].backoff_s = 1.0
            t = time.monotonic()
            assert pool.call(request) == other.uri
            assert time.monotonic() - t < READ_TIMEOUT_S and pool.servers[0].backoff_s == 2.0
            assert pool.take_failures() == []  # (a server known to be down is no turn's failover)
    finally:
        other.close()
