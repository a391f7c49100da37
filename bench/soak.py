"""Soak: hundreds of spoken turns and Wyoming conversations through one process; nothing may grow.

    .venv/bin/python bench/soak.py [--turns 500] [--conversations 200] [--block 100] [--clients 4] [--fake]

One process loads the engines once (the shipped models, or with ``--fake`` the scripted engines of
tests/fakes.py, which keep the real VAD, stages, queues, threads and server but not the models), then:

  turns          blocks of ``--block`` spoken turns, each block one conversation pipeline (VAD, ASR,
                 responder, TTS, playback into a sink that discards), fed a recorded question
                 (assistant/samples/question.wav) by a user who asks, waits until the reply is done,
                 and asks again: compute speed, not speaking pace (so latencies are compute time);
  conversations  an in-process Wyoming server (`assistant serve`'s code, sharing the same engines);
                 ``--clients`` clients at a time each run one spoken conversation (run-pipeline asr
                 -> tts, the same recording streamed as fast as the socket takes it), blocks of
                 ``--block`` conversations.

After each block it prints the process's resident memory, OS threads (native pools included), open
file descriptors (waiting up to 20 s for them to fall back to where they were before the block's kind
of work: pipelines and connections take a moment to close), and the block's medians: for turns, end of speech -> final transcript and -> first
reply clause (from the event log, as `respond` reports them; not the first audio: at compute speed
the modelled loudspeaker would still be playing earlier replies); for conversations, the last audio
sent -> the reply's audio-stop. The last lines say how much each grew after the first block. One
recording, so after the first turn the TTS says cached phrases whenever the reply repeats itself.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from wyoming.audio import AudioChunk as WyAudioChunk
from wyoming.audio import AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.pipeline import PipelineStage, RunPipeline

from assistant import build
from assistant.audio.convert import PIPELINE_RATE
from assistant.config import Config, load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import Event
from assistant.core.messages import AudioChunk
from assistant.eval.turns import build_turns
from assistant.wyoming.engines import shared, warm
from assistant.wyoming.server import ServerThread
from assistant.wyoming.service import WyomingService

REPO = Path(__file__).resolve().parent.parent
QUESTION = REPO / "assistant" / "samples" / "question.wav"
GAP_S = 0.8  # silence after each question: more than the VAD's hangover, so the turn ends
REPLY_TIMEOUT_S = 120.0
WY_CHUNK = 1024


@dataclass
class Row:
    phase: str
    done: int  # turns or conversations so far
    rss_mb: float
    threads: int
    fds: int
    medians: str
    outcome: str


def process_stats() -> tuple[float, int, int]:
    """Resident memory (MB), OS threads, open file descriptors of this process."""
    status = Path("/proc/self/status").read_text().splitlines()
    fields = {line.split(":")[0]: line.split(":")[1].split() for line in status}
    return int(fields["VmRSS"][0]) / 1024, int(fields["Threads"][0]), len(os.listdir("/proc/self/fd"))


def settle(threads: int, fds: int, timeout_s: float = 20.0) -> tuple[float, int, int]:
    """Stats once threads and fds are back to at most the given counts (closing takes a moment)."""
    end = time.monotonic() + timeout_s
    while True:
        rss, t, f = process_stats()
        if (t <= threads and f <= fds) or time.monotonic() > end:
            return rss, t, f
        time.sleep(0.05)


class DiscardSink:
    def write(self, pcm: np.ndarray, sample_rate: int, at_input_s: float) -> None:
        pass

    def finish(self) -> None:
        pass


class TurnTakingSource:
    """A user who asks (the recording), waits until the reply is synthesised, and asks again,
    ``turns`` times, at compute speed: frames arrive as fast as the pipeline takes them."""

    def __init__(self, pcm: np.ndarray, turns: int, events: EventBus, frame_ms: int) -> None:
        self.pcm = np.concatenate([pcm, np.zeros(int(GAP_S * PIPELINE_RATE), np.int16)])
        self.turns = turns
        self.frame = PIPELINE_RATE * frame_ms // 1000
        self._replied = threading.Event()
        events.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind in ("reply_audio_done", "reply_skipped"):  # synthesised (or nothing to say)
            self._replied.set()

    def chunks(self, stop: threading.Event) -> Iterator[AudioChunk]:
        t_input = 0.0
        for _ in range(self.turns):
            self._replied.clear()
            for i in range(0, len(self.pcm) - self.frame + 1, self.frame):
                if stop.is_set():
                    return
                yield AudioChunk(-1, self.pcm[i : i + self.frame], PIPELINE_RATE, t_input, time.monotonic())
                t_input += self.frame / PIPELINE_RATE
            end = time.monotonic() + REPLY_TIMEOUT_S
            while not self._replied.wait(0.05) and not stop.is_set() and time.monotonic() < end:
                pass

    def close(self) -> None:
        pass


def turn_block(cfg: Config, engines: build.Engines, pcm: np.ndarray, turns: int) -> tuple[str, str]:
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = TurnTakingSource(pcm, turns, events, cfg.audio.frame_ms)
    pipeline = build.conversation_pipeline(cfg, engines, source, [DiscardSink()], events)
    try:
        pipeline.setup()
        pipeline.start()
        pipeline.wait(timeout=turns * REPLY_TIMEOUT_S)
    finally:
        pipeline.stop()
    records = build_turns(log.events)
    answered = [r for r in records if r.reply]  # some answer was spoken (not only a filler or apology)
    acked = sum(r.fallback_kind == "ack" for r in answered)

    def median(name: str) -> str:
        values = [r.latency_ms[name] for r in records if name in r.latency_ms]
        return f"{statistics.median(values):.0f}" if values else "-"

    return (
        f"transcript {median('asr_final')} ms, first clause {median('first_clause')} ms",
        f"{len(records)} turns, {len(answered)} answered ({acked} after the filler)",
    )


async def wyoming_conversation(port: int, pcm: bytes) -> tuple[bool, float | None]:
    """One run-pipeline conversation; (answered, ms from the last audio sent to the reply's end)."""
    answered, sent_at = False, 0.0
    async with AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=REPLY_TIMEOUT_S) as c:
        await c.write_event(RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event())
        await c.write_event(AudioStart(rate=PIPELINE_RATE, width=2, channels=1).event())
        step = WY_CHUNK * 2
        for i in range(0, len(pcm), step):
            await c.write_event(
                WyAudioChunk(rate=PIPELINE_RATE, width=2, channels=1, audio=pcm[i : i + step]).event()
            )
        await c.write_event(AudioStop().event())
        sent_at = time.monotonic()
        while (event := await asyncio.wait_for(c.read_event(), REPLY_TIMEOUT_S)) is not None:
            if event.type == "handled":
                answered = bool(str(event.data.get("text", "")).strip())
            elif event.type == "error":
                return False, None
            elif event.type == "audio-stop":
                return answered, (time.monotonic() - sent_at) * 1000
    return False, None


