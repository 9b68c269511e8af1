"""Keep freed memory for reuse: the engine's temporaries must not fault in afresh on every call.

A batch of the engine makes hundreds of temporaries of 0.1-8 MB each.  With
glibc's defaults such a block comes from ``mmap`` (above the dynamic mmap
threshold) or from the top of the heap, which ``free`` hands back to the
kernel once more than ``M_TRIM_THRESHOLD`` lies unused there; either way the
next temporary of that size is zero-filled by the kernel page by page.
Measured on the 600-frame throughput benchmark (4 cameras, default engine):
3 700-5 200 minor page faults per call, at about 3.5 us each in a virtual
machine (``benchmarks/bench_triangulation.py --only throughput`` prints the
faults per call); with the thresholds below, none after the first call.

:func:`keep_freed_memory` raises both thresholds once per process, when a
:class:`~triangulate.engine.Triangulator` is built (``rigcap triangulate``, batch, a fusion
node run with the offline method); live fusion's one-instant temporaries are small and not
measured here.
The cost: a process keeps up to :data:`TRIM_THRESHOLD_BYTES` of freed heap
mapped (blocks above :data:`MMAP_THRESHOLD_BYTES`, e.g. a long recording's
arrays, still go straight back).  Only glibc has ``mallopt``; elsewhere (musl,
macOS, Windows) nothing changes.  ``RIGCAP_KEEP_FREED_MEMORY=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD_BYTES = 256 << 20

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process; True if they are set (now or before)."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("RIGCAP_KEEP_FREED_MEMORY", "1") == "0":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _done
