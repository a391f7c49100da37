"""`serve`: the assistant over the Wyoming protocol (Home Assistant)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from assistant.cli.common import UsageError, say, say_loading

if TYPE_CHECKING:
    from assistant.config import Config
    from assistant.wyoming.service import WyomingService

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        parents=parents,
        help="serve speech-to-text, text-to-speech and conversation over Wyoming (Home Assistant)",
        description="Serve the assistant over the Wyoming protocol, as Home Assistant's Wyoming "
        "integration expects: speech to text (streaming transcript chunks), text to speech (streamed "
        "sentence by sentence), text conversation (handle) and whole spoken conversations "
        "(run-pipeline). Models load once and are shared; every connection has its own "
        "conversation. Listens on loopback unless told otherwise (the protocol has no "
        "authentication). Limits: the wyoming section of config.yaml. Ctrl-C stops.",
    )
    p.add_argument(
        "--wyoming",
        metavar="URI",
        help="where to listen: tcp://HOST:PORT or unix:///PATH (default: wyoming.host/port from the "
        "config, tcp://127.0.0.1:10300)",
    )
    p.set_defaults(handler=serve)


def serve(cfg: Config, args: argparse.Namespace) -> int:
    import asyncio

    from assistant.wyoming.server import check_uri, default_uri
    from assistant.wyoming.service import load_service

    uri = args.wyoming or default_uri(cfg)
    try:
        check_uri(uri)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    host = uri.partition("://")[2].rpartition(":")[0].strip("[]")
    if uri.startswith("tcp://") and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: anyone who can reach it can use the assistant (no authentication)", uri)
    say_loading(cfg, args)
    start = time.monotonic()
    service = load_service(cfg, progress=lambda m: say(args, m))
    ready = f"Models ready in {time.monotonic() - start:.1f} s. Serving Wyoming on {uri} (Ctrl-C stops)"
    try:  # the line is printed once the port listens: scripts may wait for it
        asyncio.run(_serve_until_signal(service, uri, lambda: print(ready, flush=True)))
    except OSError as exc:  # the port is taken, the socket path is not writable
        raise UsageError(f"cannot listen on {uri}: {exc}") from None
    print("stopped", file=sys.stderr)
    return 0


async def _serve_until_signal(service: WyomingService, uri: str, on_ready: Callable[[], None]) -> None:
    """Ctrl-C or SIGTERM (a service manager) stop the server: connections are closed, their
    pipelines told to stop, and the process ends (cli.main.run skips the slow interpreter teardown)."""
    import asyncio
    import signal

    from assistant.wyoming.server import serve as serve_wyoming

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve_wyoming(service, uri, stop, on_ready)
