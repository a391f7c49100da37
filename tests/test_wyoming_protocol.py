"""The Wyoming server's plumbing with scripted engines: limits, bad clients, concurrency, shutdown.

The real models are in test_wyoming_real.py; here every client is the wyoming package's own
AsyncTcpClient or, for bytes no real client would send, a raw socket.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from wyoming.asr import Transcribe
from wyoming.asr import Transcript as WyTranscript
from wyoming.audio import AudioChunk, AudioStart
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.pipeline import PipelineStage, RunPipeline
from wyoming.tts import Synthesize

from assistant.build import Engines
from assistant.config import Config
from assistant.wyoming.engines import shared
from assistant.wyoming.server import ServerThread
from assistant.wyoming.service import WyomingService
from assistant.wyoming.wire import PcmConverter, ProtocolError
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth
from tests.wyoming_client import (
    audio_bytes,
    client,
    read_until,
    send_audio,
    start_server,
    texts,
    wait_for_new_threads,
    wait_for_no_pipeline_threads,
    wav_pcm,
    wyoming_cfg,
)

QUESTION_WAV = Path(__file__).resolve().parent.parent / "assistant" / "samples" / "question.wav"
SPEECH = (np.sin(np.arange(16000 * 2) * 2 * np.pi * 300 / 16000) * 8000).astype("<i2").tobytes()


def fake_service(cfg: Config, llm: FakeLlm | None = None, **limits: object) -> WyomingService:
    engines = Engines(FakeRecognizer("turn on the light"), llm or FakeLlm("It is on."), FakeSynth())
    return WyomingService(wyoming_cfg(cfg, **limits), shared(engines))


@pytest.fixture()
def server(cfg: Config) -> Iterator[tuple[ServerThread, int, set[threading.Thread]]]:
    baseline = set(threading.enumerate())
    thread, port = start_server(fake_service(cfg, max_payload_kb=64, max_audio_s=5))
    yield thread, port, baseline
    thread.stop()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send raw bytes, then read everything until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return received


def error_codes(port: int, data: bytes) -> list[str]:
    """Error codes the server sent before it closed (an error's data follows its header line)."""
    return [code.decode() for code in re.findall(rb'"code": "([a-z-]+)"', raw_exchange(port, data))]


def test_describe_offers_streaming_stt_tts_and_conversation(server) -> None:
    _, port, _ = server

    async def go() -> Info:
        async with client(port) as c:
            await c.write_event(Describe().event())
            return Info.from_event((await read_until(c, {"info"}))[-1])

    info = asyncio.run(go())
    assert info.asr[0].supports_transcript_streaming and info.asr[0].models[0].name == "tiny.en"
    assert info.tts[0].supports_synthesize_streaming and info.tts[0].voices[0].languages == ["en_US"]
    assert info.handle[0].supports_handled_streaming


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"this is not json\n", "bad-event"),
        (b'{"data": {}}\n', "bad-event"),
        (b'{"type": "audio-chunk", "payload_length": 1000000000}\n', "payload-too-large"),
        (b'{"type": "synthesize", "data_length": -5}\n', "bad-event"),
        (b'{"type": "synthesize", "data_length": 4}\n[1]\n', "bad-event"),
        (b'{"type": "x", "pad": "' + b"a" * 70000 + b'"}\n', "header-too-large"),
    ],
)
def test_malformed_or_oversized_events_get_an_error_and_a_closed_connection(server, data, code) -> None:
    _, port, _ = server
    assert error_codes(port, data) == [code]  # and the server closed the connection (recv ended)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:  # still serving
        s.sendall(b'{"type": "describe"}\n')
        assert json.loads(s.makefile("rb").readline())["type"] == "info"


