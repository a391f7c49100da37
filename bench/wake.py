"""Wake phrase and wake word: misses on speech with them, false accepts on speech without, over generated speech.

    .venv/bin/python bench/wake.py [--quick] [--engine-only] [--hours H] [--set agent.wake_word=hey_jarvis ...]
    nice -n 19 .venv/bin/python bench/wake.py --cpu [SECONDS]

The corpus is rendered here (piper and espeak-ng voices, three speeds, pink and white noise) from
two lists: commands that open with the wake phrase, and sentences that do not, many of them near
misses ("the assistant manager", "hey, assist me", "hey Sam"). Each clip is transcribed with the
assistant's own recogniser (WhisperEngine, shipped model and settings; the pipeline hears the same
audio, cut by the VAD) and judged by
  ours    WakePhrase, as the agent uses it (agent.wake_phrase, agent.wake_similarity);
  exact   the baseline: the normalised transcript starts with the phrase word for word.
and, for the wake-word model (agent.wake_word, engines/wakeword.py, on the raw audio as the agent's
gate hears it), the same commands said with its word ("Okay Nabu, what time is it?"):
  model   detections on the clip (a miss: none; a false accept: any, on the clips without it).
Printed per condition and overall: misses (phrase said, not found) and false accepts (not said,
found). ``--hours`` then streams that much audio without the wake word through the model (the
clips without it, the "hey assistant" clips, music-like chords and noise, each pass remixed with a
fresh gain and noise so no two passes are the same signal) and prints false accepts per hour. A miss costs the user a repetition; a false accept lets a passing remark reach the LLM
(actions that change anything still need a spoken yes).

``--cpu`` measures instead what listening costs: `assistant agent`'s own pipeline (agent/run.py,
shipped models, the recording at real-time pace) over SECONDS (default 60) of silence with a faint
noise floor ("idle") and of continuous room speech that never says the wake word ("room speech":
the sentences above, piper voice, one after another), once with the transcript's wake phrase alone
(agent.wake_word none: the old behaviour) and once with the wake-word gate. Printed per condition:
process CPU seconds per wall second (% of one core: every thread of the process, the models' included)
and the recognition passes Whisper made. Start-up (loading, warming up, pre-synthesised replies) is
not counted. Run it under ``nice -n 19`` on a shared machine: CPU seconds still count what we used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from assistant import build
from assistant.agent import run as agent_run
from assistant.agent.wake import WakePhrase
from assistant.audio.convert import PIPELINE_RATE, float_to_int16, resample
from assistant.audio.sinks import TimelineWavSink
from assistant.config import Config, load_config
from assistant.core.bus import EventBus
from assistant.core.engines import Recognizer
from assistant.engines.wakeword import MODELS
from assistant.eval.textnorm import normalise_text
from tests.speech.make_speech import VARIANTS, Case, Turn, Variant, render_audio, write_wav

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


def with_word(phrase: str) -> list[str]:
    """The commands, opening with the wake word's phrase instead of "Hey assistant"."""
    return [t.replace("Hey assistant", phrase) for t in WITH_PHRASE]


def detections(name: str, pcm: np.ndarray) -> int:
    detector = build.wake_detector(name)
    assert detector is not None
    return sum(detector.feed(pcm[i : i + 320]) for i in range(0, len(pcm), 320))  # 20 ms frames


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


