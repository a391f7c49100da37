"""The deterministic intent matcher: a transcript in, an ``Intent`` (a name and its slots) out.

Common desktop commands are matched by patterns, so a 135M-parameter model is never in the critical
path of "set a timer" and never decides what gets launched or typed. Slots are plain strings and
numbers for the action layer to check against the allowlist; nothing here runs anything.
Patterns work on normalised text (lower case, no punctuation); dictation and notes take their text
from the transcript as recognised, so case and punctuation survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from assistant.reply.fastpath import quick_intent

UNITS = {"second": 1, "sec": 1, "minute": 60, "min": 60, "hour": 3600}
NUMBERS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100,
}  # fmt: skip
NUMBER = r"(?:\d+(?:\.\d+)?|(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred)(?: \w+)?|half an?)"
DURATION = rf"(?:{NUMBER}) ?(?:seconds?|secs?|minutes?|mins?|hours?)(?:(?: and)? (?:{NUMBER}) ?(?:seconds?|secs?|minutes?|mins?))?"

YES = re.compile(r"^(?:yes|yeah|yep|yup|sure|okay|ok|do it|go ahead|confirm(?:ed)?|please do|yes please)(?: please| do it| go ahead)?$")  # fmt: skip
NO = re.compile(r"^(?:no|nope|don't|do not|no thanks|no thank you|never mind|nevermind)(?: do it| thanks)?$")
# "That's it" is also what Whisper tiny.en makes of a lone "Stop." said over the assistant's voice.
STOP = re.compile(
    r"^(?:(?:okay|ok|oh|no|please|all right|alright) )?"
    r"(?:stop|cancel|be quiet|quiet|shut up|silence|enough|that's enough|never mind|nevermind|that's it|"
    r"that will do|that'll do|hold on)(?: it| that| now| please| talking| there)*$"
)


@dataclass(frozen=True)
class Intent:
    name: str  # an action of config.AGENT_ACTIONS, or "stop", "yes", "no", "cancel_timers", "wake"
    slots: dict[str, str | float] = field(default_factory=dict)


def normalise(text: str) -> str:
    text = text.lower().replace("%", " percent")
    text = re.sub(r"(?<=\w)\.(?=\w)", " dot ", text)  # example.com -> example dot com, as spoken
    text = re.sub(r"\bclip board\b", "clipboard", text)  # as Whisper sometimes writes it
    return re.sub(r"\s+", " ", re.sub(r"[^\w' ]+", " ", text)).strip()


def spoken_number(text: str) -> float | None:
    """ "3", "three", "twenty five", "half an" -> a number; None if it is not one."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if text in ("half a", "half an"):
        return 0.5
    total = 0.0
    for word in text.split():
        if word not in NUMBERS:
            return None
        total = total * 100 if word == "hundred" and total else total + NUMBERS[word]
    return total or None


def parse_duration(text: str) -> float | None:
    """Seconds in "3 seconds", "one minute and thirty seconds", "half an hour"; None if none."""
    total, found = 0.0, False
    for m in re.finditer(rf"({NUMBER}) ?(seconds?|secs?|minutes?|mins?|hours?)\b", text):
        number = spoken_number(re.sub(r" (?:seconds?|secs?|minutes?|mins?|hours?)$", "", m.group(1)))
        unit = UNITS[m.group(2).rstrip("s") if m.group(2) not in ("secs", "mins") else m.group(2)[:-1]]
        if number is None:
            return None
        total, found = total + number * unit, True
    return total if found and total > 0 else None