def test_bad_requests_get_an_error_and_the_connection_goes_on(server) -> None:
    _, port, _ = server

    async def go() -> list[list[str]]:
        codes = []
        async with client(port) as c:
            good_start = AudioStart(rate=16000, width=2, channels=1).event()
            bad = [
                AudioStart(rate=16000, width=5, channels=1).event(),  # no 40-bit audio
                AudioStart(rate=1000, width=2, channels=1).event(),  # below 8 kHz
                AudioStart(rate=16000, width=2, channels=12).event(),
                good_start,  # a good stream (no answer yet) ...
                AudioChunk(
                    rate=16000, width=2, channels=1, audio=b"\x00\x01\x02"
                ).event(),  # ... half a sample
                Synthesize(text="x" * 6000).event(),  # over max_text_chars
                Event("synthesize", {"text": 42}),
                Event("synthesize", {}),
                Event("synthesize-chunk", {"text": "outside a stream"}),
            ]
            for event in bad:
                await c.write_event(event)
                if event is good_start:
                    continue
                codes.append([str(e.data.get("code")) for e in await read_until(c, {"error"}, 10)])
            await c.write_event(Transcribe().event())  # and a good request still works
            await send_audio(c, SPEECH, 16000, 2, 1)
            codes.append(texts(await read_until(c, {"transcript-stop"}), "transcript"))
        return codes

    assert asyncio.run(go()) == [
        ["bad-audio-format"],
        ["bad-audio-format"],
        ["bad-audio-format"],
        ["bad-audio"],
        ["text-too-long"],
        ["bad-event"],
        ["bad-event"],
        ["bad-sequence"],
        ["turn on the light"],
    ]


def test_a_stream_over_the_length_limit_is_refused(server) -> None:
    _, port, _ = server

    async def go() -> list[str]:
        async with client(port) as c:
            await send_audio(c, SPEECH * 4, 16000, 2, 1)  # 8 s, the limit here is 5 s
            return [e.type for e in await read_until(c, {"error"}, 10)]

    assert asyncio.run(go())[-1] == "error"


def test_converts_any_rate_width_and_channel_count() -> None:
    t = np.arange(48000) / 48000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    for width, dtype, scale in ((2, "<i2", 32767), (4, "<i4", 2**31 - 1)):
        stereo = np.repeat((tone * scale).astype(dtype)[:, None], 2, axis=1)
        converter = PcmConverter(48000, width, 2)
        out = np.concatenate([converter.convert(stereo.tobytes()), converter.flush()])
        assert abs(len(out) - 16000) < 100
        assert 0.45 < np.abs(out[1000:-1000]).max() / 32768 < 0.55
        crossings = np.count_nonzero(np.diff(np.signbit(out[1000:-1000])))
        assert abs(crossings / 2 / ((len(out) - 2000) / 16000) - 440) < 5
    ints = (tone * (2**23 - 1)).astype(np.int32)
    packed = np.stack([ints & 0xFF, (ints >> 8) & 0xFF, (ints >> 16) & 0xFF], axis=1).astype(np.uint8)
    out24 = PcmConverter(16000, 3, 1).convert(packed.tobytes())
    assert 0.45 < np.abs(out24).max() / 32768 < 0.55
    out8 = PcmConverter(8000, 1, 1).convert(((tone[:8000] * 127) + 128).astype(np.uint8).tobytes())
    assert 0.4 < np.abs(out8).max() / 32768 < 0.6
    with pytest.raises(ProtocolError, match="whole frames"):
        PcmConverter(16000, 2, 2).convert(b"\x00" * 6)


def test_abrupt_disconnects_leave_no_threads_and_others_are_served(cfg: Config) -> None:
    baseline = set(threading.enumerate())
    llm = FakeLlm("A long answer, one word at a time, so the reply is still running.", token_s=0.05)
    thread, port = start_server(fake_service(cfg, llm))

    async def vanish(kind: int) -> None:
        c = client(port)
        await c.connect()
        if kind == 0:  # mid audio stream
            await send_audio(c, SPEECH, 16000, 2, 1, stop=False)
        elif kind == 1:  # mid reply
            await c.write_event(WyTranscript("tell me a long story").event())
            await asyncio.sleep(0.2)
        else:  # mid synthesis, in the middle of an event's payload
            await c.write_event(Synthesize(text="Hello there. " * 20).event())
            c._writer.write(b'{"type": "audio-chunk", "payload_length": 4000}\n' + b"\x00" * 100)  # type: ignore[union-attr]
        c._writer.transport.abort()  # type: ignore[union-attr] # a reset, not a goodbye

    async def go() -> list[str]:
        await asyncio.gather(*(vanish(i % 3) for i in range(9)))
        async with client(port) as c:
            await c.write_event(Transcribe().event())
            await send_audio(c, SPEECH, 16000, 2, 1)
            return texts(await read_until(c, {"transcript-stop"}), "transcript")

    try:
        assert asyncio.run(go()) == ["turn on the light"]
        assert wait_for_no_pipeline_threads() == set()
    finally:
        thread.stop()
    assert wait_for_new_threads(baseline) == set()


