"""`assistant ask`: one turn of the responder chain on text. Scripted LLMs for the plumbing; one test
with the real model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.agent.desktop import Desktop
from assistant.cli.ask import answer
from assistant.cli.main import main
from assistant.config import Config
from tests.fakes import FakeLlm
from tests.test_agent import RecordingRunner

KEYS = {"reply", "source", "intent", "slots", "action", "latency_ms"}


class HangingLlm(FakeLlm):
    def stream(self, messages, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:  # type: ignore[no-untyped-def]
        while not should_stop():
            time.sleep(0.01)
        yield from ()


def agent_cfg(cfg: Config, tmp_path: Path) -> Config:
    return replace(
        cfg,
        agent=replace(cfg.agent, notes_file=tmp_path / "notes.txt", apps={"calculator": "gnome-calculator"}),
    )


def test_a_fast_path_question_is_answered_without_the_llm(cfg: Config) -> None:
    llm = FakeLlm()
    got = answer(cfg, llm, "What time is it?")
    assert (got.source, got.intent, got.action) == ("intent", "time", None)
    assert got.reply.startswith("It's ") and llm.prompts == []
    assert {"match", "first_clause", "total"} <= set(got.latency_ms)


def test_a_question_that_mentions_the_time_goes_to_the_llm(cfg: Config) -> None:
    llm = FakeLlm()
    got = answer(cfg, llm, "What time does the bank open?")
    assert (got.source, got.intent, got.slots) == ("llm", None, {})
    assert got.reply == "Paris is the capital, of course. It is lovely."
    assert llm.prompts[0][-1] == {"role": "user", "content": "What time does the bank open?"}
    assert llm.prompts[0][0]["role"] == "system"


def test_a_hanging_llm_ends_in_the_deadline_fallback(cfg: Config) -> None:
    # a generous gap between the two deadlines: on a busy machine the acknowledgement must not be
    # overtaken by the answer deadline (this test is about the hang, not the timing)
    quick = replace(cfg, deadline=replace(cfg.deadline, first_audio_ms=100, answer_ms=1500))
    got = answer(quick, HangingLlm(), "Why is the sky blue?")
    assert got.source == "fallback" and got.reply == cfg.deadline.apology_timeout
    assert "ack" in got.latency_ms


def test_without_agent_commands_are_questions_for_the_llm(cfg: Config) -> None:
    llm = FakeLlm()
    got = answer(cfg, llm, "Open the calculator.")
    assert got.source == "llm" and got.action is None and len(llm.prompts) == 1


def test_a_dry_run_names_the_action_and_runs_nothing(cfg: Config, tmp_path: Path) -> None:
    runner = RecordingRunner()
    c = agent_cfg(cfg, tmp_path)
    for text, action, slots in [
        ("Open the calculator.", "open_app", {"app": "calculator"}),
        ("Set the volume to 50%.", "volume", {"command": "set", "level": 50.0}),
        ("Take a note: buy milk.", "note", {"what": "buy milk"}),
        ("Set a timer for an hour and a half.", "timer", {"seconds": 5400.0}),
    ]:
        got = answer(c, FakeLlm(), text, agent=True, dry_run=True, desktop=Desktop(runner))
        assert (got.source, got.intent, got.slots, got.action) == ("intent", action, slots, action), text
        assert got.reply.endswith("Say yes to confirm."), got.reply
    assert runner.ran == [] and runner.spawned == [] and not (tmp_path / "notes.txt").exists()
    got = answer(c, FakeLlm(), "What's the date today?", agent=True, dry_run=True, desktop=Desktop(runner))
    assert got.reply.startswith("Today is ") and got.action == "date"


def test_agent_actions_run_and_refusals_are_spoken(cfg: Config, tmp_path: Path) -> None:
    runner = RecordingRunner()
    c = agent_cfg(cfg, tmp_path)
    got = answer(c, FakeLlm(), "Volume down.", agent=True, desktop=Desktop(runner))
    assert (got.reply, got.action) == ("Done.", "volume")
    assert runner.ran == [["pactl", "set-sink-volume", "@DEFAULT_SINK@", "-10%"]]
    got = answer(c, FakeLlm(), "Open Spotify.", agent=True, desktop=Desktop(runner))
    assert got.reply.startswith("Sorry, spotify is not on my list") and runner.spawned == []
    llm = FakeLlm()
    got = answer(c, llm, "Write a poem about cats.", agent=True, desktop=Desktop(runner))
    assert got.source == "llm" and got.action is None and len(llm.prompts) == 1


def test_the_cli_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--json", "What is today's date?"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS and out["source"] == "intent" and out["intent"] == "date"
    assert main(["ask", "--agent", "--dry-run", "Open example.com"]) == 0
    assert capsys.readouterr().out.strip() == "Open example.com in the browser? Say yes to confirm."


@pytest.mark.real
def test_the_real_llm_answers_a_question_about_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ask", "--json", "What is the time complexity of quicksort?"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == KEYS and out["source"] in ("llm", "fallback") and out["intent"] is None
    assert out["reply"] and not out["reply"].startswith("It's ")
