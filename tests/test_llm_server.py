"""The assistant on a real OpenAI-compatible server: ``transformers serve`` with the shipped model,
started on loopback by these tests (offline). It answers a recorded conversation end to end; a
barge-in closes the stream and the server stops generating; a server killed mid-reply costs that
turn an apology, and once it is back the next turn is answered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.cli.ask import answer
from assistant.cli.main import main
from assistant.config import Config
from assistant.core.bus import EventBus
from assistant.core.messages import End, ReplyText, SpeechEnded, Transcript
from assistant.core.stage import StageContext
from assistant.core.turn import TurnScope
from assistant.engines.openai_llm import OpenAiEngine
from assistant.engines.store import ModelStore
from assistant.reply.deadline import DeadlineResponder
from assistant.reply.fastpath import FastPathResponder
from assistant.reply.llm import LlmResponder
from assistant.stages.responder import ResponderStage
from tests.fakes import start_stage
from tests.llm_server import TransformersServer
from tests.speech.make_speech import render, reply_mentions

pytestmark = pytest.mark.real
log = logging.getLogger(__name__)

# transformers serve takes a whole generation config per request: this one cannot stop before 2000
# tokens (a minute and more on 2 cores), so only a closed stream can end it in a test's time.
ENDLESS = {
    "generation_config": json.dumps({"min_new_tokens": 2000, "max_new_tokens": 2000, "eos_token_id": 2})
}


# The served model: these tests are about the OpenAI-compatible client (streaming, cancellation,
# failures, tools offered), so the smallest real model (scripts/setup.sh --dev prepares it): fp32 on
# one thread, the default Qwen2.5-0.5B reads the tool schemas' long prompt 4x slower, and its chat
# format has tools, which it calls badly ("What is the capital of France?" -> a "get date" call).
SERVED_MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersServer]:
    model_dir = ModelStore(cfg.models.cache_dir).llm_path(SERVED_MODEL)
    # one torch thread: two, on 2 cores shared with recognition and synthesis, were 4x slower
    # (bench/llm_server.py), and these tests must not depend on how busy the machine is
    with TransformersServer(model_dir, tmp_path_factory.mktemp("llm") / "server.log", threads=1) as srv:
        yield srv


@pytest.fixture
def live(server: TransformersServer) -> TransformersServer:
    """The module's server, restarted if an earlier test left it killed."""
    if server.process is None or server.process.poll() is not None:
        server.start()
    return server


def served(cfg: Config, server: TransformersServer, **llm: object) -> Config:
    return replace(cfg, llm=replace(cfg.llm, backend="openai", base_url=server.base_url, **llm))  # type: ignore[arg-type]


def long_replies(cfg: Config, server: TransformersServer) -> tuple[Config, OpenAiEngine]:
    """A config and engine whose first reply would run for minutes; deadlines that let it (these
    tests are about cancellation and failure, not latency)."""
    cfg = served(cfg, server, max_new_tokens=2000)
    cfg = replace(cfg, deadline=replace(cfg.deadline, answer_ms=30000, reply_ms=60000))
    return cfg, OpenAiEngine(cfg.llm, extra_body=ENDLESS)


def test_the_assistant_answers_a_recorded_conversation_through_the_server(
    cfg: Config, live: TransformersServer, speech_dir: Path, tmp_path: Path
) -> None:
    wav, report = render("multi_france_spider", "piper", speech_dir), tmp_path / "report.json"
    sets = ["llm.backend=openai", f"llm.base_url={live.base_url}", "deadline.answer_ms=60000"]
    # generous deadlines: on 2 busy cores this is about answers, not latency (bench/llm_server.py)
    sets += ["deadline.first_audio_ms=10000", "deadline.reply_ms=60000"]
    args = ["respond", str(wav), "--fast", "--out", str(tmp_path / "r.wav"), "--report", str(report), "-q"]
    requests_before = live.log_text().count("POST /v1/chat/completions")
    assert main(args + [a for s in sets for a in ("--set", s)]) == 0
    turns = json.loads(report.read_text())["turns"]
    assert [t["transcript"] for t in turns] == [
        "What is the capital of France?",
        "How many legs does a spider have?",
    ]
    assert reply_mentions(turns[0]["reply"], ("paris",)), turns[0]["reply"]
    assert reply_mentions(turns[1]["reply"], ("eight", "8")), turns[1]["reply"]
    assert not any(t["fallback"] for t in turns)
    assert live.log_text().count("POST /v1/chat/completions") >= requests_before + 2  # it was the server


def test_the_agent_offers_its_actions_as_tools_and_the_real_server_takes_them(
    cfg: Config, live: TransformersServer, tmp_path: Path
) -> None:
    """transformers serve accepts the agent's tool schemas (no HTTP 400, so no asking again without
    them); SmolLM2's chat format has no tools, so it answers in text and the turn goes on as before."""
    c = served(cfg, live)
    c = replace(c, deadline=replace(c.deadline, first_audio_ms=10000, answer_ms=60000, reply_ms=60000))
    c = replace(c, agent=replace(c.agent, notes_file=tmp_path / "notes.txt"))
    engine = OpenAiEngine(c.llm)
    got = answer(c, engine, "What is the capital of France?", agent=True)
    assert not engine.tools_refused
    assert got.source == "llm" and got.action is None and reply_mentions(got.reply, ("paris",)), got


