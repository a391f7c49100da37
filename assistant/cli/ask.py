"""`assistant ask "TEXT" [--agent] [--dry-run] [--json]`: one turn of the responder chain, on text.

The same chain a spoken turn goes through (build.responder_chain: intents and the fast path, the LLM,
the deadline counted from the moment the text is given), so intents and replies can be checked, and
scripted, without synthesising speech. ``--agent`` puts the agent's actions in the chain (the text is
addressed to it: no wake phrase); ``--dry-run`` proposes every action that would change something
instead of running it, so the reply names it and nothing happens. One turn, so no history.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the parser is built at every start: the chain's modules load only for `ask`
    from assistant.agent.desktop import Desktop
    from assistant.config import Config
    from assistant.core.engines import TextStreamer, Tool, ToolCall
    from assistant.core.events import Action
    from assistant.reply.base import Responder

FALLBACK_KINDS = ("ack", "timeout", "error")
NO_SIDE_EFFECTS = ("time", "date")  # answered even in a dry run: they change nothing
TURN_TIMEOUT_S = 0.05  # how long one `next` waits: the deadline wrapper keeps its own clock


@dataclass
class Answer:
    reply: str
    source: str  # "intent" (fast path or action), "llm" or "fallback" (the deadline's apology)
    intent: str | None = None
    slots: dict[str, Any] = field(default_factory=dict)
    action: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def answer(
    cfg: Config,
    llm: TextStreamer,
    text: str,
    agent: bool = False,
    dry_run: bool = False,
    desktop: Desktop | None = None,
) -> Answer:
    """Answer ``text`` as one turn of the chain; ``llm`` is a loaded engine (or a scripted fake)."""
    from assistant import build
    from assistant.agent.actions import ActionResponder
    from assistant.agent.desktop import Desktop
    from assistant.agent.timers import Scheduler
    from assistant.agent.tools import offered
    from assistant.config import AGENT_ACTIONS
    from assistant.core.bus import EventBus
    from assistant.core.events import Action

    events = EventBus()
    actions: list[Action] = []
    events.subscribe(actions.append, Action)
    agent_cfg = cfg.agent
    if dry_run:
        agent_cfg = dataclasses.replace(
            agent_cfg, confirm=tuple(a for a in AGENT_ACTIONS if a not in NO_SIDE_EFFECTS)
        )

    def with_actions(inner: Responder) -> Responder:
        return (
            ActionResponder(inner, agent_cfg, desktop or Desktop(), Scheduler(), events) if agent else inner
        )

    chain = build.responder_chain(cfg, llm, wrap=with_actions, tools=offered(cfg) if agent else ())
    chain.setup()
    try:
        return _turn(chain, cfg, text, agent, agent_cfg.apps, actions)
    finally:
        chain.close()


def _turn(
    chain: Responder, cfg: Config, text: str, agent: bool, apps: dict[str, str], actions: list[Action]
) -> Answer:
    from assistant.agent.intents import match
    from assistant.core.engines import ChatMessage
    from assistant.reply.intents import default_matcher

    t0 = time.monotonic()
    intent = match(text, apps) if agent else default_matcher().match(text)
    t_match = time.monotonic()
    messages: list[ChatMessage] = [
        {"role": "system", "content": cfg.llm.system_prompt},
        {"role": "user", "content": text},
    ]
    reply = chain.open(t0)
    reply.ask(messages)
    said: list[tuple[str, str, float]] = []  # (text, source, when)
    while True:
        try:
            clause = reply.next(TURN_TIMEOUT_S)
        except queue.Empty:  # nothing yet: the deadline wrapper decides when to give up
            continue
        if clause is None:
            break
        said.append((clause.text, clause.source, time.monotonic()))
    t_end = time.monotonic()
    spoken = [(t, s, w) for t, s, w in said if s != "ack"] or said
    sources = {s for _, s, _ in spoken}
    source = "llm" if "llm" in sources else "fallback" if sources <= set(FALLBACK_KINDS) else "intent"
    latency = {"match": _ms(t_match - t0), "total": _ms(t_end - t0)}
    if spoken:
        latency["first_clause"] = _ms(spoken[0][2] - t0)
    if any(s == "ack" for _, s, _ in said):
        latency["ack"] = _ms(next(w for _, s, w in said if s == "ack") - t0)
    used = intent if source == "intent" and intent is not None else None
    last = actions[-1] if actions else None
    if last is not None and last.via == "llm":  # the LLM's tool call: the model answered, by acting
        source = "llm"
    return Answer(
        reply=" ".join(t for t, _, _ in spoken).strip(),
        source=source,
        intent=used.name if used else None,
        slots=dict(used.slots) if used else dict(last.slots) if last and last.via else {},
        action=last.action if last else None,
        latency_ms=latency,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "ask",
        parents=parents,
        help="answer a text as a spoken turn would be answered (intents, fast path, LLM)",
        description="One turn of the responder chain on text: intents and the fast path first, then "
        "the LLM under the usual deadlines. --agent adds the agent's actions (the text counts as "
        "addressed to it); --dry-run proposes instead of running anything that changes something.",
    )
    p.add_argument("text", help="what the user says")
    p.add_argument("--agent", action="store_true", help="the agent's intents and actions")
    p.add_argument("--dry-run", action="store_true", help="name the action, run nothing (with --agent)")
    p.add_argument("--json", action="store_true", help="print one JSON object: reply, source, intent, ...")
    p.set_defaults(handler=run)


class _LazyLlm:
    """The LLM engine, loaded only when the text is for it: a command or a fast-path question is
    answered without the model's start-up (seconds)."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self._engine: TextStreamer | None = None

    def get(self) -> TextStreamer:
        if self._engine is None:
            from assistant import build

            self._engine = build.llm_engine(self.cfg, build.model_store(self.cfg))
            self._engine.warm_up()
        return self._engine

    def warm_up(self) -> None:
        pass  # `run` loads it before the turn starts when it will be needed

    def stream(self, messages: list, should_stop: Any = lambda: False) -> Any:
        return self.get().stream(messages, should_stop)

    def stream_tools(
        self, messages: list, tools: Sequence[Tool], should_stop: Any = lambda: False
    ) -> Iterator[str | ToolCall]:
        from assistant.core.engines import ToolStreamer

        engine = self.get()
        if isinstance(engine, ToolStreamer):
            return engine.stream_tools(messages, tools, should_stop)
        return iter(engine.stream(messages, should_stop))


def run(cfg: Config, args: argparse.Namespace) -> int:
    from assistant.agent.intents import match
    from assistant.reply.fastpath import quick_intent
    from assistant.reply.intents import load

    load()
    llm = _LazyLlm(cfg)
    handled = match(args.text, cfg.agent.apps) if args.agent else quick_intent(args.text)
    if handled is None:
        llm.get()  # before the turn: the deadlines count from the question, not from loading
    result = answer(cfg, llm, args.text, agent=args.agent, dry_run=args.dry_run)
    print(result.as_json() if args.json else result.reply)
    return 0
