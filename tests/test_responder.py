"""The responder: streaming clauses, the deadline fallback, the fast path, history and the prefix cache."""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from assistant.config import BargeInConfig, Config
from assistant.core.bus import EventBus, EventLog
from assistant.core.events import (
    Action,
    AudioOut,
    BargeIn,
    Event,
    Interruption,
    ReplyClause,
    ReplyDone,
    ReplyPaused,
    ReplySkipped,
    SpeechStarted,
    Stopped,
)
from assistant.core.messages import End, Message, ReplyText, SpeechEnded, Transcript
from assistant.core.stage import StageContext, run_stage
from assistant.core.turn import TurnScope
from assistant.reply.deadline import DeadlineResponder, acknowledgements
from assistant.reply.fastpath import FastPathResponder, quick_answer
from assistant.reply.llm import LlmResponder
from assistant.stages.hold import HeldStreamer
from assistant.stages.policy import AlwaysAddressed, InterruptionRules
from assistant.stages.responder import ResponderStage
from tests.fakes import FakeLlm, fail_the_test


class RaisingLlm(FakeLlm):
    """Fails on the turns listed in ``fail_on`` (1-based), works on the others."""

    def __init__(self, fail_on: set[int]) -> None:
        super().__init__()
        self.fail_on = fail_on

    def stream(self, messages, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:  # type: ignore[no-untyped-def]
        if len(self.prompts) + 1 in self.fail_on:
            self.prompts.append(messages)
            raise RuntimeError("CUDA out of memory (scripted)")
        yield from super().stream(messages, should_stop)


class HangingLlm(FakeLlm):
    def stream(self, messages, should_stop: Callable[[], bool] = lambda: False) -> Iterator[str]:  # type: ignore[no-untyped-def]
        while not should_stop():
            time.sleep(0.01)
        yield from ()


def run_turns(
    cfg: Config,
    llm: FakeLlm,
    questions: list[str],
    scope: TurnScope | None = None,
    asr_s: float = 0.0,
    **deadline: int,
) -> tuple[list[ReplyText], EventLog, ResponderStage]:
    """Feed final transcripts (each 'ending' now) through a responder stage; collect its output."""
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    ctx = StageContext(scope or TurnScope(), events, threading.Event())
    chain = DeadlineResponder(
        FastPathResponder(LlmResponder(cfg.llm, engine=llm)), replace(cfg.deadline, **deadline)
    )
    stage = ResponderStage(chain, cfg.llm.system_prompt)
    stage.setup(ctx)
    inbox: queue.Queue[Message] = queue.Queue()
    outbox: queue.Queue[Message] = queue.Queue()
    thread = threading.Thread(target=run_stage, args=(stage, inbox, outbox, ctx, fail_the_test), daemon=True)
    thread.start()
    for turn, text in enumerate(questions, 1):
        now = time.monotonic()
        ended = SpeechEnded(turn, float(turn), t_decided=now, t=now)
        events.emit(ended)  # as the VAD does
        inbox.put(ended)  # the recogniser forwards the end of speech before it transcribes
        time.sleep(asr_s)
        inbox.put(Transcript(turn, text, True, ended, time.monotonic()))
        while True:  # one turn at a time, like a conversation
            msg = outbox.get(timeout=30)
            if isinstance(msg, ReplyText) and msg.final:
                break
    inbox.put(End())
    thread.join(5)
    replies = log.of(ReplyClause)
    return replies, log, stage  # type: ignore[return-value]


def since_end(log: EventLog, event_kind: type[Event], turn: int, **match: str) -> float:
    end = log.first(SpeechEnded, turn)
    found = [e for e in log.of(event_kind, turn) if all(getattr(e, k) == v for k, v in match.items())]
    assert end is not None and found, (event_kind, match)
    return found[0].t - end.t


def test_deadline_acknowledges_in_time_and_the_real_answer_follows(cfg: Config) -> None:
    clauses, log, _ = run_turns(cfg, FakeLlm(ttft_s=1.0), ["Tell me something."], first_audio_ms=300)
    assert [c.source for c in clauses][:2] == ["ack", "llm"]
    assert clauses[0].text == acknowledgements(cfg.deadline)[0]
    ack_at = since_end(log, ReplyClause, 1, source="ack")
    assert 0.2 <= ack_at <= 0.6, f"acknowledged {ack_at * 1000:.0f} ms after the end of speech"
    assert since_end(log, ReplyClause, 1, source="llm") >= 0.95
    assert log.first(ReplyDone, 1).text == "Paris is the capital, of course. It is lovely."  # type: ignore[union-attr]


def test_the_acknowledgement_waits_for_the_transcript_when_recognition_is_slow(cfg: Config) -> None:
    """The deadline runs from the end of speech, but a filler needs a question: the transcript
    might turn out empty (a cough), and then nothing at all should be said."""
    clauses, log, _ = run_turns(
        cfg, FakeLlm(ttft_s=1.0), ["Tell me something."], asr_s=0.8, first_audio_ms=300
    )
    assert [c.source for c in clauses][:2] == ["ack", "llm"]
    assert 0.75 <= since_end(log, ReplyClause, 1, source="ack") <= 1.5


def test_no_acknowledgement_before_the_question_is_known(cfg: Config) -> None:
    """Past first_audio_ms with no transcript yet: silence (it may turn out empty, and a reply with
    an empty transcript is cancelled unasked); once asked, the filler comes at once."""
    chain = DeadlineResponder(LlmResponder(cfg.llm, engine=FakeLlm(ttft_s=1.0)), cfg.deadline)
    reply = chain.open(time.monotonic() - cfg.deadline.first_audio_ms / 1000 - 0.5)  # ack overdue
    with pytest.raises(queue.Empty):
        reply.next(0.05)
    reply.ask([{"role": "user", "content": "Hello?"}])
    clause = reply.next(0.05)
    assert clause is not None and clause.source == "ack"
    reply.cancel()


def test_the_acknowledgements_take_turns_and_stay_out_of_the_history(cfg: Config) -> None:
    deadline = replace(cfg.deadline, acknowledgements=("Hmm.", "Let's see."))
    cfg = replace(cfg, deadline=deadline)
    clauses, _, stage = run_turns(cfg, FakeLlm(ttft_s=0.5), ["One?", "Two?"], first_audio_ms=200)
    assert [c.text for c in clauses if c.source == "ack"] == ["Hmm.", "Let's see."]
    assert all("Hmm" not in m["content"] for m in stage.messages("Three?"))


def test_no_acknowledgement_when_the_answer_is_fast(cfg: Config) -> None:
    clauses, _, _ = run_turns(cfg, FakeLlm(ttft_s=0.0), ["Tell me something."], first_audio_ms=500)
    assert {c.source for c in clauses} == {"llm"}


def test_a_raising_llm_gives_an_apology_and_the_next_turn_works(cfg: Config) -> None:
    clauses, log, _ = run_turns(cfg, RaisingLlm(fail_on={1}), ["First?", "Second?"])
    turn1 = [c for c in clauses if c.turn == 1]
    assert [c.source for c in turn1] == ["error"]
    assert turn1[0].text == cfg.deadline.apology_error
    assert [c.source for c in clauses if c.turn == 2] == ["llm", "llm", "llm"]


def test_a_hanging_llm_gives_up_with_an_apology_at_answer_ms(cfg: Config) -> None:
    clauses, log, _ = run_turns(cfg, HangingLlm(), ["Anyone there?"], first_audio_ms=200, answer_ms=800)
    assert [c.source for c in clauses] == ["ack", "timeout"]
    assert 0.7 <= since_end(log, ReplyClause, 1, source="timeout") <= 1.5


def test_reply_ms_ends_a_long_reply_at_a_clause_boundary(
    cfg: Config, caplog: pytest.LogCaptureFixture
) -> None:
    # every sentence different: a repeated one would end the reply first (the LLM responder's loop guard)
    sentences = [f"Sentence {n} goes here." for n in range(1, 51)]
    slow = FakeLlm(reply=" ".join(sentences), token_s=0.05)
    with caplog.at_level(logging.INFO, logger="assistant.reply.deadline"):
        clauses, log, _ = run_turns(
            cfg, slow, ["Count for me."], first_audio_ms=1000, answer_ms=1000, reply_ms=1000
        )
    texts = [c.text for c in clauses]
    assert texts == sentences[: len(texts)]  # whole sentences, in order: cut at a clause boundary
    assert 0 < len(clauses) < 20
    assert since_end(log, ReplyDone, 1) < 1.5
    assert "reply_ms passed: the reply ends here" in caplog.text  # reply_ms ended it, nothing else


def test_fast_path_answers_without_the_llm(cfg: Config) -> None:
    llm = FakeLlm()
    clauses, _, _ = run_turns(cfg, llm, ["What time is it?"])
    assert [c.source for c in clauses] == ["fastpath"]
    assert clauses[0].text.startswith("It's ")
    assert llm.prompts == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What time is it?", "It's 3 oh 5 in the afternoon."),
        ("what's the date today", "Today is Sunday, November 29, 2026."),
        ("What can you do?", "I can answer"),
        ("How much time does an egg need?", None),
    ],
)
def test_quick_answers(text: str, expected: str | None) -> None:
    answer = quick_answer(text, dt.datetime(2026, 11, 29, 15, 5))
    assert answer == expected if expected is None else answer.startswith(expected)  # type: ignore[union-attr]


