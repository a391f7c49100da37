"""Typed configuration: frozen dataclasses loaded from YAML, validated, with dotted ``--set`` overrides.

Every knob is a dataclass field; its type hint plus an optional ``_Rule`` in its metadata (allowed
choices and/or a numeric range, declared with ``_knob``) is all the validation there is, so adding a
knob means adding one field. Missing sections and keys keep the dataclass defaults. Every error message
names where the value came from (the file path or ``--set``) and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import types
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

log = logging.getLogger(__name__)

ENV_VAR = "ASSISTANT_CONFIG"
SET_ORIGIN = "--set"
# Short on purpose: bench/llm.py measured longer, more detailed speech instructions making the 135M
# model answer worse (even in French); formatting is cleaned for speech after generation instead.
DEFAULT_SYSTEM_PROMPT = "You are a helpful voice assistant. Answer in one short sentence."


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file (or --set) and key."""


@dataclass(frozen=True)
class _Rule:
    """Allowed values beyond the type: any of ``choices``, or a number in ``lo..hi`` (strings skip the
    range, so ``str | int`` device fields range-check only indices)."""

    choices: tuple[Any, ...] = ()
    lo: float | None = None
    hi: float | None = None

    def allows(self, value: Any) -> bool:
        if isinstance(value, tuple) and self.choices:  # a list knob: every item must be allowed
            return all(item in self.choices for item in value)
        if isinstance(value, dict) or value is None or value in self.choices:
            return True
        if self.lo is not None and isinstance(value, int | float):
            return self.lo <= value <= self.hi  # NaN fails both comparisons
        return not self.choices and not isinstance(value, int | float)

    def describe(self) -> str:
        parts = [repr(c) for c in self.choices]
        if self.lo is not None:
            parts.append(f"range {self.lo}..{self.hi}")
        return ("one of " if len(parts) > 1 else "") + ", ".join(parts)


def _knob(
    default: Any, *, choices: tuple[Any, ...] = (), lo: float | None = None, hi: float | None = None
) -> Any:
    """A dataclass field whose allowed values (beyond its type) are recorded in its metadata."""
    return field(default=default, metadata={"rule": _Rule(choices, lo, hi)})


@dataclass(frozen=True)
class AudioConfig:
    frame_ms: int = _knob(20, choices=(10, 20, 30))
    input_device: str | int | None = _knob(None, lo=0, hi=4096)
    output_device: str | int | None = _knob(None, lo=0, hi=4096)
    input_rate: int | None = _knob(None, lo=8000, hi=192000)
    play: str = _knob("auto", choices=("auto", "always", "never"))


@dataclass(frozen=True)
class VadConfig:
    aggressiveness: int = _knob(2, lo=0, hi=3)
    hangover_ms: int = _knob(400, lo=100, hi=3000)
    min_speech_ms: int = _knob(250, lo=0, hi=5000)
    pre_roll_ms: int = _knob(300, lo=0, hi=2000)
    onset_ms: int = _knob(60, lo=10, hi=1000)
    # end of turn from how it was said (assistant/engines/turn.py); "none": hangover_ms alone
    end_of_turn: str = _knob("smart_turn", choices=("smart_turn", "none"))
    end_of_turn_threshold: float = _knob(0.5, lo=0.0, hi=1.0)
    min_silence_ms: int = _knob(200, lo=100, hi=3000)
    max_silence_ms: int = _knob(2000, lo=100, hi=10000)


@dataclass(frozen=True)
class AsrConfig:
    model: str = "tiny.en"
    device: str = _knob("cpu", choices=("cpu", "cuda", "auto"))
    compute_type: str = _knob(
        "int8", choices=("int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32", "default")
    )
    beam_size: int = _knob(1, lo=1, hi=10)
    language: str | None = "en"
    cpu_threads: int = _knob(2, lo=0, hi=64)
    partial_interval_ms: int = _knob(0, choices=(0,), lo=200, hi=10000)
    speculative: bool = True


@dataclass(frozen=True)
class LlmConfig:
    model: str = "smollm2-135m-instruct"
    device: str = _knob("auto", choices=("auto", "cpu", "cuda"))
    quantization: str = _knob("auto", choices=("auto", "none", "int8", "int4", "bf16", "fp16"))
    max_new_tokens: int = _knob(60, lo=1, hi=2048)
    temperature: float = _knob(0.0, lo=0, hi=2)
    repetition_penalty: float = _knob(1.0, lo=1.0, hi=2.0)
    threads: int = _knob(2, lo=0, hi=64)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_tokens: int = _knob(512, lo=0, hi=32768)
    prefix_cache: bool = True
    speculative: bool = True
    # backend "openai": stream from an OpenAI-compatible server instead of loading `model` here
    backend: str = _knob("local", choices=("local", "openai"))
    base_url: str = "http://127.0.0.1:8000/v1"
    api_model: str | None = None  # None: the one model the server lists
    api_key_env: str | None = None  # the NAME of the variable holding the key; never the key itself
    connect_timeout_ms: int = _knob(2000, lo=100, hi=60000)
    read_timeout_ms: int = _knob(10000, lo=100, hi=600000)


