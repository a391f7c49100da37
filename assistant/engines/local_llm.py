"""The language model: a Hugging Face causal LM on transformers + torch, streamed token by token.

Generation is a plain greedy (or sampled) loop over the KV cache rather than ``model.generate``:
per-token control (stop the moment a turn is cancelled or a deadline passes), and the cache of the
previous prompt is kept, so a new prompt that starts the same way (system prompt, history) only
feeds its new tokens: turn 5 does not re-read turns 1-4. Greedy steps also check a few tokens
guessed from the prompt (engines/lookup.py), keeping those the model agrees with. Every torch call
runs on the engine's one compute thread (engines/openmp.py: a decode step takes 1.6x as long
otherwise).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from assistant.config import LlmConfig
from assistant.core.engines import ChatMessage
from assistant.engines.llm_quant import dynamic_int8, weight_only_quantize
from assistant.engines.lookup import lookup_draft
from assistant.engines.openmp import ComputeThread

log = logging.getLogger(__name__)

TELLING_LETTERS = 4  # a one-token prompt lookup match needs a word this long (engines/lookup.py)


class LlmEngine:
    def __init__(self, model_dir: Path, cfg: LlmConfig) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.cfg = cfg
        self.device = pick_device(cfg.device)
        self.quantization = pick_quantization(cfg.quantization, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self._compute = ComputeThread("llm-compute")
        self.model = self._compute.run(self._load, model_dir)
        # few-shot turns showing a small model the length and tone wanted (and what to say to a fragment)
        self._examples: list[ChatMessage] = [
            {"role": role, "content": text}
            for question, answer in cfg.examples
            for role, text in (("user", question), ("assistant", answer))
        ]
        self._eos = {self.tokenizer.eos_token_id}
        im_end = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end >= 0:
            self._eos.add(im_end)
        # one generation at a time; the prefix cache belongs to whoever holds the lock
        self._lock = threading.Lock()
        self._prefix = PrefixCache(cfg.prefix_cache)
        # the end-of-turn judge's own cache and lock: it runs at a pause, beside a generation
        self._judge_lock = threading.Lock()
        self._judge = PrefixCache(cfg.prefix_cache)
        self.last_reused = 0  # prompt tokens taken from the cache by the latest generation
        self.judge_reused = 0  # and by the latest end-of-turn judgement
        self.last_drafted = self.last_accepted = 0  # prompt lookup's guesses in the latest reply
        # CPU dynamic int8 scales activations over the whole tensor fed, so a draft fed beside the
        # next token changes that token's numbers: bench/llm.py, 112 turns, changed 21-41 answers
        # and got 78-80% right against 81%. Prompt lookup is used where it changes nothing.
        self.token_count_shifts_numbers = self.device == "cpu" and self.quantization.startswith("int8")
        log.info("LLM %s on %s (%s)", model_dir.name, self.device, self.quantization)

    def _load(self, model_dir: Path):  # type: ignore[no-untyped-def]
        import torch
        from transformers import AutoModelForCausalLM

        if self.device == "cpu" and self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.quantization, torch.float32)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=dtype)
        if self.device != "cpu" and self.quantization in ("int8", "int4"):
            model = weight_only_quantize(model.to(self.device), self.quantization)
        elif self.quantization in ("int8", "int8-mlp", "int8-channel"):
            model = dynamic_int8(model, self.quantization)
        return model.to(self.device).eval()

    def prompt_ids(self, messages: list[ChatMessage]) -> list[int]:
        """The chat-templated prompt, with the oldest exchanges dropped to fit ``history_tokens``."""
        system, history, question = messages[:1], messages[1:-1], messages[-1:]
        if messages[0]["role"] != "system":
            system, history = [], messages[:-1]
        system = system + self._examples  # fixed, so the prefix cache holds them after the first turn
        while True:
            ids = self._template(system + history + question)
            history_len = len(ids) - len(self._template(system + question))
            if history_len <= self.cfg.history_tokens or not history:
                return ids
            history = history[2:]  # one user/assistant exchange

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        """Yield the reply as text increments; stops at EOS, ``max_new_tokens`` or ``should_stop``."""
        with self._lock:
            ids = self.prompt_ids(messages)
            feed = self._compute.run(self._prefix.reuse, ids)
            self.last_reused = len(ids) - len(feed)
            generated: list[int] = []
            text_so_far = ""
            self.last_drafted = self.last_accepted = 0
            while len(generated) < self.cfg.max_new_tokens:
                if should_stop():
                    return
                wanted = self._draft_tokens(generated)
                draft = lookup_draft(ids + generated, wanted, telling=self._telling) if wanted else []
                tokens = self._compute.run(self._next_tokens, feed, draft, generated)
                self.last_drafted += len(draft)
                self.last_accepted += len(tokens) - 1
                for token in tokens:
                    if token in self._eos or len(generated) >= self.cfg.max_new_tokens:
                        return
                    generated.append(token)
                    text = self.tokenizer.decode(generated, skip_special_tokens=True)
                    if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                        continue
                    yield text[len(text_so_far) :]
                    text_so_far = text
                feed = tokens[-1:]

    def _draft_tokens(self, generated: list[int]) -> int:
        """How many tokens to guess ahead this step (greedy decoding only: a sampled token is no
        draft's to confirm), never past ``max_new_tokens``."""
        if self.cfg.temperature > 0 or self.token_count_shifts_numbers:
            return 0
        return min(self.cfg.lookup_tokens, self.cfg.max_new_tokens - len(generated) - 1)

    def _telling(self, token: int) -> bool:
        """Whether one token is match enough for a draft: a word of its own (" capital"), not " is",
        " the" or ",", which occur everywhere and draft what is seldom right."""
        word = self.tokenizer.decode([token]).strip()
        return len(word) >= TELLING_LETTERS and word.isalpha()

    def _next_tokens(self, feed: list[int], draft: list[int], generated: list[int]) -> list[int]:
        """Feed ``feed`` and ``draft`` through the reply's cache (on the compute thread): the draft's
        tokens the model agrees with, then the one it chooses after them. The cache keeps ``feed``
        and the agreed draft; the token chosen last is the next step's feed."""
        import torch

        with torch.inference_mode():
            step = torch.tensor([feed + draft], device=self.device)
            logits = self.model(input_ids=step, cache=self._prefix.cache, use_cache=True).logits[0]
            chosen: list[int] = []
            for i in range(len(draft) + 1):
                scores = self._penalise_repeats(logits[len(feed) - 1 + i], generated + chosen)
                chosen.append(self._choose(scores))
                if i == len(draft) or chosen[-1] != draft[i] or chosen[-1] in self._eos:
                    break
            agreed = len(chosen) - 1
            if agreed < len(draft):
                self._prefix.cache.crop(agreed - len(draft))  # type: ignore[attr-defined]
            self._prefix.ids += feed + draft[:agreed]
            return chosen

    @property
    def stop_ids(self) -> frozenset[int]:
        """The tokens that end a message (EOS, and ``<|im_end|>`` for ChatML models)."""
        return frozenset(self._eos)

    def next_token_probabilities(self, prompt: str):  # type: ignore[no-untyped-def]
        """P(next token) after ``prompt`` (already chat-templated text), as a CPU float tensor.

        The end-of-turn judgement (engines/llm_turn.py) asks this at every pause, with prompts that
        all start with the same system prompt and template: they go through a prefix cache of their
        own (``PrefixCache``, as generation's), so a judgement feeds only the transcript's tokens, and
        under a lock of their own, so a judgement never waits for a speculative generation that may
        hold the generation lock for its whole reply: on the compute thread, it waits for one decode
        step at most. The weights are only read (eval, inference mode; the dynamic int8 layers
        scale each call's own activations), so the two may interleave.
        """
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with self._judge_lock:
            return self._compute.run(self._judge_probabilities, ids)

    def _judge_probabilities(self, ids: list[int]):  # type: ignore[no-untyped-def]
        import torch

        with torch.inference_mode():
            feed = self._judge.reuse(ids)
            self.judge_reused = len(ids) - len(feed)
            step = torch.tensor([feed], device=self.device)
            logits = self.model(input_ids=step, cache=self._judge.cache, use_cache=True).logits[0, -1]
            self._judge.ids += feed
            return torch.softmax(logits.float(), dim=-1).cpu()

    def warm_up(self) -> None:
        """Pay the first call's costs now, and leave the system prompt in the prefix cache."""
        start = time.monotonic()
        messages = [{"role": "system", "content": self.cfg.system_prompt}, {"role": "user", "content": "Hi"}]
        for _ in self.stream(messages):
            pass
        log.debug("LLM warm-up took %.2f s", time.monotonic() - start)

    def _template(self, messages: list[ChatMessage]) -> list[int]:
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # some versions return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)

    def _penalise_repeats(self, logits, generated: list[int]):  # type: ignore[no-untyped-def]
        """CTRL-style repetition penalty: small models otherwise loop ("I'm sorry. I'm sorry. ...")."""
        penalty = self.cfg.repetition_penalty
        if penalty == 1.0 or not generated:
            return logits
        import torch

        index = torch.tensor(sorted(set(generated)), device=logits.device)
        seen = logits[index]
        logits = logits.clone()
        logits[index] = torch.where(seen > 0, seen / penalty, seen * penalty)
        return logits

    def _choose(self, logits) -> int:  # type: ignore[no-untyped-def]
        import torch

        if self.cfg.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / self.cfg.temperature, dim=-1)
        return int(torch.multinomial(probs, 1))


