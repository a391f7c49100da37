"""Wyoming servers as a pool: the addresses of one role (speech recognition or synthesis), each
request sent to the least busy server that is up, round-robin among equals.

A request is one short TCP connection spoken with the wyoming package's own event framing
(``read_event``/``write_event`` on the socket's file): no event loop and no thread of its own, so an
engine is safe to call from any stage thread, from several pipelines at once, and nothing outlives
the request. Closing the connection is how a request is abandoned (a barge-in closes the synthesis
generator); every Wyoming server takes a closed connection as the end of that request.

A server that fails (refused, timed out, cut off, an error event) is skipped for a back-off that
doubles up to ``MAX_BACKOFF_S``; then the next request that would pick it asks it ``describe``
first, with a short timeout, and uses it if it answers (so a server that is back takes its share
again, and one still gone costs that request ``PROBE_TIMEOUT_S`` at most); the log says when it goes
and when it answers again. A request that no server can serve raises ``EngineUnavailable``.

The engines have no event bus (one engine serves many pipelines), so the failures of a request are
also kept for the thread that made it: the stage that called the engine takes them afterwards
(``take_failures``) and reports them as its turn's events (a failover, when another server answered).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from wyoming.event import Event, read_event, write_event
from wyoming.info import Describe

from assistant.config import ConfigError
from assistant.core.engines import EngineUnavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0  # a server on the LAN connects in milliseconds; a dead one is known quickly
READ_TIMEOUT_S = 15.0  # the longest wait for the next event of a reply
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
PROBE_TIMEOUT_S = 0.5  # a server back from its back-off answers describe at once, or is not back

T = TypeVar("T")


class ServerError(RuntimeError):
    """One server could not serve one request (the pool tries the next)."""


@dataclass
class Server:
    uri: str
    host: str
    port: int
    busy: int = 0  # requests in flight
    down_until: float = 0.0  # skipped until then
    backoff_s: float = 0.0  # 0 while the server is up
    served: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def parse_uris(setting: str, value: str | Sequence[str]) -> list[tuple[str, str, int]]:
    """``tcp://host:port`` (one, or a list) as (uri, host, port); a ConfigError names the setting."""
    uris = [value] if isinstance(value, str) else list(value)
    if not uris:
        raise ConfigError(f"{setting}: give at least one server, e.g. tcp://speech-box:10300")
    parsed = []
    for uri in uris:
        try:
            parts = urlsplit(uri)
            port = parts.port
        except ValueError:
            port = None
            parts = None
        if parts is None or parts.scheme != "tcp" or not parts.hostname or port is None or parts.path:
            raise ConfigError(f"{setting}: {uri!r} is not a Wyoming address; expected tcp://host:port")
        parsed.append((uri, parts.hostname, port))
    return parsed


class Connection:
    """One request's connection: Wyoming events out and in."""

    def __init__(self, sock: socket.socket, uri: str) -> None:
        self.sock = sock
        self.uri = uri
        self._file: BinaryIO = sock.makefile("rwb")

    def send(self, *events: Event) -> None:
        for event in events:
            write_event(event, self._file)  # (flushes)

    def read(self) -> Event:
        event = read_event(self._file)
        if event is None:
            raise ServerError(f"{self.uri} closed the connection mid-request")
        if event.type == "error":
            raise ServerError(f"{self.uri} answered with an error: {event.data.get('text', event.data)}")
        return event

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:  # (its flush, to a server that is gone: nothing is left to say to it)
            pass
        finally:
            self.sock.close()


