"""Prompt lookup (engines/lookup.py): what it guesses, and that greedy decoding keeps its answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from assistant.config import Config
from assistant.engines.lookup import lookup_draft


def test_the_draft_is_what_followed_the_latest_longest_match() -> None:
    # "what is the capital of france ?" ... reply "the capital" -> " of france ?"
    context = [1, 2, 3, 4, 5, 6, 7, 9, 3, 4]
    assert lookup_draft(context, 3) == [5, 6, 7]
    assert lookup_draft(context, 10) == [5, 6, 7, 9, 3, 4]  # up to the end of what is known
    # the longest tail wins over a later single-token match: [8, 3] follows 3 nowhere but [3] does
    assert lookup_draft([3, 5, 1, 3, 6, 2, 3], 2) == [6, 2]  # the latest "3" first
    assert lookup_draft([7, 3, 5, 1, 3, 6, 7, 3], 1) == [5]  # "7 3" matched before a lone "3"


def test_a_one_token_match_drafts_only_on_a_telling_token() -> None:
    context = [1, 2, 3, 4, 5, 9, 2]  # "2" recurs; "5 9 2" does not
    assert lookup_draft(context, 2) == [3, 4]
    assert lookup_draft(context, 2, telling=lambda token: token != 2) == []
    assert lookup_draft([1, 2, 3, 9, 1, 2], 2, telling=lambda token: False) == [3, 9]  # two tokens: always


def test_no_draft_when_the_tail_occurs_nowhere_before_or_none_is_wanted() -> None:
    assert lookup_draft([1, 2, 3], 4) == []
    assert lookup_draft([], 4) == [] and lookup_draft([5], 4) == []
    assert lookup_draft([1, 2, 1], 0) == []


@pytest.mark.real
def test_prompt_lookup_keeps_the_greedy_answers_and_saves_steps(cfg: Config) -> None:
    """fp32, where feeding a draft with the next token changes no numbers (CPU int8's activation
    scale spans the tensor fed, so there no draft is fed: tests/test_responder.py checks that)."""
    from assistant.engines.local_llm import LlmEngine
    from assistant.engines.store import ModelStore

    model_dir = ModelStore(cfg.models.cache_dir).llm_path(cfg.llm.model)
    engine = LlmEngine(model_dir, replace(cfg.llm, max_new_tokens=24, quantization="none"))
    system = {"role": "system", "content": cfg.llm.system_prompt}
    questions = ["What is the capital of France?", "And of Italy?", "What is the largest planet?"]
    replies: dict[int, list[str]] = {}
    accepted = 0
    for tokens in (0, 4):
        engine.cfg = replace(engine.cfg, lookup_tokens=tokens)
        history: list[dict[str, str]] = []
        replies[tokens] = []
        for text in questions:
            reply = "".join(engine.stream([system, *history, {"role": "user", "content": text}]))
            replies[tokens].append(reply)
            history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]
            if tokens:
                accepted += engine.last_accepted
            else:
                assert engine.last_drafted == 0
    assert replies[4] == replies[0]
    assert accepted > 0  # "The capital of" -> " France" from the question
