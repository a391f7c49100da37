"""The deadline fallback: a Responder that wraps a Responder and answers in time, whatever happens.

Deadlines count from the end of the user's speech:
- ``first_audio_ms``: nothing speakable yet? Say a short acknowledgement now (its audio was
  synthesised at start-up, so it costs no TTS time), then carry on with the real answer. Only once
  the question is known (``ask``): a turn whose transcript turns out empty is never acknowledged.
  The phrases take turns, so the filler does not sound like a tic.
- ``answer_ms``: still no answer (a hung or crawling LLM)? Apologise and give up cleanly.
- ``reply_ms``: the answer is running long? Stop generating; the reply ends at a clause boundary.
An engine error, or a reply that ends with nothing said, becomes a spoken apology; the pipeline
keeps listening.
"""

from __future__ import annotations

import logging
import queue
import time

from assistant.config import DeadlineConfig
from assistant.core.engines import ChatMessage
from assistant.reply.base import Clause, Reply, Responder

log = logging.getLogger(__name__)

# The ack is handed to TTS this much before its deadline (a cached phrase takes ~1 ms to "synthesise";
# the margin covers queue hops and the playback block).
HAND_OFF_S = 0.02


class DeadlineResponder:
    def __init__(self, inner: Responder, cfg: DeadlineConfig) -> None:
        self.inner = inner
        self.cfg = cfg
        self._opened = 0

    def setup(self) -> None:
        self.inner.setup()

    def prefetch(self, messages: list[ChatMessage] | None) -> None:
        self.inner.prefetch(messages)

    def open(self, t_speech_end: float) -> Reply:
        phrases = acknowledgements(self.cfg)
        self._opened += 1
        ack = phrases[(self._opened - 1) % len(phrases)]
        return DeadlineReply(self.inner.open(t_speech_end), t_speech_end, self.cfg, ack)

    def close(self) -> None:
        self.inner.close()


def acknowledgements(cfg: DeadlineConfig) -> tuple[str, ...]:
    """The fillers: ``acknowledgement`` (the older, single-phrase key) when set, else the list."""
    return (cfg.acknowledgement,) if cfg.acknowledgement else cfg.acknowledgements or ("Hmm.",)


class DeadlineReply:
    def __init__(self, inner: Reply, t0: float, cfg: DeadlineConfig, ack: str = "Hmm.") -> None:
        self.inner = inner
        self.cfg = cfg
        self.ack = ack
        self._asked = False  # the question is known (and not empty): only then may a filler sound
        self.t_ack = t0 + cfg.first_audio_ms / 1000 - HAND_OFF_S
        self.t_answer = t0 + cfg.answer_ms / 1000
        self.t_reply = t0 + cfg.reply_ms / 1000
        self._said_any = False
        self._answered = False
        self._done = False
        self._cancelled = False

    @property
    def t_first_token(self) -> float | None:
        return self.inner.t_first_token

    def ask(self, messages: list[ChatMessage]) -> None:
        self._asked = True
        self.inner.ask(messages)

    def cancel(self) -> None:
        self._cancelled = True
        self.inner.cancel()

    def next(self, timeout: float) -> Clause | None:
        if self._done:
            return None
        now = time.monotonic()
        if now >= self.t_reply:
            return self._finish("reply_ms passed: the reply ends here")
        wait = min(timeout, max(0.0, self._next_deadline() - now))
        try:
            clause = self.inner.next(wait)
        except queue.Empty:
            return self._on_time(time.monotonic())
        except Exception as exc:
            log.error("the responder failed: %s: %s", type(exc).__name__, exc)
            self._finish(None)
            return self._said(Clause(self.cfg.apology_error, "error"))
        if clause is None:
            self._done = True
            if self._asked and not self._answered and not self._cancelled:
                # the model ended with nothing speakable (a small model's ".." or an empty reply):
                # silence would leave the user wondering whether they were heard
                log.warning("the responder ended without an answer")
                return self._said(Clause(self.cfg.apology_error, "error"))
            return None
        self._answered = True
        return self._said(clause)

    def _next_deadline(self) -> float:
        if not self._said_any:
            return self.t_ack
        return self.t_answer if not self._answered else self.t_reply

    def _on_time(self, now: float) -> Clause | None:
        if not self._answered and now >= self.t_answer:
            self._finish("answer_ms passed with no answer")
            return self._said(Clause(self.cfg.apology_timeout, "timeout"))
        if now >= self.t_reply:
            return self._finish("reply_ms passed: the reply ends here")
        if not self._said_any and now >= self.t_ack and self._asked:
            return self._said(Clause(self.ack, "ack"))
        raise queue.Empty

    def _said(self, clause: Clause) -> Clause:
        self._said_any = True
        return clause

    def _finish(self, why: str | None) -> None:
        if why:
            log.info("deadline: %s", why)
        self.inner.cancel()
        self._done = True
        return None
