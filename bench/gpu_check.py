"""GPU check, in one call on a lent GPU machine (bench/gpu_session.sh installs what it needs there).

    python bench/gpu_check.py [--sections llm,asr,pipeline] [--tokens 32] [--questions 5]
                              [--variants piper,espeak_us] [--recordings DIR] [--cublas-shim DIR]

1. llm: greedy output of each GPU setting against the CPU fp32 reference on fixed prompts (share of
   identical tokens, same first sentence), and first token / tokens/s of every setting, the CPU
   default (auto: int8-channel, at llm.threads and at every core) beside the GPU ones.
2. asr: one recognition pass over each recording (bench/respond.py's), CPU int8 (asr.cpu_threads,
   and every core) beside `asr.device: cuda` float16 / int8_float16; word error rate of each. The
   CUDA passes run in a child process: ctranslate2's PyPI wheel loads CUDA 12's libcublas.so.12,
   which a CUDA 13 machine may lack. Then, if --cublas-shim names a folder with libcublas.so.12 ->
   libcublas.so.13 links, it is tried again through it and labelled so (an unsupported ABI shim:
   the word error rate beside the CPU's says whether it computes the same thing).
3. pipeline: end of speech -> first answer audio through the real pipeline (bench/respond.py's
   run_one, real-time pace), llm.device cpu vs cuda (and cuda + asr cuda when that loads),
   alternating recording by recording; medians, p95 and the ratio to the CPU setting.
The threads each stage used are printed at the end. Without CUDA the CPU side still runs and every
GPU row says "no CUDA".
Exit code: 0 every GPU result matches; 1 a GPU setting diverged or failed; 3 no CUDA device.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from assistant import build
from assistant.config import load_config
from assistant.engines.local_llm import LlmEngine, pick_quantization
from assistant.engines.store import ModelStore
from assistant.eval.stats import percentile
from assistant.eval.textnorm import reply_mentions, word_errors

PROMPTS = [
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What is the largest planet in our solar system?",
    "Which planet is known as the red planet?",
    "What do bees make?",
    "What is the capital of Japan?",
]
SETTINGS = ["bf16", "fp16", "none", "int8", "int4"]  # int8/int4: torchao weight-only, when installed
ASR_GPU_TYPES = ["float16", "int8_float16"]
CORES = os.cpu_count() or 1

# the LLM bench/gpu_stage.py carries to the device (98 MB; it does not stage the default Qwen's
# 490 MB yet): the GPU figures are SmolLM2-135M's, as in the README's GPU table
STAGED = ["llm.model=smollm2-135m-instruct"]


def run(engine: LlmEngine, system: str, prompt: str) -> tuple[str, float, float]:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    start = time.monotonic()
    first = None
    pieces = []
    for piece in engine.stream(messages):
        first = first or time.monotonic()
        pieces.append(piece)
    end = time.monotonic()
    ttft = (first or end) - start
    rate = (len(pieces) - 1) / (end - first) if first and len(pieces) > 1 else float("nan")
    return "".join(pieces), ttft, rate


def first_sentence(text: str) -> str:
    return text.strip().split(".")[0]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------------------------------- llm
def llm_section(cfg, cuda: bool) -> bool:  # type: ignore[no-untyped-def]
    import torch

    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    system, threads = cfg.llm.system_prompt, cfg.llm.threads
    print(f"\n== LLM {cfg.llm.model} ({model_dir}), {len(PROMPTS)} prompts, {cfg.llm.max_new_tokens} tokens")
    runs = [("cpu", "none", threads), ("cpu", "auto", threads)]  # the fp32 reference first
    runs += [("cpu", "auto", CORES)] if threads < CORES else []
    runs += [("cuda", s, 0) for s in SETTINGS] if cuda else []
    rows: list[tuple[str, str, list | str]] = []  # label, threads, results or why skipped
    for device, quant, thr in runs:
        try:
            engine = LlmEngine(
                model_dir,
                replace(
                    cfg.llm, device=device, quantization=quant, threads=thr or threads, prefix_cache=False
                ),
            )
        except Exception as exc:  # torchao missing, kernel unsupported: say so, go on
            rows.append((f"cuda {quant}", "gpu", f"skipped: {str(exc).splitlines()[0][:90]}"))
            continue
        label = f"{device} {engine.quantization}" + (
            " (cpu default)" if quant == "auto" and device == "cpu" else ""
        )
        engine.warm_up()
        rows.append(
            (label, str(thr) if device == "cpu" else "gpu", [run(engine, system, p) for p in PROMPTS])
        )
        tokenizer = engine.tokenizer
        del engine
        if device == "cuda":
            torch.cuda.empty_cache()
    torch.set_num_threads(threads)  # back to the pipeline's setting
    expected = [r[0] for r in rows[0][2]]
    base = med([r[1] for r in rows[1][2]])  # the CPU default at llm.threads
    print(
        f"{'setting':28} {'threads':>8} {'ttft ms':>8} {'tok/s':>8} {'ttft x cpu':>11} {'same tokens':>12} {'same 1st sentence':>18}"
    )
    ok = True
    for label, thr, results in rows:
        if isinstance(results, str):
            print(f"{label:28} {thr:>8} {results}")
            continue
        same = []
        for (text, _, _), want in zip(results, expected, strict=True):
            a, b = tokenizer(text)["input_ids"], tokenizer(want)["input_ids"]
            same.append(sum(x == y for x, y in zip(a, b, strict=False)) / max(len(a), len(b), 1))
        sentences = sum(
            first_sentence(r[0]) == first_sentence(w) for r, w in zip(results, expected, strict=True)
        )
        ttft = med([r[1] for r in results])
        print(
            f"{label:28} {thr:>8} {ttft * 1000:8.1f} {med([r[2] for r in results]):8.1f} {base / ttft:10.2f}x "
            f"{statistics.mean(same):12.0%} {sentences:>12}/{len(PROMPTS)}"
        )
        # low precision may flip one late token; weight-only int8/int4 is reported, not required
        if thr == "gpu" and sentences < len(PROMPTS) - 1 and not label.endswith(("int8", "int4")):
            print(f"  ^ {label} DIVERGES from the CPU fp32 reference")
            ok = False
    if not cuda:
        print(f"{'cuda *':28} {'-':>8} no CUDA device")
    print("(ttft x cpu: the CPU default at llm.threads over this row; same: against cpu fp32, greedy)")
    return ok


# ---------------------------------------------------------------------------------------------- asr
def recordings(args) -> list[Path]:  # type: ignore[no-untyped-def]
    from tests.speech.make_speech import load_questions, render

    cases = [c.id for c in load_questions() if not c.multi_turn]
    cases = cases[: args.questions] if args.questions else cases
    out = Path(args.recordings) if args.recordings else Path("/tmp/gpu-check-speech")
    return [render(c, v, out) for v in args.variants.split(",") for c in cases]


def asr_passes(cfg, device: str, compute_type: str, threads: int, paths: list[Path]) -> dict:  # type: ignore[no-untyped-def]
    """Load the model, warm it up, then one timed pass per recording (the pipeline's final pass)."""
    import soundfile as sf

    from assistant.engines.whisper import WhisperEngine

    asr = replace(cfg.asr, device=device, compute_type=compute_type, cpu_threads=threads)
    t0 = time.monotonic()
    engine = WhisperEngine(ModelStore(cfg.models.cache_dir).asr_path(cfg.asr.model), asr)
    engine.warm_up()
    load_s = time.monotonic() - t0
    ms, texts = [], []
    for path in paths:
        pcm, rate = sf.read(path, dtype="int16")
        assert rate == 16000 and pcm.ndim == 1, f"{path}: expected 16 kHz mono"
        t = time.monotonic()
        texts.append(engine.transcribe(pcm))
        ms.append((time.monotonic() - t) * 1000)
    return {"load_s": load_s, "ms": ms, "texts": texts}


def asr_child(args, compute_type: str, shim: str | None) -> dict:  # type: ignore[no-untyped-def]
    env = dict(os.environ)
    parts = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and p != args.cublas_shim]
    env["LD_LIBRARY_PATH"] = ":".join(parts + ([shim] if shim else []))
    cmd = [sys.executable, __file__, "--asr-child", compute_type, "--variants", args.variants]
    cmd += ["--questions", str(args.questions)] + (
        ["--recordings", args.recordings] if args.recordings else []
    )
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after 300 s"}
    for line in done.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return json.loads(line)
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {done.returncode}: " + " | ".join(tail)[-300:]}