def music_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Chords of harmonic tones changing every quarter to half second, with a beat: no speech."""
    out, t = [], 0.0
    while t < seconds:
        dur = float(rng.uniform(0.25, 0.5))
        n = int(dur * PIPELINE_RATE)
        x = np.arange(n) / PIPELINE_RATE
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        tone = sum(np.sin(2 * np.pi * root * r * k * x) / k for r in (1, 1.25, 1.5) for k in (1, 2, 3))
        out.append(tone * np.exp(-3 * x) + 0.3 * rng.standard_normal(n) * np.exp(-40 * x))
        t += dur
    audio = np.concatenate(out)
    return float_to_int16(0.3 * audio / np.max(np.abs(audio)))


def false_accepts_per_hour(name: str, negatives: list[np.ndarray], hours: float) -> tuple[int, float]:
    """Stream ``hours`` of audio without the wake word through one model instance, as the agent's
    gate does: the negative clips, music-like chords and noise, remixed each pass."""
    rng = np.random.default_rng(0)
    detector = build.wake_detector(name)
    assert detector is not None
    total, found = 0.0, 0
    while total < hours * 3600:
        parts = [c for c in negatives] + [music_like(30, rng)]
        rng.shuffle(parts)  # type: ignore[arg-type]
        audio = np.concatenate(parts).astype(np.float32) * rng.uniform(0.3, 1.0)
        audio += rng.standard_normal(len(audio)).astype(np.float32) * rng.uniform(30, 600)
        pcm = np.clip(audio, -32768, 32767).astype(np.int16)
        found += sum(detector.feed(pcm[i : i + 320]) for i in range(0, len(pcm), 320))
        total += len(pcm) / PIPELINE_RATE
    return found, total


class CountingRecognizer:
    """The recogniser, counting its passes (speculative and final alike)."""

    def __init__(self, inner: Recognizer) -> None:
        self.inner = inner
        self.passes = 0

    def transcribe(self, pcm: np.ndarray) -> str:
        self.passes += 1
        return self.inner.transcribe(pcm)

    def warm_up(self) -> None:
        self.inner.warm_up()


def room_audio(seconds: float, work: Path) -> dict[str, Path]:
    """``seconds`` of faint noise (idle), and of the sentences without the wake phrase one after
    another (room speech), as 16 kHz WAV files."""
    texts: list[str] = []
    while len(texts) < len(WITHOUT_PHRASE) or sum(len(t) for t in texts) / 14 < seconds:  # ~14 chars/s
        texts += WITHOUT_PHRASE
    audio, rate = render_audio(Case("room", tuple(Turn(t, ()) for t in texts), gap_s=0.7), VARIANTS["piper"])
    audio = resample(audio, rate, PIPELINE_RATE)[: int(seconds * PIPELINE_RATE)]
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(int(seconds * PIPELINE_RATE)) * 1e-3).astype(np.float32)  # -60 dBFS
    paths = {"idle": work / "idle.wav", "room speech": work / "room.wav"}
    write_wav(paths["idle"], noise, PIPELINE_RATE, "")
    write_wav(paths["room speech"], audio + noise[: len(audio)], PIPELINE_RATE, " ".join(texts))
    return paths


def cpu_run(cfg: Config, engines: build.Engines, wav: Path, work: Path) -> tuple[float, float, int]:
    """(process CPU s, wall s, recognition passes) of the agent over ``wav``."""
    counting = CountingRecognizer(engines.recognizer)
    pipe = agent_run.agent_file_pipeline(
        cfg, replace(engines, recognizer=counting), wav, [TimelineWavSink(work / "reply.wav")], EventBus()
    )
    try:
        pipe.setup()  # start-up is not what listening costs
        cpu0, wall0 = time.process_time(), time.monotonic()
        pipe.start()
        pipe.wait()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        pipe.stop()
    return cpu, wall, counting.passes


def cpu_table(seconds: float, overrides: list[str]) -> int:
    work = Path(tempfile.mkdtemp(prefix="bench-wake-cpu-"))
    paths = room_audio(seconds, work)
    state = [f"agent.notes_file={work / 'notes.txt'}", "agent.event_log=null"]
    base = load_config(REPO / "config.yaml", [*overrides, *state])
    engines = build.load_engines(base)
    word = base.agent.wake_word if base.agent.wake_word != "none" else "okay_nabu"
    head = f"{'condition':<34} {'audio':<12} {'CPU s':>6} {'wall s':>7} {'% core (wall)':>14} {'% core (audio)':>15}"
    print(f"\n{head} {'ASR passes':>11}")
    for label, wake_word in (
        ("transcript phrase (wake_word none)", "none"),
        (f"wake word gate ({word})", word),
    ):
        cfg = load_config(REPO / "config.yaml", [*overrides, *state, f"agent.wake_word={wake_word}"])
        for kind, wav in paths.items():
            print(f"{label}: {kind}...", file=sys.stderr)
            cpu, wall, passes = cpu_run(cfg, engines, wav, work)
            print(
                f"{label:<34} {kind:<12} {cpu:>6.1f} {wall:>7.1f} {cpu / wall:>14.1%} {cpu / seconds:>15.1%}"
                f" {passes:>11}"
            )
    print(
        f"\n({seconds:.0f} s of audio each at real-time pace, then the VAD's closing silence; CPU: every"
        " thread of this process; % core (audio): CPU s per second of audio, which a loaded machine"
        " does not stretch as it stretches the wall time)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer voices and speeds (about a third)")
    ap.add_argument("--engine-only", action="store_true", help="the wake-word model only (no Whisper)")
    ap.add_argument("--hours", type=float, default=0.0, help="false accepts per hour over this much audio")
    ap.add_argument("--cpu", type=float, nargs="?", const=60.0, metavar="SECONDS", help="CPU use instead")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if args.cpu:
        return cpu_table(args.cpu, args.overrides)
    cfg = load_config(REPO / "config.yaml", args.overrides)
    wake = WakePhrase(cfg.agent.wake_phrase, cfg.agent.wake_similarity)
    model = cfg.agent.wake_word if cfg.agent.wake_word != "none" else "okay_nabu"
    asr = None
    if not args.engine_only:
        asr = build.whisper_engine(cfg, build.model_store(cfg))
        asr.warm_up()
    conds = conditions(args.quick)
    word_texts = with_word(MODELS[model][0])
    print(
        f"wake phrase {cfg.agent.wake_phrase!r} (similarity {cfg.agent.wake_similarity}), wake word {model!r}"
    )
    # per condition: ours miss, exact miss, ours FA, exact FA, model miss, model FA
    rows, totals, examples = [], np.zeros(6, int), {"miss": [], "false accept": []}
    negatives: list[np.ndarray] = []
    start = time.monotonic()
    for cond in conds:
        counts = np.zeros(6, int)
        for text in word_texts:
            counts[4] += detections(model, clip(text, cond.variant)) == 0
        for said, texts in ((True, WITH_PHRASE), (False, WITHOUT_PHRASE)):
            for text in texts:
                pcm = clip(text, cond.variant)
                negatives.append(pcm)  # none says the wake word
                if not said:
                    counts[5] += detections(model, pcm) > 0
                if asr is None:
                    continue
                heard = asr.transcribe(pcm)
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
    head = f"{'condition':<22} {'miss ours':>10} {'miss exact':>11} {'miss model':>11}"
    print(f"\n{head} {'FA ours':>9} {'FA exact':>9} {'FA model':>9}")
    for name, m, mb, fa, fab, mm, fam in rows:
        print(
            f"{name:<22} {m:>4}/{pos:<5} {mb:>5}/{pos:<5} {mm:>5}/{pos:<5}"
            f" {fa:>3}/{neg:<5} {fab:>3}/{neg:<5} {fam:>3}/{neg:<5}"
        )
    npos, nneg = pos * len(conds), neg * len(conds)
    m, mb, fa, fab, mm, fam = totals
    print(
        f"{'all':<22} {m / npos:>9.1%} {mb / npos:>10.1%} {mm / npos:>10.1%} {fa / nneg:>9.1%}"
        f" {fab / nneg:>9.1%} {fam / nneg:>9.1%}   ({npos} clips with the phrase or word, {nneg} without)"
    )
    if asr is None:
        print("(--engine-only: the transcript columns were not measured)")
    for kind, items in examples.items():
        print(f"\n{kind}es ({len(items)}):" if kind == "miss" else f"\n{kind}s ({len(items)}):")
        for item in items[:15]:
            print(f"  {item}")
    if args.hours > 0:
        found, total = false_accepts_per_hour(model, negatives, args.hours)
        unique = sum(len(c) for c in negatives) / PIPELINE_RATE
        print(
            f"\n{model}: {found} false accepts in {total / 3600:.2f} h of audio without the wake word"
            f" = {found / (total / 3600):.2f} per hour ({unique / 60:.0f} min of distinct speech clips,"
            " remixed each pass with music-like chords, gain and noise)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