def test_history_carries_earlier_turns(cfg: Config) -> None:
    llm = FakeLlm()
    run_turns(cfg, llm, ["First?", "Second?"])
    assert [m["role"] for m in llm.prompts[1]] == ["system", "user", "assistant", "user"]
    assert llm.prompts[1][2]["content"] == "Paris is the capital, of course. It is lovely."


def test_an_interrupted_reply_enters_the_history_as_far_as_it_was_played(cfg: Config) -> None:
    scope = TurnScope()
    llm = FakeLlm()
    _, log, stage = run_turns(cfg, llm, ["First?"], scope=scope)
    # playback started the first clause only, then the user barged in
    stage.ctx.events.emit(AudioOut(1, "Paris is the capital,", 1.0, "llm"))
    scope.interrupt(2)
    messages = stage.messages("Second?")
    assert messages[2] == {"role": "assistant", "content": "Paris is the capital, ..."}
    # the live barge-in controller measures the cut within a clause: that wins
    stage.ctx.events.emit(BargeIn(2, interrupted=1, spoken="Paris is"))
    assert stage.messages("Second?")[2] == {"role": "assistant", "content": "Paris is ..."}
    # the same question asked again: the cut reply is left out (live, the model copied it whole)
    assert [m["role"] for m in stage.messages("first")] == ["system", "user"]
    # cut before a word of it was heard: the exchange is left out, not a bare "..." for the model to copy
    stage.ctx.events.emit(BargeIn(2, interrupted=1, spoken=""))
    assert [m["role"] for m in stage.messages("Second?")] == ["system", "user"]


