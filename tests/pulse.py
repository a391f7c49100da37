"""A private, headless PulseAudio with a virtual microphone and speaker, for live audio tests.

Layout (see ../shared/AUDIO-TESTING.md): a null sink ``spk`` is the default speaker (its monitor
``spk.monitor`` is what a listener in the room hears); a null sink ``micfeed`` is where tests "speak"
(``paplay -d micfeed``), and ``vmic`` (a remap of ``micfeed.monitor``) is the default microphone.
``echo(True)`` loads a loopback from the speaker into the microphone: a loudspeaker next to the mic.

Everything runs in its own XDG_RUNTIME_DIR, and only the processes started here are stopped (by PID),
so parallel runs and a developer's own sound server are left alone. PortAudio finds the server
through the environment, so the assistant must run as a subprocess with ``server.env`` (sounddevice
lists no devices when imported before the server runs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

PA_CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=spk rate=48000
load-module module-null-sink sink_name=micfeed rate=48000
load-module module-remap-source source_name=vmic master=micfeed.monitor
set-default-sink spk
set-default-source vmic
"""
REPO = Path(__file__).resolve().parent.parent
TOOLS = ("pulseaudio", "pactl", "paplay", "parecord", "pacat", "parec")


def available() -> bool:
    return all(shutil.which(t) for t in TOOLS)


