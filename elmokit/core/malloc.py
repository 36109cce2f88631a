"""Keep freed memory in the process on CPU training runs (glibc's ``mallopt``).

PyTorch allocates CPU tensors with ``malloc``. glibc serves every block above a threshold (dynamic, at most 32 MiB)
with ``mmap`` and unmaps it again on ``free``, so a training step that allocates the same large buffers every time
(the LSTMP kernel's gates alone are ``(T, B, 4H)`` = 42 MB at batch 128) pays the kernel to map and zero them anew:
tens of thousands of page faults per `small` step (scripts/bench_pretrain.py; recipes/README.md). Raising the mmap
threshold and switching off heap trimming lets the second step reuse the first step's memory (0 faults per step).

This is what Intel's PyTorch CPU tuning guide gets by preloading jemalloc or tcmalloc; ``mallopt`` gets it without
a preload. The cost: memory freed by the process is kept for reuse instead of being returned to the OS, so peak
RSS stays at the step's high-water mark, which a training loop reaches anyway. Set ``ELMOKIT_MALLOPT=0`` to switch
it off. Elsewhere (macOS, musl, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (glibc's mmap threshold is an int)
_TRIM_THRESHOLD = (1 << 31) - 1  # never give the top of the heap back


def keep_freed_memory() -> bool:
    """Tune glibc so freed tensor memory is reused rather than unmapped; returns whether it took effect.

    Call once, early, in a process that trains on the CPU. Idempotent; a no-op off glibc Linux or when the
    environment variable ``ELMOKIT_MALLOPT`` is ``0``.
    """
    if os.environ.get("ELMOKIT_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
