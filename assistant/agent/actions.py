"""Actions as a Responder: a recognised command is carried out and answered without the LLM.

It wraps the usual responder (fast path -> LLM) the way the deadline wraps it, so everything else in
the pipeline is unchanged. Safety lives here, in one place:
- only the actions listed in ``agent.actions`` run; the rest get a spoken refusal;
- actions in ``agent.confirm`` (by default launching, opening a URL and typing) are only proposed:
  they run when the next utterance is "yes", and anything else drops them;
- programs come from the ``agent.apps`` allowlist by name; a spoken name that is not on it launches
  nothing. No shell string is built from speech (desktop.py).
A server model offered the actions as tools (agent/tools.py) goes through the same door: its call
becomes the intent a sentence would have made (or a spoken refusal), then the same checks apply.
"""

from __future__ import annotations

import datetime as dt
import logging
import shlex
import time
from collections.abc import Callable
from pathlib import Path

from assistant.agent.desktop import Desktop, DesktopError, safe_url, typeable
from assistant.agent.intents import Intent, match, normalise
from assistant.agent.timers import Scheduler, describe_duration
from assistant.agent.tools import ToolReply, call_intent
from assistant.config import AgentConfig
from assistant.core.bus import EventBus
from assistant.core.engines import ChatMessage, ToolCall
from assistant.core.events import Action
from assistant.reply.base import Clause, DeferredReply, Reply, Responder, ready_answer
from assistant.reply.fastpath import spoken_answer
from assistant.stages.policy import ANSWER_WINDOW_S  # a "yes" later than this confirms nothing

log = logging.getLogger(__name__)

MAX_TIMER_S = 24 * 3600
MAX_SPOKEN_CLIPBOARD = 300  # characters read out
CLIPBOARD_SAYS = "The clipboard says: "
# The clipboard is spoken, never kept: the history goes into every later prompt, which
# llm.backend: openai sends to another machine, and a clipboard often holds passwords or private text.
CLIPBOARD_KEPT = "(I read the clipboard aloud.)"

# replies whose words never depend on what was said: synthesised at start-up, so they sound at once
OKAY = "Okay."
WONT = "Okay, I won't."
NOTHING_TO_CONFIRM = "There is nothing to confirm."
NOT_ALLOWED = "Sorry, I'm not allowed to do that here."
NO_TIMERS = "There are no timers."
NOTED = "Noted."
TYPED = "Typed."
EMPTY_CLIPBOARD = "The clipboard is empty."
DONE = "Done."
FIXED_REPLIES = (OKAY, WONT, NOTHING_TO_CONFIRM, NOT_ALLOWED, NO_TIMERS, NOTED, TYPED, EMPTY_CLIPBOARD, DONE)
# intents that belong to an action of `agent.actions` under its name (cancelling is always allowed)
ACTION_OF = {
    name: "timer" for name in ("timer_status", "timer_pause", "timer_resume", "timer_add", "timer_subtract")
}
ALWAYS_ALLOWED = ("cancel_timers",)


