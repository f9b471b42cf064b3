"""glibc's allocator, tuned for the big tensors of a dream on the CPU.

By default glibc serves every block above 32 MB with a fresh mmap and unmaps it when freed,
so each step of a large dream faults all its activation buffers in again, page by page.
Keeping freed buffers for the next step, bench/ measured 1.45x for a 1024 px dream, 1.54x for
a 6-image batch at 512 px, and 1.20x for a 1024 px dream in a worker thread (the dashboard). keep_freed_buffers() keeps them; release() hands the free
memory back to the system once a run is over, so a long-lived dashboard does not hold it.
Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BELOW = 1 << 30  # blocks up to 1 GiB come from the heap and are reused


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@functools.cache
def keep_freed_buffers() -> bool:
    """Once per process: reuse freed big blocks instead of unmapping them. True when applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW))


def release() -> None:
    """Return the heap's free memory to the system (after a run; costs milliseconds)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
