"""The responder stage: a final transcript in, speakable reply clauses out, streamed.

The LLM's tokens are grouped into clauses (speakable.py) and each clause leaves the moment it is
complete, so synthesis of the first clause overlaps generation of the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.config import LlmConfig
from assistant.llm import ChatMessage, LlmEngine, TextStreamer
from assistant.messages import Message, ReplyText, Transcript
from assistant.speakable import ClauseSplitter
from assistant.stage import Stage, StageContext

log = logging.getLogger(__name__)

HISTORY_TURNS = 4  # user/assistant exchanges kept as context


class ResponderStage(Stage):
    name = "responder"

    def __init__(
        self, cfg: LlmConfig, model_dir: Path | None = None, engine: TextStreamer | None = None
    ) -> None:
        self.cfg = cfg
        self.model_dir = model_dir
        self.engine = engine  # injected in tests; loaded in setup otherwise
        self.history: list[ChatMessage] = []

    def setup(self, ctx: StageContext) -> None:
        super().setup(ctx)
        if self.engine is None:
            assert self.model_dir is not None
            self.engine = LlmEngine(self.model_dir, self.cfg)
        self.engine.warm_up()

    def process(self, msg: Message) -> Iterator[Message]:
        if not isinstance(msg, Transcript) or not msg.final or msg.ended is None:
            return
        if not msg.text.strip():
            self.ctx.events.emit("reply_skipped", msg.turn, reason="empty transcript")
            return
        assert self.engine is not None
        messages = self._messages(msg.text)
        splitter = ClauseSplitter()
        spoken: list[str] = []
        first = True
        stale = lambda: self.ctx.scope.is_stale(msg.turn) or self.ctx.stop.is_set()  # noqa: E731
        for piece in self.engine.stream(messages, should_stop=stale):
            if first:
                self.ctx.events.emit("llm_first_token", msg.turn)
                first = False
            for clause in splitter.feed(piece):
                spoken.append(clause)
                self.ctx.events.emit("reply_clause", msg.turn, text=clause, source="llm")
                yield ReplyText(msg.turn, clause, final=False, ended=msg.ended, t=time.monotonic())
        rest = splitter.flush()
        if rest:
            spoken.append(rest)
            self.ctx.events.emit("reply_clause", msg.turn, text=rest, source="llm")
        reply = " ".join(spoken)
        self.ctx.events.emit("reply_done", msg.turn, text=reply)
        yield ReplyText(msg.turn, rest, final=True, ended=msg.ended, t=time.monotonic())
        self.history += [{"role": "user", "content": msg.text}, {"role": "assistant", "content": reply}]
        self.history = self.history[-2 * HISTORY_TURNS :]

    def _messages(self, user_text: str) -> list[ChatMessage]:
        return [
            {"role": "system", "content": self.cfg.system_prompt},
            *self.history,
            {"role": "user", "content": user_text},
        ]
