"""The wake phrase, found in a transcript, and the follow-up window that makes it unnecessary.

There is no separate wake-word model among the shipped weights, so the phrase is found in what the
recogniser already transcribes for every utterance: it must open the utterance (after at most one
filler such as "okay" or "um"), each word close in spelling to the phrase's own. Whisper writes the
same sounds in a few ways ("Hey, Assistant." "Hey assistants", "Hay assistant", and in noise "Pay
Assistant" or "A assistant"); a spelling match that lets a short word rhyme or lose its h, when the
rest is heard exactly, takes those and rejects "the assistant manager", "hey, assist me",
"say, assistance is useful" and "hi Sam". bench/wake.py measures misses and false accepts over generated speech.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

WORD = re.compile(r"[A-Za-z0-9']+")
SHORT_WORD = 4
VOWELS = frozenset("aeiouy")
FILLERS = frozenset({"oh", "um", "uh", "uhm", "erm", "okay", "ok", "so", "and", "well"})


@dataclass(frozen=True)
class WakeMatch:
    rest: str  # what follows the phrase, as recognised (case and punctuation kept: dictation needs it)


def _likeness(word: str, target: str, threshold: float) -> str | None:
    """ "exact", "close" (spelt alike), "loose" (a short word misheard in its first sound) or None."""
    if word == target:
        return "exact"
    short = len(target) <= SHORT_WORD
    if word[0] == target[0]:  # "the"/"hey": short words differ mostly in their first sound
        ratio = difflib.SequenceMatcher(None, word, target).ratio()
        # one letter in three is already a ratio of 0.67 ("hay"/"hey")
        return "close" if ratio >= (min(threshold, 0.6) if short else threshold) else None
    if short and len(word) == len(target) and word[-1] == target[-1]:
        return "loose"  # a rhyme: "pay"/"hey"
    if short and target[0] == "h" and len(word) <= 2 and set(word) <= VOWELS | {"h"}:
        return "loose"  # the breath of an h lost in noise: "a assistant", "eh assistant"
    return None


def _phrase_matches(words: list[str], targets: list[str], threshold: float) -> bool:
    """Every word like its target; a loosely heard word only beside exactly heard ones ("Pay
    Assistant" is the phrase, "Say, assistance are useful" is not)."""
    kinds = [_likeness(w, t, threshold) for w, t in zip(words, targets, strict=True)]
    if None in kinds:
        return False
    loose = kinds.count("loose")
    return loose == 0 or (loose == 1 and kinds.count("exact") == len(kinds) - 1)


class WakePhrase:
    def __init__(self, phrase: str, similarity: float = 0.82) -> None:
        self.words = [w.lower() for w in WORD.findall(phrase)]
        if not self.words:
            raise ValueError(f"the wake phrase {phrase!r} has no words")
        self.similarity = similarity

    def find(self, text: str) -> WakeMatch | None:
        """The match if ``text`` opens with the wake phrase, else None."""
        tokens = list(WORD.finditer(text))
        words = [t.group().lower() for t in tokens]
        starts = [0, 1] if words and words[0] in FILLERS else [0]
        n = len(self.words)
        for s in starts:
            end = self._match_at(words, s, n)
            if end is not None:
                rest = text[tokens[end - 1].end() :] if end > 0 else text
                return WakeMatch(rest.lstrip(" ,.;:!?-").strip())
        return None

    def _match_at(self, words: list[str], s: int, n: int) -> int | None:
        """Index past the phrase's last word when it starts at ``s``: word by word, or (the recogniser
        split or joined words: "hey assist ant", "heyassistant") as one string of n-1..n+1 words."""
        if len(words) >= s + n and _phrase_matches(words[s : s + n], self.words, self.similarity):
            return s + n
        joined = "".join(self.words)
        for k in (n - 1, n + 1):
            if (
                k >= 1
                and len(words) >= s + k
                and _likeness("".join(words[s : s + k]), joined, 0.9) in ("exact", "close")
            ):
                return s + k
        return None