class ServerPool:
    def __init__(self, role: str, setting: str, uris: str | Sequence[str]) -> None:
        self.role = role  # "ASR" or "TTS", for the log
        self.servers = [Server(u, h, p) for u, h, p in parse_uris(setting, uris)]
        self._lock = threading.Lock()
        self._next = 0  # round-robin among equally busy servers
        # per calling thread: a stage thread calls, then takes its own failures (see take_failures)
        self._local = threading.local()

    @property
    def label(self) -> str:
        return ", ".join(s.uri for s in self.servers)

    def call(self, request: Callable[[Connection], T]) -> T:
        """``request`` on one connection to the best server; on failure the next, until none is left."""
        errors = []
        for server in self._candidates():
            if not self._usable(server):
                continue
            try:
                with self.connect(server) as conn:
                    result = request(conn)
            except (OSError, ServerError, ValueError) as exc:
                errors.append(self._failed(server, exc))
                continue
            self._ok(server)
            return result
        raise self._unavailable(errors)

    def stream(self, request: Callable[[Connection], Iterator[T]]) -> Iterator[T]:
        """Like ``call`` for a streamed reply: items as they arrive. Once one is out, a failure is
        not retried elsewhere (the listener would hear the start twice) but raised."""
        errors = []
        for server in self._candidates():
            if not self._usable(server):
                continue
            started = False
            try:
                with self.connect(server) as conn:
                    for item in request(conn):
                        started = True
                        yield item
            except (OSError, ServerError, ValueError) as exc:
                errors.append(self._failed(server, exc))
                if started:
                    raise EngineUnavailable(errors[-1]) from exc
                continue
            self._ok(server)
            return
        raise self._unavailable(errors)

    @contextmanager
    def connect(self, server: Server) -> Iterator[Connection]:
        with self._lock:
            server.busy += 1
        conn = None
        try:
            conn = self._connection(server)
            yield conn
        finally:
            if conn is not None:
                conn.close()  # also when the caller abandons the request: the server sees it go
            with self._lock:
                server.busy -= 1

    def open(self) -> tuple[Server, Connection] | None:
        """A connection held across calls (a turn's audio, streamed as it is spoken) to the best
        server that accepts one; None when none does. It counts as busy until ``release``."""
        for server in self._candidates():
            if not self._usable(server):
                continue
            with self._lock:
                server.busy += 1
            try:
                return server, self._connection(server)
            except OSError as exc:
                self.release(server, None, exc)
        return None

    def release(self, server: Server, conn: Connection | None, error: BaseException | None = None) -> None:
        """End an ``open`` connection: served, failed (``error``) or simply abandoned (neither)."""
        if conn is not None:
            conn.close()
        with self._lock:
            server.busy -= 1
        if error is not None:
            self._failed(server, error)

    def _connection(self, server: Server) -> Connection:
        sock = socket.create_connection((server.host, server.port), timeout=CONNECT_TIMEOUT_S)
        sock.settimeout(READ_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return Connection(sock, server.uri)

    def check(self, request: Callable[[Connection], object]) -> None:
        """At start-up: ``request`` on every server; one that fails is logged and skipped for now."""
        for server in self.servers:
            try:
                with self.connect(server) as conn:
                    request(conn)
                self._ok(server)
                log.info("%s server %s answers", self.role, server.uri)
            except (OSError, ServerError, ValueError) as exc:
                self._failed(server, exc, request=False)
        if all(s.backoff_s for s in self.servers):
            log.warning(
                "no %s server answers (%s); starting anyway: turns fail until one does", self.role, self.label
            )

    def take_failures(self) -> list[tuple[str, str]]:
        """(server, error) of each failure in this thread's requests since the last take."""
        failures: list[tuple[str, str]] = getattr(self._local, "failures", [])
        self._local.failures = []
        return failures

    def _candidates(self) -> list[Server]:
        """Servers that are up or whose back-off is over, least busy first (round-robin among
        equals); none when every server is inside its back-off."""
        now = time.monotonic()
        with self._lock:
            n = len(self.servers)
            order = [self.servers[(self._next + i) % n] for i in range(n)]
            self._next = (self._next + 1) % n
            return sorted((s for s in order if s.down_until <= now), key=lambda s: s.busy)

    def _usable(self, server: Server) -> bool:
        """True for a server that is up; one back from its back-off is asked ``describe`` first."""
        if not server.backoff_s:
            return True
        try:
            sock = socket.create_connection((server.host, server.port), timeout=PROBE_TIMEOUT_S)
            conn = Connection(sock, server.uri)
            try:
                conn.send(Describe().event())
                while conn.read().type != "info":
                    pass
            finally:
                conn.close()
        except (OSError, ServerError, ValueError) as exc:
            self._failed(server, exc, request=False)  # (known to be down: no turn's failover)
            return False
        self._ok(server)
        return True

    def ok(self, server: Server) -> None:
        """A request on an ``open`` connection was served."""
        self._ok(server)

    def _ok(self, server: Server) -> None:
        with self._lock:
            server.served += 1
            was_down, server.backoff_s, server.down_until = bool(server.backoff_s), 0.0, 0.0
        if was_down:
            log.warning("%s server %s answers again", self.role, server.uri)

    def _failed(self, server: Server, exc: BaseException, request: bool = True) -> str:
        if request:  # (start-up checks belong to no turn)
            if not hasattr(self._local, "failures"):
                self._local.failures = []
            self._local.failures.append((server.uri, str(exc) or type(exc).__name__))
        with self._lock:
            server.failed += 1
            server.backoff_s = min(MAX_BACKOFF_S, server.backoff_s * 2 or FIRST_BACKOFF_S)
            server.down_until = time.monotonic() + server.backoff_s
            backoff = server.backoff_s
        what = f"{self.role} server {server.uri} failed: {exc}"
        log.warning("%s; skipping it for %.0f s", what, backoff)
        return what

    def _unavailable(self, errors: list[str]) -> EngineUnavailable:
        if not errors:
            return EngineUnavailable(
                f"every {self.role} server is down ({self.label}); retrying after a back-off"
            )
        return EngineUnavailable("; ".join(errors))