def test_sixteen_clients_at_once_each_get_their_own_answers(cfg: Config) -> None:
    """Plumbing under load: every client's history reaches only its own prompts."""
    llm = FakeLlm("Nice to meet you.", ttft_s=0.01)
    thread, port = start_server(fake_service(cfg, llm, max_clients_per_address=16))  # all from 127.0.0.1

    async def one(i: int) -> tuple[str, str]:
        async with client(port) as c:
            await c.write_event(WyTranscript(f"My name is Person{i}.").event())
            first = texts(await read_until(c, {"handled-stop"}), "handled")[0]
            await c.write_event(WyTranscript("What did I tell you?").event())
            await read_until(c, {"handled-stop"})
            await c.write_event(Synthesize(text="Done.").event())
            got = audio_bytes(await read_until(c, {"audio-stop"}))
            return first, str(got > 0)

    async def go() -> list[tuple[str, str]]:
        return await asyncio.gather(*(one(i) for i in range(16)))

    try:
        assert asyncio.run(go()) == [("Nice to meet you.", "True")] * 16
    finally:
        thread.stop()
    follow_ups = [p for p in llm.prompts if p[-1]["content"] == "What did I tell you?"]
    assert len(follow_ups) == 16
    for prompt in follow_ups:
        names = {m["content"] for m in prompt if m["content"].startswith("My name is")}
        assert len(names) == 1, names  # its own introduction, nobody else's


def test_clients_over_the_limit_are_turned_away(cfg: Config) -> None:
    thread, port = start_server(fake_service(cfg, max_clients=2))

    async def go() -> list[str]:
        async with client(port) as a, client(port) as b:
            for c in (a, b):
                await c.write_event(Describe().event())
                await read_until(c, {"info"})
            async with client(port) as c:
                events = await read_until(c, {"error"}, 10)
                return [str(e.data.get("code")) for e in events]

    try:
        assert asyncio.run(go()) == ["busy"]
    finally:
        thread.stop()


def test_idle_connections_are_closed(cfg: Config) -> None:
    thread, port = start_server(fake_service(cfg, idle_timeout_s=1))
    try:
        assert error_codes(port, b"") == ["idle-timeout"]
    finally:
        thread.stop()


def test_a_conversation_with_no_speech_says_so(server) -> None:
    _, port, _ = server

    async def go() -> list[str]:
        async with client(port) as c:
            await c.write_event(
                RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event()
            )
            await send_audio(c, bytes(16000 * 2 * 2), 16000, 2, 1)  # 2 s of digital silence
            events = await read_until(c, {"error"}, 10)
            await c.write_event(
                RunPipeline(start_stage=PipelineStage.WAKE, end_stage=PipelineStage.TTS).event()
            )
            events += await read_until(c, {"error"}, 10)
            return [str(e.data.get("code")) for e in events if e.type == "error"]

    assert asyncio.run(go()) == ["no-speech", "unsupported-stage"]


def test_a_client_that_stops_reading_is_held_back_then_served_in_order(server) -> None:
    """30 long syntheses asked without reading (about 9,000 audio events): the server stops taking
    requests until the client reads (bounded memory), then every answer arrives, in order."""
    _, port, _ = server

    async def go() -> list[int]:
        async with client(port) as c:
            for i in range(30):
                await c.write_event(Synthesize(text=f"{i} " + "x" * 400).event())
            await asyncio.sleep(1.0)
            sizes = []
            for _ in range(30):
                sizes.append(audio_bytes(await read_until(c, {"audio-stop"}, 30)))
            return sizes

    sizes = asyncio.run(go())
    assert len(sizes) == 30 and all(size > 600_000 for size in sizes)


