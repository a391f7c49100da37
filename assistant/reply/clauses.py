"""Turning a stream of LLM tokens into speakable clauses.

TTS sounds natural on whole clauses, and the first clause is what the user waits for; so a clause
is released at a sentence end, or at a comma/semicolon/colon once it has a few words, and the very
first clause may be short. Text is cleaned for speech: no markdown, no emoji, no URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_MARKDOWN = re.compile(r"[*_`#>|~]+|^\s*[-•]\s+|^\s*\d+\.\s+", re.MULTILINE)
_URL = re.compile(r"https?://\S+")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f\u200d]")
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]?(?=\s)")
_CLAUSE_END = re.compile(r"[,;:\u2014](?=\s)")


def clean_for_speech(text: str) -> str:
    text = _URL.sub("", text)
    text = _MARKDOWN.sub(" ", text)
    text = _EMOJI.sub("", text)
    return _SPACES.sub(" ", text).strip()


class ClauseSplitter:
    def __init__(self, first_min_words: int = 3, min_words: int = 6, max_chars: int = 200) -> None:
        self.first_min_words = first_min_words
        self.min_words = min_words
        self.max_chars = max_chars
        self._buffer = ""
        self._emitted = 0

    def feed(self, text: str) -> Iterator[str]:
        """Add streamed text; yield every clause that is now complete."""
        self._buffer += text
        while True:
            cut = self._find_cut()
            if cut is None:
                return
            clause, self._buffer = self._buffer[:cut], self._buffer[cut:]
            clause = clean_for_speech(clause)
            if clause:
                self._emitted += 1
                yield clause

    def flush(self) -> str:
        """The rest of the reply, when generation ends."""
        rest, self._buffer = clean_for_speech(self._buffer), ""
        return rest

    def _find_cut(self) -> int | None:
        buf = self._buffer
        match = _SENTENCE_END.search(buf)
        if match:
            return match.end()
        min_words = self.first_min_words if self._emitted == 0 else self.min_words
        for clause in _CLAUSE_END.finditer(buf):
            if len(buf[: clause.end()].split()) >= min_words:
                return clause.end()
        if len(buf) > self.max_chars:
            space = buf.rfind(" ", 0, self.max_chars)
            return space if space > 0 else self.max_chars
        return None
