"""A client floods `assistant serve` with noise; does the server's memory stay put, and is another
client still answered?

    .venv/bin/python bench/flood.py [--seconds 600] [--every 20]

Starts `assistant serve` (the real CLI and models, shipped config) as its own process. One client
runs ``run-pipeline`` (asr -> tts, restart_on_end) and streams white noise as fast as the socket
takes it, starting a new pipeline after every error event. Every ``--every`` seconds a second client
asks a recorded question (assistant/samples/question.wav) through its own run-pipeline and waits
for the answer. Every 30 s (and at the end) it prints the server's RSS, threads and open fds, the
noise sent so far (seconds of audio), the flooder's error codes, and the second client's answers
with the time from its last audio sent to the answer text.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from pathlib import Path

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.pipeline import PipelineStage, RunPipeline

from bench.load import assistant_server, wav

REPO = Path(__file__).resolve().parent.parent
QUESTION = REPO / "assistant" / "samples" / "question.wav"
RATE, CHUNK = 16000, 2048  # bytes per audio-chunk: 1024 samples


def server_stats(pid: int) -> tuple[float, int, int]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return int(status["VmRSS"].split()[0]) / 1024, int(status["Threads"]), fds


async def flood(port: int, stop: asyncio.Event, sent: list[float], errors: collections.Counter[str]) -> None:
    noise = (np.random.default_rng(0).standard_normal(RATE) * 6000).astype("<i2").tobytes()
    async with AsyncTcpClient("127.0.0.1", port) as c:
        restart = asyncio.Event()

        async def drain() -> None:
            while (event := await c.read_event()) is not None:
                if event.type == "error":
                    errors[str(event.data.get("code"))] += 1
                    restart.set()

        reader = asyncio.create_task(drain())
        while not stop.is_set():
            restart.clear()
            run = RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS, restart_on_end=True)
            await c.write_event(run.event())
            await c.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            while not stop.is_set() and not restart.is_set():
                for i in range(0, len(noise), CHUNK):
                    await c.write_event(
                        AudioChunk(rate=RATE, width=2, channels=1, audio=noise[i : i + CHUNK]).event()
                    )
                sent[0] += 1.0
                await asyncio.sleep(0)  # a refused stream is read fast: let this client's other tasks run
        reader.cancel()


async def ask(port: int) -> tuple[str, float | None]:
    pcm, rate, width, channels = wav(QUESTION)
    pcm += bytes(rate * width)  # a second of silence: the end of the question
    async with AsyncTcpClient("127.0.0.1", port, read_timeout=120) as c:
        await c.write_event(
            RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.HANDLE).event()
        )
        await c.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        for i in range(0, len(pcm), CHUNK):
            await c.write_event(
                AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i : i + CHUNK]).event()
            )
        await c.write_event(AudioStop().event())
        sent_at = time.monotonic()
        while (event := await asyncio.wait_for(c.read_event(), 120)) is not None:
            if event.type == "handled":
                return str(event.data.get("text", "")), (time.monotonic() - sent_at) * 1000
            if event.type in ("error", "not-handled"):
                return f"({event.type}: {event.data.get('code') or event.data.get('text')})", None
    return "(closed)", None


async def run(port: int, pid: int, seconds: float, every: float) -> int:
    stop = asyncio.Event()
    sent, errors = [0.0], collections.Counter[str]()
    answers: list[tuple[str, float | None]] = []
    start_rss, *_ = server_stats(pid)
    peak = start_rss
    print(f"{'s':>5} {'RSS MB':>8} {'threads':>8} {'fds':>5} {'noise s':>8}  flooder errors / answers")
    flooding = asyncio.create_task(flood(port, stop, sent, errors))
    t0 = time.monotonic()
    next_ask, next_print = t0 + every, t0 + 30
    asking: asyncio.Task[tuple[str, float | None]] | None = None
    while (now := time.monotonic()) < t0 + seconds:
        rss, threads, fds = server_stats(pid)
        peak = max(peak, rss)
        if asking is not None and asking.done():
            answers.append(asking.result())
            asking = None
        if asking is None and now >= next_ask:
            asking, next_ask = asyncio.create_task(ask(port)), now + every
        if now >= next_print:
            next_print += 30
            said = "; ".join(f"{t[:30]!r} {ms:.0f} ms" if ms else t for t, ms in answers[-3:])
            print(
                f"{now - t0:>5.0f} {rss:>8.1f} {threads:>8} {fds:>5} {sent[0]:>8.0f}  {dict(errors)} / {said}",
                flush=True,
            )
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(flooding, 30)
    if asking is not None:
        answers.append(await asking)
    answered = [ms for text, ms in answers if ms is not None and text.strip()]
    rss, threads, fds = server_stats(pid)
    print(
        f"\n{seconds:.0f} s of flooding, {sent[0]:.0f} s of noise sent; server RSS {start_rss:.0f} MB at the start, "
        f"peak {peak:.0f} MB (+{peak - start_rss:.0f}), end {rss:.0f} MB; {len(answered)} of {len(answers)} "
        f"questions answered meanwhile"
        + (
            f", median {sorted(answered)[len(answered) // 2]:.0f} ms from the last audio sent"
            if answered
            else ""
        )
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--every", type=float, default=20.0, help="seconds between the second client's questions")
    args = ap.parse_args(argv)
    pids: list[int] = []
    with assistant_server(
        [], Path("/tmp/bench-flood-serve.log"), 2, lambda proc: pids.append(proc.pid)
    ) as port:
        return asyncio.run(run(port, pids[0], args.seconds, args.every))


if __name__ == "__main__":
    sys.exit(main())
