"""The text normaliser every transcript and reply comparison goes through (eval, tests, benchmarks).

``normalise_text`` makes two spellings of the same words compare equal:

- case: everything lowercase;
- punctuation: dropped (hyphens and slashes split words: "twenty-one" -> "twenty one"); apostrophes
  inside a word stay ("it's" is not "its"), quotes around words go; curly apostrophes become straight;
- numbers: digits are written out as words, so "8", "eight" and "Eight." are one word, and "21",
  "twenty-one" and "twenty one" are the same two; "1,000" is one thousand; decimals are read digit by
  digit ("3.5" -> "three point five"); ordinals "1st".."99th" become "first".."ninety ninth"; "%" is
  "percent". Years are read as plain numbers ("2024" -> "two thousand twenty four").

Not normalised, on purpose: contractions ("what's" vs "what is" counts as two errors, as in most WER
tools), British and American spellings, and filler words. A transcript is a sentence match when its
normalised form equals the reference's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    *("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"),
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?![\w])")
_MAX_SPELLED = 10**12  # beyond this a "number" is an identifier: read it digit by digit


def number_words(n: int) -> str:
    """0 <= n: the number in English words, without "and" ("one hundred five")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head} {last}".strip()


def _spell(match: re.Match[str]) -> str:
    whole, decimals, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    n = int(whole)
    words = number_words(n) if n < _MAX_SPELLED else " ".join(_ONES[int(d)] for d in whole)
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    elif suffix:
        words = _ordinal(words)
    return f" {words} "


def normalise_text(text: str) -> str:
    """Lowercase words without punctuation, numbers spelled out (see the module docstring)."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("%", " percent ")
    text = _NUMBER.sub(_spell, text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = (w.strip("'") for w in text.split())
    return " ".join(w for w in words if w)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance, reference length in words), both texts normalised first."""
    ref, hyp = normalise_text(reference).split(), normalise_text(hypothesis).split()
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


def sentence_match(reference: str, hypothesis: str) -> bool:
    return normalise_text(reference) == normalise_text(hypothesis)


def reply_mentions(reply: str, keywords: Sequence[str]) -> bool:
    """True when the normalised reply contains any normalised keyword as whole words ("8" finds
    "eight", "New York" finds "new york.")."""
    padded = f" {normalise_text(reply)} "
    return any(f" {normalise_text(k)} " in padded for k in keywords if normalise_text(k))
