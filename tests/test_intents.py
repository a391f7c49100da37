"""The intent layer (assistant/reply/intents.py, on hassil): commands are understood with the right
slots, and questions that merely mention time, dates, timers, volume, typing, opening, playing, notes
or stopping are left to the LLM. Two tables: read them as a specification."""

from __future__ import annotations

import pytest

from assistant.agent.intents import match
from assistant.reply.fastpath import quick_intent

APPS = {"text editor": "gnome-text-editor", "calculator": "gnome-calculator", "files": "nautilus"}

# (what the user says, the intent, its slots)
COMMANDS: list[tuple[str, str, dict]] = [
    # the clock and the calendar (Home Assistant's HassGetCurrentTime / HassGetCurrentDate, and ours)
    ("What time is it?", "time", {}),
    ("What's the time?", "time", {}),
    ("Tell me the time.", "time", {}),
    ("What time is it right now?", "time", {}),
    ("What's the date today?", "date", {}),
    ("What is today's date?", "date", {}),
    ("What day is it today?", "date", {}),
    # timers: HassStartTimer and our durations
    ("Set a timer for 3 seconds.", "timer", {"seconds": 3.0}),
    ("Set a three second timer.", "timer", {"seconds": 3.0}),
    ("Set a timer for 1.5 hours.", "timer", {"seconds": 5400.0}),
    ("Set a timer for an hour and a half.", "timer", {"seconds": 5400.0}),
    ("Set a timer for 90 seconds.", "timer", {"seconds": 90.0}),
    ("Set a timer for 120 seconds.", "timer", {"seconds": 120.0}),
    ("Start a timer for five minutes.", "timer", {"seconds": 300.0}),
    ("Set a 10 minute timer.", "timer", {"seconds": 600.0}),
    ("Timer for 2 minutes and 30 seconds.", "timer", {"seconds": 150.0}),
    ("Set a timer for half an hour.", "timer", {"seconds": 1800.0}),
    ("Set a timer for two and a half hours.", "timer", {"seconds": 9000.0}),
    ("Set a timer for one hour and 15 minutes.", "timer", {"seconds": 4500.0}),
    ("Could you set a timer for 20 minutes?", "timer", {"seconds": 1200.0}),
    ("Set a timer for a minute and a half.", "timer", {"seconds": 90.0}),
    ("Please set a timer for 45 seconds.", "timer", {"seconds": 45.0}),
    ("Remind me to call mom in five minutes.", "reminder", {"seconds": 300.0, "what": "call mom"}),
    ("Remind me in 10 minutes to check the oven.", "reminder", {"seconds": 600.0, "what": "check the oven"}),
    ("Cancel the timers.", "cancel_timers", {}),
    ("Cancel my timer.", "cancel_timers", {}),
    ("Stop the timer.", "cancel_timers", {}),
    ("Cancel all timers.", "cancel_timers", {}),
    ("How much time is left on my timer?", "timer_status", {}),
    ("How long is left on the timer?", "timer_status", {}),
    ("Pause the timer.", "timer_pause", {}),
    ("Resume the timer.", "timer_resume", {}),
    ("Add 5 minutes to the timer.", "timer_add", {"seconds": 300.0}),
    ("Take 2 minutes off the timer.", "timer_subtract", {"seconds": 120.0}),
    # notes, clipboard, typing
    ("Take a note: buy milk and eggs.", "note", {"what": "buy milk and eggs"}),
    ("Make a note that the meeting moved to Friday.", "note", {"what": "the meeting moved to Friday"}),
    ("Write down: call the plumber.", "note", {"what": "call the plumber"}),
    ("What's on my clipboard?", "clipboard", {}),
    ("Read the clipboard.", "clipboard", {}),
    ("Read the clip board.", "clipboard", {}),
    ("Type, Hello world!", "type", {"what": "Hello world!"}),
    ("Type out hello world", "type", {"what": "hello world"}),
    ("Dictate Dear Anna, thanks for the photos.", "type", {"what": "Dear Anna, thanks for the photos"}),
    # opening apps (from the allowlist) and pages
    ("Open the calculator.", "open_app", {"app": "calculator"}),
    ("Launch the text editor.", "open_app", {"app": "text editor"}),
    ("Could you open files for me?", "open_app", {"app": "files"}),
    ("Start the calculator app.", "open_app", {"app": "calculator"}),
    ("Open Spotify.", "open_app", {"app": "spotify"}),  # not allowlisted: the action layer refuses
    # a program this machine has, however long the tail: refused out loud, never a chat about it
    ("Run rm or at my home folder.", "open_app", {"app": "rm or at my home folder"}),
    ("Open example.com", "open_url", {"url": "example.com"}),
    ("Go to the website github dot com", "open_url", {"url": "github.com"}),
    ("Visit wikipedia.org", "open_url", {"url": "wikipedia.org"}),
    # media and volume (HassMedia*, HassSetVolume, HassSetVolumeRelative, mute)
    ("Next track.", "media", {"command": "next"}),
    ("Skip this song.", "media", {"command": "next"}),
    ("Previous track.", "media", {"command": "previous"}),
    ("Pause the music.", "media", {"command": "pause"}),
    ("Pause.", "media", {"command": "pause"}),
    ("Resume the music.", "media", {"command": "play"}),
    ("Stop the music.", "media", {"command": "pause"}),
    ("Set the volume to 50%.", "volume", {"command": "set", "level": 50.0}),
    ("Set the volume to thirty percent.", "volume", {"command": "set", "level": 30.0}),
    ("Set the volume to 500 percent.", "volume", {"command": "set", "level": 500.0}),
    ("Volume down.", "volume", {"command": "down"}),
    ("Turn the volume up.", "volume", {"command": "up"}),
    ("Turn it down.", "volume", {"command": "down"}),
    ("Louder.", "volume", {"command": "up"}),
    ("Mute.", "volume", {"command": "mute"}),
    ("Unmute the sound.", "volume", {"command": "unmute"}),
    # the conversation
    ("Yes, please.", "yes", {}),
    ("Go ahead.", "yes", {}),
    ("No thanks.", "no", {}),
    ("Cancel.", "stop", {}),
    ("Stop.", "stop", {}),
    ("Okay, stop talking.", "stop", {}),
    ("Never mind.", "stop", {}),
    ("That's enough.", "stop", {}),
]