@dataclass(frozen=True)
class DeadlineConfig:
    first_audio_ms: int = _knob(1200, lo=100, hi=10000)
    answer_ms: int = _knob(4000, lo=200, hi=60000)
    reply_ms: int = _knob(10000, lo=500, hi=120000)
    acknowledgements: tuple[str, ...] = ("Hmm.", "Let's see.", "Well,")
    acknowledgement: str | None = None  # the older single phrase; when set, it replaces the list
    apology_timeout: str = "Sorry, I could not come up with an answer in time."
    apology_error: str = "Sorry, something went wrong on my side. Please ask again."


@dataclass(frozen=True)
class BargeInConfig:
    enabled: bool = True
    echo: str = _knob("aec", choices=("aec", "gate", "none"))
    gate_margin_db: float = _knob(6.0, lo=-60, hi=40)
    residual_margin_db: float = _knob(-24.0, lo=-60, hi=40)
    echo_tail_ms: int = _knob(300, lo=0, hi=3000)
    aec_delay_ms: int = _knob(0, lo=0, hi=1000)


@dataclass(frozen=True)
class TtsConfig:
    voice: str = "en_US-joe-medium"
    length_scale: float = _knob(1.0, lo=0.5, hi=2.0)
    sentence_silence_s: float = _knob(0.0, lo=0, hi=2)


# Every desktop action the agent knows (assistant/agent/intents.py); `agent.actions` allows a subset.
AGENT_ACTIONS = (
    "time", "date", "timer", "reminder", "note", "open_url", "open_app", "type", "clipboard", "media", "volume",
)  # fmt: skip


def _state_dir(*parts: str) -> Path:
    return Path.home().joinpath(".local", *parts)


@dataclass(frozen=True)
class AgentConfig:
    wake_phrase: str = "hey assistant"
    wake_similarity: float = _knob(0.82, lo=0.5, hi=1.0)
    followup_s: float = _knob(6.0, lo=0, hi=120)
    actions: tuple[str, ...] = _knob(AGENT_ACTIONS, choices=AGENT_ACTIONS)
    confirm: tuple[str, ...] = _knob(("open_url", "open_app", "type"), choices=AGENT_ACTIONS)
    apps: dict[str, str] = field(
        default_factory=lambda: {
            "text editor": "gnome-text-editor",
            "calculator": "gnome-calculator",
            "files": "nautilus",
            "browser": "firefox",
        }
    )
    notes_file: Path = field(default_factory=lambda: _state_dir("share", "assistant", "notes.txt"))
    event_log: Path = field(default_factory=lambda: _state_dir("state", "assistant", "agent.jsonl"))


@dataclass(frozen=True)
class WyomingConfig:
    """`assistant serve --wyoming`: where it listens and what one client may send."""

    host: str = "127.0.0.1"
    port: int = _knob(10300, lo=1, hi=65535)
    max_clients: int = _knob(16, lo=1, hi=1024)
    max_payload_kb: int = _knob(1024, lo=1, hi=65536)
    max_audio_s: float = _knob(60.0, lo=1, hi=3600)
    max_text_chars: int = _knob(5000, lo=1, hi=1_000_000)
    idle_timeout_s: float = _knob(300.0, lo=1, hi=86400)
    partial_interval_ms: int = _knob(1000, choices=(0,), lo=200, hi=10000)


@dataclass(frozen=True)
class ModelsConfig:
    cache_dir: Path = Path("models/cache")


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _knob("info", choices=("debug", "info", "warning", "error"))


@dataclass(frozen=True)
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


_EMPTY_OK = frozenset({"llm.system_prompt"})  # string keys where "" is a meaningful value
_COLLECTION_NAMES = {tuple: "a list of strings", dict: "a mapping of names to strings"}
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}


