"""Keeping torch's OpenMP fast beside faster-whisper: one runtime each, one busy thread each.

torch and CTranslate2 (faster-whisper) each ship a libgomp. libgomp lets its idle workers spin
between parallel regions (a decode step of the LLM is ~850 of them) only while it manages no more
threads than the machine has CPUs; past that it sends them to sleep at once, and every region then
waits for a wake-up. Each thread that runs a parallel region keeps a worker pool of its own, so on
2 cores a second such thread is enough. Measured on this project's 2-core machine, Qwen2.5-0.5B
int8-channel, one decode step: 47 ms on the thread that loaded the model, 70-74 ms on any other
thread, and 75-80 ms everywhere once faster-whisper had transcribed anything: torch loads its
libgomp into the global symbol scope, so a CTranslate2 loaded after it runs on torch's runtime too.

numpy's OpenBLAS does the same in its own way: after a matrix product (Whisper's mel filterbank,
once per recognition pass) its worker threads spin for a while, on the cores CTranslate2 is about to
encode on. Measured on the 2-core machine, tiny.en int16, a 1.8 s question in the 12 s window: the
encoder took 93-115 ms right after the feature extraction against 54 ms with OpenBLAS on one thread
(timed step by step; `bench/asr_window.py --blas-threads 1,2` prints whole passes: 144 against 181
ms); numpy's products here are far too small to gain from threads.

Hence three measures:
- ``load_ctranslate2_apart`` imports CTranslate2 before torch, with its symbols bound at load, so
  it keeps its own libgomp;
- ``ComputeThread``: every torch call of the local LLM (loading, quantising, each decode step, the
  end-of-turn judgement) runs on one long-lived thread, so torch's runtime has one pool;
- ``single_threaded_blas``: numpy's BLAS on the calling thread only (threadpoolctl).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def load_ctranslate2_apart() -> None:
    """Import CTranslate2 now, bound to its own libgomp, if torch is not loaded yet (a no-op if
    CTranslate2 is already loaded or not installed)."""
    if "ctranslate2" in sys.modules:
        return
    if "torch" in sys.modules:
        log.debug("torch is loaded already: CTranslate2 will share its OpenMP runtime")
    flags = sys.getdlopenflags()
    sys.setdlopenflags(flags | os.RTLD_NOW)  # resolve now, while only its own libgomp is there
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        pass
    finally:
        sys.setdlopenflags(flags)


def single_threaded_blas() -> None:
    """numpy's BLAS (OpenBLAS, MKL, BLIS) on one thread from now on, for the whole process: its
    idle workers would otherwise spin on the cores recognition runs on (see the module's note)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


class ComputeThread:
    """One thread that runs the calls given to ``run``, one at a time, in the order given."""

    def __init__(self, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._thread = self._pool.submit(threading.current_thread).result()
        # the thread ends with its engine, not at interpreter exit only
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        if threading.current_thread() is self._thread:  # a call made from a call: already here
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()
