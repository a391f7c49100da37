"""End of user speech -> first sound, per pipeline setting, over the recorded questions.

    .venv/bin/python bench/respond.py [--variants piper,espeak_us] [--questions N] [--fast] [--long]

Every recording runs through the real pipeline (same code as `assistant respond`, real-time pace by
default) once per setting, the settings alternating recording by recording so a busy machine hurts
them alike. The models are loaded once and shared. Settings:
  plain        streaming only: no speculative recognition or generation, no deadline
  speculative  + speculative recognition and generation at the first pause (no deadline)
  default      + the deadline fallback (the shipped config)
  ack_1200     the shipped config with the filler due at 1200 ms (the default until the 12 s window)
  full_window  the shipped config with Whisper's own 30 s encoder window (asr.window_s=30; shipped: 12)
  int8_asr     the shipped config with the recogniser in int8 (shipped: int16)
  float32_asr  the shipped config with the recogniser in float32 (the default before int16)
  whole_sentence  the shipped config with the first sentence synthesised whole
               (llm.split_first_sentence=false; shipped: its subject is said while the rest is made)
  smollm2      the shipped config with the LLM before issue 16: SmolLM2-135M, int8-mlp
               (`assistant models --prepare smollm2-135m-instruct` first)
  side_by_side the shipped config with the LLM decoding while the answer's first clause is
               synthesised (tts.first_clause_priority=false; shipped: it waits)
  no_early_phrases  the shipped config with a long clause said whole however little audio is
               ahead of it (llm.early_phrases=false)
  no_lookup    the shipped config decoding one token a step, with no draft from the prompt
               (llm.lookup_tokens=0; shipped: up to 4 guesses a step on a GPU or unquantised;
               the CPU's int8 never guesses, so there the two are alike)
--long asks for explanations instead of the short questions (long answers, where a clause that is
not ready when the one before it has played leaves a silence inside the answer).
first_audio counts any sound (the deadline's acknowledgement too); answer_audio the answer itself.
late joins: of the answer's clause-to-clause joins, those where the next clause was not synthesised
by the time the one before had finished playing (a silence the speech did not have), the longest
such wait and all such silence summed.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import sys
import tempfile
from pathlib import Path

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.engines import ANSWER_SOURCES
from assistant.core.events import AudioOut
from assistant.eval.stats import percentile
from assistant.eval.turns import build_turns
from tests.speech.make_speech import (
    VARIANTS,
    Case,
    Turn,
    load_questions,
    render,
    render_audio,
    wav_path,
    write_wav,
)

NO_DEADLINE = ["deadline.first_audio_ms=10000", "deadline.answer_ms=60000", "deadline.reply_ms=60000"]
SETTINGS = {
    "plain": ["asr.speculative=false", "llm.speculative=false", *NO_DEADLINE],
    "speculative": NO_DEADLINE,
    "default": [],
    "ack_1200": ["deadline.first_audio_ms=1200"],  # the filler's deadline before the window was 12 s
    "full_window": ["asr.window_s=30"],
    "int8_asr": ["asr.compute_type=int8"],  # the recogniser's precision before float32
    "float32_asr": ["asr.compute_type=float32"],  # its precision before int16
    "whole_sentence": ["llm.split_first_sentence=false"],
    "smollm2": ["llm.model=smollm2-135m-instruct", "llm.quantization=int8-mlp"],
    "side_by_side": ["tts.first_clause_priority=false"],  # the LLM decodes while the first clause is made
    "no_early_phrases": ["llm.early_phrases=false"],
    "no_lookup": ["llm.lookup_tokens=0"],  # one token a decode step, no guesses from the prompt
}
EXPLANATIONS = (  # --long: questions whose answers run to several sentences
    "Explain how a car engine works.",
    "How does a refrigerator keep food cold?",
    "Why do we have seasons on Earth?",
    "Tell me how plants make their food.",
    "How does the internet work?",
    "Explain how a rainbow forms.",
    "Why is the ocean salty?",
    "How do airplanes stay in the air?",
)
LATE_MS = 20  # a wait shorter than one audio block is not heard
METRICS = ["asr_final", "llm_first_token", "first_clause", "answer_audio", "first_audio"]


def own_engines(cfg, first, shared: build.Engines) -> build.Engines:  # type: ignore[no-untyped-def]
    engines = shared
    if cfg.asr != first.asr:
        engines = dataclasses.replace(engines, recognizer=build.whisper_engine(cfg, build.model_store(cfg)))
    if cfg.llm != first.llm:
        engines = dataclasses.replace(engines, llm=build.llm_engine(cfg, build.model_store(cfg)))
    return engines


def run_one(cfg, engines: build.Engines, path: Path, fast: bool):  # type: ignore[no-untyped-def]
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = build.file_source(cfg, path, realtime=not fast)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], events).run()
    return build_turns(log.events), join_waits(log.events)


def join_waits(events) -> list[float]:  # type: ignore[no-untyped-def]
    """For each join between two answer clauses of a turn: how long, in ms, the speaker waited for
    the second after the first had finished (0 when it was ready in time)."""
    waits, busy_until = [], {}
    for e in events:
        if isinstance(e, AudioOut) and e.source in ANSWER_SOURCES:
            if e.turn in busy_until:
                waits.append(max(0.0, 1000 * (e.t - busy_until[e.turn])))
            busy_until[e.turn] = e.t + e.duration_s
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="piper,espeak_us")
    parser.add_argument("--questions", type=int, default=0, help="only the first N questions")
    parser.add_argument("--settings", default="plain,speculative,default,full_window")
    parser.add_argument("--fast", action="store_true", help="feed as fast as possible (compute only)")
    parser.add_argument("--long", action="store_true", help="explanations (long answers) instead")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="applies to every setting"
    )
    args = parser.parse_args()

    out = Path(tempfile.mkdtemp(prefix="bench-respond-"))
    if args.long:
        asked = EXPLANATIONS[: args.questions] if args.questions else EXPLANATIONS
        recordings = [render_long(text, v, out) for v in args.variants.split(",") for text in asked]
    else:
        cases = [c.id for c in load_questions() if not c.multi_turn]
        cases = cases[: args.questions] if args.questions else cases
        recordings = [render(c, v, out) for v in args.variants.split(",") for c in cases]
    settings = args.settings.split(",")
    configs = {name: load_config(overrides=[*args.set, *SETTINGS[name]]) for name in settings}
    engines = build.load_engines(configs[settings[0]])
    # a setting with other recognition or LLM options gets its own engine; the rest is shared
    first = configs[settings[0]]
    per_setting = {name: own_engines(cfg, first, engines) for name, cfg in configs.items()}
    print(
        f"{len(recordings)} recordings ({args.variants}), {'fast' if args.fast else 'real-time'}",
        file=sys.stderr,
    )

    results: dict[str, dict[str, list[float]]] = {name: {m: [] for m in METRICS} for name in settings}
    fallbacks = dict.fromkeys(settings, 0)
    acks = dict.fromkeys(settings, 0)  # turns whose answer came after the deadline's filler
    turns = dict.fromkeys(settings, 0)  # one per recording, unless the VAD split a question
    waits: dict[str, list[float]] = {name: [] for name in settings}
    for i, path in enumerate(recordings):
        order = settings if i % 2 == 0 else settings[::-1]
        for name in order:
            done, joins = run_one(configs[name], per_setting[name], path, args.fast)
            waits[name] += joins
            for turn in done:
                for metric in METRICS:
                    if metric in turn.latency_ms:
                        results[name][metric].append(turn.latency_ms[metric])
                fallbacks[name] += turn.fallback
                acks[name] += turn.acknowledged
                turns[name] += 1
        print(f"  {i + 1}/{len(recordings)} {path.parent.name}/{path.name}", file=sys.stderr)

    base = settings[0]
    print(f"\nend of user speech -> event, ms (median / p95) over {len(recordings)} recordings")
    print(
        f"{'setting':12}"
        + "".join(f"{m:>22}" for m in METRICS)
        + f"{'answer x ' + base:>16}{'fallbacks':>11}{'acks':>6}{'turns':>7}{'late joins':>22}"
    )
    for name in settings:
        cells = []
        for metric in METRICS:
            values = sorted(results[name][metric])
            cells.append(
                f"{statistics.median(values):9.0f} / {percentile(values, 95):6.0f}" if values else "-"
            )
        ratio = statistics.median(results[base]["answer_audio"]) / statistics.median(
            results[name]["answer_audio"]
        )
        print(
            f"{name:12}"
            + "".join(f"{c:>22}" for c in cells)
            + f"{ratio:16.2f}{fallbacks[name]:11d}{acks[name]:6d}{turns[name]:7d}"
            + f"{late_joins(waits[name]):>22}"
        )


def late_joins(waits: list[float]) -> str:
    late = [w for w in waits if w > LATE_MS]
    return f"{len(late)}/{len(waits)}" + (f" <={max(late):.0f} ={sum(late):.0f}" if late else "")


def render_long(text: str, variant: str, out: Path) -> Path:
    """One explanation question spoken in ``variant``, written as ``render`` writes a case."""
    case = Case(re.sub(r"\W+", "_", text.lower()).strip("_"), (Turn(text, ()),))
    audio, rate = render_audio(case, VARIANTS[variant])
    path = wav_path(case.id, variant, out)
    write_wav(path, audio, rate, text)
    return path


if __name__ == "__main__":
    main()
