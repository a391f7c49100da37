"""The language model: a Hugging Face causal LM on transformers + torch, streamed token by token.

Generation is a plain greedy (or sampled) loop over the KV cache rather than ``model.generate``: it
gives per-token control (stop the moment the turn is cancelled or a deadline passes) without a
helper thread per reply.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from assistant.config import LlmConfig

log = logging.getLogger(__name__)

ChatMessage = dict[str, str]


class TextStreamer(Protocol):
    """What the responder needs of a language model (the real engine, or a scripted fake)."""

    def stream(self, messages: list[ChatMessage], should_stop: Callable[[], bool] = ...) -> Iterator[str]: ...

    def warm_up(self) -> None: ...


class LlmEngine:
    def __init__(self, model_dir: Path, cfg: LlmConfig) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.cfg = cfg
        self.device = _pick_device(cfg.device)
        if self.device == "cpu" and cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        dtype = torch.float32 if self.device == "cpu" else torch.bfloat16
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
        self.quantization = _pick_quantization(cfg.quantization, self.device)
        if self.quantization == "int8":
            with warnings.catch_warnings():  # torch marks its quantised tensor types deprecated; they work
                warnings.simplefilter("ignore", UserWarning)
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model.to(self.device).eval()
        self._eos = {self.tokenizer.eos_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end >= 0:
            self._eos.add(im_end)
        log.info("LLM %s on %s (%s)", model_dir.name, self.device, self.quantization)

    def prompt_ids(self, messages: list[ChatMessage]):  # -> torch.Tensor
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=False
        )

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        """Yield the reply as text increments; stops at EOS, ``max_new_tokens`` or ``should_stop``."""
        import torch
        from transformers import DynamicCache

        ids = self.prompt_ids(messages)
        if not isinstance(ids, torch.Tensor):  # some tokenizers return a BatchEncoding
            ids = ids["input_ids"]
        ids = ids.to(self.device)
        generated: list[int] = []
        text_so_far = ""
        cache = DynamicCache()
        with torch.inference_mode():
            step_input = ids
            for _ in range(self.cfg.max_new_tokens):
                if should_stop():
                    return
                out = self.model(input_ids=step_input, cache=cache, use_cache=True)
                token = self._choose(out.logits[0, -1])
                if token in self._eos:
                    return
                generated.append(token)
                step_input = torch.tensor([[token]], device=self.device)
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                yield text[len(text_so_far) :]
                text_so_far = text

    def warm_up(self) -> None:
        start = time.monotonic()
        for _ in self.stream([{"role": "user", "content": "Hi"}]):
            pass
        log.debug("LLM warm-up took %.2f s", time.monotonic() - start)

    def _choose(self, logits) -> int:  # type: ignore[no-untyped-def]
        import torch

        if self.cfg.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / self.cfg.temperature, dim=-1)
        return int(torch.multinomial(probs, 1))


def _pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _pick_quantization(quantization: str, device: str) -> str:
    if quantization == "auto":
        return "int8" if device == "cpu" else "none"
    if quantization == "int8" and device != "cpu":
        log.warning("int8 dynamic quantisation is CPU-only; using bf16 weights on %s", device)
        return "none"
    return quantization