# Sentences for the LLM, though they mention what the commands are about.
QUESTIONS: list[str] = [
    "What time zone is London in?",
    "Stop signs are red, why?",
    "How fast does an average person type?",
    "What is the time complexity of quicksort?",
    "What time does the bank open?",
    "What is the date of Easter this year?",
    "Help me write an email.",
    "Write a poem about cats.",
    "How much time does an egg need?",
    "What time is it in Tokyo?",
    "What is the date format in Germany?",
    "What day of the week was July 4th 1776?",
    "How long is a day on Mars?",
    "When was the first timer invented?",
    "How do kitchen timers work?",
    "What can I cook in 10 minutes?",
    "Why is my timer app so loud?",
    "How many seconds are in a year?",
    "Is 5 minutes enough to boil an egg?",
    "What is the volume of a sphere?",
    "How do I increase the volume of a cake batter?",
    "Why is the volume of my TV so low at night?",
    "What does volume mean in chemistry?",
    "How do I type an em dash on a Mac?",
    "What type of music do you like?",
    "Which type of battery lasts longest?",
    "How do I open a jar?",
    "What time do stores open on Sunday?",
    "Is the museum open today?",
    "How do I open a PDF file?",
    "Can you explain open source software?",
    "Open heart surgery, how risky is it?",
    "Who plays the music in Star Wars?",
    "Play a game with me.",
    "What should I play on the piano?",
    "How do I play chess?",
    "What are good note taking apps?",
    "What is a musical note?",
    "Can you take notes during an exam?",
    "Note to self, how do I say that in French?",
    "How do I stop a nosebleed?",
    "When will the rain stop?",
    "Stop me if you've heard this one: a horse walks into a bar.",
    "Why do buses stop so often?",
    "What is the capital of France?",
    "Tell me a joke.",
    "Help me plan a trip to Rome.",
    "Write an email to my boss.",
    "Write me a shopping list.",
    "What is the next track on Abbey Road?",
    "Who wrote the song Yesterday?",
    "Why does my clipboard history disappear?",
    "Start with the basics of Python.",
    "Run me through the plan again.",
    "How do I cancel my gym membership?",
    "Cancel culture, what is it?",
    "Yes or no, is the earth flat?",
    "No way, is that true?",
    "How long should I remind myself to drink water?",
    "Remind me what the capital of Peru is.",
    "What does pause mean in music?",
    "Is it time to go?",
    "Set the table for dinner, how?",
    "How do I set a timer on my phone?",
    "What's the best time to visit Japan?",
    "Mute swans, are they really mute?",
    "Louder music makes me anxious, why?",
]


@pytest.mark.parametrize(("text", "name", "slots"), COMMANDS)
def test_commands_match_with_their_slots(text: str, name: str, slots: dict) -> None:
    intent = match(text, APPS)
    assert intent is not None, text
    assert (intent.name, intent.slots) == (name, slots)


@pytest.mark.parametrize("text", QUESTIONS)
def test_questions_go_to_the_llm(text: str) -> None:
    assert match(text, APPS) is None
    assert quick_intent(text) is None


def test_the_tables_are_big_enough() -> None:
    assert len(COMMANDS) >= 60 and len(QUESTIONS) >= 60
    assert len({t for t, _, _ in COMMANDS}) == len(COMMANDS) and len(set(QUESTIONS)) == len(QUESTIONS)


def test_the_fast_path_answers_its_own_and_the_agent_leaves_them() -> None:
    for text, name in (
        ("What can you do?", "capabilities"),
        ("Who are you?", "identity"),
        ("Help.", "capabilities"),
    ):
        assert quick_intent(text) is not None and quick_intent(text)[0] == name  # type: ignore[index]
        assert match(text) is None
