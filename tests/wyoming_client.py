"""Test helpers around the wyoming package's own client (AsyncTcpClient): no home-made protocol code."""

from __future__ import annotations

import asyncio
import threading
import time
import wave
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event

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