def asr_section(cfg, args, paths: list[Path], cuda: bool) -> tuple[bool, str | None]:  # type: ignore[no-untyped-def]
    """Returns (ok, the compute type `asr.device: cuda` can use in this process, or None)."""
    refs = [p.with_suffix(".txt").read_text().strip() for p in paths]
    print(f"\n== ASR {cfg.asr.model}: one pass per recording, {len(paths)} recordings ({args.variants})")
    threads = cfg.asr.cpu_threads
    rows: list[tuple[str, str, dict]] = [
        ("cpu int8", str(threads), asr_passes(cfg, "cpu", "int8", threads, paths))
    ]
    if threads < CORES:
        rows.append(("cpu int8", str(CORES), asr_passes(cfg, "cpu", "int8", CORES, paths)))
    candidates = []  # (compute type, usable in this process)
    for compute_type in ASR_GPU_TYPES if cuda else []:
        result = asr_child(args, compute_type, None)
        rows.append((f"cuda {compute_type}", "gpu", result))
        if "error" not in result:
            candidates.append((compute_type, result, True))
        elif args.cublas_shim and "libcublas" in result["error"]:
            shimmed = asr_child(args, compute_type, args.cublas_shim)
            rows.append((f"cuda {compute_type} (cublas 12->13 shim)", "gpu", shimmed))
            in_process = args.cublas_shim in os.environ.get("LD_LIBRARY_PATH", "").split(":")
            candidates += [(compute_type, shimmed, in_process)] if "error" not in shimmed else []
    if not cuda:
        rows.append(("cuda *", "-", {"error": "no CUDA device"}))

    def wer(r: dict) -> float:
        errors = [word_errors(ref, hyp) for ref, hyp in zip(refs, r["texts"], strict=True)]
        return sum(e for e, _ in errors) / max(sum(n for _, n in errors), 1)

    base, base_wer = med(rows[0][2]["ms"]), wer(rows[0][2])
    print(
        f"{'setting':40} {'threads':>8} {'load s':>7} {'median ms':>10} {'p95 ms':>8} {'x cpu':>7} {'WER':>6}"
    )
    for label, thr, r in rows:
        if "error" in r:
            print(f"{label:40} {thr:>8} cannot run: {r['error']}")
            continue
        m = med(r["ms"])
        print(
            f"{label:40} {thr:>8} {r['load_s']:7.1f} {m:10.1f} {percentile(r['ms'], 95):8.1f} "
            f"{base / m:6.2f}x {wer(r):6.1%}"
        )
    print(
        "(one pass: the final recognition of a whole recording; x cpu: cpu int8 at asr.cpu_threads over "
        "this row; WER: against the script)"
    )
    ok = all(wer(r) <= base_wer + 0.05 for _, r, _ in candidates)
    if not ok:
        print("a CUDA setting recognises worse than the CPU (WER more than 5 points higher)")
    usable = next((ct for ct, r, here in candidates if here and wer(r) <= base_wer + 0.05), None)
    if cuda:
        print(
            f"asr.device cuda: {'usable as ' + usable if usable else 'NOT usable here; ASR stays on the CPU'}"
        )
    return ok, usable


