from __future__ import annotations

from assistant.reply.clauses import ClauseSplitter, clean_for_speech, goes_on


def split(
    text: str, step: int = 3, split_first_sentence: bool = False, early_phrases: bool = False
) -> list[str]:
    splitter = ClauseSplitter(split_first_sentence=split_first_sentence, early_phrases=early_phrases)
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


def test_the_first_sentence_is_cut_where_its_verb_starts_once_its_subject_has_three_words() -> None:
    def early(text: str) -> list[str]:
        return split(text, split_first_sentence=True)

    assert early("The capital of France is Paris. It is big and old.") == [
        "The capital of France",
        "is Paris.",
        "It is big and old.",
    ]
    assert early("Romeo and Juliet were written by William Shakespeare.")[0] == "Romeo and Juliet"
    assert early("A spider has eight legs.") == ["A spider has eight legs."]  # a short subject
    assert early("Yes. The capital of France is Paris.") == ["Yes.", "The capital of France is Paris."]
    assert early("Sure, the capital is Paris.") == ["Sure, the capital is Paris."]  # "the capital"
    assert split("The capital of France is Paris.") == ["The capital of France is Paris."]  # off
    # only the cut mid-sentence goes on; a clause that ends in punctuation does not
    assert [goes_on(c) for c in early("The capital of France is Paris.")] == [True, False]
    assert not goes_on("Sure,")


def test_while_little_audio_is_ahead_a_long_clause_ends_before_a_phrase() -> None:
    """The live gap this fixes: "A car engine" (about 1 s of speech) was followed by 1.9 s of
    generating and synthesising "is a type of mechanical system that converts ... energy."."""

    def early(text: str) -> list[str]:
        return split(text, split_first_sentence=True, early_phrases=True)

    engine = "A car engine is a type of mechanical system that converts chemical energy into motion."
    assert early(engine) == [
        "A car engine",
        "is a type of mechanical system",  # over twice the 3 words said before it
        "that converts chemical energy into motion.",  # 9 said: a budget of 18, never reached
    ]
    assert [goes_on(c) for c in early(engine)] == [True, True, False]  # said as going on
    assert split(engine, split_first_sentence=True) == [  # off
        "A car engine",
        "is a type of mechanical system that converts chemical energy into motion.",
    ]
    assert early("Well, you know, it is good and cheap and it works by magic.") == [
        "Well, you know,",
        "it is good and cheap",  # the last phrase start once over budget, 4 words in at least
        "and it works by magic.",
    ]
    # the first clause is never cut this way
    assert early("Spiders eat flies and moths and ants and bees and wasps.") == [
        "Spiders eat flies and moths and ants and bees and wasps."
    ]


def test_no_cut_inside_numbers_or_without_a_following_space() -> None:
    assert split("It costs 3.50 euros. Or so.") == ["It costs 3.50 euros.", "Or so."]


def test_long_text_without_punctuation_is_cut_at_a_space() -> None:
    clauses = split("word " * 100)
    assert len(clauses) > 1 and all(len(c) <= 200 for c in clauses)


def test_clean_for_speech() -> None:
    assert clean_for_speech("**Paris** is the `capital` 🇫🇷😀 see https://x.org") == "Paris is the capital see"
    assert clean_for_speech("- one\n- two\n1. three") == "one two three"


def test_markdown_code_and_emoji_never_reach_the_voice() -> None:
    assert clean_for_speech("## Steps\n| a | b |\n> quoted ~~x~~") == "Steps a b quoted x"
    assert clean_for_speech("See [the guide](https://example.org/guide) now ✅⭐") == "See the guide now"
    assert clean_for_speech("* one\n+ two\n2) three") == "one two three"
    # a fenced code block is dropped whole, even when it arrives token by token
    assert split("Here you go: ```python\nprint('hi')\n``` That prints hi.", step=2) == [
        "Here you go:",
        "That prints hi.",
    ]
    assert split("Try this. ```x = 1. y = 2.") == ["Try this."]  # an unclosed block is dropped too


def test_numbers_units_and_symbols_read_naturally() -> None:
    assert clean_for_speech("2 * 3 = 6, 10 - 3 = 7, 8 / 2 = 4, 2+2=4") == (
        "2 times 3 equals 6, 10 minus 3 equals 7, 8 divided by 2 equals 4, 2 plus 2 equals 4"
    )
    assert clean_for_speech("It is 5 km, 70kg, 30°C, 50% and 60 mph.") == (
        "It is 5 kilometers, 70 kilograms, 30 degrees Celsius, 50 percent and 60 miles per hour."
    )
    assert clean_for_speech("It costs $1,200 or €5, for 10-15 people") == (
        "It costs 1200 dollars or 5 euros, for 10 to 15 people"
    )
    # letters after a number that are not a unit stay as they are
    assert clean_for_speech("in 5 minutes, 2 more, the 3rd one") == "in 5 minutes, 2 more, the 3rd one"


def test_abbreviations_are_read_and_do_not_end_a_sentence() -> None:
    assert clean_for_speech("Tea, e.g. green, i.e. unfermented, etc.") == (
        "Tea, for example green, that is unfermented, et cetera."
    )
    assert split("Ask Dr. Smith about it. J. K. Rowling wrote it.") == [
        "Ask Doctor Smith about it.",
        "J. K. Rowling wrote it.",
    ]
    assert split("1. Boil the water. 2. Add the egg.") == ["Boil the water.", "Add the egg."]