class Conversation:
    """The responder stage with the real chain (deadline -> fast path -> LLM) on the server's engine,
    driven turn by turn as the recogniser and the barge-in controller would."""

    def __init__(self, cfg: Config, engine: OpenAiEngine) -> None:
        self.scope, events = TurnScope(), EventBus()
        self.ctx = StageContext(self.scope, events, threading.Event())
        chain = DeadlineResponder(FastPathResponder(LlmResponder(cfg.llm, engine=engine)), cfg.deadline)
        self.stage = ResponderStage(chain, cfg.llm.system_prompt)
        self.stage.setup(self.ctx)
        self.inbox, self.outbox, self.thread = start_stage(self.stage, self.ctx)

    def ask(self, turn: int, text: str) -> None:
        now = time.monotonic()
        ended = SpeechEnded(turn, float(turn), t_decided=now, t=now)
        self.ctx.events.emit(ended)
        self.inbox.put(ended)
        self.inbox.put(Transcript(turn, text, True, ended, now))

    def next_clause(self, timeout: float = 30) -> ReplyText:
        msg = self.outbox.get(timeout=timeout)
        assert isinstance(msg, ReplyText), msg
        return msg

    def first_answer(self) -> list[ReplyText]:
        """Clauses up to the first one from the LLM (the deadline may say "Hmm." first)."""
        heard = [self.next_clause()]
        while heard[-1].source != "llm":
            heard.append(self.next_clause())
        return heard

    def rest_of_turn(self, turn: int) -> list[ReplyText]:
        clauses = []
        while True:
            msg = self.next_clause()
            if msg.turn == turn and msg.final:
                return clauses
            if msg.turn == turn:
                clauses.append(msg)

    def close(self) -> None:
        self.inbox.put(End())
        self.thread.join(5)


def cpu_rate(server: TransformersServer, seconds: float) -> float:
    """CPU seconds per second the server uses over the next ``seconds``."""
    start = server.cpu_seconds()
    time.sleep(seconds)
    return (server.cpu_seconds() - start) / seconds


def test_barge_in_closes_the_stream_and_the_server_stops_generating(
    cfg: Config, live: TransformersServer
) -> None:
    long_cfg, engine = long_replies(cfg, live)
    talk = Conversation(long_cfg, engine)
    asked = time.monotonic()
    talk.ask(1, "Tell me about dragons.")
    heard = talk.first_answer()
    assert heard[-1].turn == 1
    first_s, threads_then = time.monotonic() - asked, live.threads_state()
    generating = cpu_rate(live, 1.0)
    talk.scope.interrupt(2)  # the user speaks over the reply
    time.sleep(0.5)  # the next token tells the engine; the server notices the closed socket
    after = cpu_rate(live, 1.5)
    log.info("server CPU while generating %.2f s/s, after the barge-in %.2f s/s", generating, after)
    why = (
        f"server CPU {generating:.2f}/s -> {after:.2f}/s; the answer's first clause {first_s:.2f} s "
        f"after the question: {[(c.source, c.text) for c in heard]}; server threads then: "
        f"{threads_then}; its log ends:\n{live.log_text()[-1500:]}"
    )
    assert generating > 0.3 and after < generating / 4, why
    # the server's single inference thread is free again: an unstopped reply would hold it a minute
    engine.extra_body = {}
    start = time.monotonic()
    talk.ask(2, "What is the capital of France?")
    answer = " ".join(c.text for c in talk.rest_of_turn(2) if c.source == "llm")
    assert reply_mentions(answer, ("paris",)) and time.monotonic() - start < 20, answer
    talk.close()


def test_a_server_killed_mid_reply_costs_apologies_until_it_is_back(
    cfg: Config, live: TransformersServer
) -> None:
    long_cfg, engine = long_replies(cfg, live)
    talk = Conversation(long_cfg, engine)
    talk.ask(1, "Tell me about dragons.")
    heard = talk.first_answer()
    live.kill()  # mid-reply: the stream is cut without a goodbye
    heard += talk.rest_of_turn(1)
    log.info("killed mid-reply, the user heard: %s", [(c.source, c.text) for c in heard])
    sources = [c.source for c in heard]
    assert "llm" in sources and sources[-1] == "error", sources
    assert heard[-1].text == cfg.deadline.apology_error
    engine.extra_body = {}
    talk.ask(2, "What is the capital of France?")  # while it is down: refused
    assert [c.source for c in talk.rest_of_turn(2)][-1] == "error"
    live.start()  # same port; the engine knows nothing of it
    talk.ask(3, "What is the capital of France?")
    answer = " ".join(c.text for c in talk.rest_of_turn(3) if c.source == "llm")
    log.info("after the restart: %r", answer)
    assert reply_mentions(answer, ("paris",)), answer
    talk.close()
