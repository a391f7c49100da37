"""The C allocator (glibc malloc): fewer arenas, and freed memory handed back to the system.

The models (CTranslate2, onnxruntime, torch) allocate through malloc from every thread that calls
them, and each pipeline has threads of its own. glibc gives threads up to 8 arenas per core and
keeps what is freed in them for reuse: measured with bench/soak.py (shipped models, 2 cores), a
process reached 16 arenas holding 340 MB of free memory after 100 turns and 40 Wyoming
conversations, still growing. Two arenas held 200 MB, and stayed there.

Only the processes the CLI (and the benchmarks) start call these, at start-up: importing the
package changes nothing. Elsewhere than glibc (musl, macOS) they do nothing.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
ARENAS = 2  # with 8 per core every pipeline thread got its own; 2 measured as fast and flat


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018  (present in glibc only)
        return libc
    except (OSError, AttributeError):
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap malloc's arenas; call before the first threads start. A ``MALLOC_ARENA_MAX`` set in the
    environment wins (glibc has read it already). True when the cap was set here."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    done = bool(libc.mallopt(M_ARENA_MAX, arenas))
    log.debug("malloc arenas capped at %d: %s", arenas, done)
    return done


def trim() -> bool:
    """Give the free memory at the end of malloc's heaps (and whole free pages inside them) back to
    the system. True when some was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
