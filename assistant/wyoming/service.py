"""What every connection of the server shares: the config, the loaded engines, named conversations."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from assistant import build
from assistant.config import Config
from assistant.stages.responder import Exchange
from assistant.wyoming import engines as shared_engines
from assistant.wyoming.info import build_info

MAX_CONVERSATIONS = 256  # named conversations whose history is kept (each at most 50 exchanges)


class WyomingService:
    """What every connection shares: the config, the loaded engines, the answer to describe."""

    def __init__(self, cfg: Config, engines: build.Engines) -> None:
        self.cfg = cfg
        self.engines = engines  # already wrapped by engines.shared()
        self.info = build_info(cfg).event()
        self.max_bytes = cfg.wyoming.max_payload_kb * 1024
        self.connections: set[asyncio.Task[None]] = set()
        # Home Assistant's conversation agent opens a connection per question and names the
        # conversation in the transcript's context: its history is kept under that name (the
        # most recent MAX_CONVERSATIONS), so follow-up questions are understood.
        self._histories: OrderedDict[str, list[Exchange]] = OrderedDict()

    def admit(self) -> bool:
        return len(self.connections) <= self.cfg.wyoming.max_clients

    def history(self, conversation_id: str) -> list[Exchange]:
        """The history of a named conversation (only the event loop's thread calls this)."""
        history = self._histories.pop(conversation_id, None)
        self._histories[conversation_id] = history = history if history is not None else []
        while len(self._histories) > MAX_CONVERSATIONS:
            self._histories.popitem(last=False)
        return history


def load_service(cfg: Config, progress: build.Progress = lambda _m: None) -> WyomingService:
    """Load every model once and warm it up, before the first client."""
    engines = shared_engines.shared(build.load_engines(cfg, progress))
    shared_engines.warm(engines, build.fallback_phrases(cfg))
    return WyomingService(cfg, engines)
