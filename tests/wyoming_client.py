"""Test helpers around the wyoming package's own client (AsyncTcpClient): no home-made protocol code."""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.pipeline import PipelineStage, RunPipeline

from assistant.config import Config
from assistant.wyoming.server import ServerThread
from assistant.wyoming.service import WyomingService
from tests.llm_server import free_port

PIPELINE_THREADS = {"source", "vad", "asr", "responder", "tts", "playback", "utterance", "to-client", "llm"}


def start_server(service: WyomingService) -> tuple[ServerThread, int]:
    port = free_port()
    return ServerThread(service, f"tcp://127.0.0.1:{port}").start(), port


def client(port: int, timeout: float = 30.0) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", port, connect_timeout=5, read_timeout=timeout)


async def read_until(c: AsyncTcpClient, last: set[str], timeout: float = 60.0) -> list[Event]:
    """Events up to and including the first of type in ``last``; stops early at EOF."""
    events: list[Event] = []
    end = time.monotonic() + timeout
    while True:
        event = await asyncio.wait_for(c.read_event(), max(0.1, end - time.monotonic()))
        if event is None:
            return events
        events.append(event)
        if event.type in last:
            return events


def wav_pcm(path: Path) -> tuple[bytes, int, int, int]:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth(), w.getnchannels()


async def send_audio(
    c: AsyncTcpClient, pcm: bytes, rate: int, width: int, channels: int, pace: float = 0.0, stop: bool = True
) -> None:
    """audio-start, 1024-sample chunks (at ``pace`` x real time; 0 = as fast as possible), audio-stop."""
    await c.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    step = 1024 * width * channels
    for i in range(0, len(pcm), step):
        await c.write_event(
            AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + step]).event()
        )
        if pace:
            await asyncio.sleep(1024 / rate / pace)
    if stop:
        await c.write_event(AudioStop().event())


def texts(events: list[Event], kind: str) -> list[str]:
    return [str(e.data.get("text", "")) for e in events if e.type == kind]


def audio_bytes(events: list[Event]) -> int:
    return sum(len(e.payload or b"") for e in events if e.type == "audio-chunk")


def wait_for_no_pipeline_threads(timeout: float = 5.0) -> set[str]:
    """Names of pipeline threads still alive after ``timeout`` (empty when all ended)."""
    end = time.monotonic() + timeout
    while True:
        alive = {t.name for t in threading.enumerate()} & PIPELINE_THREADS
        if not alive or time.monotonic() > end:
            return alive
        time.sleep(0.05)


def wait_for_new_threads(before: set[threading.Thread], timeout: float = 8.0) -> set[str]:
    """The threads started since ``before`` that are still alive after ``timeout`` (by name).

    Compared as sets, not counts: a thread of an earlier test (a hung fake LLM's worker) that ends
    meanwhile must not hide a new one left behind."""
    end = time.monotonic() + timeout
    while (new := set(threading.enumerate()) - before) and time.monotonic() < end:
        time.sleep(0.05)
    return {t.name for t in new}


def wyoming_cfg(cfg: Config, **wyoming: object) -> Config:
    from dataclasses import replace

    return replace(cfg, wyoming=replace(cfg.wyoming, **wyoming))


@dataclass
class Conversation:
    """What a client that keeps its microphone open heard: events with their arrival (monotonic),
    when the reply's first audio came and when the sound said over it started."""

    events: list[tuple[float, Event]] = field(default_factory=list)
    t_reply: float | None = None
    t_sound: float | None = None

    def after(self, t: float | None) -> list[Event]:
        return [e for at, e in self.events if t is not None and at >= t]

    def kinds_after(self, t: float | None) -> list[str]:
        return [e.type for e in self.after(t)]


async def talk_over_reply(
    port: int,
    question: np.ndarray,
    sound: np.ndarray | None,
    into_s: float,
    done: Callable[[Conversation], bool],
    timeout: float = 120.0,
    echo: float = 0.0,
) -> Conversation:
    """A satellite with its microphone open (16 kHz, at speaking pace, silence between): it asks
    ``question`` in a run-pipeline ending in speech, says ``sound`` ``into_s`` after the reply's
    first audio arrives (None: nothing), and listens on until ``done`` or ``timeout``. ``echo``: its
    loudspeaker plays the reply as it arrives and the microphone hears it at this gain, uncancelled."""
    from assistant.audio.convert import resample

    rate, block = 16000, 1024
    said: deque[np.ndarray] = deque([question.astype(np.int16)])
    playing = np.zeros(0, np.float32)  # the loudspeaker's buffer, at the microphone's rate
    talk = Conversation()
    async with client(port, timeout=timeout) as c:
        await c.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
        await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())

        async def microphone() -> None:
            nonlocal playing
            pcm, t_next = np.zeros(0, np.int16), time.monotonic()
            while True:
                if len(pcm) < block and said:
                    pcm = np.concatenate([pcm, said.popleft()])
                chunk, pcm = pcm[:block], pcm[block:]
                chunk = np.pad(chunk, (0, block - len(chunk)))  # silence when nothing is said
                if echo:
                    heard, playing = playing[:block], playing[block:]
                    mixed = chunk + echo * np.pad(heard, (0, block - len(heard)))
                    chunk = np.clip(mixed, -32768, 32767).astype(np.int16)
                await c.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=chunk.tobytes()).event())
                t_next += block / rate
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))

        def say_sound() -> None:
            talk.t_sound = time.monotonic()
            if sound is not None:
                said.append(sound.astype(np.int16))

        async def speaker() -> None:
            nonlocal playing
            while (event := await c.read_event()) is not None:
                now = time.monotonic()
                talk.events.append((now, event))
                if echo and event.type == "audio-chunk" and event.payload:
                    pcm = np.frombuffer(event.payload, "<i2").astype(np.float32)
                    playing = np.concatenate([playing, resample(pcm, int(event.data["rate"]), rate)])
                if event.type == "audio-chunk" and talk.t_reply is None:
                    talk.t_reply = now
                    asyncio.get_running_loop().call_later(into_s, say_sound)

        tasks = [asyncio.create_task(microphone()), asyncio.create_task(speaker())]
        end = time.monotonic() + timeout
        try:
            while not done(talk) and time.monotonic() < end and not tasks[1].done():
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return talk
