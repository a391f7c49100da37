"""Wake-word detection over Wyoming (assistant/wyoming/wake.py), through the wyoming package's own
client, with the shipped microWakeWord model on generated speech: what a Home Assistant satellite
does (describe, detect, stream its microphone, wait for a detection)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from wyoming.info import Describe, Info
from wyoming.wake import Detect, Detection

from assistant.audio.convert import float_to_int16, resample
from assistant.config import Config
from assistant.wyoming.server import ServerThread
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth
from tests.wyoming_client import client, read_until, send_audio, start_server, wyoming_cfg

RATE = 16000


def speech(*texts: str, gap_s: float = 1.5) -> bytes:
    """Piper saying ``texts``, 16 kHz int16 (the satellite's format)."""
    from tests.speech.make_speech import Case, Turn, Variant, render_audio

    audio, rate = render_audio(Case("c", tuple(Turn(t, ()) for t in texts), gap_s), Variant("clean", "piper"))
    return float_to_int16(resample(audio, rate, RATE)).astype("<i2").tobytes()


@pytest.fixture()
def server(cfg: Config) -> Iterator[int]:
    from assistant.build import Engines
    from assistant.wyoming.engines import shared
    from assistant.wyoming.service import WyomingService

    engines = Engines(FakeRecognizer("unused"), FakeLlm("unused"), FakeSynth())
    thread: ServerThread
    thread, port = start_server(WyomingService(wyoming_cfg(cfg), shared(engines)))
    yield port
    thread.stop()


def test_describe_offers_the_wake_words(server: int) -> None:
    async def go() -> Info:
        async with client(server) as c:
            await c.write_event(Describe().event())
            return Info.from_event((await read_until(c, {"info"}))[-1])

    info = asyncio.run(go())
    models = {m.name: m.phrase for m in info.wake[0].models}
    assert models == {
        "okay_nabu": "Okay Nabu",
        "hey_jarvis": "Hey Jarvis",
        "hey_mycroft": "Hey Mycroft",
        "alexa": "Alexa",
    }
    assert info.asr and info.tts and info.handle  # still offered


async def detect_then_stop(port: int, pcm: bytes, names: list[str] | None = None) -> list[str]:
    """detect, the stream, audio-stop: every event until the connection has been quiet for a while."""
    async with client(port) as c:
        await c.write_event(Detect(names=names).event())
        await send_audio(c, pcm, RATE, 2, 1)
        out: list[str] = []
        while True:
            try:
                event = await asyncio.wait_for(c.read_event(), 3.0)
            except TimeoutError:
                return out
            if event is None:
                return out
            out.append(
                f"detection:{Detection.from_event(event).name}" if event.type == "detection" else event.type
            )


@pytest.mark.real
def test_a_satellite_stream_gets_one_detection_per_wake_word(server: int) -> None:
    pcm = speech(
        "What is the capital of France?", "Okay Nabu, what time is it?", "Okay Nabu, stop.", gap_s=2.5
    )
    assert asyncio.run(detect_then_stop(server, pcm)) == ["detection:okay_nabu", "detection:okay_nabu"]
    # a model asked for by name or by phrase; another model hears nothing in the same audio
    assert asyncio.run(detect_then_stop(server, pcm, ["Okay Nabu"])) == ["detection:okay_nabu"] * 2
    assert asyncio.run(detect_then_stop(server, pcm, ["hey_jarvis"])) == ["not-detected"]


@pytest.mark.real
def test_speech_without_the_wake_word_is_not_detected(server: int) -> None:
    pcm = speech("Hey, a system update is ready.", "Okay, let's start the meeting.")
    assert asyncio.run(detect_then_stop(server, pcm)) == ["not-detected"]


def test_an_unknown_wake_word_is_refused_and_the_connection_goes_on(server: int) -> None:
    silence = np.zeros(RATE, "<i2").tobytes()

    async def go() -> tuple[list[str], list[str]]:
        async with client(server) as c:
            await c.write_event(Detect(names=["hey_computer"]).event())
            refused = [e.type for e in await read_until(c, {"error"}, timeout=10)]
            await c.write_event(Detect(names=["alexa"]).event())
            await send_audio(c, silence, RATE, 2, 1)
            return refused, [e.type for e in await read_until(c, {"not-detected"}, timeout=10)]

    assert asyncio.run(go()) == (["error"], ["not-detected"])
