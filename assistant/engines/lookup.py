"""Prompt lookup: guess the next few tokens of a reply from the conversation it answers.

A spoken answer repeats its question's words ("What is the capital of France?" -> "The capital of
France is Paris."), so the tokens that followed the reply's last few tokens where they last occurred
in the prompt (or earlier in the reply) are a cheap, often right draft. The model checks a draft in
the same forward pass that makes the next token: on a CPU a decode step's cost is reading the
weights, which a few more positions barely change, so every draft token it agrees with is a decode
step saved, and one it rejects costs little. Greedy decoding keeps exactly the tokens the model
would have chosen (Saxena's prompt lookup decoding; transformers' ``prompt_lookup_num_tokens``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

MAX_NGRAM = 3  # the longest tail matched; the longest match found is the one used


def lookup_draft(
    context: Sequence[int],
    tokens: int,
    max_ngram: int = MAX_NGRAM,
    telling: Callable[[int], bool] = lambda token: True,
) -> list[int]:
    """Up to ``tokens`` tokens that followed the latest earlier occurrence of ``context``'s last
    n tokens (n from ``max_ngram`` down to 1; n = 1 only for a ``telling`` token); [] when the
    tail occurs nowhere before."""
    if tokens <= 0:
        return []
    for n in range(min(max_ngram, len(context) - 1), 0, -1):
        if n == 1 and not telling(context[-1]):
            break
        tail = list(context[-n:])
        # latest first: the question, at the prompt's end, before the system prompt and history
        for start in range(len(context) - n - 1, -1, -1):
            if context[start] == tail[0] and list(context[start : start + n]) == tail:
                return list(context[start + n : start + n + tokens])
    return []
