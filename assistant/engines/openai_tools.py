"""Tool calls as an OpenAI-compatible server streams them, put back together.

In a streamed chat completion a call comes in pieces: ``delta.tool_calls`` is a list of
``{"index", "id", "type", "function": {"name", "arguments"}}`` where the first piece of each index
carries the id and the name and later ones carry fragments of the arguments (JSON text). The calls
are handed on whole, their arguments unchecked: the agent validates them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from assistant.core.engines import ToolCall

log = logging.getLogger(__name__)

# what one stream's calls may grow to: a hostile or runaway model cannot fill the memory (arguments
# cut here are no longer valid JSON, so the agent refuses the call)
MAX_TOOL_CALLS = 8
MAX_TOOL_CALL_CHARS = 16384


class ToolCallParts:
    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}  # index -> id, name, arguments so far

    def add(self, pieces: Any) -> None:
        """One chunk's ``delta.tool_calls`` (None when it has none); ValueError when malformed."""
        if pieces is None:
            return
        if not isinstance(pieces, list) or not all(isinstance(p, dict) for p in pieces):
            raise ValueError(f"malformed tool calls: {str(pieces)[:200]!r}")
        for piece in pieces:
            index = piece.get("index", 0)
            function = piece.get("function") or {}
            if not isinstance(index, int) or not isinstance(function, dict):
                raise ValueError(f"a malformed tool call: {str(piece)[:200]!r}")
            if index not in self._calls and len(self._calls) >= MAX_TOOL_CALLS:
                log.warning("LLM tool call %d dropped: more than %d in one reply", index, MAX_TOOL_CALLS)
                continue
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            # the id and the name come once (some servers repeat them: the first is kept)
            for key, part in (("id", piece.get("id")), ("name", function.get("name"))):
                if isinstance(part, str) and not call[key]:
                    call[key] = part[:MAX_TOOL_CALL_CHARS]
            part = function.get("arguments")
            if isinstance(part, str):
                call["arguments"] = (call["arguments"] + part)[:MAX_TOOL_CALL_CHARS]

    def whole(self) -> Iterator[ToolCall]:
        """The calls, in the order of their index."""
        for index in sorted(self._calls):
            call = self._calls[index]
            log.debug("LLM tool call %s(%s)", call["name"], call["arguments"][:200])
            yield ToolCall(call["name"], call["arguments"], call["id"])
