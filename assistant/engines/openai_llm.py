"""The language model on a server: any OpenAI-compatible chat-completions endpoint, streamed over SSE.

vLLM, ``transformers serve``, llama.cpp's server and Ollama all speak this protocol. The engine is a
TextStreamer like the local LlmEngine, so the clause splitting, the deadline fallback, speculative
prefetch and history work unchanged on top of it.

Cancellation closes the HTTP response: the server sees the client go and stops generating (vLLM and
``transformers serve`` both abort a request whose client disconnected). Every failure (refused,
timed out, an HTTP error, a malformed or cut stream) raises LlmServerError with the server's own
words where it sent any; the deadline wrapper turns that into the spoken apology, and the next turn
simply opens a new request.

Tools (``stream_tools``): the agent's actions offered as OpenAI function tools. The calls stream in
pieces (``delta.tool_calls``: an index, then the id and name, then the arguments in fragments); they
are put together here and handed on whole once the stream ends, their arguments as the model wrote
them: checking them is the agent's business. A server that refuses tools (HTTP 400: vLLM started
without a tool parser) is asked again without them, and not offered them again.

httpx2 rather than the ``openai`` SDK: it is already installed (huggingface_hub and the SDK itself
are built on it), it has SSE built in, and the SDK would add a second client stack, retries we do not
want (a retry after the deadline helps nobody) and a large import to start-up.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx2

from assistant.config import ConfigError, LlmConfig
from assistant.core.engines import ChatMessage, Tool, ToolCall
from assistant.engines.openai_tools import ToolCallParts

log = logging.getLogger(__name__)

# Without the model's tokenizer, history is budgeted in characters: about 4 per token in English.
CHARS_PER_TOKEN = 4
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LlmServerError(RuntimeError):
    """The LLM server could not be used for this request; the message says why, naming the server."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the server answered with an error


class LlmUnreachable(LlmServerError):
    """No connection (refused, no route, connect timeout): the server may come back by itself."""


class LlmSetupMismatch(LlmServerError):
    """The server works but does not match the settings (the model named is not served)."""


