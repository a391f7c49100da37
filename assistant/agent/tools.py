"""The agent's actions as OpenAI tools, for a server model that can call them (``llm.tools``).

The model sees one function per allowed action (``agent.actions``; ``open_app`` lists only the names
of ``agent.apps``). A call it makes is untrusted input, like a transcript: ``call_intent`` turns it
into the very ``Intent`` the sentence templates would have made, or into a spoken refusal, and the
ActionResponder then applies the same allowlist, checks and spoken confirmation as to a command
said aloud. What is refused here never reaches it: a tool that was not offered, arguments that are
not a JSON object of the declared names and types, text too long, control characters, a path or
shell characters where a name or a command belongs, a web address that is not plain http(s).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assistant.agent.desktop import safe_url
from assistant.agent.intents import Intent, normalise
from assistant.config import AgentConfig, Config
from assistant.core.engines import Tool, ToolCall
from assistant.reply.base import Clause, Reply

log = logging.getLogger(__name__)

MAX_TEXT = 500  # characters to type or to note (desktop.MAX_TYPED_CHARS)
MAX_NAME = 60  # an app name, a reminder
MAX_URL = 200
MAX_SECONDS = 24 * 3600
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# typed into the focused window, which may be a terminal: nothing that would make it a command line
SHELL = re.compile(r"[;&|$`<>\\]|\.\./|~/")
UNKNOWN = "Sorry, I can't do that."
BAD_ARGUMENTS = "Sorry, I could not make sense of that request."

_STR = {"type": "string"}
_NUM = {"type": "number"}


@dataclass(frozen=True)
class ToolSpec:
    intent: str  # the intent it becomes (ours: "timer", "open_app", ...), and the action allowing it
    description: str
    params: dict[str, dict[str, Any]]  # name -> JSON schema (with "maxLength" / "minimum"..."maximum")
    required: tuple[str, ...] = ()


SPECS: dict[str, ToolSpec] = {
    "get_time": ToolSpec("time", "Say the current time.", {}),
    "get_date": ToolSpec("date", "Say today's date.", {}),
    "set_timer": ToolSpec(
        "timer",
        "Start a countdown timer.",
        {"seconds": {**_NUM, "minimum": 1, "maximum": MAX_SECONDS}},
        ("seconds",),
    ),
    "set_reminder": ToolSpec(
        "reminder",
        "Remind the user of something after a delay.",
        {"seconds": {**_NUM, "minimum": 1, "maximum": MAX_SECONDS}, "what": {**_STR, "maxLength": MAX_NAME}},
        ("seconds", "what"),
    ),
    "cancel_timers": ToolSpec("cancel_timers", "Cancel every timer and reminder.", {}),
    "take_note": ToolSpec(
        "note",
        "Append a note to the user's notes file.",
        {"text": {**_STR, "maxLength": MAX_TEXT}},
        ("text",),
    ),
    "open_url": ToolSpec(
        "open_url",
        "Open a web page in the browser, e.g. example.com/news.",
        {"url": {**_STR, "maxLength": MAX_URL}},
        ("url",),
    ),
    "open_app": ToolSpec("open_app", "Open one of the listed applications.", {"app": _STR}, ("app",)),
    "type_text": ToolSpec(
        "type",
        "Type text into the focused window, as if on the keyboard.",
        {"text": {**_STR, "maxLength": MAX_TEXT}},
        ("text",),
    ),
    "read_clipboard": ToolSpec("clipboard", "Read the clipboard aloud.", {}),
    "media": ToolSpec(
        "media",
        "Control the media player.",
        {"command": {**_STR, "enum": ["play", "pause", "next", "previous"]}},
        ("command",),
    ),
    "set_volume": ToolSpec(
        "volume",
        "Change the speaker volume; level (percent) only with command set.",
        {
            "command": {**_STR, "enum": ["up", "down", "set", "mute", "unmute"]},
            "level": {**_NUM, "minimum": 0, "maximum": 100},
        },
        ("command",),
    ),
}
ALWAYS_OFFERED = ("cancel_timers",)  # as for the matcher: stopping things is always allowed
# the tool's argument name -> the intent's slot (the templates call free text "what")
SLOT_OF = {"text": "what"}


def offered(cfg: Config) -> list[Tool]:
    """The tools for the model: none unless ``llm.tools`` is auto and the model is on a server."""
    if cfg.llm.tools == "off" or cfg.llm.backend != "openai":
        return []
    return schemas(cfg.agent)


def schemas(cfg: AgentConfig) -> list[Tool]:
    """One OpenAI function tool per allowed action; open_app only with allowlisted app names."""
    tools = []
    for name, spec in SPECS.items():
        if spec.intent not in cfg.actions and spec.intent not in ALWAYS_OFFERED:
            continue
        params = dict(spec.params)
        if spec.intent == "open_app":
            if not cfg.apps:
                continue
            params["app"] = {**_STR, "enum": sorted(cfg.apps)}
        parameters = {
            "type": "object",
            "properties": params,
            "required": list(spec.required),
            "additionalProperties": False,
        }
        tools.append(
            {
                "type": "function",
                "function": {"name": name, "description": spec.description, "parameters": parameters},
            }
        )
    return tools


def call_intent(call: ToolCall, cfg: AgentConfig) -> tuple[Intent | None, str]:
    """(the intent ``call`` asks for, "") or (None, a spoken refusal); the reason is logged."""
    spec = SPECS.get(call.name)
    if spec is None or call.name not in {t["function"]["name"] for t in schemas(cfg)}:
        return _refuse(call, "a tool that was not offered", UNKNOWN)
    try:
        args = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        return _refuse(call, "arguments that are not JSON", BAD_ARGUMENTS)
    if not isinstance(args, dict):
        return _refuse(call, "arguments that are not a JSON object", BAD_ARGUMENTS)
    slots: dict[str, str | float] = {}
    for key, value in args.items():
        schema = spec.params.get(key)
        problem = "an argument it does not take" if schema is None else _problem(spec, key, value, schema)
        if problem:
            return _refuse(call, f"{key!r}: {problem}", BAD_ARGUMENTS)
        slots[SLOT_OF.get(key, key)] = float(value) if schema["type"] == "number" else value.strip()  # type: ignore[index]
    missing = [k for k in spec.required if k not in args]
    if missing:
        return _refuse(call, f"missing {', '.join(missing)}", BAD_ARGUMENTS)
    if spec.intent == "open_app" and normalise(str(slots["app"])) not in {normalise(a) for a in cfg.apps}:
        known = ", ".join(sorted(cfg.apps))
        return _refuse(call, "an app not on agent.apps", f"Sorry, I can only open: {known}.")
    if spec.intent == "open_url":
        url, why = _plain_url(str(slots["url"]))
        if url is None:
            return _refuse(call, why, "Sorry, I only open plain web addresses.")
        slots["url"] = url
    if spec.intent == "volume" and (slots.get("command") == "set") != ("level" in slots):
        return _refuse(call, "a level without command set, or set without a level", BAD_ARGUMENTS)
    return Intent(spec.intent, slots, f"tool {call.name}"), ""


def _problem(spec: ToolSpec, key: str, value: Any, schema: dict[str, Any]) -> str | None:
    if schema["type"] == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "not a number"
        if not schema["minimum"] <= value <= schema["maximum"]:
            return f"outside {schema['minimum']}..{schema['maximum']}"
        return None
    if not isinstance(value, str):
        return "not a string"
    if len(value) > schema.get("maxLength", MAX_NAME) or not value.strip():
        return "empty or too long"
    if CONTROL.search(value):
        return "control characters"
    if "enum" in schema and spec.intent != "open_app" and value not in schema["enum"]:
        return f"not one of {schema['enum']}"
    if spec.intent == "type" and SHELL.search(value):
        return "shell characters in text to type"
    if spec.intent == "open_app" and (SHELL.search(value) or "/" in value or ".." in value):
        return "a path or shell characters where an app name belongs"
    return None


def _plain_url(url: str) -> tuple[str | None, str]:
    """The address as the templates give it ("example.com/news"), or None and why not."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        scheme, rest = "", url.strip()
    if scheme.lower() not in ("", "http", "https") or ":" in rest:
        return None, "a scheme other than http(s), or a port"
    if ".." in rest or SHELL.search(rest):
        return None, "a path that climbs, or shell characters"
    rest = rest.rstrip("/")
    return (rest.lower(), "") if safe_url(rest) else (None, "not a plain host name and path")


def _refuse(call: ToolCall, why: str, spoken: str) -> tuple[None, str]:
    log.warning("LLM tool call %.60r refused: %s (arguments %.200r)", call.name, why, call.arguments)
    return None, spoken


class ToolReply:
    """The LLM's reply, with a tool call it ends in turned into what the agent says about it:
    ``handle`` runs when the clause is taken, so a speculative reply that is dropped acts on nothing."""

    def __init__(self, inner: Reply, handle: Callable[[ToolCall], Clause]) -> None:
        self.inner = inner
        self.handle = handle

    @property
    def t_first_token(self) -> float | None:
        return self.inner.t_first_token

    def ask(self, messages: list[dict[str, str]]) -> None:
        self.inner.ask(messages)

    def next(self, timeout: float) -> Clause | None:
        clause = self.inner.next(timeout)
        if clause is None or clause.call is None:
            return clause
        return self.handle(clause.call)

    def cancel(self) -> None:
        self.inner.cancel()
