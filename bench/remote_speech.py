"""One remote round trip against in-process speech, in the same run, on loopback.

    .venv/bin/python bench/remote_speech.py [--rounds 5] [--turns 3] [--set KEY=VALUE ...]

Starts wyoming-faster-whisper and wyoming-piper on free loopback ports, on the shipped models with
our settings (tests/speech_servers.py), and our own `assistant serve --wyoming` (the very engines of
the local column behind the protocol: its difference to local is the round trip itself), and
measures, alternating the sides call by call so a busy machine hurts all alike:
  transcribe    the bundled question (3.6 s): WhisperEngine vs WyomingRecognizer
  synthesize    a one-sentence clause: PiperEngine vs WyomingSynthesizer (time to the first piece)
  end of speech -> answer audio, and -> first audio: the whole pipeline (`respond`, real-time feed)
                with both speech roles local, then remote, the same LLM object in all
Prints medians, remote - local, and remote / local. Every server is stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import load_config
from assistant.core.bus import EventBus, EventLog
from assistant.engines.wyoming_speech import WyomingRecognizer, WyomingSynthesizer, _describe
from assistant.eval.turns import build_turns
from tests.llm_server import free_port
from tests.speech_servers import BIN, SpeechServer, faster_whisper, piper

REPO = Path(__file__).resolve().parent.parent
QUESTION = REPO / "assistant" / "samples" / "question.wav"
CLAUSE = "The capital of France is Paris, a city on the Seine."


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def first_piece_ms(synth) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    next(iter(synth.synthesize(CLAUSE)))
    return (time.perf_counter() - t) * 1000


def pipeline_ms(cfg, engines: build.Engines) -> dict[str, float]:  # type: ignore[no-untyped-def]
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = build.file_source(cfg, QUESTION, realtime=True)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], events).run()
    [turn] = build_turns(log.events)
    return turn.latency_ms


def row(name: str, sides: list[list[float]]) -> str:
    """Medians per side, and each remote side against local: diff and ratio."""
    med = [statistics.median(v) if v else float("nan") for v in sides]  # (no local describe)
    cells = "".join(f" {m:>9.0f}" for m in med)
    vs = "".join(f" {m - med[0]:>+8.0f} {m / med[0]:>5.2f}" for m in med[1:])
    return f"{name:<34}{cells}{vs}  (n={max(len(v) for v in sides)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="engine calls per side (default 5)")
    parser.add_argument("--turns", type=int, default=3, help="pipeline turns per side; 0: engines only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    # the answer itself is timed: a slow machine must not turn it into the deadline's apology
    cfg = load_config(
        REPO / "config.yaml", ["deadline.answer_ms=60000", "deadline.reply_ms=120000", *args.set]
    )
    pcm, _ = sf.read(QUESTION, dtype="int16")
    with tempfile.TemporaryDirectory(prefix="remote-speech-") as tmp:
        port = free_port()
        ours = SpeechServer(  # the same WhisperEngine and PiperEngine as local, behind the protocol
            [str(BIN / "assistant"), "serve", "-q", "--wyoming", f"tcp://127.0.0.1:{port}"],
            port,
            Path(tmp) / "ours.log",
        )
        servers = [faster_whisper(cfg, Path(tmp)), piper(cfg, Path(tmp)), ours]
        try:
            for server in servers:
                server.start()
            fw, voice, _ = servers
            # the LLM only when the pipeline is timed: in one process with torch, recognition on a
            # busy 2-core machine ran several times slower (both compete for the cores)
            store = build.model_store(cfg)
            llm = build.llm_engine(cfg, store) if args.turns else None
            sides = [
                ("local", build.whisper_engine(cfg, store), build.piper_engine(cfg, store)),
                ("fw+piper", *remote_engines(cfg, fw.uri, voice.uri)),
                ("ours", *remote_engines(cfg, ours.uri, ours.uri)),
            ]
            engines = [build.Engines(asr, llm, tts) for _, asr, tts in sides]  # type: ignore[arg-type]
            for e in engines:
                e.recognizer.warm_up()
                e.synth.synthesize_all("Ready.")
            n = len(engines)
            t: dict[str, list[list[float]]] = {}

            def add(name: str, side: int, ms: float) -> None:
                t.setdefault(name, [[] for _ in range(n)])[side].append(ms)

            for _ in range(args.rounds):  # the protocol's floor: connect, describe, info, close
                for side in range(1, n):
                    pool = engines[side].recognizer.pool  # type: ignore[attr-defined]
                    add("describe round trip (ms)", side, timed(lambda p=pool: p.call(_describe)))
            for i in range(args.rounds):
                for side in [(i + k) % n for k in range(n)]:  # each side goes first in turn
                    e = engines[side]
                    add("transcribe (ms)", side, timed(lambda e=e: e.recognizer.transcribe(pcm)))
                    add("synthesize, first piece (ms)", side, first_piece_ms(e.synth))
            for i in range(args.turns):
                for side in [(i + k) % n for k in range(n)]:
                    lat = pipeline_ms(cfg, engines[side])
                    for key in ("asr_final", "first_clause", "answer_audio"):
                        if key in lat:
                            add(f"end of speech -> {key} (ms)", side, lat[key])
        finally:
            for server in servers:
                server.kill()
    names = [name for name, _, _ in sides]
    head = "".join(f" {name:>9}" for name in names)
    vs = "".join(f" {'diff':>8} {'ratio':>5}" for _ in names[1:])
    print(f"\n{'medians; diff, ratio: against local':<34}{head}{vs}")
    for name, values in t.items():
        print(row(name, values))


def remote_engines(cfg, asr_uri: str, tts_uri: str) -> tuple[WyomingRecognizer, WyomingSynthesizer]:  # type: ignore[no-untyped-def]
    return (
        WyomingRecognizer(replace(cfg.asr, backend="wyoming", uri=asr_uri)),
        WyomingSynthesizer(replace(cfg.tts, backend="wyoming", uri=tts_uri)),
    )


if __name__ == "__main__":
    main()