def asr_child_main(args) -> int:  # type: ignore[no-untyped-def]
    cfg = load_config(overrides=STAGED)
    try:
        result = asr_passes(cfg, "cuda", args.asr_child, 0, recordings(args))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------------------------------- pipeline
def pipeline_section(
    cfg_overrides: list[str], args, paths: list[Path], cuda: bool, asr_cuda: str | None
) -> bool:  # type: ignore[no-untyped-def]
    from bench.respond import run_one
    from tests.speech.make_speech import get_case

    variants = {"llm cpu": ["llm.device=cpu"]}
    if cuda:
        variants["llm cuda"] = ["llm.device=cuda"]
        # prompt lookup (llm.lookup_tokens) is on for the GPU's weights: what it gains there
        variants["llm cuda, no lookup"] = ["llm.device=cuda", "llm.lookup_tokens=0"]
        if asr_cuda:
            variants["llm cuda + asr cuda"] = [
                "llm.device=cuda",
                "asr.device=cuda",
                f"asr.compute_type={asr_cuda}",
            ]
    configs = {name: load_config(overrides=[*STAGED, *cfg_overrides, *o]) for name, o in variants.items()}
    store = build.model_store(configs["llm cpu"])
    base = build.load_engines(configs["llm cpu"])
    engines = {"llm cpu": base}
    if cuda:
        engines["llm cuda"] = replace(base, llm=build.llm_engine(configs["llm cuda"], store))
        no_lookup = configs["llm cuda, no lookup"]
        engines["llm cuda, no lookup"] = replace(base, llm=build.llm_engine(no_lookup, store))
        if asr_cuda:
            name = "llm cuda + asr cuda"
            engines[name] = replace(
                engines["llm cuda"], recognizer=build.whisper_engine(configs[name], store)
            )
    names = list(variants)
    metrics = ["asr_final", "llm_first_token", "answer_audio", "first_audio"]
    results = {n: {m: [] for m in metrics} for n in names}
    stats = {n: {"turns": 0, "fallbacks": 0, "right": 0} for n in names}
    print(
        f"\n== Pipeline: end of speech -> event, real-time pace, {len(paths)} recordings, settings alternating"
    )
    t0 = time.monotonic()
    for i, path in enumerate(paths):
        expect = get_case(path.stem).expect
        for name in names if i % 2 == 0 else names[::-1]:
            for turn in run_one(configs[name], engines[name], path, fast=False):
                for m in metrics:
                    if m in turn.latency_ms:
                        results[name][m].append(turn.latency_ms[m])
                stats[name]["turns"] += 1
                stats[name]["fallbacks"] += turn.fallback
                stats[name]["right"] += reply_mentions(turn.reply, expect)
        print(
            f"  {i + 1}/{len(paths)} {path.parent.name}/{path.name} ({time.monotonic() - t0:.0f} s)",
            file=sys.stderr,
        )
    print(
        f"{'setting':22}"
        + "".join(f"{m + ' ms':>20}" for m in metrics)
        + f"{'answer x cpu':>14}{'fallbacks':>10}{'right':>7}"
    )
    base_answer = med(results["llm cpu"]["answer_audio"])
    for name in names:
        cells = [
            f"{med(v):8.0f} / {percentile(v, 95):6.0f}" if (v := results[name][m]) else "-" for m in metrics
        ]
        ratio = (
            base_answer / med(results[name]["answer_audio"])
            if results[name]["answer_audio"]
            else float("nan")
        )
        s = stats[name]
        print(
            f"{name:22}"
            + "".join(f"{c:>20}" for c in cells)
            + f"{ratio:13.2f}x{s['fallbacks']:>6}/{s['turns']:<3}{s['right']:>4}/{s['turns']}"
        )
    if not cuda:
        print(f"{'llm cuda':22} no CUDA device")
    print("(median / p95; answer x cpu: the llm cpu median over this row's; right: reply names the answer)")
    ok = all(stats[n]["turns"] and stats[n]["fallbacks"] <= stats["llm cpu"]["fallbacks"] for n in names)
    if not ok:
        print("a GPU setting answered fewer turns, or fell back more often, than the CPU")
    return ok


