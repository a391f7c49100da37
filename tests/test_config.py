"""Tests for assistant.config: defaults, partial files, validation messages and --set overrides."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from assistant.config import (
    AsrConfig,
    Config,
    ConfigError,
    LlmConfig,
    ModelsConfig,
    config_to_dict,
    default_config_path,
    load_config,
)

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | str | None, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


def test_repo_config_states_exactly_the_defaults() -> None:
    cfg = load_config(REPO_CONFIG)
    assert cfg.source == REPO_CONFIG
    assert cfg.models.cache_dir == REPO_CONFIG.parent / "models" / "cache"
    assert dataclasses.replace(cfg, source=None, models=ModelsConfig()) == Config()


def test_default_config_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    assert default_config_path() == REPO_CONFIG
    monkeypatch.setenv("ASSISTANT_CONFIG", str(tmp_path / "x.yaml"))
    assert default_config_path() == tmp_path / "x.yaml"
    assert "x.yaml" in error_of(None)  # an env-named file must exist


def test_partial_file_keeps_other_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  max_new_tokens: 32\n  temperature: 1\nvad:\n")
    cfg = load_config(path)
    assert cfg.llm.max_new_tokens == 32
    assert cfg.llm.temperature == 1.0 and isinstance(cfg.llm.temperature, float)  # ints accepted as floats
    assert cfg.llm.model == LlmConfig().model
    assert cfg.vad == Config().vad and cfg.asr == AsrConfig()
    assert cfg.source == path.resolve()


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_is_all_defaults(tmp_path: Path, text: str) -> None:
    cfg = load_config(write(tmp_path, text))
    assert dataclasses.replace(cfg, source=None, models=ModelsConfig()) == Config()


def test_unknown_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  max_new_token: 10\n")
    msg = error_of(path)
    assert "llm.max_new_token" in msg and str(path) in msg and "did you mean 'llm.max_new_tokens'" in msg


def test_key_in_the_wrong_section_suggests_the_right_one(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "asr:\n  max_new_tokens: 10\n"))
    assert "asr.max_new_tokens" in msg and "llm.max_new_tokens" in msg


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "aduio:\n  frame_ms: 20\n")
    msg = error_of(path)
    assert "aduio" in msg and str(path) in msg and "did you mean 'audio'" in msg


def test_section_must_be_a_mapping(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "vad: 3\n"))
    assert "vad" in msg and "mapping" in msg


@pytest.mark.parametrize(
    ("text", "key", "bad"),
    [
        ("asr:\n  speculative: 'yes'\n", "asr.speculative", "'yes'"),  # bool must be a real bool
        ("asr:\n  speculative: 1\n", "asr.speculative", "1"),
        ("llm:\n  max_new_tokens: true\n", "llm.max_new_tokens", "True"),  # ints are not bools
        ("llm:\n  max_new_tokens: 6.5\n", "llm.max_new_tokens", "6.5"),
        ("llm:\n  temperature: hot\n", "llm.temperature", "'hot'"),
        ("llm:\n  model: 3\n", "llm.model", "3"),
        ("llm:\n  model: ''\n", "llm.model", "empty"),
        ("audio:\n  input_device: [1]\n", "audio.input_device", "[1]"),
        ("models:\n  cache_dir: 5\n", "models.cache_dir", "5"),
    ],
)
def test_bad_type(tmp_path: Path, text: str, key: str, bad: str) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert key in msg and str(path) in msg and bad in msg


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("llm:\n  max_new_tokens: 0\n", "llm.max_new_tokens", "1..2048"),
        ("vad:\n  aggressiveness: 4\n", "vad.aggressiveness", "0..3"),
        ("tts:\n  length_scale: 3.0\n", "tts.length_scale", "0.5..2.0"),
        ("llm:\n  temperature: .nan\n", "llm.temperature", "0..2"),
        ("asr:\n  partial_interval_ms: 100\n", "asr.partial_interval_ms", "200..10000"),
        ("audio:\n  input_device: -1\n", "audio.input_device", "0..4096"),
    ],
)
def test_out_of_range(tmp_path: Path, text: str, key: str, allowed: str) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert key in msg and str(path) in msg and allowed in msg


@pytest.mark.parametrize(
    ("text", "key", "allowed"),
    [
        ("audio:\n  frame_ms: 25\n", "audio.frame_ms", "10, 20, 30"),
        ("audio:\n  play: sometimes\n", "audio.play", "'never'"),
        ("asr:\n  compute_type: int4\n", "asr.compute_type", "'int8_float16'"),
        ("logging:\n  level: INFO\n", "logging.level", "'info'"),
        ("llm:\n  quantization: null\n", "llm.quantization", "'none'"),
    ],
)
def test_choices(tmp_path: Path, text: str, key: str, allowed: str) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert key in msg and str(path) in msg and allowed in msg


def test_valid_special_values(tmp_path: Path) -> None:
    text = (
        "audio:\n  input_device: USB\n  output_device: 3\n  input_rate: 48000\n"
        "asr:\n  language: null\n  partial_interval_ms: 0\n"
        "llm:\n  system_prompt: ''\n"
    )
    cfg = load_config(write(tmp_path, text))
    assert cfg.audio.input_device == "USB" and cfg.audio.output_device == 3 and cfg.audio.input_rate == 48000
    assert cfg.asr.language is None and cfg.asr.partial_interval_ms == 0
    assert cfg.llm.system_prompt == ""


def test_all_errors_reported_together(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, "vad:\n  aggressiveness: 9\n  onset_ms: 0\n"))
    assert "vad.aggressiveness" in msg and "vad.onset_ms" in msg


def test_overrides_valid(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  max_new_tokens: 32\n")
    overrides = (
        "llm.max_new_tokens=64",
        "asr.language=null",
        "asr.speculative=false",
        "tts.length_scale=0.8",
        "audio.input_device=USB Mic",
        "llm.system_prompt=Be brief: very brief.",  # not valid YAML: taken as a plain string
    )
    cfg = load_config(path, overrides)
    assert cfg.llm.max_new_tokens == 64
    assert cfg.asr.language is None and cfg.asr.speculative is False
    assert cfg.tts.length_scale == 0.8 and cfg.audio.input_device == "USB Mic"
    assert cfg.llm.system_prompt == "Be brief: very brief."


def test_override_unknown_key(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, ""), ("llm.max_tokens=5",))
    assert "--set" in msg and "llm.max_tokens" in msg and "did you mean 'llm.max_new_tokens'" in msg


def test_override_bad_value_names_set_not_file(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    msg = error_of(path, ("llm.max_new_tokens=9999",))
    assert msg.startswith("--set: llm.max_new_tokens") and "9999" in msg and "1..2048" in msg
    assert str(path) not in msg


def test_override_without_equals(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, ""), ("llm.max_new_tokens",))
    assert "--set" in msg and "llm.max_new_tokens" in msg and "=" in msg


def test_relative_cache_dir_resolves_against_config_folder(tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the loader resolves symlinks (e.g. /tmp on macOS)
    sub = tmp_path / "conf"
    sub.mkdir()
    path = write(sub, "models:\n  cache_dir: ../cache\n")
    assert load_config(path).models.cache_dir == tmp_path / "cache"
    assert load_config(path, ("models.cache_dir=c2",)).models.cache_dir == sub / "c2"
    absolute = tmp_path / "abs"
    assert load_config(path, (f"models.cache_dir={absolute}",)).models.cache_dir == absolute


def test_yaml_syntax_error_names_file(tmp_path: Path) -> None:
    path = write(tmp_path, "llm:\n  model: [unclosed\n")
    assert str(path) in error_of(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "42\n"])
def test_top_level_not_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert str(path) in msg and "mapping" in msg


def test_missing_explicit_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert str(missing) in error_of(missing)
    assert str(tmp_path) in error_of(tmp_path)  # a directory is not a config file


def test_config_to_dict_is_json_serialisable() -> None:
    cfg = load_config(REPO_CONFIG, ("audio.input_device=2",))
    data = config_to_dict(cfg)
    assert json.loads(json.dumps(data)) == data
    assert data["source"] == str(REPO_CONFIG)
    assert data["models"]["cache_dir"] == str(cfg.models.cache_dir)
    assert data["llm"]["max_new_tokens"] == 60 and data["audio"]["input_device"] == 2
    assert set(data) == {f.name for f in dataclasses.fields(Config)}


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().llm.max_new_tokens = 5  # type: ignore[misc]


def test_missing_implicit_default_means_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tmp_path = tmp_path.resolve()  # the loader resolves symlinks (e.g. /tmp on macOS)
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    monkeypatch.setattr("assistant.config.default_config_path", lambda: tmp_path / "config.yaml")
    cfg = load_config(None, ("vad.onset_ms=40",))
    assert cfg.source is None and cfg.vad.onset_ms == 40
    assert cfg.models.cache_dir == tmp_path / "models" / "cache"


# -- cross-checks between related values: each error names both keys and where they were set ---------


@pytest.mark.parametrize(
    ("text", "lower", "upper"),
    [
        ("deadline:\n  answer_ms: 12000\n", "deadline.answer_ms (12000)", "deadline.reply_ms (10000)"),
        (
            "deadline:\n  first_audio_ms: 5000\n",
            "deadline.first_audio_ms (5000)",
            "deadline.answer_ms (4000)",
        ),
        ("vad:\n  pre_roll_ms: 40\n", "vad.onset_ms (60)", "vad.pre_roll_ms (40)"),
        ("vad:\n  pause_ms: 300\n", "vad.pause_ms (300)", "vad.min_silence_ms (200)"),
    ],
)
def test_contradicting_values_name_both_keys_and_the_file(
    tmp_path: Path, text: str, lower: str, upper: str
) -> None:
    path = write(tmp_path, text)
    msg = error_of(path)
    assert msg.startswith(f"{path}: {lower} must be") and upper in msg


def test_answer_ms_above_reply_ms_is_refused_whichever_side_sets_it(tmp_path: Path) -> None:
    path = write(tmp_path, "deadline:\n  reply_ms: 3000\n")
    msg = error_of(path, ("deadline.answer_ms=5000",))
    assert "deadline.answer_ms (5000) must be at most deadline.reply_ms (3000)" in msg
    assert msg.startswith(f"--set, {path}: ") and "silence" in msg  # both origins, and why it matters
    empty = write(tmp_path, "", "empty.yaml")  # a default on one side: only the --set is to blame
    assert error_of(empty, ("deadline.reply_ms=3000",)).startswith("--set: deadline.answer_ms (4000)")


def test_related_values_may_meet_where_the_order_allows_it(tmp_path: Path) -> None:
    sets = ("deadline.first_audio_ms=2000", "deadline.answer_ms=2000", "deadline.reply_ms=2000")
    cfg = load_config(write(tmp_path, "vad:\n  pre_roll_ms: 60\n  hangover_ms: 1900\n"), sets)
    assert cfg.deadline.answer_ms == cfg.deadline.reply_ms == 2000 and cfg.vad.pre_roll_ms == 60


def test_cross_checks_hold_for_replace_too() -> None:
    """Code that derives a config (tests, the Wyoming server) gets the same checks as a file."""
    with pytest.raises(ValueError, match="deadline.answer_ms .* must be at most deadline.reply_ms"):
        dataclasses.replace(Config().deadline, reply_ms=1000)
    with pytest.raises(ValueError, match="vad.onset_ms .* must be at most vad.pre_roll_ms"):
        dataclasses.replace(Config().vad, pre_roll_ms=40)


def test_type_errors_come_one_per_key_with_every_allowed_form(tmp_path: Path) -> None:
    path = write(tmp_path, "audio:\n  output_device: 5000\n")
    msg = error_of(path)
    assert msg == (
        f"{path}: audio.output_device: invalid value 5000; "
        "allowed: a string or an integer in range 0..4096 or null"
    )