def test_speculative_prefetch_is_adopted_when_the_user_has_finished(cfg: Config) -> None:
    llm = FakeLlm(ttft_s=0.3)
    responder = LlmResponder(cfg.llm, engine=llm)
    messages = [{"role": "user", "content": "Hello?"}]
    responder.prefetch(messages)
    time.sleep(0.5)  # the hangover: generation is already done
    start = time.monotonic()
    reply = responder.open(start)
    reply.ask(messages)
    assert reply.next(1.0) is not None and time.monotonic() - start < 0.1
    assert len(llm.prompts) == 1  # generated once, not twice
    responder.prefetch([{"role": "user", "content": "Something else"}])
    responder.prefetch(None)  # the user went on: dropped
    assert responder._prefetched is None


def _llm_clauses(cfg: Config, reply: str, system: str | None = None) -> list[str]:
    """The clauses said of ``reply``, the first sentence whole (the split is tested on its own)."""
    responder = LlmResponder(replace(cfg.llm, split_first_sentence=False), engine=FakeLlm(reply))
    stream = responder.open(time.monotonic())
    prompt = [{"role": "system", "content": system}] if system is not None else []
    stream.ask([*prompt, {"role": "user", "content": "Hi"}])
    out = []
    while (clause := stream.next(5.0)) is not None:
        out.append(clause.text)
    return out


