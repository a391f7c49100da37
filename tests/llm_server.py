"""``transformers serve`` as a child process: an OpenAI-compatible LLM server on this machine.

For tests and benchmarks (and anyone who wants one without installing vLLM): it serves a local model
folder on loopback, fully offline. Needs the serving extra: ``pip install "transformers[serving]"``.

The server is pinned to the model it was started with; requests must name the model exactly as it
was given on the command line (the folder's path, as a string), which is what /v1/models lists, or
leave ``model`` unset (``llm.api_model: null`` finds it).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx2

log = logging.getLogger(__name__)


# With --continuous-batching on a CPU, transformers sizes its paged KV cache at 60% of the machine's
# RAM (14 GB of 24 here, 30 s to set up on the first request). 64 pages of 256 tokens hold 16 full
# conversations (512 tokens of history + the question + a 60-token reply) of a small model.
CB_ARGS = ("--cb-num-blocks", "64", "--cb-max-batch-tokens", "2048")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Linux: the server gets SIGTERM when the process that started it dies, even by SIGKILL, so a killed
# test run or bench leaves no server behind holding a port and a gigabyte. Set in a launcher that
# then becomes the server (the setting survives exec): preexec_fn is unsafe in a threaded parent.
_DIE_WITH_PARENT = "import ctypes, os, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); os.execv(sys.argv[1], sys.argv[1:])"


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc stat file after the command's name (which may hold spaces): state,
    parent's pid, ..., user time (11), system time (12)."""
    return stat.read_text().rsplit(")", 1)[1].split()


class TransformersServer:
    """``transformers serve MODEL_DIR`` on 127.0.0.1; ``start`` returns once it answers /v1/models.

    Its output goes to ``log_path`` (read it with ``log_text``); ``kill`` is a SIGKILL, as a crash
    or a pulled plug would be; ``start`` again brings it back on the same port."""

    def __init__(
        self,
        model_dir: Path,
        log_path: Path,
        port: int | None = None,
        continuous_batching: bool = False,
        threads: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model_dir = Path(model_dir)
        self.model_id = str(self.model_dir)  # what requests must name
        self.log_path = Path(log_path)
        self.port = port or free_port()
        self.continuous_batching = continuous_batching
        self.threads = threads
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model_id]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", "--log-level", "info"]
        if self.continuous_batching:
            cmd += ["--continuous-batching", *CB_ARGS]
        return cmd + list(self.extra_args)

    def start(self, timeout_s: float = 120.0) -> TransformersServer:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"the LLM server on port {self.port} is already running")
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1")
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n$ {' '.join(self.command())}\n".encode())
            out.flush()
            argv = self.command()
            if sys.platform == "linux":
                argv = [sys.executable, "-c", _DIE_WITH_PARENT, *argv]
            self.process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited with code {self.process.returncode} while starting; "
                    f"its log ({self.log_path}) ends:\n{self.log_text()[-2000:]}"
                )
            if self._answers():
                self._warm(max(1.0, timeout_s - (time.monotonic() - start)))
                log.info("LLM server up at %s in %.1f s", self.base_url, time.monotonic() - start)
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"transformers serve did not answer within {timeout_s:.0f} s; see {self.log_path}")

    def _answers(self) -> bool:
        try:
            return httpx2.get(f"{self.base_url}/models", timeout=1.0).status_code == 200
        except httpx2.HTTPError:
            return False

    def _warm(self, timeout_s: float) -> None:
        """The first request pays one-off set-up (continuous batching's cache above all): pay it here,
        not in the first user's turn or in a benchmark's first figure."""
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
        response = httpx2.post(f"{self.base_url}/chat/completions", json=body, timeout=timeout_s)
        if response.status_code != 200:
            raise RuntimeError(
                f"transformers serve failed its first request: {response.status_code} {response.text}"
            )

    def kill(self) -> None:
        """SIGKILL: no goodbye to open streams, like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def processes(self) -> list[int]:
        """The server's process and its descendants: since transformers 5.25 the model runs in a
        process the server spawns, so the server's own process is idle while it generates."""
        assert self.process is not None
        parents: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parents[int(stat.parent.name)] = int(_stat_fields(stat)[1])
            except (OSError, ValueError, IndexError):  # gone meanwhile
                continue
        tree = [self.process.pid]
        for pid in tree:  # grows as it goes: breadth first
            tree += [child for child, parent in parents.items() if parent == pid]
        return tree

    def cpu_seconds(self) -> float:
        """User + system CPU time the server's processes have used (Linux /proc): it tells whether
        the server is still generating when no client listens."""
        total = 0
        for pid in self.processes():
            try:
                fields = _stat_fields(Path(f"/proc/{pid}/stat"))
            except OSError:  # ended meanwhile
                continue
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def threads_state(self) -> str:
        """Each server thread's scheduler state and what it waits in (Linux /proc), for a failure's
        message: running (R), sleeping (S) or blocked on I/O (D)."""
        states = []
        for pid in self.processes():
            for task in sorted(Path(f"/proc/{pid}/task").glob("*")):
                try:
                    state = _stat_fields(task / "stat")[0]
                    wchan = (task / "wchan").read_text().strip() or "-"
                except OSError:  # the thread ended meanwhile
                    continue
                states.append(f"{pid}/{task.name}:{state}:{wchan}")
        return " ".join(states)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> TransformersServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
