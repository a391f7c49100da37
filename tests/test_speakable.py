from __future__ import annotations

from assistant.reply.clauses import ClauseSplitter, clean_for_speech


def split(text: str, step: int = 3) -> list[str]:
    splitter = ClauseSplitter()
    out: list[str] = []
    for i in range(0, len(text), step):  # arrive in small pieces, like tokens
        out += splitter.feed(text[i : i + step])
    rest = splitter.flush()
    return out + ([rest] if rest else [])


def test_sentences_and_a_short_first_clause() -> None:
    assert split("Sure, the capital of France is Paris. It has about two million people!") == [
        "Sure, the capital of France is Paris.",
        "It has about two million people!",
    ]
    assert split("Well, you know, it depends on the weather, and on your mood today") == [
        "Well, you know,",
        "it depends on the weather, and on your mood today",
    ]


def test_no_cut_inside_numbers_or_without_a_following_space() -> None:
    assert split("It costs 3.50 euros. Or so.") == ["It costs 3.50 euros.", "Or so."]


def test_long_text_without_punctuation_is_cut_at_a_space() -> None:
    clauses = split("word " * 100)
    assert len(clauses) > 1 and all(len(c) <= 200 for c in clauses)


def test_clean_for_speech() -> None:
    assert clean_for_speech("**Paris** is the `capital` 🇫🇷😀 see https://x.org") == "Paris is the capital see"
    assert clean_for_speech("- one\n- two\n1. three") == "one two three"
