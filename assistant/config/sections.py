"""Every knob, as a field of a frozen pydantic dataclass: its type is all the validation it gets.

``Literal`` lists the choices, ``_in(default, lo, hi)`` the range; ``strict`` keeps YAML's ``yes`` from
being true and 1 from being a bool (``--set`` values are parsed as YAML first); ints are still taken
as floats, and path and list fields take strings and lists. Related knobs are cross-checked in the
``_cross_checks`` validators, each error naming both keys. They remain stdlib dataclasses, so
``dataclasses.replace`` works (and re-validates).
"""

from __future__ import annotations

import operator
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticCustomError

# Short on purpose: bench/llm.py measured longer, more detailed speech instructions making the 135M
# model answer worse (even in French); formatting is cleaned for speech after generation instead.
DEFAULT_SYSTEM_PROMPT = "You are a helpful voice assistant. Answer in one short sentence."
_STRICT = ConfigDict(strict=True, extra="forbid")


def _in(default: Any, lo: float, hi: float) -> Any:
    """A numeric field allowed only in ``lo..hi`` (NaN is outside every range)."""
    return Field(default, ge=lo, le=hi)


def _lax(default: Any) -> Any:
    """A path or list field: YAML gives a string or a list, which strict mode would refuse."""
    return Field(default, strict=False)


def _state_file(*parts: str) -> Any:
    """A path field defaulting to ``~/.local/<parts>`` (the user's home, looked up when it is needed)."""
    return Field(default_factory=lambda: Path.home().joinpath(".local", *parts), strict=False)


def _in_order(cfg: Any, section: str, lower: str, upper: str, why: str) -> None:
    """Reject ``lower`` > ``upper``; both are dotted names below ``cfg``."""
    lo, hi = operator.attrgetter(lower)(cfg), operator.attrgetter(upper)(cfg)
    if lo > hi:
        ctx = {"lower": section + lower, "upper": section + upper, "lo": lo, "hi": hi, "why": why}
        raise PydanticCustomError("cross_check", "{lower} ({lo}) must be at most {upper} ({hi}): {why}", ctx)


Device = str | Annotated[int, Field(ge=0, le=4096)] | None  # a name substring or an index
# one tcp://host:port or a list of them (YAML gives a list, which strict mode would refuse as a tuple)
Uris = str | Annotated[tuple[str, ...], Field(strict=False)]
PartialMs = Literal[0] | Annotated[int, Field(ge=200, le=10000)]  # 0 = off


@dataclass(frozen=True, config=_STRICT)
class AudioConfig:
    frame_ms: Literal[10, 20, 30] = 20
    input_device: Device = None
    output_device: Device = None
    input_rate: int | None = _in(None, 8000, 192000)
    play: Literal["auto", "always", "never"] = "auto"


@dataclass(frozen=True, config=_STRICT)
class VadConfig:
    aggressiveness: int = _in(2, 0, 3)
    hangover_ms: int = _in(400, 100, 3000)
    min_speech_ms: int = _in(250, 0, 5000)
    pre_roll_ms: int = _in(300, 0, 2000)
    onset_ms: int = _in(60, 10, 1000)
    max_utterance_s: float = _in(30.0, 5, 600)
    pause_ms: int = _in(100, 40, 1000)  # silence before the recogniser speculates (a pause)
    # end of turn from how it was said (engines/turn.py) or what (engines/llm_turn.py); "none":
    # hangover_ms alone
    end_of_turn: Literal["smart_turn", "llm", "none"] = "llm"
    end_of_turn_threshold: float = _in(0.5, 0.0, 1.0)
    llm_threshold: float = _in(0.01, 0.0, 1.0)  # llm: the P(end) that blends to 0.5
    last_word_doubt: float = _in(0.5, 0.0, 1.0)  # a last word recognised less surely may be unsaid
    min_silence_ms: int = _in(200, 100, 3000)
    max_silence_ms: int = _in(2000, 100, 10000)

    @model_validator(mode="after")
    def _cross_checks(self) -> VadConfig:
        why = "the pre-roll must hold the onset run, or every turn loses its first syllable"
        _in_order(self, "vad.", "onset_ms", "pre_roll_ms", why)
        why = "an unfinished turn would be held for less time than a finished one waits"
        _in_order(self, "vad.", "min_silence_ms", "max_silence_ms", why)
        why = "a pause's transcript would come after the turn was judged or ended"
        _in_order(self, "vad.", "pause_ms", "min_silence_ms", why)
        _in_order(self, "vad.", "pause_ms", "hangover_ms", why)
        return self


