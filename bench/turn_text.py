"""End of turn from the words alone: finished messages and unfinished heads, judged as a pause's transcript.

    .venv/bin/python bench/turn_text.py [--set KEY=VALUE ...]

No audio: each line below is given to the judges as the speculative transcript of a pause, as
Whisper writes it (capitals, a closing mark). Printed per judge: how many finished messages end the
turn and how many heads hold it, and the ones it got wrong:
  word list    engines/turn.py alone (vad.end_of_turn: smart_turn, once the transcript is there)
  llm          engines/llm_turn.py with the loaded LLM (vad.end_of_turn: llm)
None of these lines is in tests/speech/hesitations.py, and no threshold was chosen on them: they
are the everyday requests, commands and replies a user says, many ending on a word a sentence
seldom ends on ("Where are you from?", "Can you repeat that?"). Needs the default LLM's weights.
"""

from __future__ import annotations

import argparse
import time

from assistant import build
from assistant.config import load_config
from assistant.engines.turn import blend as by_last_word

FINISHED = [
    "Can you repeat that?", "Go on.", "Do you know what time it is?", "Where are you from?",
    "What are you looking at?", "I think so.", "Turn the lights on.", "What is that?", "Yes I can.",
    "What can I do?", "Who is it for?", "What is it about?", "Who are you talking to?", "Turn it on.",
    "Log in.", "Tell me what it does.", "I don't know where my keys are.", "Please do.", "What's this?",
    "Shut it off.", "Where is it from?", "How are you doing?", "What are you up to?",
    "Tell me about that.", "Can you do that?", "Which one is bigger, this or that?", "Sign me in.",
    "What did you say that for?", "Is it on?", "Who did this?", "I will.", "Yes it is.",
    "Pick me up at eight.", "Stop.", "Thanks.", "Thank you.", "Yes.", "No.", "Yes, please.",
    "Good morning.", "Hello.", "Turn it off.", "Louder.", "Next.", "What about tomorrow?",
    "And in London?", "Play jazz.", "I'm fine.", "Never mind.", "Cancel.", "Pause the music.",
    "Open the browser.", "Remind me to call mom at five.", "How do I make pancakes?",
    "What's two plus two?", "Who is the president of France?", "Tell me more.", "Why?", "Really?",
    "OK.", "What does that mean?", "Translate hello into Spanish.", "What's the time in Tokyo?",
    "Is it going to rain today?", "Define serendipity.", "How far is the moon?",
    "What's the square root of sixteen?", "Open Firefox.", "Close the window.", "I think that's all.",
    "Set an alarm for seven a.m.", "What is a black hole?", "Explain photosynthesis.",
    "Spell necessary.", "My name is Anna.", "Who painted the Mona Lisa?",
    "What year did World War II end?", "How do you say thank you in French?", "Mm-hmm.",
]  # fmt: skip
HEADS = [
    "Tell me about", "Set a timer for", "How many legs does", "Turn off all the lights in",
    "Can you tell me what", "What is the weather in", "Remind me to", "I want to", "Play some music by",
    "What's the difference between", "How do I get to", "Who is", "What are", "Could you",
    "Can you turn on", "Is it going to", "What do you think about", "I was wondering if",
    "Send a message to", "Search for", "Add milk to", "What time does the", "How far is it from",
    "Put on", "Is there", "Do you know where", "Wake me up at", "Call", "Tell me a story about",
    "I would like to know", "Where can I", "When does the store", "How much does", "Why do",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = load_config(overrides=[*args.set, "vad.end_of_turn=llm"])
    llm = build.turn_engine(cfg)
    cut = cfg.vad.end_of_turn_threshold
    judges = {"word list": lambda text: by_last_word(None, text), "llm": lambda text: llm.blend(None, text)}

    print(f"{len(FINISHED)} finished messages, {len(HEADS)} heads of unfinished ones")
    print(f"{'judge':12}{'finished ended':>16}{'heads held':>12}{'ms / judgement':>16}")
    wrong: dict[str, list[str]] = {}
    for name, judge in judges.items():
        t0 = time.monotonic()
        ended = [judge(t) > cut for t in FINISHED]
        held = [judge(t) <= cut for t in HEADS]
        ms = (time.monotonic() - t0) * 1000 / (len(FINISHED) + len(HEADS))
        wrong[name] = [t for t, ok in zip(FINISHED + HEADS, ended + held, strict=True) if not ok]
        print(f"{name:12}{sum(ended):>9} / {len(FINISHED):<4}{sum(held):>6} / {len(HEADS):<3}{ms:>12.1f}")
    for name, lines in wrong.items():
        print(f"\n{name} got wrong: " + "; ".join(lines))


if __name__ == "__main__":
    main()