class PrefixCache:
    """A KV cache and the token ids it holds. ``reuse(ids)`` crops it to the longest prefix it shares
    with ``ids`` and returns the tokens left to feed; the caller feeds them through ``cache`` and
    appends them to ``ids``. One per kind of prompt (replies, end-of-turn judgements), so one kind
    does not evict the other's prefix; the caller serialises its use."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.cache = None
        self.ids: list[int] = []

    def reuse(self, ids: list[int]) -> list[int]:
        from transformers import DynamicCache

        keep = 0
        if self.enabled and self.cache is not None:
            limit = min(len(ids) - 1, len(self.ids))  # feed at least one token: we need logits
            while keep < limit and ids[keep] == self.ids[keep]:
                keep += 1
        if keep == 0:
            self.cache, self.ids = DynamicCache(), []
        elif keep < len(self.ids):
            self.cache.crop(keep - len(self.ids))  # type: ignore[attr-defined]
            self.ids = self.ids[:keep]
        return ids[keep:]


def pick_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_quantization(quantization: str, device: str) -> str:
    if quantization == "auto":
        return "int8-channel" if device == "cpu" else "bf16"
    if quantization == "int4" and device == "cpu":
        log.warning("int4 weight-only quantisation needs a GPU; using int8-channel on the CPU")
        return "int8-channel"
    if quantization in ("int8-mlp", "int8-channel") and device != "cpu":
        return "int8"  # torchao weight-only: activations stay bf16, so nothing to keep out
    return quantization
