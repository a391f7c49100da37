"""The agent's actions as OpenAI tools (llm.tools): a scripted server (httpx2.MockTransport) streams
tool calls in pieces, as vLLM and OpenAI do; they go through the real chain and the real agent
(the allowlists, the spoken confirmation), with the desktop's commands recorded instead of run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest

from assistant import build
from assistant.agent.actions import NOTHING_TO_CONFIRM, ActionResponder
from assistant.agent.desktop import Desktop
from assistant.agent.run import Agent
from assistant.agent.timers import Scheduler
from assistant.agent.tools import SPECS, offered, schemas
from assistant.cli.ask import answer
from assistant.config import Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.engines import ToolCall
from assistant.core.events import Action
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.engines.openai_llm import LlmServerError, OpenAiEngine
from assistant.engines.openai_tools import MAX_TOOL_CALL_CHARS
from assistant.reply.llm import LlmResponder
from tests.fakes import FakeLlm, FakeRecognizer, FakeSynth, start_stage
from tests.test_agent import AgentHarness, RecordingRunner
from tests.test_openai_llm import SSE, Body, Server, chunk, ok

QUESTION = [{"role": "user", "content": "Could you pop the calculator open for me?"}]


def call_events(*calls: tuple[str, str], text: str = "", pieces: int = 3) -> list[bytes]:
    """A reply that calls ``calls`` (name, JSON arguments), the arguments split into ``pieces``
    fragments, after ``text``; OpenAI's streaming shape: id and name first, then the arguments."""
    out = [chunk(text)] if text else []
    for index, (name, arguments) in enumerate(calls):
        head = {
            "index": index,
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        out.append(_delta({"tool_calls": [head]}))
        step = max(1, -(-len(arguments) // pieces))
        for i in range(0, len(arguments), step):
            out.append(
                _delta({"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + step]}}]})
            )
    return [*out, _delta({}, finish="tool_calls"), b"data: [DONE]\n\n"]


def _delta(delta: dict, finish: str | None = None) -> bytes:
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}\n\n".encode()


def calls(*c: tuple[str, str], text: str = "") -> Callable[[], httpx2.Response]:
    return lambda: httpx2.Response(200, headers=SSE, stream=Body(call_events(*c, text=text)))


class ToolServer(Server):
    """The scripted server; the warm-up request (one token) is answered without using a reply."""

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/chat/completions") and json.loads(request.content)["max_tokens"] == 1:
            return ok("Hi")()
        return super().__call__(request)

    def chat_bodies(self) -> list[dict]:
        return [b for b in super().chat_bodies() if b["max_tokens"] != 1]


def openai_cfg(cfg: Config, tmp_path: Path, **llm: object) -> Config:
    return replace(
        cfg,
        llm=replace(cfg.llm, backend="openai", base_url="http://llm.test/v1", **llm),  # type: ignore[arg-type]
        agent=replace(
            cfg.agent,
            wake_word="none",
            notes_file=tmp_path / "notes.txt",
            apps={"calculator": "gnome-calculator"},
        ),
    )


def server_engine(cfg: Config, server: Server) -> OpenAiEngine:
    return OpenAiEngine(cfg.llm, transport=httpx2.MockTransport(server))


# -- the protocol ----------------------------------------------------------------------------------


def test_streamed_tool_calls_are_put_together_and_the_tools_are_sent(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    server = ToolServer(calls(("open_app", '{"app": "calculator"}'), ("get_time", ""), text="Sure."))
    tools = schemas(c.agent)
    got = list(server_engine(c, server).stream_tools(QUESTION, tools))
    assert got == [
        "Sure.",
        ToolCall("open_app", '{"app": "calculator"}', "call_0"),
        ToolCall("get_time", "", "call_1"),
    ]
    body = server.chat_bodies()[0]
    assert body["tools"] == tools and body["tool_choice"] == "auto"
    app = next(t for t in tools if t["function"]["name"] == "open_app")["function"]["parameters"]
    assert app["properties"]["app"]["enum"] == ["calculator"] and app["additionalProperties"] is False


def test_plain_stream_offers_no_tools_and_a_refusing_server_is_asked_again_without(
    cfg: Config, tmp_path: Path
) -> None:
    c = openai_cfg(cfg, tmp_path)
    refusal = {"error": {"message": '"auto" tool choice requires --enable-auto-tool-choice'}}
    server = ToolServer(lambda: httpx2.Response(400, json=refusal), ok("Paris."), ok("Rome."), ok("Bern."))
    llm = server_engine(c, server)
    assert list(llm.stream_tools(QUESTION, schemas(c.agent))) == ["Paris."]
    assert list(llm.stream_tools(QUESTION, schemas(c.agent))) == ["Rome."]  # not offered again
    assert list(llm.stream(QUESTION)) == ["Bern."]
    assert ["tools" in b for b in server.chat_bodies()] == [True, False, False, False]


def test_malformed_or_runaway_tool_calls(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    bad = [_delta({"tool_calls": "rm -rf /"}), _delta({}, finish="tool_calls")]
    server = ToolServer(lambda: httpx2.Response(200, headers=SSE, stream=Body(bad)))
    with pytest.raises(LlmServerError, match="malformed tool calls"):
        list(server_engine(c, server).stream_tools(QUESTION, schemas(c.agent)))
    huge = json.dumps({"text": "a" * 100_000})
    server = ToolServer(calls(("type_text", huge)))
    (got,) = server_engine(c, server).stream_tools(QUESTION, schemas(c.agent))
    assert isinstance(got, ToolCall) and len(got.arguments) == MAX_TOOL_CALL_CHARS


# -- through the agent -----------------------------------------------------------------------------


def test_a_tool_call_is_proposed_and_runs_after_a_spoken_yes(cfg: Config, tmp_path: Path) -> None:
    """`assistant agent` as agent/run.py wires it, its LLM on the scripted server."""
    c = openai_cfg(cfg, tmp_path)
    server = ToolServer(
        calls(("open_app", '{"app": "calculator"}')),
        calls(("set_volume", '{"command": "down"}')),
        calls(("open_app", '{"app": "../../bin/sh"}')),
        ok("Paris is the capital."),
    )
    h = ToolHarness(c, server)
    try:
        assert h.say("Hey assistant, could you pop the calculator open?") == [
            "Open calculator? Say yes to confirm."
        ]
        assert h.runner.spawned == []  # proposed, not run
        assert h.say("Yes.") == ["Opening calculator."]
        assert h.runner.spawned == [["gnome-calculator"]]  # the allowlist's command, not the model's
        assert h.say("Hey assistant, make it a bit quieter") == ["Done."]  # volume: no confirmation
        assert h.runner.ran == [["pactl", "set-sink-volume", "@DEFAULT_SINK@", "-10%"]]
        assert h.say("Hey assistant, I'd like a root shell.") == [
            "Sorry, I could not make sense of that request."
        ]
        assert h.say("Yes.") == [NOTHING_TO_CONFIRM]  # the refused call proposed nothing
        assert h.say("Hey assistant, what is the capital of France?") == ["Paris is the capital."]
        assert len(h.runner.spawned) == 1 and len(h.runner.ran) == 1
        got = [(e.action, e.outcome, e.via) for e in h.log.of(Action)]
        assert got == [
            ("open_app", "proposed", "llm"),
            ("open_app", "done", "llm"),
            ("volume", "done", "llm"),
            ("open_app", "refused", "llm"),
        ]
        assert all("tools" in b for b in server.chat_bodies())
    finally:
        h.close()


HOSTILE = [
    ("run_shell", '{"command": "rm -rf ~"}'),  # not a tool it was offered
    ("open_app", '{"app": "calculator"'),  # not JSON
    ("open_app", '["calculator"]'),  # not an object
    ("set_timer", '{"seconds": "300"}'),  # a string for a number
    ("set_timer", '{"seconds": true}'),  # a bool for a number
    ("set_timer", '{"seconds": 1e308}'),  # out of range
    ("set_timer", '{"seconds": NaN}'),  # not finite
    ("open_app", '{"app": "calculator", "argv": ["sh", "-c", "id"]}'),  # an argument it does not take
    ("open_app", "{}"),  # missing the app
    ("type_text", json.dumps({"text": "a" * 501})),  # too long
    ("take_note", json.dumps({"text": "x" * 100_000})),  # far too long (cut in the engine)
    ("type_text", '{"text": "ls; rm -rf ~"}'),  # shell characters
    ("type_text", '{"text": "echo $(id)"}'),
    ("type_text", '{"text": "cat ../../etc/passwd"}'),  # a path that climbs
    ("type_text", '{"text": "sudo reboot\\n"}'),  # a Return
    ("open_app", '{"app": "../../bin/sh"}'),  # path traversal
    ("open_app", '{"app": "calculator; rm -rf ~"}'),  # shell characters
    ("open_app", '{"app": "terminal"}'),  # not on the allowlist
    ("open_url", '{"url": "javascript:alert(1)"}'),  # schemes
    ("open_url", '{"url": "file:///etc/passwd"}'),
    ("open_url", '{"url": "ftp://example.com/x"}'),
    ("open_url", '{"url": "https://example.com:8080/admin"}'),  # a port
    ("open_url", '{"url": "example.com/../../etc"}'),
    ("media", '{"command": "stop; reboot"}'),  # not one of the choices
    ("set_volume", '{"command": "set"}'),  # set without a level
]


@pytest.mark.parametrize("name, arguments", HOSTILE)
def test_hostile_tool_calls_are_refused_out_loud_and_run_nothing(
    cfg: Config, tmp_path: Path, name: str, arguments: str, caplog: pytest.LogCaptureFixture
) -> None:
    c = openai_cfg(cfg, tmp_path)
    runner = RecordingRunner()
    server = ToolServer(calls((name, arguments)))
    got = answer(c, server_engine(c, server), "Do the thing.", agent=True, desktop=Desktop(runner))
    assert got.reply.startswith("Sorry") and not got.reply.endswith("Say yes to confirm."), got.reply
    assert runner.ran == [] and runner.spawned == [] and not (tmp_path / "notes.txt").exists()
    assert got.source == "llm" and got.action is not None
    assert any("refused" in r.getMessage() for r in caplog.records), "the reason is logged"


def test_the_same_calls_with_good_arguments_do_act(cfg: Config, tmp_path: Path) -> None:
    """The hostile table's tools do work when called as they should be (no test passes by refusing all)."""
    c = openai_cfg(cfg, tmp_path)
    runner = RecordingRunner()
    for name, arguments, reply in [
        ("set_timer", '{"seconds": 300}', "Timer set for 5 minutes."),
        ("take_note", '{"text": "buy milk & eggs"}', "Noted."),
        ("open_url", '{"url": "https://Example.com/news/"}', "Open example.com/news in the browser?"),
        ("type_text", '{"text": "Hello, world!"}', "Type: Hello, world!?"),
        ("media", '{"command": "next"}', "Done."),
        ("set_volume", '{"command": "set", "level": 40}', "Done."),
    ]:
        got = answer(
            c,
            server_engine(c, ToolServer(calls((name, arguments)))),
            "Hm.",
            agent=True,
            desktop=Desktop(runner),
        )
        assert got.reply.startswith(reply), (name, got.reply)
        assert (got.source, got.action) == ("llm", SPECS[name].intent)
    assert "buy milk & eggs" in (tmp_path / "notes.txt").read_text()
    assert runner.ran[-1] == ["pactl", "set-sink-volume", "@DEFAULT_SINK@", "40%"]


def test_ask_dry_run_reports_the_action_the_model_called(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    runner = RecordingRunner()

    def dry_run(call: tuple[str, str], text: str):  # type: ignore[no-untyped-def]
        engine = server_engine(c, ToolServer(calls(call)))
        return answer(c, engine, text, agent=True, dry_run=True, desktop=Desktop(runner))

    got = dry_run(("open_app", '{"app": "calculator"}'), "Could you pop the calculator open?")
    out = json.loads(got.as_json())
    assert (out["source"], out["intent"], out["action"], out["slots"]) == (
        "llm",
        None,
        "open_app",
        {"app": "calculator"},
    )
    assert out["reply"] == "Open calculator? Say yes to confirm." and runner.spawned == []
    got = dry_run(("set_timer", '{"seconds": 90}'), "Ninety seconds please.")
    assert (got.action, got.reply) == ("timer", "Set a timer for 1 minute 30 seconds? Say yes to confirm.")


def test_a_model_that_answers_in_text_still_works(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    server = ToolServer(ok("Paris", " is the capital."))
    got = answer(c, server_engine(c, server), "What is the capital of France?", agent=True)
    assert (got.source, got.action, got.reply) == ("llm", None, "Paris is the capital.")
    assert "tools" in server.chat_bodies()[0]


def test_tools_are_offered_only_to_a_server_model_in_the_agent(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    assert offered(replace(c, llm=replace(c.llm, backend="local"))) == []  # SmolLM2 stays on the matcher
    assert offered(replace(c, llm=replace(c.llm, tools="off"))) == []
    names = {t["function"]["name"] for t in offered(replace(c, agent=replace(c.agent, actions=("timer",))))}
    assert names == {"set_timer", "cancel_timers"}  # only what agent.actions allows
    server = ToolServer(ok("Paris."))
    answer(c, server_engine(c, server), "What is the capital of France?")  # the conversation: no agent
    assert "tools" not in server.chat_bodies()[0]
    # a local model (no stream_tools) handed tools just talks
    llm = FakeLlm("Paris.")
    chain = build.responder_chain(c, llm, tools=schemas(c.agent))
    chain.setup()
    reply = chain.open(time.monotonic())
    reply.ask(QUESTION)
    assert reply.next(5).text == "Paris."  # type: ignore[union-attr]


def test_a_speculative_reply_that_is_dropped_acts_on_nothing(cfg: Config, tmp_path: Path) -> None:
    c = openai_cfg(cfg, tmp_path)
    runner = RecordingRunner()
    server = ToolServer(calls(("set_volume", '{"command": "mute"}')))
    llm = LlmResponder(c.llm, server_engine(c, server), schemas(c.agent))
    act = ActionResponder(llm, c.agent, Desktop(runner), Scheduler())
    act.prefetch([{"role": "user", "content": "Shh"}])
    stream = llm._prefetched[1]  # type: ignore[index]
    while stream.next(5) is not None:  # the call has come back and sits in the dropped reply
        pass
    act.prefetch(None)
    assert runner.ran == [] and runner.spawned == []


class ToolHarness(AgentHarness):
    """AgentHarness's turns, on the responder stage `assistant agent` builds (agent/run.py)."""

    def __init__(self, cfg: Config, server: Server) -> None:
        self.events, self.log = EventBus(), EventLog()
        self.events.subscribe(self.log)
        self.scope = TurnScope()
        self.ctx = StageContext(self.scope, self.events, threading.Event())
        self.runner = RecordingRunner()
        agent = Agent(cfg, self.events, Desktop(self.runner))
        engines = build.Engines(FakeRecognizer(), server_engine(cfg, server), FakeSynth())
        self.stage = agent.speaking(engines, [])[0]
        self.policy = agent.policy
        self.stage.setup(self.ctx)
        self.inbox, self.outbox, self.thread = start_stage(self.stage, self.ctx)
        self.turn = 0
