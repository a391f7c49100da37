"""One remote round trip against in-process speech, in the same run, on loopback.

    .venv/bin/python bench/remote_speech.py [--rounds 5] [--turns 3] [--set KEY=VALUE ...]

Starts wyoming-faster-whisper and wyoming-piper on free loopback ports, on the shipped models with
our settings (tests/speech_servers.py), and measures, alternating local and remote call by call so
a busy machine hurts both alike:
  transcribe    the bundled question (3.6 s): WhisperEngine vs WyomingRecognizer
  synthesize    a one-sentence clause: PiperEngine vs WyomingSynthesizer (time to the first piece)
  end of speech -> answer audio, and -> first audio: the whole pipeline (`respond`, real-time feed)
                with both speech roles local, then both remote, the same LLM object in both
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
from assistant.core.events import EventBus, EventLog
from assistant.engines.wyoming_speech import WyomingRecognizer, WyomingSynthesizer
from assistant.eval.turns import build_turns
from tests.speech_servers import faster_whisper, piper

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


def row(name: str, local: list[float], remote: list[float]) -> str:
    lo, re = statistics.median(local), statistics.median(remote)
    return f"{name:<34} {lo:>9.0f} {re:>9.0f} {re - lo:>+9.0f} {re / lo:>7.2f}  (n={len(local)})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="engine calls per side (default 5)")
    parser.add_argument("--turns", type=int, default=3, help="pipeline turns per side (default 3)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    # the answer itself is timed: a slow machine must not turn it into the deadline's apology
    cfg = load_config(
        REPO / "config.yaml", ["deadline.answer_ms=60000", "deadline.reply_ms=120000", *args.set]
    )
    pcm, _ = sf.read(QUESTION, dtype="int16")
    with tempfile.TemporaryDirectory(prefix="remote-speech-") as tmp:
        fw, voice = faster_whisper(cfg, Path(tmp)), piper(cfg, Path(tmp))
        try:
            fw.start()
            voice.start()
            remote_cfg = replace(
                cfg,
                asr=replace(cfg.asr, backend="wyoming", uri=fw.uri),
                tts=replace(cfg.tts, backend="wyoming", uri=voice.uri),
            )
            local = build.load_engines(cfg)
            remote = build.Engines(
                WyomingRecognizer(remote_cfg.asr), local.llm, WyomingSynthesizer(remote_cfg.tts)
            )
            for engines in (local, remote):
                engines.recognizer.warm_up()
                engines.synth.synthesize_all("Ready.")
            t: dict[str, tuple[list[float], list[float]]] = {}
            for i in range(args.rounds):
                for side, engines in ((0, local), (1, remote))[:: 1 if i % 2 == 0 else -1]:
                    t.setdefault("transcribe (ms)", ([], []))[side].append(
                        timed(lambda e=engines: e.recognizer.transcribe(pcm))
                    )
                    t.setdefault("synthesize, first piece (ms)", ([], []))[side].append(
                        first_piece_ms(engines.synth)
                    )
            for i in range(args.turns):
                for side, engines in ((0, local), (1, remote))[:: 1 if i % 2 == 0 else -1]:
                    lat = pipeline_ms(cfg, engines)
                    for key in ("asr_final", "first_clause", "answer_audio"):
                        if key in lat:
                            t.setdefault(f"end of speech -> {key} (ms)", ([], []))[side].append(lat[key])
        finally:
            fw.kill()
            voice.kill()
    print(f"\n{'':<34} {'local':>9} {'remote':>9} {'diff':>9} {'ratio':>7}   medians, alternated")
    for name, (lo, re) in t.items():
        if lo and re:
            print(row(name, lo, re))


if __name__ == "__main__":
    main()