def test_a_reply_cut_off_mid_sentence_ends_on_the_last_whole_sentence(cfg: Config) -> None:
    # max_new_tokens ran out mid-sentence: the unfinished tail is not spoken
    assert _llm_clauses(cfg, "Paris is the capital. It is known for its") == ["Paris is the capital."]
    # a reply that is one unfinished phrase is all there is: it is kept
    assert _llm_clauses(cfg, "Paris") == ["Paris"]
    # markdown and units are cleaned before the voice gets them
    assert _llm_clauses(cfg, "**Paris** is 5 km away.") == ["Paris is 5 kilometers away."]


def test_a_reply_going_round_in_circles_is_said_once(cfg: Config) -> None:
    # short clauses the splitter keeps together, and a loop inside one long clause (issue 16)
    # (the first clause, released at its comma, is spoken before the loop shows: it stays)
    sorry = "I'm sorry, I'm sorry, I'm sorry, I'm sorry, I'm sorry, I'm sorry, I'm sorry,"
    assert _llm_clauses(cfg, sorry) == ["I'm sorry, I'm sorry,"]
    ceo = "The CEO who has been named as a candidate has been named as a candidate has been named as the"
    assert _llm_clauses(cfg, ceo) == ["The CEO who has been named as a candidate."]
    ceo = "The CEO, who has been named as a candidate, has been named as a candidate, has been named as a"
    assert _llm_clauses(cfg, ceo) == [
        "The CEO, who has been named as a candidate,",
        "has been named as a candidate,",
    ]
    # the same words in different sentences are no loop; the whole reply is said
    steps = "Step 1 goes here. Step 2 goes here. Step 3 goes here."
    assert " ".join(_llm_clauses(cfg, steps)) == steps


def test_a_clause_echoing_the_system_prompt_is_not_said(cfg: Config) -> None:
    system = "You are a helpful voice assistant. Answer in one short sentence."
    reply = "Serves as a helpful voice assistant. The capital of France is Paris."
    assert _llm_clauses(cfg, reply, system) == ["The capital of France is Paris."]
    # without a system prompt there is nothing to echo
    assert _llm_clauses(cfg, reply, "") == [
        "Serves as a helpful voice assistant.",
        "The capital of France is Paris.",
    ]


def test_a_clause_with_no_words_is_not_said(cfg: Config) -> None:
    # SmolLM2 sometimes ends a reply with "..", or answers nothing else (seen live in CI)
    assert _llm_clauses(cfg, "The capital of France is Paris. ..") == ["The capital of France is Paris."]
    assert _llm_clauses(cfg, "..") == []


def test_a_reply_that_ends_with_nothing_said_is_an_apology(cfg: Config) -> None:
    """Silence after a question leaves the user wondering whether they were heard."""
    clauses, log, _ = run_turns(cfg, FakeLlm(".."), ["Who was the first president?"])
    assert [(c.text, c.source) for c in clauses] == [(cfg.deadline.apology_error, "error")]
    # an answer, however short, is no failure
    clauses, _, _ = run_turns(cfg, FakeLlm("Washington."), ["Who was the first president?"])
    assert [c.source for c in clauses] == ["llm"]


def test_a_cancelled_reply_ends_silently(cfg: Config) -> None:
    chain = DeadlineResponder(LlmResponder(cfg.llm, engine=FakeLlm("..")), cfg.deadline)
    reply = chain.open(time.monotonic())
    reply.ask([{"role": "user", "content": "Hello?"}])
    reply.cancel()  # a barge-in: the user went on, nothing is owed
    assert reply.next(1.0) is None


