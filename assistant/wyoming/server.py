"""The Wyoming listener: shared engines, a connection limit, and one Session per connection.

Built on the ``wyoming`` package's ``AsyncServer`` (tcp:// and unix:// URIs) and
``AsyncEventHandler``; the handler's read loop is replaced by one with limits (wire.py), an idle
timeout, and a single writer task per connection that sends the Outbox's events in order.

Slots: at most ``max_clients`` connections, ``max_clients_per_address`` from one host; while every
slot is taken, a connection that has asked for nothing for ``busy_idle_timeout_s`` (pings and
describes do not count) is closed, so clients that only keep sockets open cannot lock others out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from urllib.parse import urlparse

from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.info import Describe
from wyoming.ping import Ping
from wyoming.server import AsyncEventHandler, AsyncServer

from assistant.config import Config
from assistant.wyoming.bridge import Outbox
from assistant.wyoming.service import LOCAL, WyomingService
from assistant.wyoming.session import Session
from assistant.wyoming.wire import ProtocolError, read_event

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 3.0  # how long a closing connection waits for its last events to be written
SHUTDOWN_WAIT_S = (
    0.5  # server stop (Ctrl-C): connections get this long; their pipelines are told to stop first
)
MAX_PENDING_EVENTS = 2000  # unsent events before reading pauses: ~90 s of 22 kHz speech in 1024-sample chunks
LINGER_S, LINGER_BYTES = 1.0, 1 << 20  # closing: how long / how much of the client's input to drain
CHECK_S = 0.5  # how often a waiting connection looks whether the server has become full
KEEPALIVE = (Ping.is_type, Describe.is_type)  # events that keep a connection open, but ask nothing


def default_uri(cfg: Config) -> str:
    return f"tcp://{cfg.wyoming.host}:{cfg.wyoming.port}"


def check_uri(uri: str) -> None:
    """Refuse what AsyncServer cannot serve, in words (a ValueError)."""
    parsed = urlparse(uri)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise ValueError(f"{uri}: a tcp:// address needs a host and a port, e.g. tcp://127.0.0.1:10300")
    elif parsed.scheme != "unix" or not parsed.path:
        raise ValueError(f"{uri}: use tcp://HOST:PORT or unix:///path/to.socket")


class ConnectionHandler(AsyncEventHandler):
    def __init__(
        self, service: WyomingService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.service = service
        self.outbox = Outbox(asyncio.get_running_loop())
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else LOCAL
        self.session = Session(service, self.outbox, self.address)

    async def handle_event(self, event: Event) -> bool:
        try:
            await self.session.handle(event)
        except ProtocolError as exc:
            log.info("client error (%s): %s", exc.code, exc.text)
            self.outbox.put(Error(exc.text, exc.code))
            if exc.fatal:
                return False
            await self.session.abort()  # the request that got the bad input is over
            self.session.discard_audio()
        return True

    async def run(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.service.connections.add(task)
        writer = asyncio.create_task(self._write_loop())
        refusal = self.service.admit(self.address)
        try:
            if refusal is not None:
                log.info("refused a connection from %s: %s", self.address, refusal)
                self.outbox.put(Error(refusal, "busy"))
                return
            await self._read_loop()
        except Exception:
            log.exception("connection failed")
            self.outbox.put(Error("internal server error", "internal-error"))
        finally:
            if refusal is None:
                self.service.release(self.address)
            try:
                await self.session.close()
            finally:
                self.outbox.close()
                try:
                    await asyncio.wait_for(writer, CLOSE_WAIT_S)
                except (TimeoutError, asyncio.CancelledError):
                    writer.cancel()
                await self._linger()
                self.writer.close()
                self.service.connections.discard(task)

    async def _read_loop(self) -> None:
        cfg = self.service.cfg.wyoming
        last_event = last_request = time.monotonic()
        read: asyncio.Task[Event | None] | None = None
        try:
            while True:
                if not await self._client_keeps_up(cfg.idle_timeout_s):
                    log.info("client stopped reading its answers: closing")
                    return
                if read is None:  # one read at a time, never cancelled half-way through an event
                    read = asyncio.create_task(read_event(self.reader, self.service.max_bytes))
                now = time.monotonic()
                if self.session.working:
                    last_request = now  # waiting for its answer is not idling
                why = self._idle(now - last_event, now - last_request)
                if why is not None:
                    self.outbox.put(Error(why, "idle-timeout"))
                    return
                done, _ = await asyncio.wait({read}, timeout=CHECK_S)
                if not done:
                    continue
                try:
                    event, read = read.result(), None
                except ProtocolError as exc:
                    log.info("client error (%s): %s", exc.code, exc.text)
                    self.outbox.put(Error(exc.text, exc.code))
                    return
                last_event = time.monotonic()
                if event is not None and not any(is_type(event.type) for is_type in KEEPALIVE):
                    last_request = last_event
                if event is None or not await self.handle_event(event):
                    return
        finally:
            if read is not None:
                read.cancel()

    def _idle(self, since_event: float, since_request: float) -> str | None:
        """Why this connection is closed for idling, or None."""
        cfg = self.service.cfg.wyoming
        if since_event >= cfg.idle_timeout_s:
            return f"no event for {cfg.idle_timeout_s:.0f} s: closing"
        if since_request >= cfg.busy_idle_timeout_s and self.service.full():
            return f"server full and no request for {cfg.busy_idle_timeout_s:g} s: closing"
        return None

    async def _client_keeps_up(self, timeout: float) -> bool:
        """Backpressure: a client that does not read its answers gets no new requests served, so
        what waits for it stays bounded (one request's answer); ``timeout`` later it is dropped."""
        end = time.monotonic() + timeout
        while self.outbox.pending() > MAX_PENDING_EVENTS:
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _linger(self) -> None:
        """Close our side first and let the client's unread bytes drain (bounded): closing a socket
        with unread input resets it, and the client would lose the error event just sent."""
        try:
            if self.writer.can_write_eof():
                self.writer.write_eof()
            drained = 0
            while drained < LINGER_BYTES:
                data = await asyncio.wait_for(self.reader.read(65536), LINGER_S)
                if not data:
                    return
                drained += len(data)
        except (TimeoutError, ConnectionError, OSError, RuntimeError):
            return

    async def _write_loop(self) -> None:
        alive = True
        while True:
            event = await self.outbox.get()
            if event is None:
                return
            if not alive:
                continue  # the client is gone: keep draining, so producers never block
            try:
                await async_write_event(event, self.writer)
            except (ConnectionError, OSError, RuntimeError):
                alive = False


async def serve(
    service: WyomingService,
    uri: str,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Serve until ``stop`` is set (or forever); then close every connection and its pipelines."""
    check_uri(uri)
    server = AsyncServer.from_uri(uri)
    await server.start(partial(ConnectionHandler, service))
    log.info("Wyoming server listening on %s", uri)
    on_ready()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()
        pending = list(service.connections)
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_WAIT_S)


class ServerThread:
    """The server on a thread of its own with its own event loop (tests, benchmarks)."""

    def __init__(self, service: WyomingService, uri: str) -> None:
        self.service = service
        self.uri = uri
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="wyoming-server", daemon=True)

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the Wyoming server did not start on {self.uri}: {self._error}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await serve(self.service, self.uri, self._stop, self._ready.set)