@dataclass(frozen=True, config=_STRICT)
class AsrConfig:
    model: str = "tiny.en"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: Literal[
        "int8", "int8_float16", "int8_float32", "int16", "float16", "bfloat16", "float32", "default"
    ] = "int16"
    beam_size: int = _in(1, 1, 10)
    language: str | None = "en"
    cpu_threads: int = _in(2, 0, 64)
    # the shortest encoder window in seconds (the audio + 2 s when longer); 30 = Whisper's full window
    window_s: float = _in(12.0, 1.0, 30.0)
    partial_interval_ms: PartialMs = 0
    speculative: bool = True
    # Whisper's initial prompt for speech over a reply on a loudspeaker (None or "": none): see config.yaml
    over_reply_prompt: str | None = "Mm-hmm. Uh-huh. Yeah. Okay. Stop."
    # backend "wyoming": recognise on Wyoming servers (one tcp://host:port or a list) instead of here
    backend: Literal["local", "wyoming"] = "local"
    uri: Uris = "tcp://127.0.0.1:10300"


@dataclass(frozen=True, config=_STRICT)
class LlmConfig:
    model: str = "qwen2.5-coder-0.5b-instruct"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantization: Literal["auto", "none", "int8", "int8-mlp", "int8-channel", "int4", "bf16", "fp16"] = "auto"
    max_new_tokens: int = _in(60, 1, 2048)
    temperature: float = _in(0.0, 0, 2)
    repetition_penalty: float = _in(1.0, 1.0, 2.0)
    threads: int = _in(2, 0, 64)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # few-shot (question, answer) turns put after the system prompt; part of the cached prefix
    examples: tuple[Annotated[tuple[str, str], Field(strict=False)], ...] = _lax(())
    history_tokens: int = _in(512, 0, 32768)
    prefix_cache: bool = True
    speculative: bool = True
    split_first_sentence: bool = True  # the first sentence's subject is said while the rest is made
    early_phrases: bool = True  # while little audio is ahead, a long clause ends before a phrase
    lookup_tokens: int = _in(4, 0, 16)  # guesses from the prompt checked a step (not CPU int8)
    # backend "openai": stream from an OpenAI-compatible server instead of loading `model` here
    backend: Literal["local", "openai"] = "local"
    base_url: str = "http://127.0.0.1:8000/v1"
    api_model: str | None = None  # None: the one model the server lists
    api_key_env: str | None = None  # the NAME of the variable holding the key; never the key itself
    connect_timeout_ms: int = _in(2000, 100, 60000)
    read_timeout_ms: int = _in(10000, 100, 600000)
    # the agent's allowed actions offered to the server's model as OpenAI tools ("auto": with backend
    # openai, in `assistant agent` and `ask --agent`; the local model stays on the intent matcher)
    tools: Literal["auto", "off"] = "auto"


@dataclass(frozen=True, config=_STRICT)
class DeadlineConfig:
    first_audio_ms: int = _in(1600, 100, 10000)
    answer_ms: int = _in(4000, 200, 60000)
    reply_ms: int = _in(10000, 500, 120000)
    acknowledgements: tuple[str, ...] = _lax(("Hmm.", "Let's see.", "Well,"))
    acknowledgement: str | None = None  # the older single phrase; when set, it replaces the list
    apology_timeout: str = "Sorry, I could not come up with an answer in time."
    apology_error: str = "Sorry, something went wrong on my side. Please ask again."

    @model_validator(mode="after")
    def _cross_checks(self) -> DeadlineConfig:
        why = "the acknowledgement would come after the apology for no answer"
        _in_order(self, "deadline.", "first_audio_ms", "answer_ms", why)
        why = "the reply would be cut off before the answer deadline, and end in silence"
        _in_order(self, "deadline.", "answer_ms", "reply_ms", why)
        return self


STOP_PHRASES = (
    "stop",
    "cancel",
    "be quiet",
    "quiet",
    "that's enough",
    "enough",
    "okay thanks",
    "ok thanks",
    "no thanks",
    "no",  # live, a "Stop." over the loudspeaker came out as "No." (the confirmation intent)
    "nope",
    "never mind",
    "shut up",
    "silence",
    "that's it",
    "that will do",
)  # fmt: skip (no bare "thanks" / "thank you": Whisper makes those of noise, see stages/policy.py)
BACKCHANNELS = (
    "mm-hmm",
    "mhm",
    "mm",
    "hmm",
    "uh-huh",
    "uh huh",
    "yeah",
    "yes",
    "yep",
    "right",
    "okay",
    "ok",
    "sure",
    "i see",
    "got it",
    "cool",
    "oh",
    "wow",
    "nice",
    "alright",
)  # fmt: skip (no "ah", "uh", "um": live, a "Stop." clipped by the echo canceller came out as "ah")