def conversation_block(port: int, pcm: bytes, n: int, clients: int) -> tuple[str, str]:
    async def go() -> list[tuple[bool, float | None]]:
        results: list[tuple[bool, float | None]] = []
        for start in range(0, n, clients):
            batch = (wyoming_conversation(port, pcm) for _ in range(min(clients, n - start)))
            results += await asyncio.gather(*batch, return_exceptions=False)
        return results

    results = asyncio.run(go())
    times = [ms for _, ms in results if ms is not None]
    answered = sum(ok for ok, _ in results)
    median = f"{statistics.median(times):.0f}" if times else "-"
    return f"audio sent -> reply end {median} ms", f"{n} conversations, {answered} answered"


def soak(
    cfg: Config,
    engines: build.Engines,
    turns: int,
    conversations: int,
    block: int,
    clients: int,
    report: Callable[[Row], None] = lambda _row: None,
) -> list[Row]:
    """Run the soak; one Row per block (and one before anything ran), each also given to ``report``."""
    audio, rate = sf.read(QUESTION, dtype="int16")
    assert rate == PIPELINE_RATE
    rows = [Row("start", 0, *process_stats(), "", "")]
    report(rows[0])
    done = 0
    while done < turns:
        n = min(block, turns - done)
        medians, outcome = turn_block(cfg, engines, audio, n)
        done += n
        rows.append(Row("turns", done, *settle(rows[0].threads, rows[0].fds), medians, outcome))
        report(rows[-1])
    service = WyomingService(cfg, shared(engines))
    warm(service.engines, build.fallback_phrases(cfg))
    server = ServerThread(service, f"tcp://127.0.0.1:{free_port()}").start()
    port = int(server.uri.rsplit(":", 1)[1])
    pcm = np.concatenate([audio, np.zeros(int(GAP_S * PIPELINE_RATE), np.int16)]).astype("<i2").tobytes()
    try:
        done, first = 0, None
        while done < conversations:
            n = min(block, conversations - done)
            medians, outcome = conversation_block(port, pcm, n, clients)
            done += n
            stats = settle(first.threads, first.fds) if first else process_stats()
            rows.append(Row("wyoming", done, *stats, medians, outcome))
            first = first or rows[-1]
            report(rows[-1])
    finally:
        server.stop()
    rows.append(Row("stopped", done, *settle(rows[0].threads, rows[0].fds), "(the server stopped)", ""))
    report(rows[-1])
    return rows


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fake_engines() -> build.Engines:
    from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth

    recognizer, llm = FakeRecognizer(), FakeLlm()
    # the fakes record every call for the tests' assertions: here that would be the leak measured
    recognizer.calls, llm.prompts = deque(maxlen=1), deque(maxlen=1)  # type: ignore[assignment]
    return build.Engines(recognizer, llm, FakeSynth())


def print_row(row: Row) -> None:
    print(
        f"{row.phase:>8} {row.done:>5} {row.rss_mb:>8.1f} {row.threads:>8} {row.fds:>5}  {row.medians:<48} {row.outcome}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=500)
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--block", type=int, default=100, help="turns or conversations per printed row")
    ap.add_argument("--clients", type=int, default=4, help="Wyoming conversations at a time")
    ap.add_argument("--fake", action="store_true", help="scripted engines instead of the shipped models")
    args = ap.parse_args(argv)
    from assistant.core import allocator

    allocator.limit_arenas()  # as the CLI does at start-up, before any thread
    cfg = load_config(REPO / "config.yaml")
    engines = fake_engines() if args.fake else build.load_engines(cfg)
    kind = "scripted engines (tests/fakes.py)" if args.fake else "the shipped models"
    print(
        f"soak with {kind}, {os.cpu_count()} cores; turns at compute speed, one user waiting for each reply"
    )
    print(f"{'phase':>8} {'done':>5} {'RSS MB':>8} {'threads':>8} {'fds':>5}  {'medians':<48} outcome")
    rows = soak(cfg, engines, args.turns, args.conversations, args.block, args.clients, print_row)
    for phase in ("turns", "wyoming"):
        mine = [r for r in rows if r.phase == phase]
        if len(mine) > 1:
            a, b = mine[0], mine[-1]
            print(
                f"{phase} after the first block: RSS {b.rss_mb - a.rss_mb:+.1f} MB, threads "
                f"{b.threads - a.threads:+d}, fds {b.fds - a.fds:+d} over {b.done - a.done} more"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