class FromAddress:
    """A Wyoming client connecting from another loopback address (127.0.0.2, ...), as a second host
    on the network would; the wyoming package's own event reader and writer."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source

    async def __aenter__(self) -> FromAddress:
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=(self.source, 0)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def write_event(self, event: Event) -> None:
        await async_write_event(event, self.writer)

    async def read_event(self) -> Event | None:
        return await async_read_event(self.reader)


def test_one_address_cannot_take_every_slot(cfg: Config) -> None:
    thread, port = start_server(fake_service(cfg, max_clients=4, max_clients_per_address=2))

    async def go() -> tuple[list[str], list[str]]:
        async with client(port) as a, client(port) as b:
            for c in (a, b):
                await c.write_event(Describe().event())
                await read_until(c, {"info"})
            async with client(port) as third:
                refused = [e.type for e in await read_until(third, {"error"}, 10)]
            async with FromAddress(port, "127.0.0.2") as other:
                await other.write_event(Describe().event())
                served = [e.type for e in await read_until(other, {"info"}, 10)]  # type: ignore[arg-type]
            return refused, served

    try:
        assert asyncio.run(go()) == (["error"], ["info"])
    finally:
        thread.stop()


def test_idle_clients_are_closed_sooner_while_the_server_is_full(cfg: Config) -> None:
    """Two clients take every slot and only ping. The server, full, closes an idle one after the busy
    idle timeout (0.5 s here), not the idle timeout (300 s), and a new client gets served."""
    service = fake_service(cfg, max_clients=2, busy_idle_timeout_s=0.5, idle_timeout_s=300)
    thread, port = start_server(service)
    served = asyncio.Event()

    async def pinger(source: str) -> str:
        async with FromAddress(port, source) as c:
            while not served.is_set():
                await c.write_event(Ping().event())
                while (event := await asyncio.wait_for(c.read_event(), 20)) is not None:
                    if event.type == "error":
                        return str(event.data.get("code"))
                    if event.type == "pong":
                        break
                if event is None:
                    return "closed"
                await asyncio.sleep(0.1)
        return "still open"

    async def newcomer() -> tuple[list[str], int]:
        await asyncio.sleep(0.3)  # the pingers first
        for refused in range(100):  # turned away while both pingers hold their slots
            async with client(port) as c:
                await c.write_event(WyTranscript("Hello").event())
                events = await read_until(c, {"handled-stop", "error"}, 20)
                if events and events[-1].type == "handled-stop":
                    served.set()
                    return texts(events, "handled"), refused
            await asyncio.sleep(0.2)
        served.set()
        return [], 100

    async def go() -> tuple[list[str], tuple[list[str], int]]:
        a, b, answered = await asyncio.wait_for(
            asyncio.gather(pinger("127.0.0.2"), pinger("127.0.0.3"), newcomer()), 30
        )
        return sorted([a, b]), answered

    try:
        codes, (answered, refused) = asyncio.run(go())
    finally:
        thread.stop()
    assert "idle-timeout" in codes  # within the test's 30 s, not after idle_timeout_s (300 s)
    assert answered == ["It is on."] and refused < 100


def test_a_conversation_id_is_scoped_to_the_client_address(cfg: Config) -> None:
    """Another host naming the same conversation_id gets a conversation of its own."""
    llm = FakeLlm("Noted.")
    thread, port = start_server(fake_service(cfg, llm))

    async def ask(text: str, source: str) -> None:
        async with FromAddress(port, source) as c:
            await c.write_event(WyTranscript(text, context={"conversation_id": "kitchen-1"}).event())
            await read_until(c, {"handled"})  # type: ignore[arg-type]

    async def go() -> None:
        await ask("My secret is 42.", "127.0.0.1")
        await ask("What is my secret?", "127.0.0.2")
        await ask("What is my secret?", "127.0.0.1")

    try:
        asyncio.run(go())
    finally:
        thread.stop()
    history = [
        [m["content"] for m in p[1:-1]] for p in llm.prompts if p[-1]["content"] == "What is my secret?"
    ]
    assert history == [[], ["My secret is 42.", "Noted."]]


def test_a_named_conversation_continues_across_connections(cfg: Config) -> None:
    """Home Assistant connects once per question and names the conversation in the context."""
    llm = FakeLlm("Noted.")
    thread, port = start_server(fake_service(cfg, llm))

    async def ask(text: str, conversation: str | None) -> None:
        async with client(port) as c:
            context = {"conversation_id": conversation} if conversation else None
            await c.write_event(WyTranscript(text, context=context).event())
            await read_until(c, {"handled"})

    async def go() -> None:
        await ask("My name is Ada.", "kitchen-1")
        await ask("My name is Bob.", "office-2")
        await ask("My name is Cy.", None)
        await ask("What is my name?", "kitchen-1")
        await ask("What is my name?", None)

    try:
        asyncio.run(go())
    finally:
        thread.stop()
    history = [[m["content"] for m in p[1:-1]] for p in llm.prompts if p[-1]["content"] == "What is my name?"]
    assert history == [["My name is Ada.", "Noted."], []]


def test_a_client_flooding_noise_leaves_memory_bounded_and_others_answered(cfg: Config) -> None:
    """One client streams noise through run-pipeline as fast as the socket takes it, starting a new
    pipeline after every error; meanwhile another client's questions are answered, and the
    process's memory stays within 100 MB of where it started (bench/flood.py: the real models, longer)."""
    from bench.soak import process_stats

    thread, port = start_server(fake_service(cfg))
    noise = (np.random.default_rng(0).standard_normal(16000) * 6000).astype("<i2").tobytes()
    question, *_ = wav_pcm(QUESTION_WAV)  # a recorded question, 16 kHz
    stop = asyncio.Event()
    errors: list[str] = []

    async def flood() -> int:
        sent = 0
        async with client(port) as c:

            async def drain() -> None:
                while (event := await c.read_event()) is not None:
                    if event.type == "error":
                        errors.append(str(event.data.get("code")))
                        restart.set()

            restart = asyncio.Event()
            reader = asyncio.create_task(drain())
            while not stop.is_set():
                restart.clear()
                await c.write_event(
                    RunPipeline(
                        start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS, restart_on_end=True
                    ).event()
                )
                await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                while not stop.is_set() and not restart.is_set():
                    for i in range(0, len(noise), 2048):
                        await c.write_event(
                            AudioChunk(rate=16000, width=2, channels=1, audio=noise[i : i + 2048]).event()
                        )
                    sent += 1
                    await asyncio.sleep(0)  # a refused stream is read fast: let this client's other tasks run
            reader.cancel()
        return sent

    async def ask() -> list[str]:
        answers = []
        for _ in range(3):
            await asyncio.sleep(1.0)
            async with client(port) as c:
                await c.write_event(WyTranscript("Is the light on?").event())
                answers += texts(await read_until(c, {"handled-stop"}, 20), "handled")
            async with client(port) as c:
                await c.write_event(
                    RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE).event()
                )
                await send_audio(c, question + bytes(32000), 16000, 2, 1)
                answers += texts(await read_until(c, {"handled-stop"}, 20), "handled")
        return answers

    async def watch(peak: list[float]) -> None:
        while not stop.is_set():
            peak.append(process_stats()[0])
            await asyncio.sleep(0.2)

    async def go() -> tuple[int, list[str], list[float]]:
        peak: list[float] = []
        flooding = asyncio.create_task(flood())
        watching = asyncio.create_task(watch(peak))
        answers = await ask()
        await asyncio.sleep(1.0)
        stop.set()
        seconds = await flooding
        await watching
        return seconds, answers, peak

    before = process_stats()[0]
    try:
        seconds, answers, peak = asyncio.run(go())
    finally:
        thread.stop()
    assert seconds >= 30  # seconds of noise sent: far more than the pipeline keeps
    assert answers == ["It is on."] * 6
    assert max(peak) - before < 100, (before, max(peak))


def test_a_reply_the_deadline_gives_up_on_is_handled_with_its_apology(cfg: Config) -> None:
    """`handled` carries what was said: a client whose spoken question timed out is told why, not ''."""
    from dataclasses import replace

    from tests.test_responder import HangingLlm

    quick = replace(cfg, deadline=replace(cfg.deadline, first_audio_ms=100, answer_ms=300))
    thread, port = start_server(fake_service(quick, HangingLlm("never")))

    async def ask() -> list[str]:
        async with client(port) as c:
            await c.write_event(
                RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE).event()
            )
            question, *_ = wav_pcm(QUESTION_WAV)  # a recorded question, 16 kHz
            await send_audio(c, question + bytes(32000), 16000, 2, 1)  # then a second of silence
            return texts(await read_until(c, {"handled-stop"}, 20), "handled")

    try:
        assert asyncio.run(ask()) == [cfg.deadline.apology_timeout]
    finally:
        thread.stop()