def default_config_path() -> Path:
    """``$ASSISTANT_CONFIG`` if set, else ``config.yaml`` at the repository root."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(__file__).resolve().parent.parent / "config.yaml"


def _type_args(hint: Any) -> tuple[Any, ...]:
    return get_args(hint) if get_origin(hint) in (Union, types.UnionType) else (hint,)


def _coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """(ok, value converted to the field type). bool is never an int; ints are accepted as floats."""
    for t in _type_args(hint):
        if t is type(None) and value is None:
            return True, None
        if t is bool and isinstance(value, bool):
            return True, value
        if isinstance(value, bool):
            continue
        if (t is int and isinstance(value, int)) or (t is str and isinstance(value, str)):
            return True, value
        if t is float and isinstance(value, int | float):
            return True, float(value)
        if t is Path and isinstance(value, str | Path):
            return True, Path(value).expanduser()
        if (
            get_origin(t) is tuple
            and isinstance(value, list | tuple)
            and all(isinstance(v, str) for v in value)
        ):
            return True, tuple(value)
        if (
            get_origin(t) is dict
            and isinstance(value, dict)
            and all(isinstance(v, str) for v in value.values())
        ):
            return True, {str(k): v for k, v in value.items()}
    return False, None


def _check(key: str, value: Any, hint: Any, rule: _Rule | None) -> tuple[str | None, Any]:
    """(problem or None, value converted to the field type)."""
    if isinstance(value, str) and not value.strip() and key not in _EMPTY_OK:
        return "must not be empty", value
    ok, converted = _coerce(value, hint)
    if ok and (rule is None or rule.allows(converted)):
        return None, converted
    names = [_TYPE_NAMES.get(t) or _COLLECTION_NAMES.get(get_origin(t), "null") for t in _type_args(hint)]
    allowed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"invalid value {value!r}; allowed: {allowed}" + (f"; {rule.describe()}" if rule else ""), value


def _suggest(name: str, options: Sequence[str]) -> str:
    """A "did you mean" for a close match, else the valid names (of the same section, for keys)."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    section = name.partition(".")[0] + "."
    same = [o for o in options if o.startswith(section)]
    return f"; known: {', '.join(same or sorted({o.partition('.')[0] + '.*' for o in options}))}"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as f:
            raw = yaml.safe_load(f)  # a stream, so YAML errors cite the file's line and column
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config as YAML: {exc}") from exc
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def _parse_override(text: str) -> Any:
    """A YAML scalar or list (null, true, 3, 0.5, [a, b]); other text stays text."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # a list is a list (agent.confirm=[]); "Be brief: really" parses as a mapping but is meant as text,
    # and mapping knobs (agent.apps) are set in the file
    return text if isinstance(value, dict) else value


def load_config(path: Path | str | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load, override and validate a config; missing sections/keys keep the dataclass defaults.

    With ``path=None`` the default path is used; if that is the repo ``config.yaml`` (no
    ``$ASSISTANT_CONFIG``) and it does not exist, all defaults are used. Relative paths (also those
    given with ``--set``) resolve against the config file's folder. Raises ConfigError.
    """
    explicit = path is not None or bool(os.environ.get(ENV_VAR))
    cfg_path = Path(path).expanduser() if path is not None else default_config_path()
    raw: dict[str, Any] = {}
    source: Path | None = None
    if cfg_path.is_file():
        source = cfg_path.resolve()
        raw = _read_yaml(cfg_path)
    elif cfg_path.exists():
        raise ConfigError(f"{cfg_path}: config path is not a file")
    elif explicit:
        raise ConfigError(f"{cfg_path}: config file not found")
    else:
        log.debug("no config file at %s; using defaults", cfg_path)
    where = str(cfg_path)
    sections = {name: t for name, t in get_type_hints(Config).items() if name != "source"}
    all_keys = [f"{s}.{f.name}" for s, cls in sections.items() for f in fields(cls)]
    errors: list[str] = []
    data: dict[str, dict[str, Any]] = {s: {} for s in sections}
    origin: dict[str, str] = {}

    for section, body in raw.items():
        if section not in sections:
            errors.append(f"{where}: unknown section '{section}'{_suggest(str(section), list(sections))}")
        elif body is not None and not isinstance(body, dict):
            errors.append(f"{where}: {section}: must be a mapping of keys, got {body!r}")
        else:
            for name, value in (body or {}).items():
                key = f"{section}.{name}"
                if key not in all_keys:
                    errors.append(f"{where}: unknown key '{key}'{_suggest(key, all_keys)}")
                else:
                    data[section][name], origin[key] = value, where

    for item in overrides or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            errors.append(f"{SET_ORIGIN}: '{item}' has no '='; expected section.key=value")
        elif key not in all_keys:
            errors.append(f"{SET_ORIGIN}: unknown key '{key}'{_suggest(key, all_keys)}")
        else:
            section, _, name = key.partition(".")
            data[section][name], origin[key] = _parse_override(text), SET_ORIGIN
            log.debug("override %s=%r", key, data[section][name])

    base = source.parent if source is not None else cfg_path.resolve().parent
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        hints, rules = get_type_hints(cls), {f.name: f.metadata.get("rule") for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data[section].items():
            key = f"{section}.{name}"
            problem, values[name] = _check(key, value, hints[name], rules[name])
            if problem:
                errors.append(f"{origin[key]}: {key}: {problem}")
        obj = cls(**values)
        paths = {f.name: getattr(obj, f.name) for f in fields(cls) if isinstance(getattr(obj, f.name), Path)}
        built[section] = replace(obj, **{n: (base / p).resolve() for n, p in paths.items()})
    if errors:
        raise ConfigError("\n".join(errors))
    cfg = Config(**built, source=source)
    log.debug("loaded config from %s", source or "defaults")
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The effective config as plain JSON-able data (paths as strings), for reports and logs."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