def threads_table(cfg, asr_cuda: str | None) -> None:  # type: ignore[no-untyped-def]
    import torch

    print(f"\n== Threads per stage ({CORES} cores here; the pipeline's settings)")
    print(f"{'stage':34} {'llm cpu':>40} {'llm cuda':>40}")
    gpu_asr = f"GPU {asr_cuda} (+ its thread)" if asr_cuda else "as cpu (CUDA ASR unusable)"
    rows = [
        ("VAD (webrtcvad)", "1: the stage's thread", "same"),
        ("end of turn (Smart Turn, onnxrt)", "1 intra-op thread", "same"),
        ("ASR (ctranslate2)", f"{cfg.asr.cpu_threads} ({cfg.asr.compute_type})", gpu_asr),
        (
            "LLM (torch)",
            f"{torch.get_num_threads()} torch threads ({pick_quantization(cfg.llm.quantization, 'cpu')})",
            "GPU bf16 (+ the stage's thread)",
        ),
        ("TTS (piper, onnxruntime)", f"onnxrt default: 1 per core ({CORES})", "same (CPU)"),
    ]
    for stage, cpu, gpu in rows:
        print(f"{stage:34} {cpu:>40} {gpu:>40}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", default="llm,asr,pipeline")
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens per prompt (llm section)")
    parser.add_argument("--questions", type=int, default=5, help="first N questions per variant; 0: all 12")
    parser.add_argument("--variants", default="piper,espeak_us")
    parser.add_argument("--recordings", help="folder of pre-rendered recordings (else rendered here)")
    parser.add_argument("--cublas-shim", help="folder with libcublas.so.12 -> .so.13 links, tried if needed")
    parser.add_argument("--asr-child", help=argparse.SUPPRESS)  # internal: CUDA ASR passes, as JSON
    args = parser.parse_args()
    if args.asr_child:
        return asr_child_main(args)
    if args.cublas_shim and args.cublas_shim not in os.environ.get("LD_LIBRARY_PATH", ""):
        # the loader reads LD_LIBRARY_PATH at start: re-run with the shim last on it, so ASR on CUDA can
        # run in this process too if only the shim makes it load (children without it test it plain)
        env = dict(
            os.environ,
            LD_LIBRARY_PATH=":".join(filter(None, [os.environ.get("LD_LIBRARY_PATH"), args.cublas_shim])),
        )
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    import torch

    sections = args.sections.split(",")
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else "no CUDA device"
    import ctranslate2
    import transformers

    print(
        f"GPU: {gpu}; torch {torch.__version__}, transformers {transformers.__version__}, "
        f"ctranslate2 {ctranslate2.__version__} (CUDA devices it sees: {ctranslate2.get_cuda_device_count()}), "
        f"{CORES} CPU cores"
    )
    cfg = load_config(overrides=[*STAGED, f"llm.max_new_tokens={args.tokens}"])
    ok, asr_cuda = True, None
    if "llm" in sections:
        ok &= llm_section(cfg, cuda)
    paths = recordings(args) if {"asr", "pipeline"} & set(sections) else []
    if "asr" in sections:
        asr_ok, asr_cuda = asr_section(load_config(overrides=STAGED), args, paths, cuda)
        ok &= asr_ok
    if "pipeline" in sections:
        ok &= pipeline_section([], args, paths, cuda, asr_cuda)
        threads_table(load_config(overrides=STAGED), asr_cuda)
    verdict = (
        "no CUDA device: CPU side only"
        if not cuda
        else ("all GPU results match" if ok else "a GPU result diverged or failed")
    )
    print(f"\nresult: {verdict}")
    return 3 if not cuda else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