@dataclass(frozen=True, config=_STRICT)
class BargeInConfig:
    enabled: bool = True
    echo: Literal["aec", "gate", "none"] = "aec"
    gate_margin_db: float = _in(6.0, -60, 40)
    residual_margin_db: float = _in(-24.0, -60, 40)
    echo_tail_ms: int = _in(300, 0, 3000)
    aec_delay_ms: int = _in(0, 0, 1000)
    # pause first, decide after: speech over a reply pauses it; its transcript then stops the reply,
    # resumes it (no words, a backchannel, its own echo) or answers the new question
    pause: bool = True
    stop_phrases: tuple[str, ...] = _lax(STOP_PHRASES)
    backchannels: tuple[str, ...] = _lax(BACKCHANNELS)
    stop_short_words: int = _in(2, 0, 5)  # this many words or fewer over a reply, no command: stop
    stop_reply: str = ""  # said after a stop ("" = silence)
    decide_timeout_s: float = _in(3.0, 0.2, 30)  # no transcript this long after the speech: resume
    hold_generation: bool = True  # a paused reply's local LLM decodes nothing until it is decided


@dataclass(frozen=True, config=_STRICT)
class TtsConfig:
    voice: str = "en_US-joe-medium"
    length_scale: float = _in(1.0, 0.5, 2.0)
    sentence_silence_s: float = _in(0.0, 0, 2)
    backend: Literal["local", "wyoming"] = "local"  # "wyoming": synthesise on Wyoming servers (tts.uri)
    uri: Uris = "tcp://127.0.0.1:10200"
    first_clause_priority: bool = True  # a local LLM waits while an answer's first clause is synthesised


# Every desktop action the agent knows (assistant/agent/intents.py); `agent.actions` allows a subset.
AgentAction = Literal[
    "time", "date", "timer", "reminder", "note", "open_url", "open_app", "type", "clipboard", "media", "volume",
]  # fmt: skip
AGENT_ACTIONS: tuple[str, ...] = get_args(AgentAction)


@dataclass(frozen=True, config=_STRICT)
class AgentConfig:
    # a shipped wake-word model heard on every frame before the VAD (engines/wakeword.py), or "none":
    # the wake phrase found in the transcript alone (every sentence in the room is then transcribed)
    wake_word: Literal["none", "okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"] = "okay_nabu"
    wake_cutoff: float | None = _in(None, 0.0, 1.0)  # None: the model's own probability cut-off
    wake_listen_s: float = _in(4.0, 0.5, 30)  # how long after the wake word the request may start
    wake_refractory_s: float = _in(2.0, 0, 30)  # no second detection this soon after one
    wake_phrase: str = "hey assistant"
    wake_similarity: float = _in(0.82, 0.5, 1.0)
    followup_s: float = _in(6.0, 0, 120)
    actions: tuple[AgentAction, ...] = _lax(AGENT_ACTIONS)
    confirm: tuple[AgentAction, ...] = _lax(("open_url", "open_app", "type"))
    apps: dict[str, str] = field(
        default_factory=lambda: {
            "text editor": "gnome-text-editor",
            "calculator": "gnome-calculator",
            "files": "nautilus",
            "browser": "firefox",
        }
    )
    notes_file: Path = _state_file("share", "assistant", "notes.txt")
    event_log: Path | None = _state_file("state", "assistant", "agent.jsonl")  # empty: no event log


@dataclass(frozen=True, config=_STRICT)
class WyomingConfig:
    """`assistant serve --wyoming`: where it listens and what one client may send."""

    host: str = "127.0.0.1"
    port: int = _in(10300, 1, 65535)
    max_clients: int = _in(16, 1, 1024)
    max_payload_kb: int = _in(1024, 1, 65536)
    max_audio_s: float = _in(60.0, 1, 3600)
    max_text_chars: int = _in(5000, 1, 1_000_000)
    idle_timeout_s: float = _in(300.0, 1, 86400)
    busy_idle_timeout_s: float = _in(10.0, 0.1, 86400)
    max_clients_per_address: int = _in(12, 1, 1024)
    partial_interval_ms: PartialMs = 1000
    # run-pipeline: the client's audio during the reply may pause and stop it (barge_in's rules);
    # the reply's audio then goes out as it plays, this far ahead
    barge_in: bool = True
    playback_lead_s: float = _in(0.2, 0.02, 5.0)


@dataclass(frozen=True, config=_STRICT)
class ModelsConfig:
    cache_dir: Path = _lax(Path("models/cache"))


@dataclass(frozen=True, config=_STRICT)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    event_log_max_kb: int = _in(5120, 0, 10_000_000)  # 0: never rotated
    event_log_backups: int = _in(1, 1, 100)


@dataclass(frozen=True, config=_STRICT)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    asr: AsrConfig = field(default_factory=AsrConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    deadline: DeadlineConfig = field(default_factory=DeadlineConfig)
    barge_in: BargeInConfig = field(default_factory=BargeInConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    wyoming: WyomingConfig = field(default_factory=WyomingConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: Path | None = None
