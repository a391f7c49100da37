"""One remote round trip against in-process speech, in the same run, on loopback.

    .venv/bin/python bench/remote_speech.py [--rounds 5] [--turns 3] [--set KEY=VALUE ...]

Starts wyoming-faster-whisper and wyoming-piper on free loopback ports, on the shipped models with
our settings (tests/speech_servers.py), and our own `assistant serve --wyoming` (the very engines of
the local column behind the protocol: its difference to local is the round trip itself; its partial
transcripts for live audio are off, wyoming.partial_interval_ms=0, as on a speech box that serves
assistants), and measures, alternating the sides call by call so a busy machine hurts all alike:
  transcribe    the bundled question (3.6 s): WhisperEngine vs WyomingRecognizer
  synthesize    a one-sentence clause: PiperEngine vs WyomingSynthesizer (time to the first piece)
  end of speech -> answer audio, and -> first audio: the whole pipeline (`respond`, real-time feed)
                with both speech roles local, then remote, the same LLM object in all; "fw whole"
                is fw+piper with the turn's audio sent whole at each pass (not streamed as spoken)
Prints medians, and for each remote side its paired difference to local (remote - local of the
same round: median, and p25..p75 as the spread) and the ratio of medians. Then wyoming-piper's
streamed synthesis (synthesize-start/-chunk) against one `synthesize`: the time to the first audio
of a sentence whose reply goes on 300 ms later. Every server is stopped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import load_config
from assistant.core.bus import EventBus, EventLog
from assistant.engines.wyoming_pool import ServerPool
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
    """Medians per side, and each remote side against local: the paired difference (median,
    p25..p75) and the ratio of medians."""
    med = [statistics.median(v) if v else float("nan") for v in sides]  # (no local describe)
    cells = "".join(f" {m:>9.0f}" for m in med)
    vs = ""
    for side, m in zip(sides[1:], med[1:], strict=True):
        diffs = sorted(r - loc for r, loc in zip(side, sides[0], strict=False))
        if diffs:
            q = statistics.quantiles(diffs, n=4) if len(diffs) > 1 else [diffs[0]] * 3
            vs += f" {statistics.median(diffs):>+6.0f} {q[0]:>+5.0f}..{q[2]:<+5.0f} {m / med[0]:>5.2f}"
        else:
            vs += f" {'':>6} {'':>12} {'':>5}"
    return f"{name:<34}{cells}{vs}  (n={max(len(v) for v in sides)})"


class Whole:
    """A remote recogniser without its audio stream: each pass sends the turn's audio whole."""

    def __init__(self, inner: WyomingRecognizer) -> None:
        self.inner = inner

    def transcribe(self, pcm):  # type: ignore[no-untyped-def]
        return self.inner.transcribe(pcm)

    def warm_up(self) -> None:
        self.inner.warm_up()


def protocol_only(cfg, pcm, rounds: int) -> str:  # type: ignore[no-untyped-def]
    """The round trip without any model: a scripted Wyoming server (tests/fake_wyoming.py) that
    answers at once, so what is timed is connecting, framing and transfer on loopback."""
    import numpy as np

    from assistant.engines.wyoming_stream import StreamStats, WyomingStream
    from tests.fake_wyoming import FakeWyoming

    fake = FakeWyoming()
    try:
        asr = WyomingRecognizer(replace(cfg.asr, backend="wyoming", uri=fake.uri))
        padded = np.concatenate([pcm, np.zeros(1600, np.int16)])
        whole, tail = [], []
        for _ in range(rounds):
            whole.append(timed(lambda: asr.transcribe(padded)))
            stream = WyomingStream(asr.pool, "en", StreamStats())
            for i in range(0, len(pcm), 320):  # as the ASR stage feeds it, frame by frame
                stream.feed(pcm[i : i + 320], min(len(pcm), i + 320))
            tail.append(timed(lambda s=stream: s.transcribe(padded)))
            stream.close()
    finally:
        fake.close()
    lines = [f"\nprotocol only, a scripted server answering at once (median, max of {rounds}; ms):"]
    for name, v in (("whole 3.6 s pass", whole), ("streamed pass: tail + audio-stop", tail)):
        lines.append(f"  {name:<34} {statistics.median(v):>6.1f} {max(v):>6.1f}")
    return "\n".join(lines)