class PulseServer:
    """Start with ``start()`` (or as a context manager); ``stop()`` ends only what it started."""

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="pulse-"))
        self.runtime = self.root / "runtime"
        self._keepalive: list[subprocess.Popen] = []
        self._pid: int | None = None
        self._loopback: str | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["XDG_RUNTIME_DIR"] = str(self.runtime)
        env["PULSE_SERVER"] = f"unix:{self.runtime / 'pulse' / 'native'}"
        env.pop("PULSE_SINK", None)
        env.pop("PULSE_SOURCE", None)
        return env

    def start(self, timeout_s: float = 15.0) -> PulseServer:
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.runtime, 0o700)
        config = self.root / "pa.pa"
        config.write_text(PA_CONFIG)
        cmd = [
            "pulseaudio",
            "-n",
            "-F",
            str(config),
            "--exit-idle-time=-1",
            "--daemonize=yes",
            "--use-pid-file=yes",
            f"--log-target=file:{self.root / 'pa.log'}",
        ]
        subprocess.run(cmd, env=self.env, check=True, timeout=timeout_s, capture_output=True)
        self._pid = self._read_pid(timeout_s)
        # keep-alive streams: an idle null sink runs in 2 s blocks and delays the first capture
        for sink in ("micfeed", "spk"):
            with open("/dev/zero", "rb") as zeros:
                self._keepalive.append(
                    subprocess.Popen(
                        ["pacat", "-d", sink, "--latency-msec=20", "--raw"],
                        stdin=zeros,
                        env=self.env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        for proc in self._keepalive:
            _end(proc)
        self._keepalive.clear()
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGTERM)
                for _ in range(50):
                    os.kill(self._pid, 0)
                    time.sleep(0.05)
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._pid = None
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the room ------------------------------------------------------------------------------
    def pactl(self, *args: str) -> str:
        res = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10)
        if res.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {res.stderr.strip()}")
        return res.stdout

    def echo(self, on: bool, latency_ms: int = 30) -> None:
        """A loudspeaker next to the microphone: what the speaker plays comes back into the mic."""
        if on and self._loopback is None:
            self._loopback = self.pactl(
                "load-module",
                "module-loopback",
                "source=spk.monitor",
                "sink=micfeed",
                f"latency_msec={latency_ms}",
            ).strip()
        elif not on and self._loopback is not None:
            self.pactl("unload-module", self._loopback)
            self._loopback = None

    def say(self, wav: Path) -> subprocess.Popen:
        """Start playing ``wav`` into the virtual microphone; returns the paplay process."""
        return subprocess.Popen(["paplay", "-d", "micfeed", str(wav)], env=self.env)

    def record(self, out: Path, source: str = "spk.monitor") -> Recorder:
        """Record what the virtual speaker plays (16 kHz mono) until ``Recorder.stop``;
        ``source="micfeed.monitor"`` records what the microphone hears instead."""
        return Recorder(self, out, source)

    def clients(self, kind: str = "sink-inputs") -> list[str]:
        """Streams open on the server (``sink-inputs`` or ``source-outputs``), one line each."""
        return [line for line in self.pactl("list", "short", kind).splitlines() if line.strip()]

    # -- internals -----------------------------------------------------------------------------
    def _read_pid(self, timeout_s: float) -> int:
        pid_file = self.runtime / "pulse" / "pid"
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if pid_file.exists() and pid_file.read_text().strip():
                return int(pid_file.read_text().split()[0])
            time.sleep(0.05)
        raise RuntimeError(f"pulseaudio wrote no pid file; see {self.root / 'pa.log'}")

    def _wait_ready(self, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            res = subprocess.run(
                "parec -d vmic --raw | head -c 320 >/dev/null",
                shell=True,
                env=self.env,
                timeout=timeout_s,
                capture_output=True,
            )
            if res.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("the virtual microphone delivered no audio")


class Recorder:
    """``parec`` from a monitor into a WAV; ``t_start`` is the monotonic time it was started (its
    first sample is captured a few tens of ms later: compare two recorders, not one to a clock)."""

    RATE = 16000

    def __init__(self, server: PulseServer, out: Path, source: str = "spk.monitor") -> None:
        self.out = Path(out)
        self._raw = self.out.with_suffix(".raw")
        self._file = self._raw.open("wb")
        self._proc = subprocess.Popen(
            [
                "parec",
                "-d",
                source,
                "--raw",
                "--format=s16le",
                f"--rate={self.RATE}",
                "--channels=1",
                "--latency-msec=20",
            ],  # noqa: E501
            env=server.env,
            stdout=self._file,
        )
        self.t_start = time.monotonic()

    def stop(self) -> np.ndarray:
        _end(self._proc)
        self._file.close()
        audio = np.frombuffer(self._raw.read_bytes(), dtype="<i2").astype(np.int16)
        sf.write(self.out, audio, self.RATE, subtype="PCM_16")
        self._raw.unlink(missing_ok=True)
        return audio


class Assistant:
    """``assistant listen`` (or ``command``: ``agent``) as a subprocess on the virtual devices,
    followed through its JSONL log."""

    def __init__(
        self, server: PulseServer, workdir: Path, *args: str, command: str = "listen", env: dict | None = None
    ) -> None:
        self.server = server
        n = len(list(Path(workdir).glob("events-*.jsonl")))  # one log per run, kept for a post-mortem
        self.log = Path(workdir) / f"events-{n}.jsonl"
        self.stderr_path = Path(workdir) / f"assistant-{n}.err"
        self._stderr = self.stderr_path.open("w")
        cmd = [sys.executable, "-m", "assistant", command, "--quiet", "--log-events", str(self.log), *args]
        env = {**server.env, **(env or {})}
        self.proc = subprocess.Popen(cmd, env=env, stderr=self._stderr, cwd=REPO, preexec_fn=interruptible)

    def events(self) -> list[dict]:
        try:
            lines = self.log.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:  # not yet, or only for a moment: at start-up the CLI checks that it
            return []  # can write the log by creating the file and removing it (cli/common.py)
        return [json.loads(line) for line in lines if line.strip().endswith("}")]

    def timeline(self, after: float = 0.0) -> str:
        """The events since ``after`` one per line (kind, turn, text): readable in a failure message."""
        lines = []
        for e in self.events():
            if e["wall"] >= after and e["kind"] not in {"audio_out_chunk", "vad"}:
                extra = e.get("text") or e.get("reason") or e.get("source") or ""
                lines.append(f"{e['wall'] - after:7.2f} {e['kind']:<22} {e['turn']:>3} {extra}")
        return "\n" + "\n".join(lines)

    def wait_for(
        self, kind: str, timeout_s: float, after: float = 0.0, where: Callable[[dict], bool] = lambda e: True
    ) -> dict | None:
        """The first event of ``kind`` logged after ``after`` (wall time) that satisfies ``where``."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for e in self.events():
                if e["kind"] == kind and e["wall"] >= after and where(e):
                    return e
            if self.proc.poll() is not None:
                raise RuntimeError(f"assistant exited ({self.proc.returncode}): {self.stderr()[-2000:]}")
            time.sleep(0.05)
        return None

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def interrupt(self, timeout_s: float = 5.0) -> float:
        """Ctrl-C; returns the seconds until the process was gone."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout_s)
        finally:
            self.stop()
        return time.monotonic() - t0

    def stop(self) -> None:
        _end(self.proc)
        self._stderr.close()


def interruptible() -> None:
    """A child's SIGINT as from a terminal: a suite started in the background (``cmd &`` in a
    script) ignores SIGINT, its children inherit that, and Python then installs no Ctrl-C handler:
    every test that sends one would wait in vain (a CI run under ``nohup ... &`` lost three so)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _end(proc: subprocess.Popen, timeout_s: float = 2.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sound_spans(audio: np.ndarray, rate: int = 16000, threshold: float = 300.0, gap_s: float = 0.25) -> list:
    """(start_s, end_s) of the stretches where ``audio`` is not silent (10 ms frames, RMS)."""
    frame = rate // 100
    n = len(audio) // frame
    if n == 0:
        return []
    rms = np.sqrt(np.mean(audio[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    loud = rms > threshold
    spans: list[list[float]] = []
    for i in np.flatnonzero(loud):
        t = i / 100
        if spans and t - spans[-1][1] <= gap_s:
            spans[-1][1] = t + 0.01
        else:
            spans.append([t, t + 0.01])
    return [tuple(s) for s in spans]


def session() -> Iterator[PulseServer]:
    """Generator body for a pytest fixture: a running server, stopped afterwards."""
    server = PulseServer().start()
    try:
        yield server
    finally:
        server.stop()
