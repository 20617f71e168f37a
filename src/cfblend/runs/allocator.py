"""The C allocator's setting for training: keep freed blocks for reuse instead of returning them.

glibc's `malloc` serves any block over 32 MB with a fresh `mmap` and unmaps it when freed, so a
training step whose temporaries are tens of MB (AutoRec's gathered code and decoder rows on ml-1m:
50,000 rows x 300 floats, five of them a step) faults every page of each one in again, step after
step: on this machine a 58 MB element-wise product took 16 ms instead of 3. Raising the mmap and trim
thresholds to `LIMIT` (256 MB) keeps such blocks in the heap, where the next step reuses them: AutoRec's ml-1m
fold 0 fitted in 112 s with glibc's defaults and in 41 s with this setting (`bench/scale.py --model
autorec`, with and without `--default-malloc`; same RMSE, peak RSS 1.2 -> 1.4 GB). How much a page
fault costs varies on a virtual machine: a `make all` on ml-1m hours earlier had run the same folds in
46 s without it. Predictions do not change: only where the memory comes from does.

The cost is memory the process keeps after freeing it (up to `LIMIT` at the top of the heap, and
freed blocks under `LIMIT` between live ones). Training sets above `MAX_ROWS` ratings, where the
members' peak memory is what limits a run, get `LARGE_LIMIT`, glibc's own ceiling for its sliding
threshold: blocks of a mini-batch step (`nn`'s are a few MB) are still reused, while anything larger
is returned as glibc would. Without it, `nn`'s epoch on 2M ratings of the 25M synthetic set took 14 s
instead of 9 (its step temporaries faulted in again step after step; one-off, this session's code).
A member whose steps allocate blocks over that ceiling again and again (`Model.large_step_blocks`:
AutoRec, whose step of 256 items holds some 78k ratings at 25M, 45 MB per 150-wide tensor) keeps
`LIMIT` at any size: one epoch of its 25M fold took 45 s instead of 104 (`bench/scale.py --model
autorec --set epochs=1` on synth-25m, before and after, the same hour; system time 18 s instead of 123),
and the whole fold 228 s instead of 601, peak RSS 7.9 GB instead of 6.75, the same RMSE (scale-25m.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
LIMIT = 256 * 2**20
LARGE_LIMIT = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
MAX_ROWS = 5_000_000


@functools.cache
def _mallopt():
    """glibc's `mallopt`, or None under another C library (musl, macOS and Windows keep their allocator)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
    except (OSError, TypeError):
        return None
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def reuse_freed_memory(n_ratings: int, large_blocks: bool = False) -> bool:
    """Set glibc's mmap and trim thresholds in this process to `LIMIT` bytes when the training set (`n_ratings`)
    is at most `MAX_ROWS` or the member reuses `large_blocks` (`Model.large_step_blocks`), else to `LARGE_LIMIT`;
    True when set. Set on every call, so a process that fits one member and then another (a Dask worker) has
    the later one's setting. No-op, False, under another C library."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    limit = LIMIT if n_ratings <= MAX_ROWS or large_blocks else LARGE_LIMIT
    ok = bool(mallopt(M_MMAP_THRESHOLD, limit)) and bool(mallopt(M_TRIM_THRESHOLD, limit))
    if ok:
        log.debug("malloc keeps freed blocks up to %d MB for reuse", limit >> 20)
    return ok