def _after(original: str, words: int) -> str:
    """The transcript as recognised, less its first ``words`` words (the command), trimmed."""
    tokens = list(re.finditer(r"[\w']+", original))
    if len(tokens) <= words:
        return ""
    return original[tokens[words].start() :].strip().rstrip(".")


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("cancel_timers", re.compile(r"^(?:cancel|stop|delete|clear) (?:the |my |all |all the )?(?:timers?|reminders?|alarms?)$")),
    ("timer", re.compile(rf"^(?:please )?(?:set|start|make)(?: me)?(?: a| an)? (?:timer (?:for |of )?(?P<d1>{DURATION})|(?P<d2>{DURATION}) timer)$")),
    ("timer", re.compile(rf"^timer (?:for )?(?P<d1>{DURATION})$")),
    ("reminder", re.compile(rf"^remind me (?:to )?(?P<what>.+?) in (?P<d1>{DURATION})$")),
    ("reminder", re.compile(rf"^(?:in (?P<d1>{DURATION}) remind me|remind me in (?P<d2>{DURATION})) (?:to )?(?P<what>.+)$")),
    ("note", re.compile(r"^(?:take|make|add|write) (?:a |down a )?note(?: that| saying| of)? (?P<what>.+)$")),
    ("note", re.compile(r"^(?:note|write down) (?:that )?(?P<what>.+)$")),
    ("clipboard", re.compile(r"^(?:read|say|tell me)(?: me)? (?:the |my |what's on the |what is on the |what's in the |what is in the )?clipboard$|^what(?:'s| is) (?:on|in) (?:the |my )?clipboard$")),
    ("open_url", re.compile(r"^(?:open|go to|browse to|visit|show me)(?: the)?(?: website| web site| site| page)? (?P<url>[a-z0-9-]+(?: dot [a-z0-9-]+)+(?: slash [a-z0-9-]+)*)$")),
    ("open_app", re.compile(r"^(?:open|launch|start|run)(?: up)?(?: the| an| a| my)? (?P<app>.+?)(?: app| application| program)?(?: for me)?(?: please)?$")),
    ("type", re.compile(r"^(?:type|dictate|write)(?: out| in)? (?P<what>.+)$")),
    ("media", re.compile(r"^(?P<verb>play|pause|resume|stop)(?: the)? (?:music|song|track|media|playback|video)$|^(?P<verb2>pause|resume)$")),
    ("media", re.compile(r"^(?:(?P<next>next|skip)(?: the)?(?: song| track)?|(?P<prev>previous|last)(?: song| track))$")),
    ("volume", re.compile(r"^(?:turn (?:the )?volume (?P<dir1>up|down)|turn (?:it|the sound) (?P<dir2>up|down)|volume (?P<dir3>up|down)|(?P<louder>louder)|(?P<quieter>quieter|softer))$")),
    ("volume", re.compile(r"^(?P<mute>mute|unmute)(?: the)?(?: sound| volume| audio)?$")),
    ("volume", re.compile(rf"^set (?:the )?volume to (?P<level>{NUMBER})(?: percent)?$")),
]  # fmt: skip

# The command words each intent's free text follows ("type" 1: "type hello world" -> "hello world").
_TEXT_SLOT_WORDS = {"type": 1}


def match(text: str) -> Intent | None:
    """The intent of one (wake-phrase-free) transcript, or None when it is a question for the LLM."""
    norm = normalise(text)
    if not norm:
        return None
    for name, pattern in (("yes", YES), ("no", NO), ("stop", STOP)):
        if pattern.match(norm):
            return Intent(name)
    quick = quick_intent(text)
    if quick is not None and quick[0] in ("time", "date"):  # the other quick answers are no actions
        return Intent(quick[0], {"answer": quick[1]})
    for name, pattern in _PATTERNS:
        m = pattern.match(norm)
        if m:
            return _slots(name, m, text)
    return None


def _slots(name: str, m: re.Match[str], original: str) -> Intent:
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    if name in ("timer", "reminder"):
        seconds = parse_duration(g.get("d1") or g.get("d2") or "")
        slots: dict[str, str | float] = {"seconds": seconds or 0.0}
        if "what" in g:
            slots["what"] = g["what"]
        return Intent(name, slots)
    if name == "note":
        return Intent(name, {"what": _text_after(original, g["what"])})
    if name == "type":
        return Intent(name, {"what": _after(original, _TEXT_SLOT_WORDS["type"])})
    if name == "open_url":
        return Intent(name, {"url": g["url"].replace(" dot ", ".").replace(" slash ", "/")})
    if name == "open_app":
        return Intent(name, {"app": g["app"]})
    if name == "media":
        verb = (
            g.get("verb") or g.get("verb2") or ("next" if "next" in g else "previous" if "prev" in g else "")
        )
        return Intent(name, {"command": {"resume": "play", "stop": "pause"}.get(verb, verb)})
    if name == "volume":
        if "level" in g:
            return Intent(name, {"command": "set", "level": spoken_number(g["level"]) or 0.0})
        if "mute" in g:
            return Intent(name, {"command": g["mute"]})
        up = any(g.get(k) == "up" for k in ("dir1", "dir2", "dir3")) or "louder" in g
        return Intent(name, {"command": "up" if up else "down"})
    return Intent(name)


def _text_after(original: str, normalised_tail: str) -> str:
    """The recognised text that the normalised ``normalised_tail`` came from (keeps case, punctuation)."""
    tail_words = len(normalised_tail.split())
    tokens = list(re.finditer(r"[\w']+", original))
    if tail_words == 0 or tail_words > len(tokens):
        return normalised_tail
    return original[tokens[len(tokens) - tail_words].start() :].strip().rstrip(".")