def streamed_synthesis_ms(uri: str, gap_s: float = 0.3) -> tuple[float, float]:
    """wyoming-piper: (first audio after one ``synthesize``, first audio after a synthesize-chunk
    of the same sentence when the next chunk follows ``gap_s`` later), ms."""
    from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop

    pool = ServerPool("TTS", "tts.uri", uri)

    def first_audio(conn, events, later) -> float:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        conn.send(*events)
        timer = threading.Timer(gap_s, lambda: conn.send(*later))
        timer.start()
        try:
            while conn.read().type != "audio-chunk":
                pass
            return (time.perf_counter() - t) * 1000
        finally:
            timer.join()

    one = pool.call(lambda c: first_audio(c, [Synthesize(text=CLAUSE).event()], []))
    streamed = pool.call(
        lambda c: first_audio(
            c,
            [SynthesizeStart().event(), SynthesizeChunk(text=CLAUSE).event()],
            [SynthesizeChunk(text=" It is lovely.").event(), SynthesizeStop().event()],
        )
    )
    return one, streamed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="engine calls per side (default 5)")
    parser.add_argument("--turns", type=int, default=3, help="pipeline turns per side; 0: engines only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--protocol", action="store_true", help="only the scripted-server rows")
    args = parser.parse_args()
    # the answer itself is timed: a slow machine must not turn it into the deadline's apology
    cfg = load_config(
        REPO / "config.yaml", ["deadline.answer_ms=60000", "deadline.reply_ms=120000", *args.set]
    )
    pcm, _ = sf.read(QUESTION, dtype="int16")
    if args.protocol:
        print(protocol_only(cfg, pcm, max(args.rounds, 20)))
        return
    with tempfile.TemporaryDirectory(prefix="remote-speech-") as tmp:
        port = free_port()
        ours = SpeechServer(  # the same WhisperEngine and PiperEngine as local, behind the protocol
            [
                str(BIN / "assistant"),
                "serve",
                "-q",
                "--wyoming",
                f"tcp://127.0.0.1:{port}",
                "--set",
                "wyoming.partial_interval_ms=0",
                *[arg for kv in args.set for arg in ("--set", kv)],  # the local column's settings
            ],  # fmt: skip
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
            fw_asr, piper_tts = remote_engines(cfg, fw.uri, voice.uri)
            sides = [
                ("local", build.whisper_engine(cfg, store), build.piper_engine(cfg, store)),
                ("fw+piper", fw_asr, piper_tts),
                ("fw whole", Whole(remote_engines(cfg, fw.uri, voice.uri)[0]), piper_tts),
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
                for side in (1, 3):
                    pool = engines[side].recognizer.pool  # type: ignore[attr-defined]
                    add("describe round trip (ms)", side, timed(lambda p=pool: p.call(_describe)))
            for i in range(args.rounds):
                for side in [(i + k) % n for k in range(n)]:  # each side goes first in turn
                    if side == 2:
                        continue  # (the same engines as fw+piper here: whole passes are those)
                    e = engines[side]
                    add("transcribe (ms)", side, timed(lambda e=e: e.recognizer.transcribe(pcm)))
                    add("synthesize, first piece (ms)", side, first_piece_ms(e.synth))
            synth_stream = [streamed_synthesis_ms(voice.uri) for _ in range(args.rounds)]
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
    vs = "".join(f" {name[:6]:>6} {'p25..p75':>12} {'ratio':>5}" for name in names[1:])
    print(f"\n{'ms, medians; - local, paired':<34}{head}{vs}")
    for name, values in t.items():
        print(row(name, values))
    one, streamed = (statistics.median(v) for v in zip(*synth_stream, strict=True))
    print(
        f"\nwyoming-piper, first audio of a sentence (median of {len(synth_stream)}): synthesize {one:.0f} ms; "
        f"synthesize-chunk, the next text 300 ms later: {streamed:.0f} ms"
    )
    for name, asr, _ in sides:
        stats = getattr(asr, "stream_stats", None)
        if stats is not None:  # (the engine rows above are whole passes: only the pipeline streams)
            print(
                f"{name}: pipeline passes on the streamed connection {stats.streamed}, sent whole {stats.whole}"
            )
    print(protocol_only(cfg, pcm, max(args.rounds, 20)))


def remote_engines(cfg, asr_uri: str, tts_uri: str) -> tuple[WyomingRecognizer, WyomingSynthesizer]:  # type: ignore[no-untyped-def]
    return (
        WyomingRecognizer(replace(cfg.asr, backend="wyoming", uri=asr_uri)),
        WyomingSynthesizer(replace(cfg.tts, backend="wyoming", uri=tts_uri)),
    )


if __name__ == "__main__":
    main()
