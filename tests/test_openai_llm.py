"""The OpenAI-compatible backend's plumbing: the SSE protocol, every failure, cancellation, the config.

The server here is scripted (httpx2.MockTransport) or a bare socket; tests/test_llm_server.py runs the
same engine against a real ``transformers serve``.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from assistant import build
from assistant.config import Config, ConfigError, LlmConfig
from assistant.engines.openai_llm import LlmServerError, LlmUnreachable, OpenAiEngine, trim_history
from assistant.engines.store import ModelStore
from assistant.reply.llm import LlmResponder
from tests.llm_server import free_port
from tests.test_responder import run_turns

QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]
SSE = {"content-type": "text/event-stream"}


def chunk(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return f"data: {json.dumps({'choices': [choice]})}\n\n".encode()


def reply_events(*pieces: str, done: bool = True) -> list[bytes]:
    return [chunk(p) for p in pieces] + ([chunk(finish="stop"), b"data: [DONE]\n\n"] if done else [])


class Body(httpx2.SyncByteStream):
    """A response body sent event by event, optionally failing after them; it records its closing."""

    def __init__(self, events: list[bytes], then: Exception | None = None) -> None:
        self.events, self.then = events, then
        self.sent = 0
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for event in self.events:
            self.sent += 1
            yield event
        if self.then:
            raise self.then

    def close(self) -> None:
        self.closed = True


class Server:
    """Scripted endpoints: /models lists ``models``; each chat request gets the next of ``replies``."""

    def __init__(self, *replies: Callable[[], httpx2.Response], models: tuple[str, ...] = ("tiny",)) -> None:
        self.replies = list(replies)
        self.models = models
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.url.path == "/v1/models":
            return httpx2.Response(200, json={"object": "list", "data": [{"id": m} for m in self.models]})
        return self.replies.pop(0)()

    def chat_bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests if r.url.path.endswith("/chat/completions")]


def engine(server: Server, **llm: object) -> OpenAiEngine:
    cfg = replace(LlmConfig(), backend="openai", base_url="http://llm.test/v1", **llm)  # type: ignore[arg-type]
    return OpenAiEngine(cfg, transport=httpx2.MockTransport(server), environ={"TEST_KEY": "sk-secret"})


def ok(*pieces: str, done: bool = True) -> Callable[[], httpx2.Response]:
    return lambda: httpx2.Response(200, headers=SSE, stream=Body(reply_events(*pieces, done=done)))


def test_streams_the_reply_and_sends_the_settings() -> None:
    server = Server(ok("Paris", " is", " the capital."))
    llm = engine(server, max_new_tokens=33, temperature=0.5, api_key_env="TEST_KEY")
    assert "".join(llm.stream(QUESTION)) == "Paris is the capital."
    body = server.chat_bodies()[0]
    assert body["model"] == "tiny" and body["stream"] is True  # the one model the server lists
    assert body["max_tokens"] == 33 and body["temperature"] == 0.5 and body["messages"] == QUESTION
    assert server.requests[-1].headers["authorization"] == "Bearer sk-secret"


def test_a_stream_closed_after_its_finish_reason_is_complete() -> None:
    """transformers serve ends with the finish_reason chunk and no [DONE]."""
    events = [chunk("Paris."), chunk(finish="stop")]
    server = Server(lambda: httpx2.Response(200, headers=SSE, stream=Body(events)))
    assert list(engine(server).stream(QUESTION)) == ["Paris."]


def test_should_stop_closes_the_stream_so_the_server_stops_generating() -> None:
    body = Body(reply_events(*[f" w{i}" for i in range(100)]))
    server = Server(lambda: httpx2.Response(200, headers=SSE, stream=body))
    got: list[str] = []
    for piece in engine(server).stream(QUESTION, should_stop=lambda: len(got) >= 3):
        got.append(piece)
    assert got == [" w0", " w1", " w2"]
    assert body.closed and body.sent < 10


def test_connection_refused_names_the_server() -> None:
    cfg = replace(LlmConfig(), backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(LlmUnreachable, match=r"cannot reach the LLM server at http://127\.0\.0\.1:\d+/v1"):
        list(OpenAiEngine(cfg).stream(QUESTION))


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:  # the kernel accepts the connection; nobody ever answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        cfg = replace(LlmConfig(), backend="openai", base_url=url, api_model="m", read_timeout_ms=300)
        with pytest.raises(LlmServerError, match="timed out"):
            list(OpenAiEngine(cfg).stream(QUESTION))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"error": {"message": "Invalid API key", "type": "auth"}},
            r"HTTP 401 .*api_key_env.*Invalid API key",
        ),
        (500, {"detail": "CUDA out of memory"}, r"HTTP 500 on /v1/chat/completions: CUDA out of memory"),
        (503, "upstream overloaded", r"HTTP 503 .*: upstream overloaded"),
    ],
)
def test_http_errors_carry_the_servers_message(status: int, body: object, expected: str) -> None:
    answer = {"json": body} if isinstance(body, dict) else {"text": body}
    server = Server(lambda: httpx2.Response(status, **answer))  # type: ignore[arg-type]
    with pytest.raises(LlmServerError, match=expected) as caught:
        list(engine(server).stream(QUESTION))
    assert caught.value.status == status


@pytest.mark.parametrize(
    ("events", "then", "expected"),
    [
        (reply_events("Paris", " is", done=False), None, "ended the stream before the reply was complete"),
        (
            reply_events("Paris", done=False),
            httpx2.RemoteProtocolError("peer closed connection"),
            "peer closed",
        ),
        ([chunk("Paris"), b"data: {not json\n\n"], None, "malformed event: '{not json'"),
        (
            [chunk("Paris"), b'data: {"error": "CB worker died"}\n\n'],
            None,
            "failed mid-reply: CB worker died",
        ),
    ],
)
def test_a_broken_stream_raises_after_what_it_said(
    events: list[bytes], then: Exception | None, expected: str
) -> None:
    server = Server(lambda: httpx2.Response(200, headers=SSE, stream=Body(events, then)))
    got: list[str] = []
    with pytest.raises(LlmServerError, match=expected):
        for piece in engine(server).stream(QUESTION):
            got.append(piece)
    assert got[0] == "Paris"


def test_an_answer_that_is_not_an_event_stream_is_an_error() -> None:
    server = Server(lambda: httpx2.Response(200, json={"choices": [{"message": {"content": "Paris"}}]}))
    with pytest.raises(LlmServerError, match="did not stream events"):
        list(engine(server).stream(QUESTION))


def test_failures_are_apologised_for_and_the_next_turn_answers(cfg: Config) -> None:
    server = Server(
        ok("Hello."),  # the warm-up
        lambda: httpx2.Response(500, json={"error": "boom"}),
        lambda: httpx2.Response(
            200, headers=SSE, stream=Body(reply_events("Par", done=False), httpx2.ReadError("reset"))
        ),
        ok("Paris is the capital."),
    )
    llm = engine(server)
    clauses, _, _ = run_turns(cfg, llm, ["One?", "Two?", "Three?"])  # type: ignore[arg-type]
    said = [(c.turn, c.source) for c in clauses]
    assert said == [(1, "error"), (2, "error"), (3, "llm")]
    assert clauses[-1].text == "Paris is the capital."
    assert [m["role"] for m in server.chat_bodies()[3]["messages"]][:2] == ["system", "user"]


def test_history_reaches_the_server(cfg: Config) -> None:
    server = Server(ok("Hello."), ok("Berlin is the capital."), ok("Madrid."))
    run_turns(cfg, engine(server), ["Capital of Germany?", "And of Spain?"])
    second = server.chat_bodies()[2]["messages"]
    assert second[1:] == [
        {"role": "user", "content": "Capital of Germany?"},
        {"role": "assistant", "content": "Berlin is the capital."},
        {"role": "user", "content": "And of Spain?"},
    ]


def test_warm_up_warns_when_the_server_is_down(caplog: pytest.LogCaptureFixture) -> None:
    cfg = replace(LlmConfig(), backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1")
    with caplog.at_level(logging.WARNING):
        OpenAiEngine(cfg).warm_up()  # starts anyway
    assert (
        "cannot reach the LLM server at http://127.0.0.1" in caplog.text and "starting anyway" in caplog.text
    )


def test_warm_up_warns_when_the_server_fails(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        engine(Server(lambda: httpx2.Response(503, json={"error": "model loading"}))).warm_up()
    assert "HTTP 503 on /v1/chat/completions: model loading; starting anyway" in caplog.text


def test_warm_up_fails_on_what_no_retry_fixes() -> None:
    with pytest.raises(LlmServerError, match=r"HTTP 401.*api_key_env.*bad key"):
        engine(Server(lambda: httpx2.Response(401, json={"error": {"message": "bad key"}}))).warm_up()
    with pytest.raises(LlmServerError, match=r"does not serve llm.api_model='big'; it serves: a, b"):
        engine(Server(models=("a", "b")), api_model="big").warm_up()
    with pytest.raises(LlmServerError, match=r"serves 2 models; choose one with llm.api_model: a, b"):
        engine(Server(models=("a", "b"))).warm_up()
    named = Server(ok("Hi"), models=("a", "b"))
    engine(named, api_model="b").warm_up()
    assert named.chat_bodies()[0]["model"] == "b" and named.chat_bodies()[0]["max_tokens"] == 1


def test_the_key_comes_from_the_environment_only() -> None:
    with pytest.raises(ConfigError, match="NAME of an environment variable"):
        engine(Server(), api_key_env="sk-abc123-not-a-name")
    with pytest.raises(ConfigError, match="llm.base_url must start with http"):
        OpenAiEngine(replace(LlmConfig(), backend="openai", base_url="gpu-box:8000/v1"))
    server = Server(ok("Hi"))
    list(engine(server, api_key_env=None).stream(QUESTION))  # no variable named: no key sent
    assert "authorization" not in server.requests[-1].headers


def test_history_is_trimmed_oldest_exchange_first() -> None:
    system, question = {"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}
    old = [{"role": "user", "content": "a" * 40}, {"role": "assistant", "content": "b" * 40}]
    new = [{"role": "user", "content": "c" * 4}, {"role": "assistant", "content": "d" * 4}]
    messages = [system, *old, *new, question]
    assert trim_history(messages, history_tokens=100) == messages
    assert trim_history(messages, history_tokens=10) == [system, *new, question]
    assert trim_history(messages, history_tokens=0) == [system, question]
    assert trim_history([question], history_tokens=0) == [question]


class NoLocalModels(ModelStore):
    def llm_path(self, *args: object, **kwargs: object) -> Path:
        raise AssertionError("backend openai must not load or convert a local model")


def test_the_app_builds_the_server_engine_for_backend_openai(cfg: Config, tmp_path: Path) -> None:
    server_cfg = replace(cfg, llm=replace(cfg.llm, backend="openai", base_url="http://llm.test/v1"))
    store = NoLocalModels(tmp_path)
    assert isinstance(build.llm_engine(server_cfg, store), OpenAiEngine)
    chain = build.responder_chain(server_cfg, build.llm_engine(server_cfg, store))
    llm_responder = chain.inner.inner  # type: ignore[attr-defined]  # deadline -> fast path -> LLM
    assert isinstance(llm_responder, LlmResponder) and isinstance(llm_responder.engine, OpenAiEngine)
