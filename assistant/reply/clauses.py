"""Turning a stream of LLM tokens into speakable clauses.

TTS sounds natural on whole clauses, and the first clause is what the user waits for; so a clause
is released at a sentence end, or at a comma/semicolon/colon once it has a few words, and the very
first clause may be short. With ``split_first_sentence``, a first sentence with a subject of a few
words is released at its verb ("The capital of France | is Paris."): the subject is synthesised and
playing while the rest is generated (a clause without closing punctuation goes on in the next one).
With ``early_phrases``, while little audio is ahead (the budget: twice the words already released),
a clause over budget ends before its last word that starts a phrase ("is a type of engine | that
burns fuel"): a 3-word first clause plays about a second, too short to cover the generation and
synthesis of a 15-word second one. A full stop after an abbreviation ("Dr.", "e.g.") or an initial
("J. K.") is not a sentence end. Text is cleaned for speech: no markdown, code blocks, emoji or URLs
reach the voice, and symbols, units and abbreviations are written out the way they are read aloud
("5 km" -> "5 kilometers", "2 * 3 = 6" -> "2 times 3 equals 6", "e.g." -> "for example").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

FENCE = "```"
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")  # [text](url) -> text
_URL = re.compile(r"https?://\S+|www\.\S+")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d\u2b50\u2b06\u2705]")
_ARITHMETIC = [  # before markdown: '*' is multiplication between numbers, emphasis elsewhere
    (re.compile(r"(?<=\d)\s*[*×x]\s*(?=\d)"), " times "),
    (re.compile(r"(?<=\d)\s*÷\s*(?=\d)"), " divided by "),
    (re.compile(r"(?<=\d) / (?=\d)"), " divided by "),
    (re.compile(r"(?<=\d)\s*\+\s*(?=\d)"), " plus "),
    (re.compile(r"(?<=\d) [-−] (?=\d)"), " minus "),
    (re.compile(r"(?<=\d)\s*=\s*(?=[\d-])"), " equals "),
    (re.compile(r"(?<=\d)[-–](?=\d)"), " to "),  # a range: 5-10 -> 5 to 10
    (re.compile(r"(?<=\d),(?=\d{3}\b)"), ""),  # 1,000 -> 1000, which the voice reads as one thousand
]
_MARKDOWN = re.compile(r"[*_`#>|~]+|^\s*[-•+]\s+|^\s*\d+[.)]\s+", re.MULTILINE)
_UNITS = {
    "km/h": "kilometers per hour",
    "mph": "miles per hour",
    "km": "kilometers",
    "kg": "kilograms",
    "cm": "centimeters",
    "mm": "millimeters",
    "ml": "milliliters",
    "mg": "milligrams",
    "lbs": "pounds",
    "lb": "pounds",
    "ft": "feet",
    "oz": "ounces",
    "m": "meters",
    "g": "grams",
    "°C": "degrees Celsius",
    "°F": "degrees Fahrenheit",
    "°": "degrees",
    "%": "percent",
}
_UNIT = re.compile(
    r"(?<=\d)\s?(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![\w/])"
)
_CURRENCY = re.compile(r"([$€£])\s?(\d+(?:[.,]\d+)*)")
_CURRENCY_NAMES = {"$": "dollars", "€": "euros", "£": "pounds"}
_ABBREVIATIONS = [
    (re.compile(r"\be\.g\.", re.IGNORECASE), "for example"),
    (re.compile(r"\bi\.e\.", re.IGNORECASE), "that is"),
    (re.compile(r"\betc\."), "et cetera."),
    (re.compile(r"\bvs\.?(?=\s)"), "versus"),
    (re.compile(r"\bapprox\."), "approximately"),
    (re.compile(r"\bDr\.(?=\s)"), "Doctor"),
    (re.compile(r"\bMr\.(?=\s)"), "Mister"),
    (re.compile(r"\bMrs\.(?=\s)"), "Missus"),
    (re.compile(r"\bSt\.(?=\s[A-Z])"), "Saint"),
    (re.compile(r"(?<=\s)&(?=\s)"), "and"),
]
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.;:!?])")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]?(?=\s)")
_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]?$")
_CLAUSE_END = re.compile(r"[,;:\u2014](?=\s)")
# the verbs that most often start the predicate of a short answer ("The capital of France is Paris.")
_PREDICATE = re.compile(
    r"\s(?=(?:is|are|was|were|has|have|had|equals|means|can|will|would|does|did)\b)", re.IGNORECASE
)
# words that start a phrase, cut before once a clause is over budget (followed by a space: whole)
_PHRASE_START = re.compile(
    r"\s(?=(?:that|which|who|where|when|while|because|and|but|or|so|into|by|with|from|through|using)\s)",
    re.IGNORECASE,
)
PHRASE_MIN_WORDS = 4  # an early phrase cut leaves at least this many words in the clause
_OPEN_END = re.compile(r"\w$")  # a clause that ends on a word: its sentence goes on
# a full stop after these does not end the sentence ("Dr. Smith", "e.g. tea", "J. K. Rowling")
# or after a list number at the start of a line ("1. Boil the water.")
_NO_STOP_BEFORE = re.compile(r"(?i:\b(?:Dr|Mr|Mrs|Ms|St|vs|approx|e\.g|i\.e))$|\b[A-Z]$|(?:^|\n)\s*\d+$")


def clean_for_speech(text: str) -> str:
    """Text as it should be read aloud: no markup or emoji, symbols and units in words."""
    text = text.replace(FENCE, " ")
    text = _LINK.sub(r"\1", text)
    text = _URL.sub("", text)
    for pattern, words in _ARITHMETIC:
        text = pattern.sub(words, text)
    text = _MARKDOWN.sub(" ", text)
    text = _EMOJI.sub("", text)
    text = _CURRENCY.sub(lambda m: f"{m[2]} {_CURRENCY_NAMES[m[1]]}", text)
    text = _UNIT.sub(lambda m: " " + _UNITS[m[1]], text)
    for pattern, words in _ABBREVIATIONS:
        text = pattern.sub(words, text)
    text = _SPACES.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub("", text).replace("..", ".")


def ends_sentence(text: str) -> bool:
    return bool(_ENDS_SENTENCE.search(text.strip()))


def goes_on(clause: str) -> bool:
    """Whether a clause released mid-stream ends mid-sentence (a cut at a verb or at max_chars)."""
    return bool(_OPEN_END.search(clause))


class ClauseSplitter:
    def __init__(
        self,
        first_min_words: int = 3,
        min_words: int = 6,
        max_chars: int = 200,
        split_first_sentence: bool = False,
        early_phrases: bool = False,
    ) -> None:
        self.first_min_words = first_min_words
        self.split_first_sentence = split_first_sentence
        self.early_phrases = early_phrases
        self._released_words = 0
        self.min_words = min_words
        self.max_chars = max_chars
        self._buffer = ""
        self._raw = ""  # text that may still open or close a code fence
        self._in_code = False
        self._emitted = 0

    def feed(self, text: str) -> Iterator[str]:
        """Add streamed text; yield every clause that is now complete."""
        self._buffer += self._outside_code(text)
        while True:
            cut = self._find_cut()
            if cut is None:
                return
            clause, self._buffer = self._buffer[:cut], self._buffer[cut:]
            clause = clean_for_speech(clause)
            if clause:
                self._emitted += 1
                self._released_words += len(clause.split())
                yield clause

    def flush(self) -> str:
        """The rest of the reply, when generation ends."""
        tail = "" if self._in_code else self._raw
        rest, self._buffer, self._raw = clean_for_speech(self._buffer + tail), "", ""
        return rest

    def _outside_code(self, text: str) -> str:
        """The part of ``text`` outside ``` fences: code is not read aloud."""
        self._raw += text
        out = ""
        while (i := self._raw.find(FENCE)) >= 0:
            if not self._in_code:
                out += self._raw[:i] + " "
            self._raw, self._in_code = self._raw[i + len(FENCE) :], not self._in_code
        held = len(self._raw) - len(self._raw.rstrip("`"))  # the start of a fence may be arriving
        ready, self._raw = self._raw[: len(self._raw) - held], self._raw[len(self._raw) - held :]
        return out if self._in_code else out + ready

    def _find_cut(self) -> int | None:
        buf = self._buffer
        for match in _SENTENCE_END.finditer(buf):
            if match.group().startswith(".") and _NO_STOP_BEFORE.search(buf[: match.start()]):
                continue
            return match.end()
        min_words = self.first_min_words if self._emitted == 0 else self.min_words
        for clause in _CLAUSE_END.finditer(buf):
            if len(buf[: clause.end()].split()) >= min_words:
                return clause.end()
        if self.early_phrases and self._emitted > 0 and len(buf.split()) > 2 * self._released_words:
            starts = [
                p.start()
                for p in _PHRASE_START.finditer(buf)
                if len(buf[: p.start()].split()) >= PHRASE_MIN_WORDS
            ]
            if starts:  # the latest: the clause as long as the budget allows
                return starts[-1]
        if self.split_first_sentence and self._emitted == 0:
            for verb in _PREDICATE.finditer(buf):  # cut where the verb begins: it need not be whole
                subject = _CLAUSE_END.split(buf[: verb.start()])[-1]  # "Sure, the capital": 2 words
                if len(subject.split()) >= self.first_min_words:
                    return verb.start()
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return space if space > 0 else self.max_chars
        return None
