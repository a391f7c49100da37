"""Configuration: the knobs (``sections``, one frozen pydantic dataclass per section) and their loading.

``load_config`` reads config.yaml (or ``$ASSISTANT_CONFIG``), applies dotted ``--set KEY=VALUE``
overrides and validates with pydantic; missing sections and keys keep the defaults. What stays
hand-written is the wording: unknown keys get a "did you mean", and every error names where the value
came from (the file path or ``--set``) and the dotted key, all errors at once. The package imports
nothing else from ``assistant``: every layer may import it.
"""

from __future__ import annotations

import difflib
import logging
import os
import types
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import TypeAdapter, ValidationError

from assistant.config.sections import (
    AGENT_ACTIONS,
    DEFAULT_SYSTEM_PROMPT,
    AgentConfig,
    AsrConfig,
    AudioConfig,
    BargeInConfig,
    Config,
    DeadlineConfig,
    LlmConfig,
    LoggingConfig,
    ModelsConfig,
    TtsConfig,
    VadConfig,
    WyomingConfig,
)

__all__ = [  # the sections are defined in sections.py; everything else imports them from here
    "AGENT_ACTIONS", "DEFAULT_SYSTEM_PROMPT", "AgentConfig", "AsrConfig", "AudioConfig", "BargeInConfig",
    "Config", "ConfigError", "DeadlineConfig", "LlmConfig", "LoggingConfig", "ModelsConfig", "TtsConfig",
    "VadConfig", "WyomingConfig", "config_to_dict", "default_config_path", "load_config",
]  # fmt: skip

log = logging.getLogger(__name__)

ENV_VAR = "ASSISTANT_CONFIG"
SET_ORIGIN = "--set"


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the file (or --set) and key."""


# string keys where "" is a meaningful value
_EMPTY_OK = frozenset({"llm.system_prompt", "barge_in.stop_reply"})
# optional keys where "" means None: the feature off
_EMPTY_IS_OFF = frozenset({"agent.event_log", "asr.over_reply_prompt"})
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string", Path: "a path"}


def default_config_path() -> Path:
    """``$ASSISTANT_CONFIG`` if set, else ``config.yaml`` at the repository root."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "config.yaml"


def _sections() -> dict[str, Any]:
    return {n: f.annotation for n, f in Config.__pydantic_fields__.items() if n != "source"}


def _allowed(hint: Any, constraints: Sequence[Any] = ()) -> str:
    """A field's type in words: "an integer in 1..2048", "one of 'auto', 'cpu'", "a string or null"."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return ("one of " if len(args) > 1 else "") + ", ".join(map(repr, args))
    if origin is Annotated:  # Annotated[int, Field(ge=.., le=..)]: the bounds are in the FieldInfo
        return _allowed(args[0], [m for info in args[1:] for m in getattr(info, "metadata", [info])])
    if origin in (Union, types.UnionType):
        return " or ".join(_allowed(a) for a in args)
    if origin is tuple:
        return f"a list of {_allowed(args[0])}"
    if origin is dict:
        return "a mapping of names to strings"
    lo = next((m.ge for m in constraints if hasattr(m, "ge")), None)
    hi = next((m.le for m in constraints if hasattr(m, "le")), None)
    return _TYPE_NAMES.get(hint, "null") + (f" in range {lo}..{hi}" if lo is not None else "")


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


def _build(cls: Any, section: str, values: dict[str, Any], origin: dict[str, str], errors: list[str]) -> Any:
    """``cls(**values)``, or None with pydantic's complaints worded as ours appended to ``errors``."""
    try:
        return cls(**values)
    except ValidationError as exc:
        bad_fields: dict[str, None] = {}  # one message per field, however many union arms failed
        for err in exc.errors():
            if err["type"] == "cross_check":  # names both keys, and where each was set
                keys = (err["ctx"]["lower"], err["ctx"]["upper"])
                where = ", ".join(dict.fromkeys(origin[k] for k in keys if k in origin)) or "defaults"
                errors.append(f"{where}: {err['msg']}")
            else:
                bad_fields[str(err["loc"][0])] = None
        for name in bad_fields:
            key, info = f"{section}.{name}" if section else name, cls.__pydantic_fields__[name]
            allowed = _allowed(info.annotation, info.metadata)
            errors.append(f"{origin[key]}: {key}: invalid value {values[name]!r}; allowed: {allowed}")
        return None


def load_config(path: Path | str | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load, override and validate a config; missing sections/keys keep the defaults.

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
    sections = _sections()
    all_keys = [f"{s}.{f.name}" for s, cls in sections.items() for f in fields(cls)]
    errors: list[str] = []
    data: dict[str, dict[str, Any]] = {s: {} for s in sections}
    origin: dict[str, str] = {}

    def put(key: str, value: Any, came_from: str) -> None:
        section, _, name = key.partition(".")
        if isinstance(value, str) and not value.strip() and key in _EMPTY_IS_OFF:
            data[section][name], origin[key] = None, came_from
        elif isinstance(value, str) and not value.strip() and key not in _EMPTY_OK:
            errors.append(f"{came_from}: {key}: must not be empty")
        else:
            data[section][name], origin[key] = value, came_from

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
                    put(key, value, where)

    for item in overrides or ():
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            errors.append(f"{SET_ORIGIN}: '{item}' has no '='; expected section.key=value")
        elif key not in all_keys:
            errors.append(f"{SET_ORIGIN}: unknown key '{key}'{_suggest(key, all_keys)}")
        else:
            put(key, value := _parse_override(text), SET_ORIGIN)
            log.debug("override %s=%r", key, value)

    base = source.parent if source is not None else cfg_path.resolve().parent
    built: dict[str, Any] = {}
    for section, cls in sections.items():
        obj = _build(cls, section, data[section], origin, errors)
        if obj is not None:  # relative paths are relative to the config file, not the working folder
            paths = {
                f.name: getattr(obj, f.name) for f in fields(obj) if isinstance(getattr(obj, f.name), Path)
            }
            built[section] = replace(obj, **{n: (base / p.expanduser()).resolve() for n, p in paths.items()})
    cfg = None if errors else _build(Config, "", {**built, "source": source}, origin, errors)
    if cfg is None:
        raise ConfigError("\n".join(errors))
    log.debug("loaded config from %s", source or "defaults")
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The effective config as plain JSON-able data (paths as strings), for reports and logs."""
    return TypeAdapter(Config).dump_python(cfg, mode="json")
