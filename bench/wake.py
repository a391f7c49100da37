"""Wake phrase: misses on speech with it, false accepts on speech without it, over generated speech.

    .venv/bin/python bench/wake.py [--quick] [--out DIR] [--set agent.wake_similarity=0.8 ...]

The corpus is rendered here (piper and espeak-ng voices, three speeds, pink and white noise) from
two lists: commands that open with the wake phrase, and sentences that do not, many of them near
misses ("the assistant manager", "hey, assist me", "hey Sam"). Each clip is transcribed with the
assistant's own recogniser (WhisperEngine, shipped model and settings; the pipeline hears the same
audio, cut by the VAD) and judged by
  ours    WakePhrase, as the agent uses it (agent.wake_phrase, agent.wake_similarity);
  exact   the baseline: the normalised transcript starts with the phrase word for word.
Printed per condition and overall: misses (phrase said, not found) and false accepts (not said,
found). A miss costs the user a repetition; a false accept lets a passing remark reach the LLM
(actions that change anything still need a spoken yes).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant import build
from assistant.agent.wake import WakePhrase
from assistant.audio.convert import PIPELINE_RATE, float_to_int16, resample
from assistant.config import load_config
from assistant.engines.whisper import WhisperEngine
from assistant.eval.textnorm import normalise_text
from tests.speech.make_speech import Case, Turn, Variant, render_audio

REPO = Path(__file__).resolve().parent.parent

WITH_PHRASE = [
    "Hey assistant, what time is it?",
    "Hey assistant, set a timer for five minutes.",
    "Hey assistant, type hello world.",
    "Hey assistant, read the clipboard.",
    "Hey assistant, open the calculator.",
    "Hey assistant, what is the capital of France?",
    "Hey assistant, take a note: buy milk.",
    "Hey assistant, turn the volume down.",
    "Hey assistant, stop.",
    "Hey assistant.",
]
WITHOUT_PHRASE = [
    "What time is it?",
    "The assistant manager called this morning.",
    "Hey, can you assist me with this?",
    "Hey Sam, set a timer for five minutes.",
    "Hey, this isn't working at all.",
    "Hi there, how are you doing?",
    "My assistant will send you the files.",
    "Hey, a system update is ready.",
    "Say, assistants are useful, aren't they?",
    "Honestly, I need a new desk.",
    "Hey Siri, what's the weather like?",
    "Okay, let's start the meeting.",
]


@dataclass(frozen=True)
class Condition:
    name: str
    variant: Variant


def conditions(quick: bool) -> list[Condition]:
    out = []
    voices = [("piper", "piper", 160), ("espeak_us", "en-us", 160), ("espeak_gb", "en-gb", 140)]
    if not quick:
        voices.append(("espeak_f3", "en-us+f3", 160))
    for name, voice, wpm in voices:
        for speed, factor in (("slow", 0.85), ("normal", 1.0), ("fast", 1.2)):
            if quick and speed == "slow":
                continue
            if voice == "piper":
                v = Variant(f"{name}_{speed}", voice, speech_fx=("tempo", str(factor)) if factor != 1 else ())
            else:
                v = Variant(f"{name}_{speed}", voice, espeak_speed=round(wpm * factor))
            out.append(Condition(v.name, v))
    out.append(Condition("piper_white_20db", Variant("piper_white_20db", "piper", snr_db=20.0)))
    out.append(
        Condition("piper_pink_10db", Variant("piper_pink_10db", "piper", snr_db=10.0, noise="pinknoise"))
    )
    if not quick:
        out.append(Condition("espeak_us_white_20db", Variant("espeak_us_white_20db", "en-us", snr_db=20.0)))
    return out


def clip(text: str, variant: Variant) -> np.ndarray:
    audio, rate = render_audio(Case("c", (Turn(text, ()),)), variant, pre_s=0.3, post_s=0.3)
    return float_to_int16(resample(audio, rate, PIPELINE_RATE))


def exact(phrase: str, transcript: str) -> bool:
    return (normalise_text(transcript) + " ").startswith(normalise_text(phrase) + " ")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer voices and speeds (about a third)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    cfg = load_config(REPO / "config.yaml", args.overrides)
    wake = WakePhrase(cfg.agent.wake_phrase, cfg.agent.wake_similarity)
    asr = WhisperEngine(build.model_store(cfg).asr_path(cfg.asr.model), cfg.asr)
    asr.warm_up()
    conds = conditions(args.quick)
    n = len(conds) * (len(WITH_PHRASE) + len(WITHOUT_PHRASE))
    print(f"wake phrase {cfg.agent.wake_phrase!r}, similarity {cfg.agent.wake_similarity}: {n} clips")
    rows, totals, examples = [], np.zeros(4, int), {"miss": [], "false accept": []}
    start = time.monotonic()
    for cond in conds:
        counts = np.zeros(4, int)  # ours miss, exact miss, ours false accept, exact false accept
        for said, texts in ((True, WITH_PHRASE), (False, WITHOUT_PHRASE)):
            for text in texts:
                heard = asr.transcribe(clip(text, cond.variant))
                ours, base = wake.find(heard) is not None, exact(cfg.agent.wake_phrase, heard)
                if said:
                    counts[0] += not ours
                    counts[1] += not base
                    if not ours:
                        examples["miss"].append(f"{cond.name}: {heard!r}")
                else:
                    counts[2] += ours
                    counts[3] += base
                    if ours:
                        examples["false accept"].append(f"{cond.name}: {text!r} heard as {heard!r}")
        totals += counts
        rows.append((cond.name, *counts))
        print(f"  {cond.name}: done ({time.monotonic() - start:.0f} s)", file=sys.stderr)
    pos, neg = len(WITH_PHRASE), len(WITHOUT_PHRASE)
    print(f"\n{'condition':<22} {'miss ours':>10} {'miss exact':>11} {'FA ours':>9} {'FA exact':>9}")
    for name, m, mb, fa, fab in rows:
        print(f"{name:<22} {m:>4}/{pos:<5} {mb:>5}/{pos:<5} {fa:>3}/{neg:<5} {fab:>3}/{neg:<5}")
    npos, nneg = pos * len(conds), neg * len(conds)
    m, mb, fa, fab = totals
    print(
        f"{'all':<22} {m / npos:>9.1%} {mb / npos:>10.1%} {fa / nneg:>9.1%} {fab / nneg:>9.1%}"
        f"   ({npos} clips with the phrase, {nneg} without)"
    )
    for kind, items in examples.items():
        print(f"\n{kind}es ({len(items)}):" if kind == "miss" else f"\n{kind}s ({len(items)}):")
        for item in items[:15]:
            print(f"  {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
