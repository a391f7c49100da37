"""The C allocator's settings the CLI makes at start-up (core/allocator.py), checked on glibc itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.core import allocator

pytestmark = pytest.mark.skipif(allocator._glibc() is None, reason="glibc's malloc only")
REPO = Path(__file__).resolve().parent.parent

# Eight threads alive at once, each allocating (a bytearray this size comes from malloc, not from
# Python's small-object allocator); then malloc_info's count of arenas.
ARENA_COUNT = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    from assistant.core import allocator
    {setup}
    ready, keep = threading.Barrier(9), []
    def work():
        keep.append(bytearray(200_000))
        ready.wait()
        ready.wait()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    ready.wait()
    libc = ctypes.CDLL(None)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    path = os.path.join(tempfile.mkdtemp(), "info.xml")
    f = libc.fopen(path.encode(), b"w"); libc.malloc_info(0, f); libc.fclose(f)
    ready.wait()
    print(open(path).read().count("<heap nr="))
    """
)


def arenas(setup: str, env: dict[str, str] | None = None) -> int:
    code = ARENA_COUNT.format(setup=setup)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def test_limit_arenas_caps_what_threads_get() -> None:
    assert arenas("") > allocator.ARENAS  # glibc's default: an arena per thread, up to 8 per core
    assert arenas("assert allocator.limit_arenas()") <= allocator.ARENAS


def test_an_arena_max_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "3")
    import os

    assert not allocator.limit_arenas()
    assert arenas("assert not allocator.limit_arenas()", dict(os.environ)) == 3


def test_the_cli_caps_arenas_before_it_loads_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.cli import main

    order: list[str] = []
    monkeypatch.setattr(allocator, "limit_arenas", lambda: order.append("arenas") or True)
    monkeypatch.setattr("assistant.config.load_config", lambda *a, **k: order.append("config") or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main.main(["transcribe", "x.wav"])
    assert order == ["arenas", "config"]


def test_trim_gives_freed_memory_back() -> None:
    code = textwrap.dedent(
        """
        import re
        from pathlib import Path
        from assistant.core import allocator
        def rss(): return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
        # many blocks under the mmap threshold, the last one kept: the freed ones stay inside the heap
        blocks = [bytearray(100_000) for _ in range(1000)]
        last = blocks[-1]
        del blocks
        before = rss()
        assert allocator.trim()
        print(before - rss())
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert int(out.stdout) > 50_000  # kB: most of the 100 MB freed


def test_a_pipeline_trims_after_each_reply_and_when_it_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.core.bus import EventBus
    from assistant.core.events import ReplyAudioDone, ReplySkipped, SpeechStarted
    from assistant.core.pipeline import Pipeline

    class NoAudio:
        def chunks(self, stop):  # type: ignore[no-untyped-def]
            return iter(())

        def close(self) -> None:
            pass

    trims: list[int] = []
    monkeypatch.setattr(allocator, "trim", lambda: trims.append(1) or True)
    events = EventBus()
    pipeline = Pipeline(NoAudio(), [], events=events)
    events.emit(SpeechStarted(1, 0.0))
    assert trims == []
    events.emit(ReplyAudioDone(1))
    events.emit(ReplySkipped(2, "stop"))
    assert len(trims) == 2
    pipeline.stop()
    pipeline.stop()
    events.emit(ReplyAudioDone(3))  # a bus outliving the pipeline no longer holds it
    assert len(trims) == 3


@pytest.mark.real
def test_piper_gives_back_what_a_long_sentence_took() -> None:
    """onnxruntime's arena would keep what the longest sentence needed: +200 MB for these
    sentences without the shrinkage (measured), +51 MB with it."""
    code = textwrap.dedent(
        """
        import re
        from pathlib import Path
        from assistant import build
        from assistant.config import load_config
        from assistant.engines.piper import ARENA_SHRINKAGE, STOP_SPINNING
        def rss(): return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text())[1]) / 1024
        cfg = load_config("config.yaml")
        engine = build.piper_engine(cfg, build.model_store(cfg))
        assert engine.voice.session.run_options.get_run_config_entry(ARENA_SHRINKAGE[0]) == "cpu:0"
        options = engine.voice.session.get_session_options()  # (its workers stop when a run returns)
        assert options.get_session_config_entry(STOP_SPINNING[0]) == STOP_SPINNING[1]
        engine.synthesize_all("Hello there.")
        start = rss()
        words = "the quick brown fox jumps over a lazy dog while seven spiders spin webs of silk".split()
        for n in (10, 20, 40):
            assert len(engine.synthesize_all(" ".join(words[i % len(words)] for i in range(n)) + ".")) > n * 2000
        print(rss() - start)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert float(out.stdout) < 120  # MB


def _rss_file_kb() -> int:
    import re

    return int(re.search(r"RssFile:\s+(\d+)", Path("/proc/self/status").read_text())[1])


def test_dropped_file_pages_leave_memory_and_read_back_unchanged(tmp_path: Path) -> None:
    """A memory-mapped checkpoint's pages stop counting once dropped, and read back as they were;
    anonymous memory is never dropped (that would zero it)."""
    import mmap

    import numpy as np

    data = np.random.default_rng(0).integers(0, 255, 64 << 20, dtype=np.uint8)  # 64 MB
    path = tmp_path / "weights.bin"
    data.tofile(path)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        view = np.frombuffer(mapped, dtype=np.uint8)
        total = int(view.sum(dtype=np.int64))  # touches every page
        touched = _rss_file_kb()
        assert allocator.drop_file_pages(view.ctypes.data, view.nbytes)
        assert touched - _rss_file_kb() > 48 << 10  # kB: most of the 64 MB
        assert int(view.sum(dtype=np.int64)) == total == int(data.sum(dtype=np.int64))
        del view
    anonymous = np.ones(16 << 20, dtype=np.uint8)
    assert not allocator.drop_file_pages(anonymous.ctypes.data, anonymous.nbytes)
    assert int(anonymous.sum()) == anonymous.size
