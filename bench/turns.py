"""Turn-taking: hesitations kept whole, how soon a finished turn is ended, and the answer's first sound.

    .venv/bin/python bench/turns.py [--voices piper,espeak_us] [--sentences N] [--questions N] [--fast]
                                    [--held-out]

Every recording of the hesitation corpus (tests/speech/hesitations.py: sentences spoken whole with a
0.6-1.2 s pause inserted at a word boundary, and short complete questions) runs through the real
conversation pipeline (same code as `assistant respond`, real-time pace by default) once per setting,
the settings alternating recording by recording so a busy machine hurts them alike:
  hangover     vad.end_of_turn=none: the fixed vad.hangover_ms (the baseline)
  smart_turn   the transcript's last word, Smart Turn's hearing of the audio without a transcript
  llm          the last word, then the LLM's P(the message ends here) (engines/llm_turn.py); a last
               word the recogniser doubted (vad.last_word_doubt) is also judged left out
  llm_trusting llm, every recognised last word taken as said (vad.last_word_doubt=0)
  asr_float32  llm, with recognition in float32 (the asr.compute_type before int16; its own copy)
  asr_window10 llm, with asr.window_s=10 (its own recogniser)
  blas_all     llm, with numpy's BLAS on every core, as before engines/openmp.py kept it to one
  pause60      llm, the recogniser speculating after 60 ms of silence (vad.pause_ms), not 100
  pause80      the same after 80 ms
Printed per setting: the share of hesitation recordings answered as one turn with the whole
sentence, end of speech -> end-of-turn decision for the complete questions (median, p95), how many
complete questions were held open to vad.max_silence_ms (judged unfinished), end of speech -> first
audio of the answer itself (median, p95), and the share of turns acknowledged. Then where the
complete questions' decision time went (medians): end of speech -> the last pause's speculative
transcript, and the judgement itself (the transcript's verdict, or Smart Turn's pass without one).
--held-out runs the other sentences (HELD_OUT) and the next questions, which no threshold was
chosen on: report both lists. On an overloaded machine the speculative transcript misses the
judgement's wait (up to vad.max_silence_ms) and Smart Turn decides in both modes; to compare the
transcript judges themselves, add `--fast --set vad.max_silence_ms=10000`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import sys
import tempfile
from pathlib import Path

from threadpoolctl import threadpool_limits

from assistant import build
from assistant.audio.sinks import ListSink
from assistant.config import load_config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import EndOfTurn, SpeechEnded, TranscriptSpeculative
from assistant.eval.stats import percentile
from assistant.eval.textnorm import normalise_text
from assistant.eval.turns import TurnRecord, build_turns
from tests.speech.hesitations import HELD_OUT, VOICES, Item, render_corpus

SETTINGS = {
    "hangover": ["vad.end_of_turn=none"],
    "smart_turn": ["vad.end_of_turn=smart_turn"],
    "llm": ["vad.end_of_turn=llm"],
    "llm_trusting": ["vad.end_of_turn=llm", "vad.last_word_doubt=0"],
    "asr_float32": ["vad.end_of_turn=llm", "asr.compute_type=float32"],
    "asr_window10": ["vad.end_of_turn=llm", "asr.window_s=10"],
    "blas_all": ["vad.end_of_turn=llm"],
    "pause60": ["vad.end_of_turn=llm", "vad.pause_ms=60"],
    "pause80": ["vad.end_of_turn=llm", "vad.pause_ms=80"],
}
JUDGE_FIELDS = ("end_of_turn", "llm_threshold", "last_word_doubt")  # what the judge is made with
BLAS_THREADS = {"blas_all": os.cpu_count() or 1}  # numpy's BLAS threads per setting (else 1)


@dataclasses.dataclass
class Run:
    turns: list[TurnRecord]
    held: bool  # the last pause was judged unfinished (held to max_silence_ms)
    judged: list[EndOfTurn]  # every judgement, for --show
    transcript_ms: float | None  # end of speech -> the last pause's speculative transcript
    judge_ms: float | None  # the last judgement's own time


def run_one(cfg, engines: build.Engines, path: Path, fast: bool) -> Run:  # type: ignore[no-untyped-def]
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    source = build.file_source(cfg, path, realtime=not fast)
    build.conversation_pipeline(cfg, engines, source, [ListSink()], events).run()
    judged, ended, spec = log.of(EndOfTurn), log.of(SpeechEnded), log.of(TranscriptSpeculative)
    held = bool(judged) and not judged[-1].complete
    transcript_ms = (spec[-1].t - ended[-1].t) * 1000 if spec and ended else None
    judge_ms = judged[-1].infer_ms if judged else None
    turns = [t for t in build_turns(log.events) if t.transcript.strip()]
    return Run(turns, held, judged, transcript_ms, judge_ms)


def kept_whole(item: Item, turns: list[TurnRecord]) -> bool:
    """One turn, and it holds the sentence's last word (the part after the pause)."""
    last = normalise_text(item.text).split()[-1]
    return len(turns) == 1 and last in normalise_text(turns[0].transcript).split()


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):6.0f} / {percentile(sorted(values), 95):5.0f}" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--sentences", type=int, default=None, help="hesitations per voice (all)")
    parser.add_argument("--questions", type=int, default=6, help="complete questions per voice")
    parser.add_argument("--fast", action="store_true", help="feed as fast as possible (decisions only)")
    parser.add_argument("--held-out", action="store_true", help="HELD_OUT sentences, later questions")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="every setting")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="which of them, comma-separated")
    parser.add_argument("--show", action="store_true", help="print every hesitation split and question held")
    args = parser.parse_args()

    out = Path(tempfile.gettempdir()) / "bench-turns"
    voices = args.voices.split(",")
    corpus = (
        render_corpus(out / "heldout", voices, args.questions, HELD_OUT, skip_questions=6)
        if args.held_out
        else render_corpus(out, voices, args.questions)
    )
    items = [
        i
        for i in corpus
        if i.kind == "question"
        or (i.kind == "hesitation" and int(i.path.stem.split("_")[1]) < (args.sentences or len(corpus)))
    ]
    settings = args.settings.split(",")
    if unknown := set(settings) - set(SETTINGS):
        parser.error(f"--settings: unknown {', '.join(sorted(unknown))}; known: {', '.join(SETTINGS)}")
    configs = {name: load_config(overrides=[*args.set, *SETTINGS[name]]) for name in settings}
    # one copy of each model, the LLM shared
    loaded_cfg = load_config(overrides=[*args.set, *SETTINGS["llm"]])
    loaded = build.load_engines(loaded_cfg)
    # a setting that judges as the loaded one does (whatever else it changes) shares its judge
    turn_engines = {
        n: loaded.turn
        for n in settings
        if all(getattr(configs[n].vad, f) == getattr(loaded_cfg.vad, f) for f in JUDGE_FIELDS)
    }
    if "llm_trusting" in configs:
        turn_engines["llm_trusting"] = trusting = copy.copy(loaded.turn)
        trusting.doubt = 0.0  # type: ignore[union-attr]
    if "smart_turn" in configs:
        turn_engines["smart_turn"] = build.turn_engine(configs["smart_turn"])
    engines = {n: dataclasses.replace(loaded, turn=turn_engines.get(n)) for n in settings}
    for name in settings:  # a setting that recognises otherwise gets its own recogniser
        if configs[name].asr != loaded_cfg.asr:
            recognizer = build.whisper_engine(configs[name], build.model_store(configs[name]))
            recognizer.warm_up()
            engines[name] = dataclasses.replace(engines[name], recognizer=recognizer)
    print(f"{len(items)} recordings ({args.voices}), {'fast' if args.fast else 'real-time'}", file=sys.stderr)

    whole = {n: 0 for n in settings}
    hesitations = sum(i.kind == "hesitation" for i in items)
    decided: dict[str, list[float]] = {n: [] for n in settings}
    answer: dict[str, list[float]] = {n: [] for n in settings}
    held = {n: 0 for n in settings}
    acks = {n: 0 for n in settings}
    parts: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in settings}
    turns = {n: 0 for n in settings}
    for k, item in enumerate(items):
        for name in settings if k % 2 == 0 else settings[::-1]:
            with threadpool_limits(limits=BLAS_THREADS.get(name, 1), user_api="blas"):
                run = run_one(configs[name], engines[name], item.path, args.fast)
            found = run.turns
            turns[name] += len(found)
            acks[name] += sum(t.acknowledged for t in found)
            if item.kind == "hesitation":
                kept = kept_whole(item, found)
                whole[name] += kept
                if args.show and not kept:
                    said = [(j.text, j.last_word_p and round(j.last_word_p, 2)) for j in run.judged]
                    print(
                        f"  split ({name}): {item.text!r} -> {[t.transcript for t in found]}; judged {said}",
                        file=sys.stderr,
                    )
                continue
            held[name] += run.held
            if args.show and run.held:
                last = run.judged[-1]
                print(f"  held ({name}): {last.text!r}, last word p={last.last_word_p}", file=sys.stderr)
            if len(found) == 1:
                for values, value in zip(parts[name], (run.transcript_ms, run.judge_ms), strict=True):
                    values += [] if value is None else [value]
                lat = found[0].latency_ms
                decided[name] += [lat["vad_decided"]] if "vad_decided" in lat else []
                answer[name] += [lat["answer_audio"]] if "answer_audio" in lat else []
        print(f"  {k + 1}/{len(items)} {item.path.parent.name}/{item.path.name}", file=sys.stderr)

    print(f"\n{hesitations} hesitations, {len(items) - hesitations} complete questions; ms median / p95")
    print(f"{'setting':12}{'kept whole':>12}{'decided':>16}{'held':>6}{'answer audio':>16}{'ack rate':>10}")
    for name in settings:
        share = whole[name] / hesitations if hesitations else 0.0
        ack_rate = acks[name] / turns[name] if turns[name] else 0.0
        print(
            f"{name:12}{share:12.0%}{cell(decided[name]):>16}{held[name]:>6}"
            f"{cell(answer[name]):>16}{ack_rate:10.0%}"
        )
    print("\ncomplete questions, where the decision's time went (ms, median): transcript / judgement")
    for name in settings:
        spec, judge = (f"{statistics.median(v):.0f}" if v else "-" for v in parts[name])
        print(f"{name:12}{spec:>12}{judge:>10}")


if __name__ == "__main__":
    main()
