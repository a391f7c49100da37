"""Where a decode step's time goes on a GPU: our eager loop against transformers' compiled one.

    python bench/gpu_decode.py MODEL_DIR [--tokens 48] [--no-compile]

bench/gpu_check.py measured SmolLM2-135M at ~40 ms per token on an H200, no faster than 2 CPU cores.
This times, for one prompt and the same number of new tokens (greedy, EOS ignored):
  eager loop       what assistant/engines/local_llm.py does: a DynamicCache, one forward per token
  generate         transformers' own loop, dynamic cache
  generate static  a static cache, which transformers compiles (torch.compile) on a GPU
Each row: ms per new token (median of 3 runs after a warm-up) and the ratio to the eager loop.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(device).eval()
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Tell me a long story about a dragon."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    enc = tok(text, return_tensors="pt").to(device)
    n = args.tokens

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def eager() -> None:
        cache = DynamicCache()
        feed = enc["input_ids"]
        for _ in range(n):
            logits = model(input_ids=feed, cache=cache, use_cache=True).logits[0, -1]
            feed = torch.tensor([[int(torch.argmax(logits))]], device=device)

    def generate(**extra) -> None:  # type: ignore[no-untyped-def]
        model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, **extra)

    rows = [("eager loop", eager), ("generate", generate)]
    if not args.no_compile:
        rows.append(("generate static", lambda: generate(cache_implementation="static")))
    print(f"{device} {torch.cuda.get_device_name(0) if device == 'cuda' else ''} torch {torch.__version__}")
    print(f"{'loop':18} {'warm-up s':>9} {'ms/token':>9} {'x eager':>8}", flush=True)
    base = None
    for name, fn in rows:
        with torch.inference_mode():
            t = time.monotonic()
            try:
                fn()
            except Exception as exc:  # a compile failure is a result too
                print(f"{name:18} failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            sync()
            warm = time.monotonic() - t
            times = []
            for _ in range(3):
                t = time.monotonic()
                fn()
                sync()
                times.append((time.monotonic() - t) * 1000 / n)
        ms = statistics.median(times)
        base = base or ms
        print(f"{name:18} {warm:9.1f} {ms:9.2f} {base / ms:7.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
