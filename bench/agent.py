"""Agent actions: end of speech -> first sound of the reply, with and without pre-made reply audio.

    .venv/bin/python bench/agent.py [--runs 2]

A session of spoken commands (piper voice, rendered here) goes through the agent's own pipeline
(`assistant agent --input`, in process, shipped models, real-time pace). Commands are answered by the
deterministic matcher, so the time to the first sound is the end-of-turn wait, recognition and then
the reply's synthesis. Two variants, alternated run by run:
  synthesised   every reply is synthesised when it is said (the baseline);
  default       replies whose words are fixed ("Noted.", "Okay, I won't.") are synthesised at
                start-up, and short replies said before ("Timer set for 5 minutes.") come from the
                TTS stage's memory.
Printed: median and p95 over all action turns, and per reply kind (fixed / repeated / new).
The desktop is real but headless here: nothing in this session needs a display.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from assistant import build
from assistant.agent import run as agent_run
from assistant.agent.actions import FIXED_REPLIES
from assistant.audio.sinks import TimelineWavSink
from assistant.config import load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import FirstAudio, ReplyClause, SpeechEnded
from assistant.stages import tts
from tests.speech.make_speech import VARIANTS, Case, Turn, render_audio, write_wav

REPO = Path(__file__).resolve().parent.parent

SESSION = [
    "Hey assistant, set a timer for five minutes.",
    "Hey assistant, take a note: buy milk.",
    "Hey assistant, type hello world.",
    "No.",
    "Hey assistant, cancel all timers.",
    "Hey assistant, cancel the timers.",
    "Hey assistant, set a timer for five minutes.",
    "Hey assistant, take a note: call the plumber.",
    "Hey assistant, type good morning.",
    "No.",
    "Hey assistant, cancel all timers.",
]


def one_run(engines: build.Engines, wav: Path, work: Path, prepared: bool) -> list[tuple[str, float]]:
    """(reply, ms from end of speech to its first sound) per answered turn."""
    cfg = load_config(
        None, [f"agent.notes_file={work / 'notes.txt'}", f"agent.event_log={work / 'events.jsonl'}"]
    )
    saved = agent_run.FIXED_REPLIES, tts.CACHE_PHRASES
    if not prepared:
        agent_run.FIXED_REPLIES, tts.CACHE_PHRASES = (), 0
    try:
        events, log = EventBus(), EventLog()
        events.subscribe(log)
        sinks = [TimelineWavSink(work / "reply.wav")]
        agent_run.agent_file_pipeline(cfg, engines, wav, sinks, events, linger_s=1.0).run()
    finally:
        agent_run.FIXED_REPLIES, tts.CACHE_PHRASES = saved
    # both on the input timeline: where the speech ended, and where the reply's first sound lies
    ended = {e.turn: e.t_input for e in log.of(SpeechEnded)}
    out = []
    for e in log.events:
        if isinstance(e, FirstAudio) and e.turn in ended:
            text = log.of(ReplyClause, e.turn)[0].text
            out.append((text, (e.at_input_s - ended[e.turn]) * 1000))
    return out


def kind_of(text: str, seen: set[str]) -> str:
    if text in FIXED_REPLIES:
        return "fixed"
    return "repeated" if text in seen else "new"


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2, help="runs per variant (alternated)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    case = Case("agent_session", tuple(Turn(t, ()) for t in SESSION), gap_s=2.5)
    audio, rate = render_audio(case, VARIANTS["piper"])
    wav = work / "session.wav"
    write_wav(wav, audio, rate, " | ".join(SESSION))
    results: dict[str, dict[str, list[float]]] = {"synthesised": {}, "default": {}}
    engines = build.load_engines(load_config(None, []))
    for run in range(args.runs):
        for variant in ("synthesised", "default"):
            print(f"run {run + 1}/{args.runs}: {variant}...", file=sys.stderr)
            seen: set[str] = set()
            for text, ms in one_run(engines, wav, work, prepared=variant == "default"):
                results[variant].setdefault(kind_of(text, seen), []).append(ms)
                results[variant].setdefault("all", []).append(ms)
                seen.add(text)
    base = results["synthesised"]["all"]
    print(f"\n{'replies':<10} {'variant':<12} {'n':>3} {'median ms':>10} {'p95 ms':>8} {'ratio':>6}")
    for kind in ("all", "fixed", "repeated", "new"):
        for variant in ("synthesised", "default"):
            values = results[variant].get(kind, [])
            if not values:
                continue
            ratio = statistics.median(values) / statistics.median(results["synthesised"].get(kind, base))
            print(
                f"{kind:<10} {variant:<12} {len(values):>3} {statistics.median(values):>10.0f} "
                f"{p95(values):>8.0f} {ratio:>5.2f}x"
            )
    print(f"\n(ms from the end of speech to the first sound of the reply; {args.runs} runs per variant)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