def test_the_first_sentence_is_said_in_two_parts_and_kept_whole(cfg: Config) -> None:
    llm = FakeLlm("The capital of France is Paris. It is lovely.")
    clauses, _, stage = run_turns(cfg, llm, ["What is the capital of France?"])
    assert [c.text for c in clauses] == ["The capital of France", "is Paris.", "It is lovely."]
    assert stage.history[-1].reply == llm.reply  # as written: the voice's comma is not kept
    reply = LlmResponder(cfg.llm, engine=llm).open(time.monotonic())
    reply.ask([{"role": "user", "content": "And?"}])
    first, second = reply.next(5.0), reply.next(5.0)
    assert first is not None and first.continues and second is not None and not second.continues
    whole = LlmResponder(replace(cfg.llm, split_first_sentence=False), engine=llm).open(time.monotonic())
    whole.ask([{"role": "user", "content": "And?"}])
    assert (clause := whole.next(5.0)) is not None and clause.text == "The capital of France is Paris."


@pytest.mark.real
def test_real_model_knows_the_capital_of_france(cfg: Config) -> None:
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.store import ModelStore

    engine = LlmEngine(ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model), cfg.llm)
    clauses, _, _ = run_turns(cfg, engine, ["What is the capital of France?"])  # type: ignore[arg-type]
    reply = " ".join(c.text for c in clauses if c.source == "llm")
    assert "paris" in reply.lower(), reply


@pytest.mark.real
def test_few_shot_examples_sit_in_the_cached_prefix(cfg: Config) -> None:
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.store import ModelStore

    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    shots = (("Who invented the telephone?", "Alexander Graham Bell."),)
    engine = LlmEngine(model_dir, replace(cfg.llm, examples=shots, max_new_tokens=4, quantization="none"))
    system = {"role": "system", "content": cfg.llm.system_prompt}
    question = {"role": "user", "content": "What is the capital of France?"}
    text = engine.tokenizer.decode(engine.prompt_ids([system, question]))
    # system prompt, then the example exchange, then the question
    assert text.index(cfg.llm.system_prompt) < text.index(shots[0][0]) < text.index(shots[0][1])
    assert text.index(shots[0][1]) < text.index(question["content"])
    engine.warm_up()
    "".join(engine.stream([system, question]))
    beyond = len(engine._template([system, {"role": "user", "content": shots[0][0]}]))
    assert engine.last_reused > beyond  # the examples came from the cache, not fed again


@pytest.mark.real
def test_prefix_cache_reuses_the_conversation_and_changes_nothing(cfg: Config) -> None:
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.store import ModelStore

    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    system = {"role": "system", "content": cfg.llm.system_prompt}
    questions = ["What is the capital of France?", "And of Italy?", "How many legs does a spider have?"]
    outputs = {}
    # fp32: exact. (int8 dynamic quantisation scales activations per fed tensor, so a reused prefix
    # changes the numerics slightly; the reuse with the CPU default, int8-channel, is checked below.)
    for cached in (False, True):
        engine = LlmEngine(
            model_dir, replace(cfg.llm, prefix_cache=cached, max_new_tokens=24, quantization="none")
        )
        engine.warm_up()  # as the app does: it leaves the system prompt in the cache
        history: list[dict[str, str]] = []
        outputs[cached] = []
        for text in questions:
            reply = "".join(engine.stream([system, *history, {"role": "user", "content": text}]))
            outputs[cached].append((reply, engine.last_reused))
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
    assert [r for r, _ in outputs[True]] == [r for r, _ in outputs[False]]
    reused = [n for _, n in outputs[True]]
    assert reused[1] > reused[0] > 0 and reused[2] > reused[1]  # the whole history, growing
    assert all(n == 0 for _, n in outputs[False])
    int8 = LlmEngine(model_dir, replace(cfg.llm, max_new_tokens=8))
    history = []
    for text in questions[:2]:
        reply = "".join(int8.stream([system, *history, {"role": "user", "content": text}]))
        history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
    assert int8.quantization == "int8-channel" and int8.last_reused > reused[0]  # the CPU default
    assert int8.last_drafted == 0  # prompt lookup would change its answers (tests/test_lookup.py)
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    # every layer int8 with a scale per output channel, the output layer too
    assert not [m for m in int8.model.modules() if type(m) is torch.nn.Linear]
    assert isinstance(int8.model.get_output_embeddings(), DynamicInt8Linear)
    assert int8.model.get_output_embeddings().weight().qscheme() == torch.per_channel_affine


