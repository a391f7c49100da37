"""Interruptions over Wyoming (issue 14): a satellite keeps its microphone open through the reply.

    .venv/bin/python bench/wyoming_interrupt.py [--runs 5] [--cases stop,cough,mm-hmm,question]

One in-process `assistant serve --wyoming` with the shipped models and, on the same models, a second
one as the baseline (``barge_in.hold_generation: false``: the paused reply's decoding goes on beside
the recogniser). Each run is a client (tests/wyoming_client.py) that streams 16 kHz audio at speaking
pace: the long question, silence, and one second into the reply's audio a sound: "Stop.", a cough, an
"mm-hmm" or another question. The two servers alternate run by run.

Measured at the client, from the sound's onset: when the reply's audio stopped arriving (the pause:
it includes vad.min_speech_ms, 250 ms, before the VAD believes it is speech; the client still plays
the wyoming.playback_lead_s it holds), and how long the pause lasted until the outcome (audio again:
resumed; audio-stop: stopped or answered). Outcome: stopped = audio-stop and no audio after it;
resumed = audio again, in the same audio-start cycle, and no transcript for the sound; answered = the
new question's transcript and a spoken answer.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import soundfile as sf

from assistant import build
from assistant.config import Config, load_config
from assistant.eval.stats import percentile
from assistant.wyoming import engines as shared_engines
from assistant.wyoming.service import WyomingService
from bench.live import comma_list
from tests.speech.sounds import over_a_reply
from tests.wyoming_client import Conversation, start_server, talk_over_reply

CASES = ("stop", "cough", "mm-hmm", "question")
WANTED = {"stop": "stopped", "cough": "resumed", "mm-hmm": "resumed", "question": "answered"}
ONSET_S = 0.1  # the sounds start with this much silence (tests/speech/sounds.py)
GAP_S = 0.25  # reply audio paced at 46 ms a chunk: a longer silence is a pause


def judge(talk: Conversation) -> tuple[str, float | None, float | None]:
    """Outcome, pause (onset -> reply audio stopped arriving) and decision (pause -> outcome), in ms."""
    assert talk.t_sound is not None
    onset = talk.t_sound + ONSET_S
    after = [(at, e.type, e.data.get("text")) for at, e in talk.events if at >= onset]
    chunks = [at for at, kind, _ in after if kind == "audio-chunk"]
    paused = next((a for a, b in zip(chunks, chunks[1:], strict=False) if b - a > GAP_S), None)
    kinds = [kind for _, kind, _ in after]
    stop_at = next((at for at, kind, _ in after if kind == "audio-stop"), None)
    if paused is None and stop_at is not None and chunks and chunks[-1] < stop_at:
        paused = chunks[-1]  # audio-stop straight after the last chunk: cut, never resumed
    pause_ms = None if paused is None else (paused - onset) * 1000
    if "transcript" in kinds and "audio-start" in kinds[kinds.index("transcript") :]:
        outcome, decided = "answered", stop_at
    elif stop_at is not None and not [at for at in chunks if at > stop_at]:
        outcome, decided = "stopped", stop_at
    elif "transcript" not in kinds and "audio-start" not in kinds and paused is not None:
        outcome, decided = "resumed", next((at for at in chunks if at > paused + GAP_S), None)
    else:
        outcome, decided = "other", None
    decision_ms = None if paused is None or decided is None else (decided - paused) * 1000
    return outcome, pause_ms, decision_ms


def done_for(case: str):  # type: ignore[no-untyped-def]
    def done(talk: Conversation) -> bool:
        if talk.t_sound is None:
            return False
        kinds = talk.kinds_after(talk.t_sound)
        if case == "question":
            return "transcript" in kinds and "audio-stop" in kinds[kinds.index("transcript") :]
        return time.monotonic() - talk.t_sound > 6.0  # decided well before; the reply goes on or not

    return done


def stats(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.0f} / {percentile(values, 95):.0f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per case and setting (default 5)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    args = ap.parse_args(argv)
    cases = comma_list(ap, "--cases", args.cases, CASES)

    cfg: Config = load_config()
    settings = {
        "default": cfg,
        "no_hold": replace(cfg, barge_in=replace(cfg.barge_in, hold_generation=False)),
    }
    print("loading the shipped models ...", flush=True)
    engines = shared_engines.shared(build.load_engines(cfg))
    shared_engines.warm(engines, build.fallback_phrases(cfg))
    servers = {name: start_server(WyomingService(c, engines)) for name, c in settings.items()}
    work = Path(tempfile.mkdtemp(prefix="wyoming_interrupt_"))
    audio = {name: sf.read(path, dtype="int16")[0] for name, path in over_a_reply(work).items()}
    results: dict[tuple[str, str], list[tuple[str, float | None, float | None]]] = {}
    try:
        for case in cases:
            for run in range(args.runs):
                for name, (_, port) in servers.items():
                    talk = asyncio.run(
                        talk_over_reply(port, audio["long"], audio[case], 1.0, done_for(case), 150)
                    )
                    got = judge(talk) if talk.t_sound is not None else ("no reply", None, None)
                    results.setdefault((case, name), []).append(got)
                    pause, decision = (f"{v:.0f} ms" if v is not None else "-" for v in got[1:])
                    line = f"{case:<9} {name:<8} run {run + 1}: {got[0]:<9} pause {pause}, decided {decision}"
                    print(line, flush=True)
    finally:
        for thread, _ in servers.values():
            thread.stop()

    print(f"\nInterruptions over Wyoming, {args.runs} runs per row; ms from the sound's onset (median / p95)")
    print("baseline: no_hold (barge_in.hold_generation false); ratio = decision median, baseline / default\n")
    print("| case | setting | wanted outcome | reply audio paused after | pause -> outcome | ratio |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        base = [d for _, _, d in results[(case, "no_hold")] if d is not None]
        for name in settings:
            rows = results[(case, name)]
            wanted = sum(outcome == WANTED[case] for outcome, _, _ in rows)
            decisions = [d for ok, _, d in rows if d is not None and ok == WANTED[case]]
            pauses = [p for _, p, _ in rows if p is not None]
            ratio = (
                f"{statistics.median(base) / statistics.median(decisions):.2f}x"
                if base and decisions
                else "-"
            )
            print(
                f"| {case} | {name} | {wanted}/{len(rows)} | {stats(pauses)} | {stats(decisions)} | {ratio} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
