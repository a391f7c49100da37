"""The LLM's decode step right after piper has synthesised a clause, piper's thread pool spinning or not.

    .venv/bin/python bench/spinning.py [--rounds 16] [--text "The capital of France,"]

onnxruntime's intra-op workers spin after each run by default, for a while, on the cores the LLM
decodes on while the clause is spoken. One process loads the LLM and the voice as the assistant
does, plus two more sessions of the same voice, then, round by round, alternating: synthesise the
clause with one session, and time the LLM's next decode step. Sessions:
  spinning      onnxruntime's default
  no_spinning   session.intra_op.allow_spinning=0: the workers never spin, during a run either
  stop_after    session.force_spinning_stop=1: they spin during a run, and stop when it returns
                (what engines/piper.py uses)
Prints the median synthesis time and the median first decode step after it, and their ratios
against the spinning session. (numpy's BLAS pool does the same to the recogniser:
`bench/asr_window.py --blas-threads 1,2`.)
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=16, help="synthesis + decode step, per setting")
    parser.add_argument("--text", default="The capital of France,", help="the clause synthesised")
    args = parser.parse_args()

    import onnxruntime
    import torch
    from transformers import DynamicCache

    from assistant import build
    from assistant.config import load_config

    cfg = load_config()
    store = build.model_store(cfg)
    llm = build.llm_engine(cfg, store)
    llm.warm_up()
    tts = build.piper_engine(cfg, store)
    path = tts.voice.session.session._model_path  # type: ignore[attr-defined]  # (inside _ShrinkingSession)

    def session(*entry: str) -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        if entry:
            options.add_session_config_entry(*entry)
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    sessions = {
        "spinning": session(),
        "no_spinning": session("session.intra_op.allow_spinning", "0"),
        "stop_after": session("session.force_spinning_stop", "1"),
    }

    messages = [{"role": "system", "content": cfg.llm.system_prompt}, {"role": "user", "content": "Hi."}]
    cache = DynamicCache()

    def forward(ids: list[int]) -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            llm.model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True)
        return (time.perf_counter() - t0) * 1000

    llm._compute.run(forward, llm.prompt_ids(messages))  # the model's own thread (engines/openmp.py)
    synth: dict[str, list[float]] = {n: [] for n in sessions}
    step: dict[str, list[float]] = {n: [] for n in sessions}
    for k in range(len(sessions) * (args.rounds + 1)):
        name = list(sessions)[k % len(sessions)]
        tts.voice.session.session = sessions[name]  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        tts.synthesize_all(args.text)
        synth_ms = (time.perf_counter() - t0) * 1000
        step_ms = llm._compute.run(forward, [13])  # the next token, as a reply's decoding goes on
        cache.crop(-1)
        if k >= len(sessions):  # the first round of each warms up
            synth[name].append(synth_ms)
            step[name].append(step_ms)
    print(f"{args.rounds} rounds each, alternating; ms, median")
    print(f"{'piper session':14}{'synthesis':>10}{'ratio':>7}{'next decode step':>18}{'ratio':>7}")
    base_s, base_d = statistics.median(synth["spinning"]), statistics.median(step["spinning"])
    for name in sessions:
        s, d = statistics.median(synth[name]), statistics.median(step[name])
        print(f"{name:14}{s:10.1f}{s / base_s:7.2f}{d:18.1f}{d / base_d:7.2f}")


if __name__ == "__main__":
    main()