@pytest.mark.real
def test_every_torch_call_of_the_llm_runs_on_its_one_compute_thread_and_a_hold_stops_decoding(
    cfg: Config,
) -> None:
    """libgomp stops its workers spinning once a second thread keeps a pool (engines/openmp.py):
    generation, a speculative one and the end-of-turn judgement must all run on one thread. While
    barge-in holds a paused reply (``HeldStreamer``), no token is decoded, and the judge still answers."""
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.store import ModelStore

    engine = LlmEngine(
        ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model), replace(cfg.llm, max_new_tokens=4)
    )
    calls: list[str] = []  # the thread of each forward pass
    forward = engine.model.forward

    def recorded(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(threading.current_thread().name)
        return forward(*args, **kwargs)

    engine.model.forward = recorded
    question = [{"role": "user", "content": "What is the capital of France?"}]
    judged: list[float] = []
    judge = threading.Thread(target=lambda: judged.append(float(engine.next_token_probabilities("Hi").sum())))
    judge.start()
    assert "".join(engine.stream(question))  # on this thread's behalf, beside the judgement
    judge.join()
    assert judged and abs(judged[0] - 1) < 1e-3
    threads = set(calls)
    assert len(threads) == 1 and threads.pop().startswith("llm-compute"), threads

    calls.clear()
    reply = HeldStreamer(engine)  # as barge-in holds it (stages/hold.py)
    reply.hold(True)
    pieces: list[str] = []
    held = threading.Thread(target=lambda: pieces.extend(reply.stream(question)))
    held.start()
    time.sleep(0.5)  # generous: a decode step takes ~0.06 s on 2 cores
    before = len(calls)
    time.sleep(0.5)
    assert not pieces and held.is_alive() and len(calls) == before <= 2  # a piece, then held
    assert abs(float(engine.next_token_probabilities("Hi").sum()) - 1) < 1e-3  # the judge is not held
    reply.hold(False)
    held.join(30)
    assert pieces and not held.is_alive()


def test_the_compute_thread_runs_calls_one_at_a_time_in_order_and_nested_calls_in_place() -> None:
    from assistant.engines.openmp import ComputeThread

    compute = ComputeThread("test-compute")
    seen: list[tuple[int, str]] = []

    def note(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i

    assert compute.run(lambda: compute.run(note, 0) + 1) == 1  # no deadlock: already on the thread
    callers = [threading.Thread(target=compute.run, args=(note, i)) for i in range(1, 6)]
    for caller in callers:
        caller.start()
        caller.join()
    assert [i for i, _ in seen] == list(range(6))
    assert {name for _, name in seen} == {seen[0][1]} and seen[0][1].startswith("test-compute")


def test_the_responder_ticks_often_only_while_a_reply_may_need_its_deadline(cfg: Config) -> None:
    from assistant.core.stage import IDLE_POLL_S
    from assistant.stages.responder import POLL_S

    events = EventBus()
    stage = ResponderStage(FastPathResponder(LlmResponder(cfg.llm, engine=FakeLlm())), "")
    stage.setup(StageContext(TurnScope(), events, threading.Event()))
    assert stage.poll_s == IDLE_POLL_S  # idle: every wake-up is CPU spent on nothing
    events.emit(SpeechStarted(1, 0.0))
    assert stage.poll_s == POLL_S
    now = time.monotonic()
    events.emit(SpeechEnded(1, 1.0, t_decided=now, t=now))
    assert stage.poll_s == POLL_S  # the reply is open: its acknowledgement is due to the tick


def test_speech_over_a_reply_is_stopped_resumed_or_answered_by_the_policy(cfg: Config) -> None:
    """The live barge-in pauses the reply (``ReplyPaused``) and reports what the speech turned out
    to be (``Interruption``); the conversation's policy turns that into its verdict."""
    events, log = EventBus(), EventLog()
    events.subscribe(log)
    ctx = StageContext(TurnScope(), events, threading.Event())
    policy = AlwaysAddressed(InterruptionRules(BargeInConfig(stop_reply="Okay.")))
    stage = ResponderStage(LlmResponder(cfg.llm, engine=FakeLlm()), cfg.llm.system_prompt, policy=policy)
    stage.setup(ctx)
    now = time.monotonic()

    def said(turn: int, text: str, outcome: str | None) -> list[Message]:
        ended = SpeechEnded(turn, float(turn), t_decided=now, t=now)
        events.emit(ReplyPaused(turn, interrupted=turn - 1))
        assert not policy.opens_early(ended, True)  # no filler before the pause is decided
        assert policy.verdict(Transcript(turn, text, False, None, now, speculative=True)).action == "ignore"
        if outcome is not None:
            events.emit(Interruption(turn, turn - 1, outcome, 300.0, text))
        return list(stage.process(Transcript(turn, text, True, ended, now)))

    assert said(2, "Mm-hmm.", "resumed") == []
    assert log.first(ReplySkipped, 2) is not None and log.first(ReplyClause, 2) is None
    out = said(3, "Stop.", "stopped")
    assert [m.text for m in out if isinstance(m, ReplyText)] == ["Okay.", ""]  # the configured confirmation
    assert log.first(Stopped, 3) is not None and ctx.scope.is_stale(2)
    out = said(4, "What is the capital of Spain?", "answered")
    assert any(isinstance(m, ReplyText) and m.text for m in out) and log.first(ReplyDone, 4) is not None


def test_interruption_rules_stop_resume_or_answer() -> None:
    rules = InterruptionRules()
    played = "Paris is the capital of France and it is known for"
    for text, expected in [
        ("Stop.", "stop"), ("Okay, thanks.", "stop"), ("Please stop talking.", "stop"), ("That's enough.", "stop"),
        ("Top.", "stop"), ("Time.", "stop"), ("Ah.", "stop"), ("No.", "stop"),  # a lone "stop" misheard
        ("No, I meant the capital of Spain.", "answer"),
        ("", "resume"), ("Thanks for watching.", "resume"), ("Mm-hmm.", "resume"), ("MMM.", "resume"), ("Mmhmm", "resume"), ("Yeah.", "resume"), ("Okay.", "resume"),
        ("the capital of", "resume"),  # its own voice coming back
        ("The capital, mmm.", "resume"), ("known for, mm-hmm", "resume"),  # a backchannel over its echo
        ("Capital of Spain, yeah?", "answer"),
        ("What is the capital of Spain?", "answer"), ("stop the timer", "answer"), ("volume up", "answer"),
    ]:  # fmt: skip
        assert rules.decide(text, played)[0] == expected, text
    # a reply already cut (no pause to undo): what would resume it stops it
    assert rules.decide("", can_resume=False)[0] == "stop"
    assert rules.decide("Mm-hmm.", can_resume=False)[0] == "stop"
    custom = InterruptionRules(
        BargeInConfig(stop_phrases=("halt",), backchannels=("aha",), stop_short_words=0)
    )
    assert custom.decide("Halt!")[0] == "stop" and custom.decide("Aha.")[0] == "resume"
    assert custom.decide("Paris.")[0] == "answer"
    # while the agent awaits yes or no for a proposed action, either answers it (even as the
    # prompt's own word); a backchannel is still one, and a stop still stops
    prompt = "Open the calculator? Say yes to confirm."
    rules.note(Action(-1, "open_app", "proposed"))
    for text, expected in [("Yes.", "answer"), ("Yeah.", "answer"), ("No.", "answer"), ("Mm-hmm.", "resume"), ("Stop.", "stop")]:  # fmt: skip
        assert rules.decide(text, prompt)[0] == expected, text
    rules.note(Action(-1, "open_app", "declined"))
    assert rules.decide("Yes.", prompt)[0] == "resume"
