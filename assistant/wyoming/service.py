"""What every connection of the server shares: the config, the loaded engines, named conversations."""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict

from assistant import build
from assistant.config import Config
from assistant.stages.history import Exchange
from assistant.wyoming import engines as shared_engines
from assistant.wyoming.info import build_info

LOCAL = "local"  # the address of unix-socket clients: its file permissions decide who connects
MAX_CONVERSATIONS = 256  # named conversations whose history is kept (each at most 50 exchanges)


class WyomingService:
    """What every connection shares: the config, the loaded engines, the answer to describe."""

    def __init__(self, cfg: Config, engines: build.Engines) -> None:
        self.cfg = cfg
        self.engines = engines  # already wrapped by engines.shared()
        self.info = build_info(cfg).event()
        self.max_bytes = cfg.wyoming.max_payload_kb * 1024
        self.connections: set[asyncio.Task[None]] = set()
        self._admitted: Counter[str] = Counter()  # served connections per client address
        # Home Assistant's conversation agent opens a connection per question and names the
        # conversation in the transcript's context: its history is kept under that name (the
        # most recent MAX_CONVERSATIONS), so follow-up questions are understood.
        self._histories: OrderedDict[str, list[Exchange]] = OrderedDict()

    def admit(self, address: str) -> str | None:
        """Take a slot for a client at ``address`` (None: a unix socket), or say why not. One host
        may hold max_clients_per_address slots, so it cannot lock the others out."""
        cfg = self.cfg.wyoming
        if self.full():
            return f"server busy: {cfg.max_clients} clients already connected"
        if address != LOCAL and self._admitted[address] >= cfg.max_clients_per_address:
            return f"server busy: {cfg.max_clients_per_address} connections from {address} already"
        self._admitted[address] += 1
        return None

    def release(self, address: str) -> None:
        self._admitted[address] -= 1
        if self._admitted[address] <= 0:
            del self._admitted[address]

    def full(self) -> bool:
        """Every slot taken: idle connections then get wyoming.busy_idle_timeout_s, not idle_timeout_s."""
        return self._admitted.total() >= self.cfg.wyoming.max_clients

    def history(self, address: str, conversation_id: str) -> list[Exchange]:
        """The history of a conversation named by a client at ``address`` (only the event loop's
        thread calls this). The name is scoped to the address: a client elsewhere that guesses or
        overhears it gets a conversation of its own, not this one."""
        key = f"{address} {conversation_id}"
        history = self._histories.pop(key, None)
        self._histories[key] = history = history if history is not None else []
        while len(self._histories) > MAX_CONVERSATIONS:
            self._histories.popitem(last=False)
        return history


def load_service(cfg: Config, progress: build.Progress = lambda _m: None) -> WyomingService:
    """Load every model once and warm it up, before the first client."""
    engines = shared_engines.shared(build.load_engines(cfg, progress))
    shared_engines.warm(engines, build.fallback_phrases(cfg))
    return WyomingService(cfg, engines)
