"""The reference Wyoming speech servers (wyoming-faster-whisper, wyoming-piper, from the dev extra)
as subprocesses on loopback, on the shipped models: for the tests of asr/tts.backend: wyoming."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from assistant.build import model_store
from assistant.config import Config
from tests.llm_server import free_port

BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 120.0


class SpeechServer:
    """One server process in its own process group; ``kill`` and ``start`` again on the same port."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log = argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> SpeechServer:
        env = dict(os.environ, HF_HUB_OFFLINE="1")  # the reference servers must not try a model hub
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        end = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b'{"type": "describe"}\n')
                    if s.makefile("rb").readline().startswith(b'{"type": "info"'):
                        return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"{self.argv[0]} did not answer describe within {READY_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL: the server vanishes as a crashed or unplugged box would, connections and all."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def faster_whisper(cfg: Config, tmp: Path, port: int | None = None) -> SpeechServer:
    port = port or free_port()
    model = model_store(cfg).asr_path(cfg.asr.model)
    argv = [
        str(BIN / "wyoming-faster-whisper"), "--uri", f"tcp://127.0.0.1:{port}", "--model", str(model),
        "--data-dir", str(tmp / "fw"), "--local-files-only", "--language", cfg.asr.language or "en",
        "--beam-size", str(cfg.asr.beam_size), "--compute-type", cfg.asr.compute_type,
        "--cpu-threads", str(cfg.asr.cpu_threads),
    ]  # fmt: skip
    return SpeechServer(argv, port, tmp / f"fw-{port}.log")


def piper(cfg: Config, tmp: Path, port: int | None = None) -> SpeechServer:
    port = port or free_port()
    voice, _ = model_store(cfg).voice_paths(cfg.tts.voice)
    argv = [
        str(BIN / "wyoming-piper"), "--uri", f"tcp://127.0.0.1:{port}",
        "--voice", voice.name.removesuffix(".onnx"), "--data-dir", str(voice.parent),
        "--download-dir", str(tmp / "piper"),
    ]  # fmt: skip
    return SpeechServer(argv, port, tmp / f"piper-{port}.log")
