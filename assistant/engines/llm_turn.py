"""End of turn from what was said: the language model's probability that the user's message ends here.

LiveKit's turn detector does this with a small LM tuned for it; here the LLM already loaded for the
replies does it (no second copy). At a pause, the speculative transcript is written as the user's
message in the model's chat template, cut just after the text (no end-of-message token), and one
forward pass gives the probability that the next token closes the sentence (the prompt's fixed
start, system prompt and template, stays in the engine's judge prefix cache, so the pass reads the
transcript's tokens only; see LlmEngine.next_token_probabilities): the end-of-message
token (``<|im_end|>`` in SmolLM2's ChatML) or a sentence's closing mark ("?", ".", "!"). An
instruction model that was not tuned for this puts most of a finished question's mass on "?", not
on ``<|im_end|>`` (SmolLM2-135M after "how many legs does a spider have": "?" 0.42, end 0.27; after
"what is the capital of france": "?" 0.75, end 0.13), so both count. The transcript is lowercased
and its punctuation dropped first: tiny.en closes even half a sentence with "?" or ".", which would
give the answer away.

A last word no sentence ends on ("the", "of", "and": ``NEVER_LAST``) is unfinished without a forward
pass. The LLM decides the other last words that engines/turn.py's longer list holds, because
questions end on them: on sentences no threshold was tuned on, it ended 30 of 33 finished ones
("Where are you from?" 0.89, "Can you repeat that?" 0.08, "Do you know what time it is?" 0.48; the
list held all of them 2 s) and held 34 of 34 halves ("Can you tell me what", "Search for": at most
0.003). A message of one or two words goes by the longer list alone: there the LLM cannot tell a
command from a first word ("Stop." 0.012, "Next." 0.002, "Why?" 0.0003, as low as "Call ...").
A contraction counts as two words: the LLM ends "What's that?" (0.29) and "Who's that?" (0.49),
which the list would hold, and holds "Where's my" (0.0002).
Smart Turn's hearing of the audio decides while no transcript is there.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

import numpy as np

from assistant.engines.turn import NEVER_LAST, ends_unfinished, without_last_word
from assistant.engines.turn import blend as by_last_word

if TYPE_CHECKING:
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.turn import SmartTurnEngine

log = logging.getLogger(__name__)

FEW_WORDS = 2  # a message this short is judged by the word list alone (see the module's note)
CLOSING = set(".?!…")  # a token made only of these (after spaces) closes a sentence
_PUNCT = re.compile(r"[^\w\s'-]+")  # all but letters, digits, apostrophes and hyphens
_WORD = re.compile(r"\w+")  # a contraction is two: "what's" is "what is"


def normalise(text: str) -> str:
    """As a transcript without the recogniser's punctuation: "What is the capital?" -> "what is the capital"."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


class LlmTurnEngine:
    """``blend(p_audio, text)``: 0 for a last word no sentence ends on, else the LLM's odds that the
    message ends after ``text`` against ``threshold``'s, as a probability (0.5 exactly at the
    threshold); a message of ``FEW_WORDS`` or fewer by engines/turn.py's word list alone."""

    def __init__(
        self,
        llm: LlmEngine,
        threshold: float,
        system_prompt: str,
        audio: SmartTurnEngine | None = None,
        doubt: float = 0.0,
    ) -> None:
        self.llm = llm
        self.threshold = threshold
        self.doubt = doubt  # a last word the recogniser was less sure of may not have been said
        self.system_prompt = system_prompt
        self.audio = audio
        tokenizer = llm.tokenizer
        pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
        closing = [i for i, s in enumerate(pieces) if s.strip() and set(s.strip()) <= CLOSING]
        self._ends = sorted({*closing, *llm.stop_ids})
        self.last_ms = 0.0  # the latest forward pass, for the benchmark

    def p_end(self, text: str) -> float:
        """P(the user's message is finished after ``text``): next token closes it."""
        messages = [{"role": "user", "content": text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        rendered = self.llm.tokenizer.apply_chat_template(messages, tokenize=False)
        prompt = rendered[: rendered.rfind(text) + len(text)]  # the message, left open
        t0 = time.monotonic()
        probs = self.llm.next_token_probabilities(prompt)
        self.last_ms = (time.monotonic() - t0) * 1000
        return float(probs[self._ends].sum())

    def complete(self, pcm: np.ndarray) -> float:
        """The audio's say, for a pause whose transcript is not there yet."""
        return self.audio.complete(pcm) if self.audio is not None else 1.0

    def blend(self, p_audio: float | None, text: str | None, last_word_p: float | None = None) -> float:
        """The odds for ``text`` and, when the recogniser doubted its last word, the lower of
        those and the odds for the text without it (engines/turn.py's ``without_last_word``)."""
        score = self._odds(p_audio, text)
        shorter = without_last_word(normalise(text or ""), last_word_p, self.doubt)
        if shorter is None or score == 0.0:
            return score
        return min(score, self._odds(None, shorter))

    def _odds(self, p_audio: float | None, text: str | None) -> float:
        said = normalise(text or "")
        if not said:
            return 1.0 if p_audio is None else p_audio  # nothing said: the audio, or end it
        if len(_WORD.findall(said)) <= FEW_WORDS:  # ("what's that": three, the LLM's to judge)
            return by_last_word(None, text)
        if ends_unfinished(text or "", NEVER_LAST):
            return 0.0
        p = self.p_end(said)
        log.debug("P(end | %r) = %.4f in %.0f ms", said, p, self.last_ms)
        return p / (p + self.threshold) if p + self.threshold > 0 else 1.0

    def warm_up(self) -> None:
        t0 = time.monotonic()
        self.p_end("hello")
        if self.audio is not None:
            self.audio.warm_up()
        log.debug("LLM end-of-turn warm-up took %.0f ms", (time.monotonic() - t0) * 1000)
