"""Endless input stays bounded: turns end at vad.max_utterance_s, a recogniser pass never exceeds one
window, and sound with no words in it is no turn."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from assistant.audio.convert import PIPELINE_RATE
from assistant.audio.file_source import FileSource
from assistant.config import Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import TranscriptCommitted, TranscriptFinal, UtteranceLimit
from assistant.core.messages import AudioChunk, End, SpeechEnded, SpeechStarted, Transcript
from assistant.core.pipeline import Pipeline
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.eval.turns import build_turns
from assistant.stages.asr import MAX_PASS_S, TAIL_ZEROS_S, AsrStage
from assistant.stages.vad import VadStage
from tests.fakes import FakeRecognizer


def noise_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sf.write(path, (rng.standard_normal(int(seconds * PIPELINE_RATE)) * 6000).astype(np.int16), PIPELINE_RATE)
    return path


def vad_asr(cfg: Config, path: Path, recognizer: FakeRecognizer) -> EventLog:
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stages = [VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, engine=recognizer)]
    Pipeline(FileSource(path, realtime=False, tail_silence_s=1.0), stages, events=events).run()
    return log


def test_endless_noise_is_cut_into_bounded_turns(cfg: Config, tmp_path: Path) -> None:
    cfg = replace(cfg, vad=replace(cfg.vad, max_utterance_s=10.0))
    recognizer = FakeRecognizer()
    log = vad_asr(cfg, noise_wav(tmp_path / "noise.wav", 45), recognizer)
    started = {e.turn: e.t_input for e in log.of(SpeechStarted)}
    ended = {e.turn: e.t_input for e in log.of(SpeechEnded)}
    assert len(started) >= 4  # white noise sounds voiced to webrtcvad: it would be one 45 s turn
    assert all(ended[t] - started[t] <= 10.0 + 0.05 for t in started)
    assert len(log.of(UtteranceLimit)) >= 4
    finals = log.of(TranscriptFinal)
    assert len(finals) == len(started)  # every cut turn is recognised (and would be answered)
    assert max(recognizer.calls) <= (10.0 + TAIL_ZEROS_S) * PIPELINE_RATE


def test_a_long_turn_is_recognised_in_bounded_passes(cfg: Config) -> None:
    """A 100 s transcription (Wyoming allows up to wyoming.max_audio_s): every pass, which holds
    the shared recogniser, covers at most one window, and the audio kept stays within it."""
    recognizer = FakeRecognizer(text="words")
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stage = AsrStage(replace(cfg.asr, speculative=False, partial_interval_ms=0), recognizer)
    stage.setup(StageContext(TurnScope(), events, threading.Event()))
    rng = np.random.default_rng(1)
    list(stage.process(SpeechStarted(1, 0.0, t=0.0)))
    kept = []
    for i in range(100 * 50):
        pcm = (rng.standard_normal(PIPELINE_RATE // 50) * 3000).astype(np.int16)
        list(stage.process(AudioChunk(1, pcm, PIPELINE_RATE, i / 50, 0.0, voiced=True)))
        assert stage._turn is not None
        kept.append(sum(len(c) for c in stage._turn.chunks))
    outs = list(stage.process(SpeechEnded(1, 100.0, 0.0, t=0.0)))
    (final,) = [m for m in outs if isinstance(m, Transcript)]
    assert max(kept) <= MAX_PASS_S * PIPELINE_RATE + PIPELINE_RATE // 50
    assert max(recognizer.calls) <= (MAX_PASS_S + TAIL_ZEROS_S) * PIPELINE_RATE
    committed = log.of(TranscriptCommitted)
    assert len(committed) >= 3  # 100 s in windows of at most 25 s
    assert final.text == " ".join(["words"] * (len(committed) + 1))  # no window lost, none twice


def test_noise_without_words_is_no_turn(cfg: Config, tmp_path: Path) -> None:
    log = vad_asr(cfg, noise_wav(tmp_path / "noise.wav", 10), FakeRecognizer(text=""))
    assert log.of(SpeechStarted)  # the VAD did take it for speech
    assert build_turns(log.events) == []


def test_vad_end_of_input_still_closes_a_turn(cfg: Config) -> None:
    """A bounded turn that the input ends before the limit closes as before (End -> SpeechEnded)."""
    events = EventBus()
    stage = VadStage(cfg.vad, cfg.audio.frame_ms)
    stage.setup(StageContext(TurnScope(), events, threading.Event()))
    rng = np.random.default_rng(2)
    out = []
    for i in range(100):
        pcm = (rng.standard_normal(PIPELINE_RATE // 50) * 6000).astype(np.int16)
        out += list(stage.process(AudioChunk(-1, pcm, PIPELINE_RATE, i / 50, 0.0)))
    out += list(stage.process(End()))
    assert isinstance(out[-1], SpeechEnded)


def test_a_slow_stage_backs_up_to_the_source_not_into_memory(monkeypatch) -> None:
    """Input faster than a stage can follow waits at the source (which a Wyoming feed then refuses)
    instead of piling up between the stages."""
    import assistant.core.pipeline as pipeline_module
    from assistant.core.messages import Message
    from assistant.core.stage import Stage

    monkeypatch.setattr(pipeline_module, "MAX_QUEUED", 20)

    class Source:
        def chunks(self, stop: threading.Event):  # type: ignore[no-untyped-def]
            for i in range(2000):
                yield AudioChunk(1, np.zeros(320, np.int16), PIPELINE_RATE, i / 50, 0.0)

        def close(self) -> None: ...

    class Slow(Stage):
        name = "slow"
        drops_stale = False

        def __init__(self) -> None:
            self.seen = 0

        def process(self, msg: Message):  # type: ignore[no-untyped-def]
            self.seen += isinstance(msg, AudioChunk)
            time.sleep(0.0005)
            yield from ()

    class Pass(Stage):
        name = "pass"
        drops_stale = False

        def process(self, msg: Message):  # type: ignore[no-untyped-def]
            yield msg

    slow = Slow()
    pipeline = Pipeline(Source(), [Pass(), slow])
    longest = 0
    pipeline.setup()
    pipeline.start()
    while not pipeline.wait(timeout=0.005):
        longest = max(longest, *(q.qsize() for q in pipeline._queues))
    pipeline.stop()
    assert slow.seen == 2000  # nothing lost
    assert longest <= 20


def test_a_silence_heard_through_the_assistants_voice_is_no_pause(cfg: Config) -> None:
    """Just after a barge-in the echo canceller suppresses the user too: the gap it leaves (frames
    the echo guard marks ``masked``) must not end the turn; real silence after it still does."""
    cfg = replace(cfg, vad=replace(cfg.vad, end_of_turn="none", hangover_ms=400))
    rng = np.random.default_rng(3)

    def frames(voiced: bool, n: int, masked: bool = False):
        for _ in range(n):
            pcm = (rng.standard_normal(PIPELINE_RATE // 50) * (6000 if voiced else 0)).astype(np.int16)
            yield pcm, masked

    def run(script) -> list:
        stage = VadStage(cfg.vad, cfg.audio.frame_ms)
        stage.setup(StageContext(TurnScope(), EventBus(), threading.Event()))
        out = []
        for i, (pcm, masked) in enumerate(script):
            out += stage.process(AudioChunk(-1, pcm, PIPELINE_RATE, i / 50, 0.0, masked=masked))
        return out

    def gap(masked: bool):
        return [*frames(True, 25), *frames(False, 30, masked), *frames(True, 25), *frames(False, 40)]

    assert sum(isinstance(m, SpeechEnded) for m in run(gap(masked=True))) == 1  # one turn, whole
    assert sum(isinstance(m, SpeechEnded) for m in run(gap(masked=False))) == 2  # a real pause splits
