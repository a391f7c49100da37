"""The wake word before the VAD: the gate (agent/gate.py) with a scripted detector, the policy's
side (a detection addresses the next turn), and the shipped microWakeWord model on generated speech.

What matters most is checked on a whole pipeline: room speech without the wake word reaches the
recogniser not once; the same speech after a detection does."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from assistant import build
from assistant.agent.gate import WakeGate
from assistant.agent.policy import ACK_AFTER_S, WAKE_REPLY, WakePolicy
from assistant.agent.timers import Scheduler
from assistant.agent.wake import WakePhrase
from assistant.audio.file_source import FileSource
from assistant.config import Config, load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import (
    PlaybackStarted,
    PlaybackStopped,
    SpeechStarted,
    TranscriptFinal,
    WakeWordDetected,
)
from assistant.core.messages import AudioChunk, SpeechEnded, Transcript
from assistant.core.pipeline import Pipeline
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.stages.asr import AsrStage
from assistant.stages.vad import VadStage
from tests.fakes import FakeRecognizer

SAMPLES = Path(__file__).resolve().parent.parent / "assistant" / "samples"
FRAME = 320  # 20 ms at 16 kHz


class ScriptedDetector:
    """Fires on the given frame numbers (counted from 0), whatever the audio."""

    name = "okay_nabu"
    phrase = "Okay Nabu"

    def __init__(self, fire_on: Sequence[int] = ()) -> None:
        self.fire_on = set(fire_on)
        self.frames = 0

    def feed(self, pcm: np.ndarray) -> bool:
        self.frames += 1
        return self.frames - 1 in self.fire_on

    def reset(self) -> None:
        self.frames = 0


def gate_with(detector: ScriptedDetector, in_window: bool = False) -> tuple[WakeGate, EventBus, EventLog]:
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    gate = WakeGate(detector, lambda _t: in_window, listen_s=1.0, refractory_s=2.0)
    gate.setup(StageContext(TurnScope(), events, threading.Event()))
    return gate, events, log


def feed(gate: WakeGate, frames: int, start: int = 0) -> list[bool]:
    """Push ``frames`` loud frames; True for each that went on to the VAD unchanged."""
    out = []
    for i in range(start, start + frames):
        pcm = np.full(FRAME, 1000, dtype=np.int16)
        (msg,) = gate.process(AudioChunk(-1, pcm, 16000, i * 0.02, time.monotonic()))
        out.append(bool(np.any(msg.pcm)))
    return out


def test_audio_is_silenced_until_the_wake_word_then_passed_for_listen_s() -> None:
    gate, _events, log = gate_with(ScriptedDetector(fire_on=[100]))
    passed = feed(gate, 200)
    assert not any(passed[:100])
    assert all(passed[100:151]) and not any(passed[151:])  # listen_s = 1 s = 50 frames after it
    assert [e.name for e in log.of(WakeWordDetected)] == ["okay_nabu"]


def test_a_turn_started_inside_the_gate_is_let_through_to_its_end() -> None:
    gate, events, _log = gate_with(ScriptedDetector(fire_on=[0]))
    feed(gate, 10)
    events.emit(SpeechStarted(1, 0.1))
    assert all(feed(gate, 200, start=10))  # past listen_s, the turn goes on
    events.emit(SpeechEnded(1, 4.2, t_decided=0.0))
    assert not any(feed(gate, 10, start=210))


def test_refractory_period_and_the_assistants_own_voice() -> None:
    gate, events, log = gate_with(ScriptedDetector(fire_on=[0, 60, 200, 400]))
    feed(gate, 150)  # the second detection (1.2 s after the first) is within the 2 s refractory period
    events.emit(PlaybackStarted(-1))
    feed(gate, 100, start=150)  # frame 200: the reply playing says something like the wake word
    events.emit(PlaybackStopped(-1))
    time.sleep(0.35)  # past the echo tail
    feed(gate, 300, start=250)
    assert [round(e.t_input, 2) for e in log.of(WakeWordDetected)] == [0.0, 8.0]


def test_the_follow_up_window_opens_the_gate_without_a_wake_word() -> None:
    gate, _events, log = gate_with(ScriptedDetector(), in_window=True)
    assert all(feed(gate, 50))
    assert log.of(WakeWordDetected) == []


def run_room(detector: ScriptedDetector) -> FakeRecognizer:
    """A recorded question through gate, VAD and ASR; the recogniser counts its passes."""
    cfg = load_config(Path(__file__).resolve().parent.parent / "config.yaml")
    asr = FakeRecognizer()
    gate = WakeGate(detector, lambda _t: False, cfg.agent.wake_listen_s, cfg.agent.wake_refractory_s)
    stages = [gate, VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, asr)]
    source = FileSource(SAMPLES / "question.wav", realtime=False, tail_silence_s=1.0)
    Pipeline(source, stages, events=EventBus()).run()
    return asr


def test_room_speech_without_the_wake_word_costs_no_recognition_pass() -> None:
    assert run_room(ScriptedDetector()).calls == []
    assert run_room(ScriptedDetector(fire_on=[0])).calls != []  # the same speech, addressed


def policy() -> WakePolicy:
    return WakePolicy(
        WakePhrase("hey assistant"), 6.0, Scheduler(), word=WakePhrase("Okay Nabu"), listen_s=4.0
    )


def transcript(turn: int, text: str) -> Transcript:
    ended = SpeechEnded(turn, 1.0, t_decided=0.0)
    return Transcript(turn, text, True, ended, time.monotonic())


def test_a_detection_addresses_the_next_turn_only() -> None:
    p = policy()
    now = time.monotonic()
    p.on_event(WakeWordDetected(-1, "okay_nabu", t_input=1.0, t=now))
    p.on_event(SpeechStarted(1, 1.2, t=now + 0.3))
    p.on_event(SpeechStarted(2, 5.0, t=now + 0.4))
    assert p.verdict(transcript(1, "What time is it?")).action == "answer"
    assert p.verdict(transcript(2, "What time is it?")).action == "ignore"  # one wake word, one turn
    # the wake word's tail reached the recogniser: taken off, as the phrase is
    assert p.verdict(transcript(1, "Okay, Nabu, what time is it?")).text == "what time is it?"
    assert p.verdict(transcript(1, "Hey assistant, what time is it?")).text == "what time is it?"


def test_a_detection_too_long_before_the_turn_does_not_address_it() -> None:
    p = policy()
    now = time.monotonic()
    p.on_event(WakeWordDetected(-1, "okay_nabu", t_input=1.0, t=now))
    p.on_event(SpeechStarted(1, 9.0, t=now + 5.0))
    assert p.verdict(transcript(1, "What time is it?")).action == "ignore"


def test_the_wake_word_alone_gets_yes() -> None:
    p = policy()
    now = time.monotonic()
    p.on_event(WakeWordDetected(-1, "okay_nabu", t_input=1.0, t=now))
    assert p.due(now + 0.5) == []
    assert p.due(now + ACK_AFTER_S + 0.1) == [WAKE_REPLY]
    assert p.due(now + ACK_AFTER_S + 0.2) == []  # once
    p.on_event(WakeWordDetected(-1, "okay_nabu", t_input=9.0, t=now + 8))
    p.on_event(SpeechStarted(1, 9.2, t=now + 8.3))  # the request came: no "Yes?"
    assert p.due(now + 10) == []


@pytest.mark.real
def test_the_shipped_model_hears_its_word_in_generated_speech(cfg: Config) -> None:
    from assistant.audio.convert import PIPELINE_RATE, float_to_int16, resample
    from tests.speech.make_speech import Case, Turn, Variant, render_audio

    def detections(text: str, variant: Variant) -> int:
        audio, rate = render_audio(Case("c", (Turn(text, ()),)), variant, pre_s=0.5, post_s=0.5)
        pcm = float_to_int16(resample(audio, rate, PIPELINE_RATE))
        detector = build.wake_detector(cfg.agent.wake_word)
        assert detector is not None
        return sum(detector.feed(pcm[i : i + FRAME]) for i in range(0, len(pcm), FRAME))

    assert cfg.agent.wake_word == "okay_nabu"
    for variant in (Variant("clean", "piper"), Variant("pink10", "piper", snr_db=10.0, noise="pinknoise")):
        assert detections("Okay Nabu, what time is it?", variant) == 1  # once, not once per frame
        assert detections("Okay, let's start the meeting about the new budget.", variant) == 0


@pytest.mark.real
def test_only_the_request_after_the_wake_word_is_transcribed(cfg: Config, tmp_path: Path) -> None:
    """Room speech, then the wake word and a request, through the real gate, VAD and Whisper: one
    recognition pass, on the request alone."""
    import soundfile as sf

    from tests.speech.make_speech import Case, Turn, Variant, render_audio

    case = Case(
        "room",
        (
            Turn("What is the capital of France? I think it is Paris.", ()),
            Turn("Okay Nabu, what time is it?", ()),
        ),
    )
    audio, rate = render_audio(case, Variant("clean", "piper"))
    path = tmp_path / "room.wav"
    sf.write(path, audio, rate)
    detector = build.wake_detector(cfg.agent.wake_word)
    assert detector is not None
    gate = WakeGate(detector, lambda _t: False, cfg.agent.wake_listen_s, cfg.agent.wake_refractory_s)
    recognizer = build.whisper_engine(cfg, build.model_store(cfg))
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    stages = [gate, VadStage(cfg.vad, cfg.audio.frame_ms), AsrStage(cfg.asr, recognizer)]
    Pipeline(FileSource(path, realtime=False, tail_silence_s=1.0), stages, events=events).run()

    finals = [e.text for e in log.of(TranscriptFinal)]
    assert len(log.of(WakeWordDetected)) == 1
    assert len(finals) == 1 and "what time is it" in finals[0].lower(), finals
    assert "paris" not in " ".join(finals).lower()
    assert "nabu" not in finals[0].lower()  # the gate passes what follows the word