class ActionResponder:
    def __init__(
        self,
        inner: Responder,
        cfg: AgentConfig,
        desktop: Desktop,
        scheduler: Scheduler,
        events: EventBus | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.inner = inner
        self.cfg = cfg
        self.desktop = desktop
        self.scheduler = scheduler
        self.events = events
        self.clock = clock
        self._apps = {normalise(name): command for name, command in cfg.apps.items()}
        self._pending: tuple[Intent, float, str | None] | None = None  # proposed, awaiting "yes"; via

    # -- Responder -------------------------------------------------------------------------------
    def setup(self) -> None:
        self.inner.setup()

    def prefetch(self, messages: list[ChatMessage] | None) -> None:
        if messages is None or self.match(messages[-1]["content"]) is None:
            self.inner.prefetch(messages)  # a question for the LLM: let it start early
        else:
            self.inner.prefetch(None)

    def open(self, t_speech_end: float) -> Reply:
        inner = self.inner.open(t_speech_end)

        def start(messages: list[ChatMessage]) -> Reply:
            answer = self.handle(messages[-1]["content"])
            if answer is None:
                inner.ask(messages)
                return ToolReply(inner, self.handle_call)  # the LLM's tool call, if it makes one
            inner.cancel()
            kept = CLIPBOARD_KEPT if answer.startswith(CLIPBOARD_SAYS) else None
            return ready_answer(Clause(answer, "action", kept))

        return DeferredReply(start)

    def close(self) -> None:
        self.inner.close()

    # -- actions ---------------------------------------------------------------------------------
    def drop_pending(self) -> None:
        if self._pending is not None:
            self._record(self._pending[0], "dropped", via=self._pending[2])
        self._pending = None

    def match(self, text: str) -> Intent | None:
        """The command in ``text`` (app names from the allowlist), or None."""
        return match(text, self.cfg.apps)

    def handle(self, text: str) -> str | None:
        """What to say after acting on ``text``; None when it is not a command (the LLM answers)."""
        intent = self.match(text)
        pending, self._pending = self._pending, None
        if pending is not None:
            fresh = time.monotonic() - pending[1] <= ANSWER_WINDOW_S
            if intent is not None and intent.name == "yes" and fresh:
                return self._execute(pending[0], pending[2])
            outcome = "declined" if intent and intent.name in ("no", "stop") else "dropped"
            self._record(pending[0], outcome, via=pending[2])
            if intent is not None and intent.name in ("no", "stop", "yes"):
                return WONT
        if intent is None:
            return None
        if intent.name in ("yes", "no", "stop"):
            return OKAY if intent.name != "yes" else NOTHING_TO_CONFIRM
        return self._act(intent)

    def handle_call(self, call: ToolCall) -> Clause:
        """What to say about the LLM's tool call: refused, proposed or done, as if it had been said."""
        try:
            intent, refusal = call_intent(call, self.cfg)
            if intent is None:
                self._record(Intent(call.name[:60] or "?", {}), "refused", reason=refusal, via="llm")
                return Clause(refusal, "action")
            answer = self._act(intent, via="llm")
        except Exception:  # a bug here must not end the turn, nor run anything
            log.exception("the LLM's tool call %.60r failed", call.name)
            return Clause(NOT_ALLOWED, "action")
        return Clause(answer, "action", CLIPBOARD_KEPT if answer.startswith(CLIPBOARD_SAYS) else None)

    def _act(self, intent: Intent, via: str | None = None) -> str:
        """The allowlist, the checks, then a proposal (``agent.confirm``) or the action itself."""
        action = ACTION_OF.get(intent.name, intent.name)
        if action not in ALWAYS_ALLOWED and action not in self.cfg.actions:
            self._record(intent, "not allowed", via=via)
            return NOT_ALLOWED
        refusal = self._check(intent)
        if refusal:
            self._record(intent, "refused", reason=refusal, via=via)
            return refusal
        if intent.name in self.cfg.confirm:
            self._pending = (intent, time.monotonic(), via)
            self._record(intent, "proposed", via=via)
            return f"{self._proposal(intent)}? Say yes to confirm."
        return self._execute(intent, via)

    def _check(self, intent: Intent) -> str | None:
        """A spoken refusal when the slots cannot be acted on, before anything is proposed."""
        s = intent.slots
        if (
            intent.name in ("timer", "reminder", "timer_add", "timer_subtract")
            and not 0 < float(s.get("seconds", 0)) <= MAX_TIMER_S
        ):
            return "Sorry, I can set timers from one second to one day."
        if intent.name == "open_app" and normalise(str(s["app"])) not in self._apps:
            known = ", ".join(sorted(self.cfg.apps)) or "nothing"
            return f"Sorry, {s['app']} is not on my list. I can open: {known}."
        if intent.name == "open_url" and safe_url(str(s["url"])) is None:
            return "Sorry, that does not look like a web address."
        if intent.name in ("type", "note") and not typeable(str(s.get("what", ""))):
            return "Sorry, I did not catch what to write."
        return None

    def _proposal(self, intent: Intent) -> str:
        s = intent.slots
        if intent.name == "open_app":
            return f"Open {s['app']}"
        if intent.name == "open_url":
            return f"Open {s['url']} in the browser"
        if intent.name == "type":
            return f"Type: {s['what']}"
        if intent.name == "timer":
            return f"Set a timer for {describe_duration(float(s['seconds']))}"
        if intent.name in ("note", "reminder"):
            return f"{'Note' if intent.name == 'note' else 'Remind you'}: {s['what']}"
        return f"Do {intent.name}" + (f" {s['command']}" if "command" in s else "")

    def _execute(self, intent: Intent, via: str | None = None) -> str:
        try:
            said = self._do(intent)
        except (DesktopError, OSError) as exc:
            self._record(intent, "failed", reason=str(exc), via=via)
            return f"Sorry, I couldn't do that: {exc}."
        self._record(intent, "done", via=via)
        return said

    def _do(self, intent: Intent) -> str:
        s, name = intent.slots, intent.name
        if name in ("time", "date"):
            return spoken_answer(name, self.clock())
        if name.startswith("timer_"):
            return self._timer(name, float(s.get("seconds", 0)))
        if name == "timer":
            what = describe_duration(float(s["seconds"]))
            self.scheduler.add(float(s["seconds"]), f"Your timer for {what} is done.")
            return f"Timer set for {what}."
        if name == "reminder":
            self.scheduler.add(float(s["seconds"]), f"Reminder: {s['what']}.")
            return f"Okay, I'll remind you to {s['what']}."
        if name == "cancel_timers":
            n = self.scheduler.clear()
            return NO_TIMERS if n == 0 else f"Cancelled {n} timer{'s' if n > 1 else ''}."
        if name == "note":
            self._append_note(str(s["what"]))
            return NOTED
        if name == "open_app":
            self.desktop.launch(shlex.split(self._apps[normalise(str(s["app"]))]))
            return f"Opening {s['app']}."
        if name == "open_url":
            self.desktop.open_url(str(s["url"]))
            return f"Opening {s['url']}."
        if name == "type":
            self.desktop.type_text(str(s["what"]))
            return TYPED
        if name == "clipboard":
            text = " ".join(self.desktop.read_clipboard().split())
            if not text:
                return EMPTY_CLIPBOARD
            return f"{CLIPBOARD_SAYS}{text[:MAX_SPOKEN_CLIPBOARD]}"
        if name == "media":
            self.desktop.media(str(s["command"]))
            return DONE
        if name == "volume":
            level = float(s["level"]) if "level" in s else None
            self.desktop.volume(str(s["command"]), level)
            return DONE
        raise DesktopError(f"no action called {name}")

    def _timer(self, name: str, seconds: float) -> str:
        """The timer due next: how long it has left, pause, resume, longer or shorter."""
        now, sched = time.monotonic(), self.scheduler
        if name == "timer_resume":
            return "Resumed." if sched.resume(now) else "No timer is paused."
        left = sched.left(now)
        if left is None:
            return NO_TIMERS
        if name == "timer_status":
            return f"{describe_duration(left)} left."
        if name == "timer_pause":
            sched.pause(now)
            return f"Paused, with {describe_duration(left)} left."
        sched.shift(seconds if name == "timer_add" else -seconds, now)
        return f"{describe_duration(sched.left(now) or 0)} left now."

    def _append_note(self, text: str) -> None:
        path = Path(self.cfg.notes_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{self.clock():%Y-%m-%d %H:%M}  {typeable(text)}\n")

    def _record(
        self, intent: Intent, outcome: str, reason: str | None = None, via: str | None = None
    ) -> None:
        log.info(
            "action %s %s %s%s", intent.name, outcome, intent.slots, " (the LLM's tool call)" if via else ""
        )
        if self.events is not None:
            self.events.emit(Action(-1, intent.name, outcome, dict(intent.slots), reason, via=via))
