"""End of user speech -> first audio: our streaming pipeline against a sequential baseline.

    .venv/bin/python bench/latency.py [--variants piper] [--questions N] [--set KEY=VALUE ...]

The same recordings (the single-question cases of tests/speech/questions.yaml) go through
  streaming   the real pipeline, as `assistant respond` runs it (shipped config: speculative
              recognition and generation, clause-by-clause synthesis, the deadline filler);
  sequential  what the naive approach does with the same loaded engines: wait for the whole
              utterance, transcribe it (WhisperEngine.transcribe), generate the whole reply
              (LlmEngine.stream, joined), synthesise the whole reply (PiperEngine.synthesize_all),
              then play.
Both are fed at real-time pace and timed from the same end of speech: the arrival of the last voiced
frame, found by the same VAD (VadStage, same config) on the same file. The two alternate recording by
recording, so a busy machine hurts them alike. "first audio" counts any sound (the streaming
pipeline's deadline filler too); "answer" is the answer itself; their ratios are sequential/streaming.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import Config, load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.messages import AudioChunk, SpeechEnded, SpeechStarted
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.eval.stats import percentile
from assistant.eval.turns import build_turns
from assistant.reply.clauses import clean_for_speech
from assistant.stages.vad import VadStage
from tests.speech.make_speech import load_questions, render

STREAMING = ("asr_final", "llm_first_token", "first_clause", "first_audio", "answer_audio")
SEQUENTIAL = ("asr_final", "llm_done", "tts_done", "first_audio", "answer_audio")


def streaming(cfg: Config, engines: build.Engines, path: Path) -> list[dict[str, float]]:
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = build.file_source(cfg, path, realtime=True)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], events).run()
    return [t.latency_ms for t in build_turns(log.events)]


def sequential(cfg: Config, engines: build.Engines, path: Path) -> list[dict[str, float]]:
    """One thread does everything in turn; the file keeps arriving at real-time pace meanwhile (a
    microphone buffers), so the next turn's frames are not delayed by this one's work."""
    stop = threading.Event()
    vad = VadStage(cfg.vad, cfg.audio.frame_ms)
    vad.setup(StageContext(TurnScope(), EventBus(), stop))
    source = build.file_source(cfg, path, realtime=True)
    assert engines.recognizer and engines.llm and engines.synth
    turns, pcm = [], []
    for chunk in source.chunks(stop):
        for msg in vad.process(chunk):
            if isinstance(msg, SpeechStarted):
                pcm = []
            elif isinstance(msg, AudioChunk):
                pcm.append(msg.pcm)
            elif isinstance(msg, SpeechEnded):
                turns.append(_answer(cfg, engines, np.concatenate(pcm), msg.t_arrival))
    return turns


def _answer(cfg: Config, engines: build.Engines, pcm: np.ndarray, t_end: float) -> dict[str, float]:
    text = engines.recognizer.transcribe(pcm)  # type: ignore[union-attr]
    t_asr = time.monotonic()
    messages = [{"role": "system", "content": cfg.llm.system_prompt}, {"role": "user", "content": text}]
    reply = clean_for_speech("".join(engines.llm.stream(messages)))  # type: ignore[union-attr]
    t_llm = time.monotonic()
    engines.synth.synthesize_all(reply)  # type: ignore[union-attr]
    t_tts = time.monotonic()  # playback starts now: the first sample is the answer
    ms = {
        "asr_final": t_asr,
        "llm_done": t_llm,
        "tts_done": t_tts,
        "first_audio": t_tts,
        "answer_audio": t_tts,
    }
    return {k: round((v - t_end) * 1000, 1) for k, v in ms.items()}


def _cell(values: list[float]) -> str:
    values = sorted(values)
    return f"{statistics.median(values):6.0f} / {percentile(values, 95):5.0f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="piper")
    parser.add_argument("--questions", type=int, default=0, help="only the first N questions")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = parser.parse_args()

    cases = [c.id for c in load_questions() if not c.multi_turn]
    cases = cases[: args.questions] if args.questions else cases
    out = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    recordings = [render(c, v, out) for v in args.variants.split(",") for c in cases]
    cfg = load_config(overrides=args.set)
    engines = build.load_engines(cfg)
    # the first call of each engine pays one-off costs: neither contender should
    engines.recognizer.warm_up()  # type: ignore[union-attr]
    engines.llm.warm_up()  # type: ignore[union-attr]
    engines.synth.synthesize_all("Ready.")  # type: ignore[union-attr]
    runs = {"streaming": streaming, "sequential": sequential}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    print(f"{len(recordings)} recordings ({args.variants}), real-time pace", file=sys.stderr)
    for i, path in enumerate(recordings):
        order = list(runs) if i % 2 == 0 else list(runs)[::-1]
        for name in order:
            results[name] += runs[name](cfg, engines, path)
        print(f"  {i + 1}/{len(recordings)} {path.parent.name}/{path.name}", file=sys.stderr)

    def values(name: str, metric: str) -> list[float]:
        return [t[metric] for t in results[name] if metric in t]

    print(f"\nend of user speech -> event, ms (median / p95), {len(recordings)} recordings")
    print(f"{'pipeline':12}{'turns':>6}{'first audio':>16}{'answer':>16}")
    for name in runs:
        fa, an = values(name, "first_audio"), values(name, "answer_audio")
        print(f"{name:12}{len(results[name]):>6}{_cell(fa):>16}{_cell(an):>16}")
    for metric in ("first_audio", "answer_audio"):
        seq, stream = values("sequential", metric), values("streaming", metric)
        if seq and stream:
            ratio = statistics.median(seq) / statistics.median(stream)
            print(f"median {metric}: sequential / streaming = {ratio:.2f}x")
    print("\nstage breakdown, ms from the end of speech (median / p95)")
    for name, stages in (("streaming", STREAMING), ("sequential", SEQUENTIAL)):
        print(f"  {name:11}" + "  ".join(f"{s} {_cell(values(name, s)).strip()}" for s in stages))


if __name__ == "__main__":
    main()
