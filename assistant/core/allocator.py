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


MADV_DONTNEED = 4  # sys/mman.h


def drop_file_pages(address: int, length: int) -> bool:
    """Let go of the resident pages in [address, address + length) when they lie in a file
    mapping (a memory-mapped checkpoint), so they stop counting in the process's memory.

    A page touched again is read back from the file, so memory that was never written (weights as
    the checkpoint has them) loses nothing; a page of a private mapping that was written would go
    back to the file's bytes, so call this only on such memory or on memory no longer used.
    Anonymous memory is left alone (dropping it would zero it). Used while a model is quantised
    layer by layer: each float weight read from the checkpoint is let go once its int8 copy exists,
    so the peak holds one layer's float weights, not the whole checkpoint. True when dropped."""
    libc = _glibc()
    page = os.sysconf("SC_PAGE_SIZE")
    start, end = -(-address // page) * page, (address + length) // page * page
    if libc is None or end <= start or not _in_file_mapping(start, end):
        return False
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    return libc.madvise(start, end - start, MADV_DONTNEED) == 0


def _in_file_mapping(start: int, end: int) -> bool:
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                low, high = (int(x, 16) for x in fields[0].split("-"))
                if low <= start and end <= high:
                    return len(fields) >= 6 and fields[5].startswith("/")
    except OSError:  # no procfs: keep the pages
        pass
    return False
