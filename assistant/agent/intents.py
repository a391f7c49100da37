"""The agent's view of the intent matcher (assistant/reply/intents.py, on hassil).

Common desktop commands are matched by sentence templates, so a 135M-parameter model is never in the
critical path of "set a timer" and never decides what gets launched or typed. The fast path's own
answers (what the assistant can do, who it is) are no actions: the agent leaves them to the chain.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from assistant.reply.intents import Intent, IntentMatcher, normalise, parse_duration

__all__ = ["STOP", "Intent", "match", "normalise", "parse_duration"]

FAST_PATH_ONLY = ("capabilities", "identity")


@functools.cache
def _matcher(apps: tuple[str, ...]) -> IntentMatcher:
    return IntentMatcher(apps)


def match(text: str, apps: Iterable[str] = ()) -> Intent | None:
    """The intent of one (wake-phrase-free) transcript, or None when it is a question for the LLM.
    ``apps``: the allowlisted app names, matched as a slot list (others come out as an unlisted app)."""
    found = _matcher(tuple(sorted(apps))).match(text)
    return None if found is None or found.name in FAST_PATH_ONLY else found


class _IntentIs:
    """``STOP.match(text)``: whether ``text`` is the "stop" intent (it stood where a pattern stood)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def match(self, text: str) -> bool:
        found = match(text)
        return found is not None and found.name == self.name


STOP = _IntentIs("stop")
