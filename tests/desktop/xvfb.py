"""A private virtual X display (Xvfb) with one real window, for the desktop-agent tests.

Xvfb picks a free display number itself (``-displayfd``), so parallel runs never collide; only the
processes started here are stopped. ``TestWindow`` is tests/desktop/window.py: a focused Tk text box
that mirrors its content and the keys it received to files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class VirtualDisplay:
    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.display = ""

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def start(self, timeout_s: float = 10.0) -> VirtualDisplay:
        read, write = os.pipe()
        cmd = ["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"]
        self.proc = subprocess.Popen(cmd, pass_fds=(write,), stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as f:  # Xvfb writes the display number once it accepts clients
            number = f.readline().strip()
        if not number:
            self.stop()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{number}"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def run(self, *argv: str, stdin: str | None = None) -> str:
        res = subprocess.run(argv, env=self.env, input=stdin, capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {res.stderr.strip()}")
        return res.stdout

    def set_clipboard(self, text: str) -> None:
        """xclip stays in the background to serve the selection: it must not hold our pipes."""
        subprocess.run(
            ["xclip", "-selection", "clipboard", "-i"],
            input=text.encode(),
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=10,
        )

    def __enter__(self) -> VirtualDisplay:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class TestWindow:
    __test__ = False  # not a pytest class

    def __init__(self, display: VirtualDisplay, folder: Path) -> None:
        self.content_file = folder / "window-content.txt"
        self.keys_file = folder / "window-keys.txt"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "window.py"), str(self.content_file), str(self.keys_file)],
            env=display.env,
        )
        deadline = time.monotonic() + 15
        while not self.content_file.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the test window did not come up")
            time.sleep(0.05)

    @property
    def text(self) -> str:
        return self.content_file.read_text(encoding="utf-8")

    @property
    def keys(self) -> list[str]:
        return self.keys_file.read_text(encoding="utf-8").split()

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