class OpenAiEngine:
    def __init__(
        self,
        cfg: LlmConfig,
        transport: httpx2.BaseTransport | None = None,
        environ: Mapping[str, str] = os.environ,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        """``transport`` is the test seam (httpx2.MockTransport); ``extra_body`` adds request fields
        some servers take beyond the OpenAI schema (vLLM's ``min_tokens``, transformers'
        ``generation_config``)."""
        if not cfg.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"llm.base_url must start with http:// or https://, e.g. http://gpu-box:8000/v1; got {cfg.base_url!r}"
            )
        self.cfg = cfg
        self.base_url = cfg.base_url.rstrip("/")
        self.extra_body = dict(extra_body or {})
        headers = {}
        key = api_key(cfg, environ)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx2.Timeout(cfg.read_timeout_ms / 1000, connect=cfg.connect_timeout_ms / 1000)
        # no retries: a request that failed is answered by the apology; the next turn tries afresh
        self._client = httpx2.Client(
            base_url=self.base_url, headers=headers, timeout=timeout, transport=transport
        )
        self._model = cfg.api_model
        self._model_checked = False
        self._model_lock = threading.Lock()
        self.tools_refused = False  # the server answered a request with tools by HTTP 400
        log.info("LLM %s at %s", cfg.api_model or "(the server's model)", self.base_url)

    # -- TextStreamer ---------------------------------------------------------------------------

    def stream(
        self, messages: list[ChatMessage], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[str]:
        """Yield the reply as text increments; returning early (``should_stop``, or the caller
        closing the generator) closes the HTTP stream, which stops the server generating."""
        for piece in self._chat(messages, should_stop, self.cfg.max_new_tokens):
            if isinstance(piece, str):
                yield piece

    def stream_tools(
        self,
        messages: list[ChatMessage],
        tools: Sequence[Tool],
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[str | ToolCall]:
        """As ``stream``, with ``tools`` offered: the text increments, then the calls made."""
        if not tools or self.tools_refused:
            yield from self.stream(messages, should_stop)
            return
        try:
            yield from self._chat(messages, should_stop, self.cfg.max_new_tokens, tools)
        except LlmServerError as exc:
            if exc.status != 400:
                raise
            log.warning("%s; the LLM server refuses tools: asking again without them, from now on", exc)
            self.tools_refused = True
            yield from self.stream(messages, should_stop)

    def warm_up(self) -> None:
        """Check the server at start-up. What no retry fixes (a wrong key, model or URL path: a 4xx)
        stops start-up with a message naming the setting; a server that is down or failing (no
        connection, a timeout, a 5xx) only warns, so the assistant still starts, answers what it can
        without the LLM, apologises for the rest, and works as soon as the server does (satellites
        may well boot before the GPU box, and a model may still be loading)."""
        try:
            self.model_id()
            for _ in self._chat([{"role": "user", "content": "Hi"}], lambda: False, 1):
                pass  # loads the model on servers that load lazily (Ollama, transformers serve)
        except LlmSetupMismatch:
            raise
        except LlmServerError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise
            log.warning("%s; starting anyway: what the LLM should answer gets an apology until it works", exc)

    # -- the server's model ---------------------------------------------------------------------

    def model_id(self) -> str:
        """``llm.api_model``, checked against the server's list; if unset, the one model it serves."""
        with self._model_lock:
            if self._model_checked:
                return self._model  # type: ignore[return-value]
            try:
                served = self.list_models()
            except LlmServerError as exc:
                if not (self.cfg.api_model and exc.status == 404):
                    raise
                served = [self.cfg.api_model]  # a server without /models: take the setting on trust
            if self.cfg.api_model and self.cfg.api_model not in served:
                raise LlmSetupMismatch(
                    f"{self.base_url} does not serve llm.api_model={self.cfg.api_model!r}; "
                    f"it serves: {', '.join(served) or 'nothing'}"
                )
            if not self.cfg.api_model and len(served) != 1:
                raise LlmSetupMismatch(
                    f"{self.base_url} serves {len(served)} models; choose one with llm.api_model: "
                    + ", ".join(served)
                )
            self._model, self._model_checked = self.cfg.api_model or served[0], True
            log.info("LLM server %s serves %s", self.base_url, self._model)
            return self._model

    def list_models(self) -> list[str]:
        with self._errors("list models"):
            response = self._client.get("/models")
            _raise_for_status(response, self.base_url)
            try:
                return [str(m["id"]) for m in response.json()["data"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise LlmServerError(
                    f"{self.base_url}/models: unexpected answer {response.text[:200]!r}"
                ) from exc

    # -- one request ----------------------------------------------------------------------------

    def _chat(
        self,
        messages: list[ChatMessage],
        should_stop: Callable[[], bool],
        max_tokens: int,
        tools: Sequence[Tool] = (),
    ) -> Iterator[str | ToolCall]:
        if should_stop():
            return
        body: dict[str, Any] = {
            "model": self.model_id(),
            "messages": trim_history(messages, self.cfg.history_tokens),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": self.cfg.temperature,
            **self.extra_body,
        }
        if tools:
            body |= {"tools": list(tools), "tool_choice": "auto"}
        with self._errors("chat"), self._client.stream("POST", "/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for_status(response, self.base_url)
            yield from _deltas(response, should_stop, self.base_url)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """httpx2's exceptions as LlmServerError, worded for the log a user reads."""
        url = self.base_url
        try:
            yield
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise LlmUnreachable(f"cannot reach the LLM server at {url} (llm.base_url): {exc}") from exc
        except httpx2.TimeoutException as exc:
            raise LlmServerError(f"the LLM server at {url} timed out ({what}): {exc!r}") from exc
        except httpx2.SSEError as exc:
            raise LlmServerError(f"the LLM server at {url} did not stream events: {exc}") from exc
        except httpx2.HTTPError as exc:
            raise LlmServerError(f"the LLM server at {url} failed ({what}): {exc!r}") from exc


def _deltas(
    response: httpx2.Response, should_stop: Callable[[], bool], base_url: str
) -> Iterator[str | ToolCall]:
    """The text increments of a chat-completions SSE stream, then its tool calls. It ends with
    ``data: [DONE]`` (OpenAI, vLLM) or with the connection after a chunk that carries a finish_reason
    (transformers serve); ending any other way means the stream was cut."""
    finished = False
    calls = ToolCallParts()
    for event in httpx2.EventSource(response):
        if should_stop():
            return
        if event.data.strip() == "[DONE]":
            yield from calls.whole()
            return
        try:
            chunk = json.loads(event.data)
        except ValueError as exc:
            raise LlmServerError(
                f"the LLM server at {base_url} sent a malformed event: {event.data[:200]!r}"
            ) from exc
        if not isinstance(chunk, dict):
            raise LlmServerError(f"the LLM server at {base_url} sent a malformed event: {event.data[:200]!r}")
        if "error" in chunk:
            raise LlmServerError(f"the LLM server at {base_url} failed mid-reply: {_message(chunk)}")
        for choice in chunk.get("choices") or []:  # none in a usage-only chunk
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                yield text
            try:
                calls.add(delta.get("tool_calls"))
            except ValueError as exc:
                raise LlmServerError(f"the LLM server at {base_url} sent {exc}") from exc
            finished = finished or bool(choice.get("finish_reason"))
    if not finished:
        raise LlmServerError(f"the LLM server at {base_url} ended the stream before the reply was complete")
    yield from calls.whole()


def _raise_for_status(response: httpx2.Response, base_url: str) -> None:
    if response.status_code < 400:
        return
    path = response.request.url.path
    hint = " (check the key named by llm.api_key_env)" if response.status_code in (401, 403) else ""
    raise LlmServerError(
        f"{base_url}: HTTP {response.status_code} on {path}{hint}: {_message_of(response)}",
        response.status_code,
    )


def _message_of(response: httpx2.Response) -> str:
    try:
        return _message(response.json())
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase


def _message(body: Any) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or
    Ollama's and transformers' {"error": "..."}."""
    if isinstance(body, dict):
        error = body.get("error", body.get("detail"))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:300]
    return json.dumps(body)[:300]


def api_key(cfg: LlmConfig, environ: Mapping[str, str]) -> str | None:
    """The key from the variable ``llm.api_key_env`` names. Never from the config: a config file is
    shared and committed; an environment variable is not. None: send no key (local servers take none)."""
    name = cfg.api_key_env
    if name is None:
        return None
    if not _ENV_NAME.fullmatch(name):
        raise ConfigError(
            "llm.api_key_env takes the NAME of an environment variable holding the key (e.g. VLLM_API_KEY), "
            "not the key itself"
        )
    key = environ.get(name, "").strip()
    if not key:
        log.warning("llm.api_key_env is %s, but %s is not set: sending no API key", name, name)
    return key or None


def trim_history(messages: list[ChatMessage], history_tokens: int) -> list[ChatMessage]:
    """Drop the oldest exchanges until the history fits ``history_tokens`` (estimated from its length:
    the server holds the tokenizer), keeping the system prompt and the question."""
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    history, question = messages[len(system) : -1], messages[-1:]
    budget = history_tokens * CHARS_PER_TOKEN
    while history and sum(len(m["content"]) for m in history) > budget:
        history = history[2:]  # one user/assistant exchange
    return system + history + question
