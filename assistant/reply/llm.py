"""The LLM as a Responder: generation on a worker thread, tokens grouped into speakable clauses.

``prefetch`` starts generating on a speculative transcript while the VAD's hangover is still
deciding whether the user has finished; asking the reply with the same conversation adopts that
work, so the first clause may be ready the moment the turn ends. Any other conversation cancels it.

With ``tools`` (the agent's actions, offered to a server model that can call them), a call the model
makes ends the reply as a clause that carries it; the agent, which offered the tools, decides what
becomes of it when the clause is taken. One call a turn: the first; the reply ends there.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence

from assistant.config import LlmConfig
from assistant.core.engines import ChatMessage, FirstClauseAware, TextStreamer, Tool, ToolCall, ToolStreamer
from assistant.reply.base import Clause, DeferredReply, ReplyStream, produce
from assistant.reply.clauses import ClauseSplitter, ends_sentence, goes_on

log = logging.getLogger(__name__)
_WORD = re.compile(r"[\w']+")
_TOKEN = re.compile(r"[\w']+|[.!?]+(?=\s|$)")  # words and sentence ends: a loop is not counted across those


class LlmResponder:
    def __init__(self, cfg: LlmConfig, engine: TextStreamer, tools: Sequence[Tool] = ()) -> None:
        self.cfg = cfg
        self.engine = engine
        self.tools = tuple(tools)
        self._lock = threading.Lock()
        self._prefetched: tuple[tuple[tuple[str, str], ...], ReplyStream] | None = None

    def setup(self) -> None:
        self.engine.warm_up()

    def prefetch(self, messages: list[ChatMessage] | None) -> None:
        with self._lock:
            key = _key(messages) if messages else None
            if self._prefetched and self._prefetched[0] == key:
                return
            self._drop_prefetch()
            if messages:
                self._prefetched = (key, self._generate(messages))  # type: ignore[assignment]

    def open(self, t_speech_end: float) -> DeferredReply:
        return DeferredReply(self._start)

    def _start(self, messages: list[ChatMessage]) -> ReplyStream:
        with self._lock:
            if self._prefetched and self._prefetched[0] == _key(messages):
                stream = self._prefetched[1]
                self._prefetched = None
                return stream
            self._drop_prefetch()
            return self._generate(messages)

    def close(self) -> None:
        with self._lock:
            self._drop_prefetch()

    def _drop_prefetch(self) -> None:
        if self._prefetched:
            self._prefetched[1].cancel()
            self._prefetched = None

    def _generate(self, messages: list[ChatMessage]) -> ReplyStream:
        leaks = _ngrams(_words(messages[0]["content"]), 4) if messages[0]["role"] == "system" else set()

        def work(stream: ReplyStream) -> None:
            splitter = ClauseSplitter(
                split_first_sentence=self.cfg.split_first_sentence, early_phrases=self.cfg.early_phrases
            )
            said: set[str] = set()
            spoken: list[str] = []  # the reply's words so far, for the loop check
            sentence_done = False  # the last clause spoken ended a sentence

            def say(clause: str, released: bool = True) -> bool:
                """Put one clause (``released`` by the splitter mid-stream, not the reply's flushed
                end); False when the reply must end here (it loops)."""
                nonlocal sentence_done
                if not _WORD.search(clause):  # ".." alone: SmolLM2 sometimes ends a reply so
                    return True
                if clause.lower() in said:  # a loop ("I'm sorry. I'm sorry."): end the reply here
                    return False
                if leaks & _ngrams(_words(clause), 4):  # "Serves as a helpful voice assistant."
                    log.debug("LLM reply: dropped %r, which echoes the system prompt", clause)
                    return True
                clause, looped = cut_loop(spoken, clause)
                if clause:
                    said.add(clause.lower())
                    spoken.extend(m.group().lower() for m in _TOKEN.finditer(clause))
                    stream.put(Clause(clause, continues=released and not looped and goes_on(clause)))
                    sentence_done = ends_sentence(clause)
                    if (
                        released
                        and not looped
                        and len(said) == 1
                        and isinstance(self.engine, FirstClauseAware)
                    ):
                        self.engine.after_first_clause(stream.cancelled.is_set)
                return not looped

            for piece in self._pieces(messages, stream):
                stream.first_token()
                if isinstance(piece, ToolCall):
                    rest = splitter.flush()
                    if rest and not stream.cancelled.is_set():
                        say(rest, released=False)
                    stream.put(Clause("", "llm", call=piece))
                    return  # closing the generator drops any further calls
                last_piece = "\n\n" in piece  # a second paragraph: small models start rambling there
                for clause in splitter.feed(piece.split("\n\n")[0]):
                    if not say(clause):
                        return
                if last_piece:
                    break
            rest = splitter.flush()
            if rest and sentence_done and not ends_sentence(rest):
                # cut off by max_new_tokens (or a stop) mid-sentence: end on the sentence already said
                log.debug("LLM reply: dropped the unfinished tail %r", rest)
                return
            if rest and not stream.cancelled.is_set():
                say(rest, released=False)

        return produce(ReplyStream(), work, "llm")

    def _pieces(self, messages: list[ChatMessage], stream: ReplyStream) -> Iterator[str | ToolCall]:
        if self.tools and isinstance(self.engine, ToolStreamer):
            return self.engine.stream_tools(messages, self.tools, should_stop=stream.cancelled.is_set)
        return iter(self.engine.stream(messages, should_stop=stream.cancelled.is_set))


def cut_loop(spoken: list[str], clause: str) -> tuple[str, bool]:
    """``clause`` up to where the reply starts going round in circles, and whether it did.

    A loop is a run of three words said a third time ("I'm sorry, I'm sorry, I'm sorry," or "has
    been named as a candidate ... has been named ..."), within a sentence: the reply is cut where that
    run came the second time, so it is said once ("Step 1 goes here. Step 2 goes here." is no loop).
    Clauses that are too short for the splitter to release
    separately ("I'm sorry,") would otherwise repeat inside one clause, unseen by the clause check."""
    found = [(m.group().lower(), m.start()) for m in _TOKEN.finditer(clause)]
    words = spoken + [w for w, _ in found]
    seen: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(words) - 2):
        run = tuple(words[i : i + 3])
        if any(not w[0].isalnum() and w[0] != "'" for w in run):
            continue  # spans a sentence end
        starts = seen.setdefault(run, [])
        starts.append(i)
        if len(starts) == 3:
            k = starts[1] - len(spoken)  # the second run's first word, counted in this clause
            kept = clause[: found[k][1]].rstrip(" ,;:-") if k > 0 else ""
            return (kept + ("" if not kept or ends_sentence(kept) else ".")), True
    return clause, False


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _key(messages: list[ChatMessage]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in messages)
