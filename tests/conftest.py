from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cfg() -> Config:
    """The repo's config.yaml: the shipped defaults, with the shared model cache."""
    return load_config(REPO / "config.yaml")


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where generated test speech is rendered, once per session."""
    return tmp_path_factory.mktemp("speech")
