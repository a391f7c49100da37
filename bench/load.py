"""Many conversations at once through the Wyoming entry point: the local LLM vs a batching server.

    .venv/bin/python bench/load.py [--ns 1,2,4,8,16] [--rounds 3] [--backends local,cb,asr1,asr2]
                                   [--threads 1] [--gpu-pass-ms 30]

For each backend, `assistant serve` runs as its own process (the real CLI, shipped config):
  local  the LLM in that process (int8 on CPU; one generation at a time, shared by all clients);
  cb     ``llm.backend: openai`` against `transformers serve --continuous-batching` with the shipped
         model, started by this bench (assistant/llm_server.py; fp32, the server's precision);
  asrK   the LLM in that process, recognition on K wyoming-faster-whisper processes started by this
         bench (``asr.backend: wyoming``, ``asr.uri`` the K addresses; each server one CPU thread),
         the pool sending each pass to the least busy: recognition scaled out as a speech box would.
At each level N, N Wyoming clients (the ``wyoming`` package's AsyncTcpClient) each run one spoken
conversation at once (``run-pipeline`` asr -> tts), streaming a recorded question (piper voice,
tests/speech/questions.yaml) at real-time pace; this is repeated ``--rounds`` times, so even N=1 has
several conversations behind its percentiles. Measured per conversation, from the end of the
user's speech (the server's ``voice-stopped`` timestamp placed on the client's send clock):
  first audio   the first reply audio chunk received (the deadline's filler counts: it is sound);
  transcript    the final transcript (recognition is shared: one Whisper pass at a time);
  answer text   the first ``handled-chunk`` that is the answer (the server knows it before it is
                spoken; the filler is not sent as text); its percentiles count every conversation,
                one with no answer as never answered ("none" when the percentile falls there);
and the outcome of every conversation: answered, ack+answered (the deadline's filler sounded first:
reply audio came before any answer text), apologised (no answer within deadline.answer_ms) or
failed (an error event, no audio, or no end within 90 s).
Every backend runs on this machine's cores, beside the client; the shipped deadline config applies.
On a 2-core machine the asrK rows cannot show capacity (K servers, the assistant and the client
share the same two cores): they show that the scaled-out path works under load and what it costs.
What a GPU speech box would do is printed after the table as arithmetic, not as a measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.pipeline import PipelineStage, RunPipeline

from assistant import build
from assistant.config import load_config
from assistant.eval.stats import percentile
from tests.llm_server import TransformersServer, free_port
from tests.speech.make_speech import load_questions, render
from tests.speech_servers import faster_whisper

REPO = Path(__file__).resolve().parent.parent

INF = float("inf")
CHUNK = 1024  # samples per audio-chunk, as Home Assistant's satellites send
END_TIMEOUT_S = 90.0
OUTCOMES = ("answered", "ack+answered", "apologised", "failed")
LEVEL_PAUSE_S = 3.0  # closed connections linger about a second (wyoming/server.py): let them go


@dataclass
class Result:
    first_audio_ms: float | None = None
    transcript_ms: float | None = None
    answer_ms: float | None = None
    outcome: str = "failed"
    detail: str = ""


def wav(path: Path) -> tuple[bytes, int, int, int]:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth(), w.getnchannels()


async def conversation(port: int, recording: Path) -> Result:
    pcm, rate, width, channels = wav(recording)
    result = Result()
    client = AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=END_TIMEOUT_S)
    try:
        async with client:
            await client.write_event(
                RunPipeline(start_stage=PipelineStage.ASR, end_stage=PipelineStage.TTS).event()
            )
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            t0 = time.monotonic()
            sender = asyncio.create_task(send(client, pcm, rate, width, channels, t0))
            speech_end: float | None = None
            deadline = time.monotonic() + END_TIMEOUT_S + len(pcm) / (rate * width * channels)
            while time.monotonic() < deadline:
                event = await asyncio.wait_for(client.read_event(), deadline - time.monotonic())
                now = time.monotonic()
                if event is None:
                    result.detail = "connection closed"
                    break
                if event.type == "voice-stopped" and event.data.get("timestamp") is not None:
                    speech_end = t0 + event.data["timestamp"] / 1000
                elif event.type == "error":
                    result.detail = str(event.data.get("text"))
                    break
                elif speech_end is not None and event.type == "transcript" and result.transcript_ms is None:
                    result.transcript_ms = (now - speech_end) * 1000
                elif speech_end is not None and event.type == "audio-chunk" and result.first_audio_ms is None:
                    result.first_audio_ms = (now - speech_end) * 1000
                elif speech_end is not None and event.type == "handled-chunk" and result.answer_ms is None:
                    result.answer_ms = (now - speech_end) * 1000
                elif event.type == "handled":
                    answered = bool(str(event.data.get("text", "")).strip())
                    acked = result.first_audio_ms is not None and (
                        result.answer_ms is None or result.first_audio_ms < result.answer_ms
                    )
                    result.outcome = ("ack+answered" if acked else "answered") if answered else "apologised"
                    if not answered:
                        result.answer_ms = None  # the text it sent was the apology
                elif event.type == "audio-stop":
                    if result.first_audio_ms is None:
                        result.outcome, result.detail = "failed", "no audio"
                    break
            else:
                result.outcome, result.detail = "failed", "no end in time"
            sender.cancel()
    except (OSError, TimeoutError) as exc:
        result.outcome, result.detail = "failed", f"{type(exc).__name__}: {exc}"
    if result.outcome == "failed" and not result.detail:
        result.detail = "no reply"
    return result


async def send(client: AsyncTcpClient, pcm: bytes, rate: int, width: int, channels: int, t0: float) -> None:
    """Audio at real-time pace, each chunk sent when its last sample would have been spoken."""
    step = CHUNK * width * channels
    for i, start in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, t0 + (i + 1) * CHUNK / rate - time.monotonic()))
        chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[start : start + step])
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def level(port: int, recordings: list[Path], n: int) -> list[Result]:
    return list(
        await asyncio.gather(*(conversation(port, recordings[i % len(recordings)]) for i in range(n)))
    )


@contextlib.contextmanager
def assistant_server(
    overrides: list[str],
    log_path: Path,
    threads: int,
    on_start: Callable[[subprocess.Popen[str]], None] = lambda _proc: None,
):
    port = free_port()
    cmd = [sys.executable, "-m", "assistant", "serve", "--wyoming", f"tcp://127.0.0.1:{port}", "--quiet"]
    for item in overrides:
        cmd += ["--set", item]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO)
        on_start(proc)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # "Models ready ... Serving Wyoming on ..." once it listens
            if "Serving Wyoming" not in line:
                raise RuntimeError(f"assistant serve did not start: {log_path.read_text()[-2000:]}")
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def summary(results: list[Result]) -> tuple[str, ...]:
    first = [r.first_audio_ms for r in results if r.first_audio_ms is not None]
    heard = [r.transcript_ms for r in results if r.transcript_ms is not None]
    # every conversation counts: one that got no answer is an answer that never came
    answer = [r.answer_ms if r.answer_ms is not None and r.outcome != "failed" else INF for r in results]

    def fmt(values: list[float], q: float | None = None) -> str:
        if not values:
            return "-"
        value = statistics.median_low(sorted(values)) if q is None else percentile(values, q, method="higher")
        return "none" if value == INF else f"{value:.0f}"

    count = [str(sum(r.outcome == k for r in results)) for k in OUTCOMES]
    return (fmt(first), fmt(first, 95), fmt(heard), fmt(heard, 95), fmt(answer), fmt(answer, 95), *count)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ns", default="1,2,4,8,16", help="conversations at once, per level")
    ap.add_argument("--rounds", type=int, default=3, help="times each level is run")
    ap.add_argument("--backends", default="local,cb", help="local and/or cb")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the LLM server (cb)")
    ap.add_argument(
        "--gpu-pass-ms", type=float, default=30.0, help="ASSUMED GPU pass time for the arithmetic block"
    )
    args = ap.parse_args(argv)
    ns = [int(n) for n in args.ns.split(",")]
    cfg = load_config(REPO / "config.yaml")
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    cases = [c.id for c in load_questions() if not c.multi_turn]
    recordings = [render(case, "piper", work / "speech") for case in cases]
    rows: list[tuple[str, ...]] = []
    failures: list[str] = []
    for backend in args.backends.split(","):
        with contextlib.ExitStack() as stack:
            overrides: list[str] = []
            if backend.startswith("asr"):  # recognition on K separate server processes
                k = int(backend.removeprefix("asr"))
                one_thread = load_config(REPO / "config.yaml", ["asr.cpu_threads=1"])
                print(f"starting {k} wyoming-faster-whisper server(s)...", file=sys.stderr)
                uris = []
                for i in range(k):
                    fw = faster_whisper(one_thread, work / f"fw{i}")
                    (work / f"fw{i}").mkdir(parents=True, exist_ok=True)
                    stack.callback(fw.kill)
                    uris.append(fw.start().uri)
                overrides = ["asr.backend=wyoming", f"asr.uri=[{', '.join(uris)}]"]
            elif backend == "cb":
                model_dir = build.model_store(cfg).llm_path(cfg.llm.model)
                server = TransformersServer(
                    model_dir, work / "llm-server.log", continuous_batching=True, threads=args.threads
                )
                print(
                    f"starting transformers serve --continuous-batching ({args.threads} thread)...",
                    file=sys.stderr,
                )
                stack.enter_context(server)
                overrides = ["llm.backend=openai", f"llm.base_url={server.base_url}"]
            print(f"starting assistant serve ({backend})...", file=sys.stderr)
            port = stack.enter_context(assistant_server(overrides, work / f"serve-{backend}.log", 2))
            asyncio.run(level(port, recordings[:1], 1))  # one unmeasured conversation: warm caches
            for n in ns:
                start = time.monotonic()
                results: list[Result] = []
                for _ in range(args.rounds):
                    results += asyncio.run(level(port, recordings, n))
                    time.sleep(LEVEL_PAUSE_S)
                rows.append((backend, str(n), str(len(results)), *summary(results)))
                failures += [f"{backend} N={n}: {r.detail}" for r in results if r.outcome == "failed"]
                print(f"  {backend} N={n}: {time.monotonic() - start:.0f} s", file=sys.stderr)
    header = ("backend", "N", "convs", "1st audio p50", "p95", "transcript p50", "p95", "answer p50", "p95")
    header += OUTCOMES
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print(f"\nEnd of speech -> first reply audio, final transcript, answer text; ms ({os.cpu_count()} cores)")
    print("(answer: over every conversation, unanswered ones as never; apologised: no answer in time)")
    for line in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    for f in failures[:20]:
        print(f"failed: {f}")
    print(gpu_arithmetic(cfg, recordings[0], args.gpu_pass_ms))
    return 0


def gpu_arithmetic(cfg, recording: Path, gpu_pass_ms: float) -> str:  # type: ignore[no-untyped-def]
    """One recognition pass timed here (in-process, a few runs), and what N speakers wait for it
    serially; beside it, the same sums for an assumed GPU pass time. Arithmetic, not measured."""
    import soundfile as sf

    pcm, _ = sf.read(str(recording), dtype="int16")
    engine = build.whisper_engine(cfg, build.model_store(cfg))
    engine.transcribe(pcm)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        engine.transcribe(pcm)
        times.append((time.perf_counter() - t) * 1000)
    cpu = statistics.median(times)
    lines = [
        "",
        f"ARITHMETIC, NOT MEASURED (except the CPU pass: median of 5 here, {len(pcm) / 16000:.1f} s question):",
        f"  one pass: CPU {cpu:.0f} ms measured; GPU {gpu_pass_ms:.0f} ms ASSUMED (--gpu-pass-ms)",
        "  N speakers ending at once, one pass at a time per server, K servers: the last waits",
        "  ceil(N/K) passes; a batching server (B passes in one forward) waits ceil(N/(K*B)) batches.",
        f"  {'N':>3} {'CPU K=1':>9} {'CPU K=2':>9} {'GPU K=1':>9} {'GPU B=8':>9}   (ms, last speaker)",
    ]
    for n in (1, 4, 16, 64):
        waits = (-(-n // 1) * cpu, -(-n // 2) * cpu, n * gpu_pass_ms, -(-n // 8) * gpu_pass_ms * 1.5)
        lines.append(f"  {n:>3} " + " ".join(f"{w:>9.0f}" for w in waits))
    lines += [
        f"  passes/s: CPU {1000 / cpu:.1f} per server process; GPU {1000 / gpu_pass_ms:.0f} one at a time,",
        f"  ~{8000 / (gpu_pass_ms * 1.5):.0f} batched by 8 (ASSUMED: a batch of 8 costs 1.5 single passes).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
