"""Sentences to intents, on hassil: a transcript in, an ``Intent`` (a name and its slots) out, or None.

One matcher serves the fast path (time, date, what the assistant can do, who it is) and the agent
(timers, notes, media, volume, typing, opening, yes/no/stop). The sentences are the
home-assistant-intents English templates for what they cover, and ours (``sentences/en.yaml``, same
format) for the rest. A template matches a whole sentence, so a question that merely mentions the time
or opening something is left to the LLM. Nothing here runs anything: slots are plain strings and
numbers for the action layer to check against its allowlist.

Python does only what a template cannot: add up a duration's parts, give free text back as it was
recognised (case and punctuation), check that a web address is a host name, and keep a wildcard app
name short.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml
from hassil import Intents, recognize_all
from hassil.intents import TextSlotList
from hassil.recognize import RecognizeResult

SENTENCES = "sentences/en.yaml"
# Home Assistant data blocks that need things one desktop does not have (rooms, devices, named timers)
_UNUSED_SLOTS = re.compile(r"\{(?:area|floor|name|timer_name|timer_command)[:}]")
_DURATION_PARTS = {"hours": 3600, "minutes": 60, "seconds": 1, "extra_seconds": 1, "total_seconds": 1}
# an unlisted app is named in a word or two; a longer tail is a sentence ("run a mile in the rain")
MAX_UNLISTED_APP_WORDS = 2
# a host name as spoken once normalised: "example dot com slash news" (hassil has no regex slot)
_URL = re.compile(r"^[a-z0-9-]+(?: dot [a-z0-9-]+)+(?: slash [a-z0-9-]+)*$")
_QUESTION_WORDS = {"what", "why", "how", "when", "where", "who", "which", "is", "are", "does", "do"}


@dataclass(frozen=True)
class Intent:
    name: str  # ours: "time", "timer", "open_app", "stop", ... (sentences/en.yaml maps Home Assistant's)
    slots: dict[str, str | float] = field(default_factory=dict)
    sentence: str = field(default="", compare=False)  # the template that matched, for reports


def normalise(text: str) -> str:
    """Lower case, no punctuation, "%" and the dots of a web address spoken as words."""
    text = text.lower().replace("%", " percent")
    text = re.sub(r"(?<=[^\W\d])\.(?=\w)|(?<=\w)\.(?=[^\W\d])", " dot ", text)  # example.com, not 1.5
    text = re.sub(r"(?<=\w)/(?=\w)", " slash ", text)
    text = re.sub(r"\bclip board\b", "clipboard", text)  # as Whisper sometimes writes it
    return re.sub(r"\s+", " ", re.sub(r"(?:[^\w' .]|(?<!\d)\.|\.(?!\d))+", " ", text)).strip()


@dataclass(frozen=True)
class _Sentences:
    intents: Intents  # everything that `match` recognises
    durations: Intents  # a bare duration, for `parse_duration`
    renames: dict[str, tuple[str, dict[str, Any]]]  # Home Assistant's intent -> (ours, fixed slots)


@functools.cache
def _sentences() -> _Sentences:
    """Parse the templates once per process, on first use (a few tens of milliseconds): never at
    import, never per sentence."""
    from home_assistant_intents import get_intents

    ours = yaml.safe_load(resources.files("assistant.reply").joinpath(SENTENCES).read_text("utf-8"))
    theirs = get_intents("en") or {}
    renames = {ha: (v["intent"], v.get("slots", {})) for ha, v in ours.pop("home_assistant").items()}
    intents: dict[str, Any] = {}
    for name in renames:
        blocks = [_usable(block) for block in theirs["intents"][name]["data"]]
        intents[name] = {"data": [b for b in blocks if b is not None]}
    for name, body in ours["intents"].items():
        intents.setdefault(name, {"data": []})["data"].extend(body["data"])
    merged = {
        "language": "en",
        "intents": intents,
        "lists": {**theirs["lists"], **ours["lists"]},
        "expansion_rules": {**theirs["expansion_rules"], **ours["expansion_rules"]},
        "skip_words": theirs["skip_words"],
    }
    durations = {**merged, "intents": {"duration": {"data": [{"sentences": ["<duration>"]}]}}}
    return _Sentences(Intents.from_dict(merged), Intents.from_dict(durations), renames)


def _usable(block: dict[str, Any]) -> dict[str, Any] | None:
    sentences = [s for s in block["sentences"] if not _UNUSED_SLOTS.search(s)]
    if not sentences:
        return None
    # "the area" of a default block is here: the one desktop this runs on
    return {k: v for k, v in block.items() if k != "requires_context"} | {"sentences": sentences}


def load() -> None:
    """Parse the sentence templates and build hassil's number-word tables now (start-up), not on the
    first command."""
    default_matcher().match("set a timer for five minutes and ten seconds")
    default_matcher().match("set the volume to fifty percent")


class IntentMatcher:
    """Matches whole sentences; ``apps`` (the agent's allowlist) is the slot list of app names."""

    def __init__(self, apps: Iterable[str] = ()) -> None:
        self._apps = TextSlotList.from_strings(sorted({normalise(a) for a in apps}))

    def match(self, text: str) -> Intent | None:
        norm = normalise(text)
        if not norm:
            return None
        s = _sentences()
        results = recognize_all(norm, s.intents, slot_lists={"app": self._apps})
        for result in sorted(results, key=_preference):
            intent = _intent(result, text, s.renames)
            if intent is not None:
                return intent
        return None


def _preference(result: RecognizeResult) -> tuple[int, int, int, int, str]:
    """Fewer wildcards, more literal words, less wildcard text (hassil's own order); on a tie, our
    templates before Home Assistant's (a lone "stop" is ours, not "pause the media")."""
    wild = [e for e in result.entities_list if e.is_wildcard]
    theirs = result.intent.name.startswith("Hass")
    return (
        len(wild),
        -result.text_chunks_matched,
        sum(len(e.text) for e in wild),
        theirs,
        result.intent.name,
    )


def _intent(result: RecognizeResult, original: str, renames: dict) -> Intent | None:
    name, fixed = renames.get(result.intent.name, (result.intent.name, {}))
    found = {k: e.value for k, e in result.entities.items()}
    slots: dict[str, str | float] = {k: v for k, v in fixed.items()}
    if "command" in found:  # a fixed slot of one of our templates
        slots["command"] = str(found["command"])
    if any(k in found for k in _DURATION_PARTS):
        slots["seconds"] = float(sum(float(found[k]) * f for k, f in _DURATION_PARTS.items() if k in found))
    if "what" in found:
        slots["what"] = recognised_text(original, str(found["what"]))
        if _asks(original, str(slots["what"])):
            return None
    if "url" in found:
        url = str(found["url"])
        if not _URL.match(url):
            return None
        slots["url"] = url.replace(" dot ", ".").replace(" slash ", "/")
    if "app" in found:
        slots["app"] = str(found["app"])
    if "unlisted_app" in found:
        app = str(found["unlisted_app"]).split()
        sentence_like = len(app) > MAX_UNLISTED_APP_WORDS or bool(_QUESTION_WORDS & set(app))
        # ...unless it starts with a program this machine has ("run rm on my home folder"): that is
        # a request to run something, which the action layer refuses out loud, not a chat for the LLM
        if sentence_like and not (app and shutil.which(app[0].lower())):
            return None
        slots["app"] = " ".join(app)
    if "volume_level" in found:
        slots["level"] = float(found["volume_level"])
    if name == "volume" and "command" not in slots:
        step = found.get("volume_step")
        down = step == "down" or re.search(r"\b(?:down|decrease|lower)\b", normalise(original))
        slots["command"] = "down" if down else "up"
    sentence = result.intent_sentence.text if result.intent_sentence is not None else ""
    return Intent(name, slots, sentence)


def _asks(original: str, free_text: str) -> bool:
    """Free text that holds a question ("note to self, how do I say that in French?"): the sentence
    is one for the LLM (hassil sees no punctuation, so this is ours)."""
    clauses = [c.split() for c in re.split(r"[,;:]", free_text.lower())]
    return original.rstrip().endswith("?") and any(c and c[0] in _QUESTION_WORDS for c in clauses)


def recognised_text(original: str, words: str) -> str:
    """The words of a wildcard as the transcript had them, case and punctuation kept, a final full
    stop dropped ("Type, Hello world!" -> "Hello world!"); the normalised words if they cannot be
    found."""
    want = words.split()
    flat: list[tuple[str, int]] = []  # (normalised word, index of the transcript's chunk it is in)
    chunks = list(re.finditer(r"\S+", original))
    for n, chunk in enumerate(chunks):
        flat += [(w, n) for w in normalise(chunk.group()).split()]
    for i in range(len(flat) - len(want), -1, -1):  # the last occurrence: a slot mostly ends the sentence
        if want and [w for w, _ in flat[i : i + len(want)]] == want:
            first, last = flat[i][1], flat[i + len(want) - 1][1]
            text = original[chunks[first].start() : chunks[last].end()]
            return re.sub(r"^[^\w'\"(]+", "", text).rstrip(".,;:")
    return words


def parse_duration(text: str) -> float | None:
    """Seconds in "3 seconds", "one minute and thirty seconds", "an hour and a half"; None if none."""
    norm = normalise(text)
    for result in recognize_all(norm, _sentences().durations) if norm else ():
        found = {k: float(e.value) for k, e in result.entities.items()}
        return sum(found[k] * f for k, f in _DURATION_PARTS.items() if k in found) or None
    return None


@functools.cache
def default_matcher() -> IntentMatcher:
    """The matcher without an app allowlist (the fast path; "open X" comes out as an unlisted app)."""
    return IntentMatcher()
