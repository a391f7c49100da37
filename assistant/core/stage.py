"""The one stage interface and the generic thread loop that runs it.

A stage turns each input message into zero or more output messages. The loop around it owns the
threading concerns: taking from the inbox, dropping messages of cancelled turns, forwarding outputs,
calling ``tick`` when nothing arrives (for time-driven work such as a deadline), reporting errors on
the control channel instead of swallowing them, and exiting on ``End`` or on stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from assistant.core.bus import EventBus
from assistant.core.messages import End, Message
from assistant.core.turn import TurnScope

log = logging.getLogger(__name__)

POLL_S = 0.02  # how often a stage with time-driven work (a deadline) ticks while idle
IDLE_POLL_S = 0.1  # how often the others look at the stop flag: each wake-up costs CPU while idle
# Messages a stage's inbox holds before the stage before it waits: 30 s of 20 ms audio frames. A
# recording replayed as fast as possible fits whole; input faster than the stages can follow (a
# Wyoming client streaming noise) backs up to the source, which refuses it, instead of into memory.
MAX_QUEUED = 1500


def put(q: queue.Queue[Message], msg: Message, stop: threading.Event) -> bool:
    """Put ``msg``, waiting while ``q`` is full (backpressure), unless ``stop`` is set meanwhile."""
    while not stop.is_set():
        try:
            q.put(msg, timeout=IDLE_POLL_S)
            return True
        except queue.Full:
            continue
    return False


@dataclass
class StageContext:
    scope: TurnScope
    events: EventBus
    stop: threading.Event


class Stage:
    """Base class: override ``process``; ``setup``, ``tick`` and ``close`` are optional."""

    name: str = "stage"
    # how long to wait for a message before ``tick`` (and a look at the stop flag); stages whose
    # ``tick`` does time-driven work set POLL_S
    poll_s: float = IDLE_POLL_S
    # False for stages that consume raw input (turn numbers are assigned downstream of them)
    drops_stale: bool = True

    def setup(self, ctx: StageContext) -> None:
        self.ctx = ctx

    def process(self, msg: Message) -> Iterator[Message]:
        raise NotImplementedError

    def tick(self, now: float) -> Iterator[Message]:
        """Called when no message arrived for a poll interval; time-driven stages yield here."""
        return iter(())

    def close(self) -> None:
        pass


ErrorHandler = Callable[[str, BaseException], None]


def run_stage(
    stage: Stage,
    inbox: queue.Queue[Message],
    outbox: queue.Queue[Message] | None,
    ctx: StageContext,
    on_error: ErrorHandler,
) -> None:
    """Thread body: run ``stage`` until ``End`` passes through it or ``ctx.stop`` is set."""

    def forward(outputs: Iterator[Message]) -> None:
        for out in outputs:
            if ctx.stop.is_set():
                return
            # raw audio (turn -1, from a stage before the VAD such as the wake-word gate) belongs
            # to no turn yet, so no barge-in can make it stale
            if not isinstance(out, End) and out.turn >= 0 and ctx.scope.is_stale(out.turn):
                continue
            if outbox is not None:
                put(outbox, out, ctx.stop)

    try:
        while not ctx.stop.is_set():
            try:
                msg = inbox.get(timeout=stage.poll_s)
            except queue.Empty:
                forward(stage.tick(time.monotonic()))
                continue
            if isinstance(msg, End):
                forward(stage.process(msg))
                if outbox is not None:
                    put(outbox, msg, ctx.stop)
                return
            if stage.drops_stale and ctx.scope.is_stale(msg.turn):
                continue
            forward(stage.process(msg))
    except BaseException as exc:  # noqa: BLE001 - reported on the control channel, not swallowed
        log.debug("stage %s failed", stage.name, exc_info=True)
        on_error(stage.name, exc)
    finally:
        try:
            stage.close()
        except Exception:  # closing must not hide the original failure
            log.exception("closing stage %s failed", stage.name)
