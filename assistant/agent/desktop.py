"""The desktop's side of the actions: argv lists for xdotool, xclip, xdg-open, pactl and playerctl.

Nothing here takes a shell string: every command is a list handed to ``subprocess`` with
``shell=False``, and words that came from speech only ever travel as a single argument after ``--``
(typed text, a URL already checked by ``safe_url``). Launchable programs come from the config's app
allowlist, never from the transcript. A ``Runner`` is the seam: tests record the argv lists.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Protocol

log = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0
MAX_TYPED_CHARS = 500
URL = re.compile(r"^[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+(?:/[a-z0-9._~-]*)*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no Return, Tab or escapes typed from speech
MEDIA_KEYS = {"play": "XF86AudioPlay", "pause": "XF86AudioPause", "next": "XF86AudioNext", "previous": "XF86AudioPrev"}  # fmt: skip


class DesktopError(RuntimeError):
    """A desktop command is missing or failed; the message is fit to be spoken."""


class Runner(Protocol):
    def run(self, argv: Sequence[str]) -> str: ...  # waits; returns stdout; raises DesktopError

    def spawn(self, argv: Sequence[str]) -> None: ...  # starts and leaves it running


class SubprocessRunner:
    def run(self, argv: Sequence[str]) -> str:
        _require(argv[0])
        try:
            done = subprocess.run(list(argv), capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DesktopError(f"{argv[0]} did not answer in time") from exc
        if done.returncode != 0:
            log.warning("%s failed (%d): %s", argv[0], done.returncode, done.stderr.decode(errors="replace"))
            raise DesktopError(f"{argv[0]} failed")
        return done.stdout.decode("utf-8", errors="replace")

    def spawn(self, argv: Sequence[str]) -> None:
        _require(argv[0])
        # its own session: it outlives the assistant and never gets our Ctrl-C
        subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


def _require(program: str) -> None:
    if shutil.which(program) is None:
        raise DesktopError(f"{program} is not installed")


def safe_url(url: str) -> str | None:
    """``https://`` + a plain host name and path, or None for anything else (schemes, ports, queries)."""
    url = url.strip().lower()
    return f"https://{url}" if URL.match(url) else None


def typeable(text: str) -> str:
    """Dictated text as it may be typed: printable characters only, bounded."""
    return CONTROL.sub(" ", text).strip()[:MAX_TYPED_CHARS]


class Desktop:
    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or SubprocessRunner()

    def type_text(self, text: str) -> None:
        self.runner.run(["xdotool", "type", "--clearmodifiers", "--delay", "12", "--", typeable(text)])

    def read_clipboard(self) -> str:
        return self.runner.run(["xclip", "-o", "-selection", "clipboard"])

    def open_url(self, url: str) -> None:
        checked = safe_url(url)
        if checked is None:
            raise DesktopError("that does not look like a web address")
        self.runner.spawn(["xdg-open", checked])

    def launch(self, argv: Sequence[str]) -> None:
        self.runner.spawn(argv)

    def media(self, command: str) -> None:
        if shutil.which("playerctl"):  # MPRIS: talks to the player itself, focus does not matter
            self.runner.run(["playerctl", command])  # play, pause, next, previous: its own verbs
        else:  # the desktop's media keys
            self.runner.run(["xdotool", "key", MEDIA_KEYS[command]])

    def volume(self, command: str, level: float | None = None) -> None:
        sink = "@DEFAULT_SINK@"
        if command == "set":
            argv = ["pactl", "set-sink-volume", sink, f"{max(0, min(150, round(level or 0)))}%"]
        elif command in ("mute", "unmute"):
            argv = ["pactl", "set-sink-mute", sink, "1" if command == "mute" else "0"]
        else:
            argv = ["pactl", "set-sink-volume", sink, "+10%" if command == "up" else "-10%"]
        self.runner.run(argv)
